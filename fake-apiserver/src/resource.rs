//! The kinds the server knows: a built-in table plus what CRDs register.

use serde_json::{Value, json};

/// One served resource (a group/version/plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// Version (`v1`, `v1beta1`).
    pub version: String,
    /// Plural name, the path segment.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (`all` …).
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (the main endpoint then ignores status).
    pub status_subresource: bool,
    /// Printer columns (CRD `additionalPrinterColumns` form).
    pub printer_columns: Vec<Value>,
    /// The CRD that registered it, if any.
    pub crd: Option<String>,
}

/// Identifies a resource's storage: group and plural (all versions share it).
pub type ResKey = (String, String);

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key.
    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    /// Whether this is the CustomResourceDefinition resource.
    pub fn is_crd(&self) -> bool {
        Self::is_crd_key(&self.key())
    }

    /// Whether a storage key is the CustomResourceDefinitions'.
    pub fn is_crd_key(key: &ResKey) -> bool {
        key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions"
    }

    #[allow(clippy::too_many_arguments)]
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short_names: &[&str],
        categories: &[&str],
        status: bool,
        printer_columns: Vec<Value>,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
            status_subresource: status,
            printer_columns,
            crd: None,
        }
    }
}

fn col(name: &str, ty: &str, path: &str) -> Value {
    json!({ "name": name, "type": ty, "jsonPath": path })
}

/// The built-in kinds the controller touches, and those its install
/// manifests (`deploy/`) create.
pub fn builtins() -> Vec<ResourceType> {
    let age = || col("Age", "date", ".metadata.creationTimestamp");
    vec![
        ResourceType::builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &[],
            true,
            vec![col("Status", "string", ".status.phase"), age()],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            &["po"],
            &["all"],
            true,
            vec![
                col("Status", "string", ".status.phase"),
                col("Node", "string", ".spec.nodeName"),
                age(),
            ],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            &[],
            false,
            vec![age()],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            true,
            &[],
            &[],
            false,
            vec![col("Type", "string", ".type"), age()],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            false,
            vec![
                col("Last Seen", "date", ".lastTimestamp"),
                col("Type", "string", ".type"),
                col("Reason", "string", ".reason"),
                col("Object", "string", ".involvedObject.name"),
                col("Message", "string", ".message"),
            ],
        ),
        ResourceType::builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            false,
            vec![
                col("Type", "string", ".type"),
                col("Reason", "string", ".reason"),
                col("Object", "string", ".regarding.name"),
                col("Note", "string", ".note"),
            ],
        ),
        ResourceType::builtin(
            "batch",
            "v1",
            "jobs",
            "Job",
            true,
            &[],
            &["all"],
            true,
            vec![
                col("Status", "string", ".status.conditions[-1:].type"),
                col("Succeeded", "integer", ".status.succeeded"),
                col("Failed", "integer", ".status.failed"),
                age(),
            ],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            &[],
            false,
            vec![age()],
        ),
        ResourceType::builtin(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            &["all"],
            true,
            vec![
                col("Type", "string", ".spec.type"),
                col("Cluster-IP", "string", ".spec.clusterIP"),
                age(),
            ],
        ),
        ResourceType::builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            &["all"],
            true,
            vec![
                col("Ready", "integer", ".status.readyReplicas"),
                col("Available", "integer", ".status.availableReplicas"),
                age(),
            ],
        ),
        ResourceType::builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            &["all"],
            true,
            vec![col("Ready", "integer", ".status.readyReplicas"), age()],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            &[],
            false,
            vec![age()],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            &[],
            false,
            vec![col("Role", "string", ".roleRef.name"), age()],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            &[],
            false,
            vec![age()],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            &[],
            false,
            vec![col("Role", "string", ".roleRef.name"), age()],
        ),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            &[],
            false,
            vec![col("Holder", "string", ".spec.holderIdentity"), age()],
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            true,
            vec![
                json!({"name": "Created At", "type": "date", "format": "date-time", "jsonPath": ".metadata.creationTimestamp"}),
            ],
        ),
    ]
}

/// The resource types a CRD object registers (one per served version), or
/// why it cannot.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group: Required value")?;
    let names = spec.get("names").ok_or("spec.names: Required value")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural: Required value")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind: Required value")?;
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let scope = spec
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("Namespaced");
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions: Required value")?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("spec.versions[].name: Required value")?;
        out.push(ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced: scope != "Cluster",
            short_names: string_array(names.get("shortNames")),
            categories: string_array(names.get("categories")),
            status_subresource: v.pointer("/subresources/status").is_some(),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![col("Age", "date", ".metadata.creationTimestamp")]),
            crd: Some(name.to_string()),
        });
    }
    Ok(out)
}

/// The strings of a JSON array (`["a", "b"]`); anything else, or a
/// non-string element, contributes nothing.
pub(crate) fn string_array<C: FromIterator<String>>(v: Option<&Value>) -> C {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}
