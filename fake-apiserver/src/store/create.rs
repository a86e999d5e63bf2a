//! Creating an object: the request's checks (kind, apiVersion,
//! namespace, name or `generateName`), the fields the server sets
//! (uid, creationTimestamp, generation), then the kind's defaults.

use super::defaults::defaults;
use super::meta::{meta_mut, meta_str, new_uid, now, random_suffix, valid_name, with_type};
use super::{State, Store};
use crate::resource::ResourceType;
use crate::status::ApiError;
use crate::store::EventType;
use serde_json::{Map, Value, json};

impl Store {
    /// Creates an object from a request body.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let obj = st.prepare_create(rt, ns, obj)?;
        if dry_run {
            return Ok(obj);
        }
        st.commit_create(self, rt, obj)
    }

    /// Creates without request checks beyond the basics (for the executor and setup).
    pub fn create_internal(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.create(rt, ns, obj, false)
    }
}

/// Refuses a body that is not an object of the endpoint's kind and group.
fn check_body(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({k}) does not match the kind of the endpoint ({})",
            rt.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != rt.api_version()
        && !(rt.group.is_empty() && av == rt.version)
        && av.rsplit_once('/').map_or("", |(g, _)| g) != rt.group
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

/// The object's name: its own, or `generateName` with a random suffix;
/// a valid RFC 1123 subdomain either way.
fn name_for(rt: &ResourceType, meta: &Map<String, Value>) -> Result<String, ApiError> {
    let given = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let name = match (given, meta.get("generateName").and_then(Value::as_str)) {
        (Some(n), _) => n.to_string(),
        (None, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
        _ => {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    };
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            &name,
            format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
            ),
        ));
    }
    Ok(name)
}

/// Sets what the server owns in a new object's metadata.
fn stamp(meta: &mut Map<String, Value>, name: &str, ns: Option<&str>) {
    meta.insert("name".into(), json!(name));
    match ns {
        Some(n) => meta.insert("namespace".into(), json!(n)),
        None => meta.remove("namespace"),
    };
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now()));
    meta.insert("generation".into(), json!(1));
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(f);
    }
}

impl State {
    /// The namespace a new object goes to (`None` for cluster-scoped
    /// kinds): the request's and the body's must agree, and it must exist.
    fn namespace_for(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: &Value,
    ) -> Result<Option<String>, ApiError> {
        if !rt.namespaced {
            return Ok(None);
        }
        let body_ns = meta_str(obj, "namespace").filter(|n| !n.is_empty());
        let ns = match (ns, body_ns) {
            (Some(p), Some(b)) if p != b => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(p), _) => p.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => return Err(ApiError::bad_request("a namespace is required")),
        };
        if !self.namespace_exists(&ns) {
            return Err(ApiError::not_found("", "namespaces", &ns));
        }
        Ok(Some(ns))
    }

    /// Whether the name is in use, by this resource or its mirror (Events).
    fn taken(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> bool {
        let key = (ns.unwrap_or_default().to_owned(), name.to_owned());
        let by_mirror = crate::events::mirror(&rt.key(), &json!({}))
            .is_some_and(|(k, _)| self.objects.get(&k).is_some_and(|o| o.contains_key(&key)));
        by_mirror || self.get(rt, ns, name).is_some()
    }

    /// The object as it would be created, or why it cannot be.
    pub(super) fn prepare_create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        check_body(rt, &obj)?;
        let ns = self.namespace_for(rt, ns, &obj)?;
        let mut obj = with_type(obj, rt);
        let meta = meta_mut(&mut obj)
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        let name = name_for(rt, meta)?;
        if self.taken(rt, ns.as_deref(), &name) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        stamp(meta, &name, ns.as_deref());
        if rt.status_subresource
            && rt.crd.is_some()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        defaults(rt, &mut obj)?;
        Ok(obj)
    }

    /// Stores a prepared object (registering a CRD's kinds first).
    pub(super) fn commit_create(
        &mut self,
        store: &Store,
        rt: &ResourceType,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut obj = obj;
        if rt.is_crd() {
            self.register_crd(&mut obj)?;
        }
        if let Some(uid) = meta_str(&obj, "uid") {
            self.uids.insert(uid.to_string());
        }
        Ok(self.commit(store, &rt.key(), obj, EventType::Added, None))
    }
}
