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
}

/// A printer column: name, type and JSONPath (a `date` column whose type
/// is written `date-time` gets that format too, as the CRD table's does).
type Column = (&'static str, &'static str, &'static str);

const AGE: Column = ("Age", "date", ".metadata.creationTimestamp");

/// A built-in kind, as [`BUILTINS`] lists it.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    columns: &'static [Column],
}

/// The built-in kinds the controller touches, and those its install
/// manifests (`deploy/`) create.
#[rustfmt::skip]
static BUILTINS: &[Builtin] = &[
    Builtin { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, short_names: &["ns"], categories: &[], status: true,
        columns: &[("Status", "string", ".status.phase"), AGE] },
    Builtin { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, short_names: &["po"], categories: &["all"], status: true,
        columns: &[("Status", "string", ".status.phase"), ("Node", "string", ".spec.nodeName"), AGE] },
    Builtin { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true, short_names: &["cm"], categories: &[], status: false,
        columns: &[AGE] },
    Builtin { group: "", version: "v1", plural: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true, short_names: &["pvc"], categories: &[], status: true,
        columns: &[("Status", "string", ".status.phase"), ("Capacity", "string", ".spec.resources.requests.storage"), AGE] },
    Builtin { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, short_names: &[], categories: &[], status: false,
        columns: &[("Type", "string", ".type"), AGE] },
    Builtin { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true, short_names: &["ev"], categories: &[], status: false,
        columns: &[("Last Seen", "date", ".lastTimestamp"), ("Type", "string", ".type"), ("Reason", "string", ".reason"), ("Object", "string", ".involvedObject.name"), ("Message", "string", ".message")] },
    Builtin { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true, short_names: &["ev"], categories: &[], status: false,
        columns: &[("Type", "string", ".type"), ("Reason", "string", ".reason"), ("Object", "string", ".regarding.name"), ("Note", "string", ".note")] },
    Builtin { group: "batch", version: "v1", plural: "jobs", kind: "Job", namespaced: true, short_names: &[], categories: &["all"], status: true,
        columns: &[("Status", "string", ".status.conditions[-1:].type"), ("Succeeded", "integer", ".status.succeeded"), ("Failed", "integer", ".status.failed"), AGE] },
    Builtin { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, short_names: &["sa"], categories: &[], status: false,
        columns: &[AGE] },
    Builtin { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true, short_names: &["svc"], categories: &["all"], status: true,
        columns: &[("Type", "string", ".spec.type"), ("Cluster-IP", "string", ".spec.clusterIP"), AGE] },
    Builtin { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true, short_names: &["deploy"], categories: &["all"], status: true,
        columns: &[("Ready", "integer", ".status.readyReplicas"), ("Available", "integer", ".status.availableReplicas"), AGE] },
    Builtin { group: "apps", version: "v1", plural: "statefulsets", kind: "StatefulSet", namespaced: true, short_names: &["sts"], categories: &["all"], status: true,
        columns: &[("Ready", "integer", ".status.readyReplicas"), AGE] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role", namespaced: true, short_names: &[], categories: &[], status: false,
        columns: &[AGE] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding", namespaced: true, short_names: &[], categories: &[], status: false,
        columns: &[("Role", "string", ".roleRef.name"), AGE] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", kind: "ClusterRole", namespaced: false, short_names: &[], categories: &[], status: false,
        columns: &[AGE] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false, short_names: &[], categories: &[], status: false,
        columns: &[("Role", "string", ".roleRef.name"), AGE] },
    Builtin { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true, short_names: &[], categories: &[], status: false,
        columns: &[("Holder", "string", ".spec.holderIdentity"), AGE] },
    Builtin { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, short_names: &["crd", "crds"], categories: &["api-extensions"], status: true,
        columns: &[("Created At", "date-time", ".metadata.creationTimestamp")] },
];

fn column((name, ty, path): Column) -> Value {
    match ty {
        "date-time" => {
            json!({"name": name, "type": "date", "format": "date-time", "jsonPath": path})
        }
        _ => json!({"name": name, "type": ty, "jsonPath": path}),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The built-in kinds ([`BUILTINS`]) as served types.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.into(),
            version: b.version.into(),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            kind: b.kind.into(),
            namespaced: b.namespaced,
            short_names: strings(b.short_names),
            categories: strings(b.categories),
            status_subresource: b.status,
            printer_columns: b.columns.iter().copied().map(column).collect(),
            crd: None,
        })
        .collect()
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
                .unwrap_or_else(|| vec![column(AGE)]),
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
