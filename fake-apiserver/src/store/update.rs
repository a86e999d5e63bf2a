//! Changing an object: PUT, the patches (server-side apply creates), and
//! the executor's direct status writes. Server-owned metadata is kept,
//! `/status` and the main endpoint each change only their part, a spec
//! change bumps `generation`, and an object being deleted whose last
//! finalizer goes is removed.

use super::meta::{finalizers_empty, generation_view, meta_mut, meta_str, with_type};
use super::{State, Store, Sub};
use crate::patch::{self, PatchType};
use crate::resource::ResourceType;
use crate::status::ApiError;
use crate::store::EventType;
use serde_json::{Value, json};

/// Metadata fields only the server writes.
const SERVER_OWNED: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

impl Store {
    /// Replaces an object (PUT).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        sub: Sub,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let old = st.existing(rt, ns, name)?;
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(name_mismatch());
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(modified(rt, name));
        }
        st.write_update(self, rt, old, obj, sub, dry_run)
    }

    /// Patches an object; server-side apply creates it when missing.
    /// Returns the object and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        body: &[u8],
        sub: Sub,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let mut st = self.lock();
        let Some(old) = st.get(rt, ns, name).cloned() else {
            if pt == PatchType::Apply && sub == Sub::Main {
                return st.apply_create(self, rt, ns, name, body, dry_run);
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if pt == PatchType::Apply
            && (body.is_empty() || patch::parse_body(body)?.get("kind").is_none())
        {
            return Err(apply_needs_type());
        }
        let mut patched = patch::apply(pt, &old, body)?;
        // A status is one manager's (a controller's): what it applies
        // replaces it whole, so a field it stopped sending is gone, as the
        // real server drops the fields a manager no longer applies.
        if pt == PatchType::Apply
            && sub == Sub::Status
            && let Some(object) = patched.as_object_mut()
        {
            match patch::parse_body(body)?.get("status") {
                Some(status) => object.insert("status".into(), status.clone()),
                None => object.remove("status"),
            };
        }
        if meta_str(&patched, "resourceVersion") != meta_str(&old, "resourceVersion") {
            return Err(modified(rt, name));
        }
        if meta_str(&patched, "name") != Some(name) {
            return Err(name_mismatch());
        }
        st.write_update(self, rt, old, patched, sub, dry_run)
            .map(|o| (o, false))
    }

    /// Writes an object's status directly (for the executor): the object
    /// must exist; no resourceVersion check.
    pub fn set_status(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        self.modify_status(rt, ns, name, move |s| *s = status_map(status))
    }

    /// Changes an object's status in place under the store's lock (for the
    /// fake's controllers, each of which owns a part of it, as field
    /// managers do): the object must exist; no resourceVersion check.
    pub fn modify_status(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        change: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let old = st.existing(rt, Some(ns), name)?;
        let mut new = old.clone();
        if let Some(m) = new.as_object_mut() {
            let mut status = status_map(m.remove("status").unwrap_or(Value::Null));
            change(&mut status);
            m.insert("status".into(), Value::Object(status));
        }
        st.write_update(self, rt, old, new, Sub::Status, false)
    }
}

/// A status as a map (anything but an object is an empty one).
fn status_map(status: Value) -> serde_json::Map<String, Value> {
    match status {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn name_mismatch() -> ApiError {
    ApiError::bad_request("the name of the object does not match the name on the URL")
}

fn modified(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::conflict(&rt.group, &rt.plural, name, ApiError::MODIFIED)
}

fn apply_needs_type() -> ApiError {
    ApiError::bad_request("apiVersion and kind must be set in an apply patch")
}

/// `new` with only the part `sub` may change taken from it: through
/// `/status` only the status; through the main endpoint of a kind with a
/// status subresource, everything but the status.
fn writable_part(rt: &ResourceType, old: &Value, new: Value, sub: Sub) -> Value {
    let carry = |mut to: Value, status: Option<Value>| {
        if let Some(m) = to.as_object_mut() {
            match status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        }
        to
    };
    match sub {
        Sub::Status => carry(old.clone(), new.get("status").cloned()),
        Sub::Main if rt.status_subresource => carry(new, old.get("status").cloned()),
        Sub::Main => new,
    }
}

/// Puts back the metadata only the server writes, refusing new
/// finalizers on an object being deleted.
fn keep_server_metadata(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = meta_mut(new).ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for f in SERVER_OWNED {
        match old_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
    }
    if old_meta.get("deletionTimestamp").is_none() {
        return Ok(());
    }
    let old_finalizers = old_meta
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Array(finalizers)) = meta.get("finalizers")
        && finalizers.iter().any(|f| !old_finalizers.contains(f))
    {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            meta_str(old, "name").unwrap_or_default(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
        ));
    }
    Ok(())
}

/// Bumps `generation` when more than metadata (and, with a status
/// subresource, the status) changed.
fn bump_generation(rt: &ResourceType, old: &Value, new: &mut Value) {
    if generation_view(old, rt.status_subresource) == generation_view(new, rt.status_subresource) {
        return;
    }
    let g = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        + 1;
    if let Some(m) = meta_mut(new) {
        m.insert("generation".into(), json!(g));
    }
}

impl State {
    /// Server-side apply of an object that does not exist: a create.
    fn apply_create(
        &mut self,
        store: &Store,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let mut obj = patch::parse_body(body)?;
        if obj.get("apiVersion").is_none() || obj.get("kind").is_none() {
            return Err(apply_needs_type());
        }
        if let Some(m) = meta_mut(&mut obj) {
            m.insert("name".into(), json!(name));
        }
        let obj = self.prepare_create(rt, ns, obj)?;
        if dry_run {
            return Ok((obj, true));
        }
        self.commit_create(store, rt, obj).map(|o| (o, true))
    }

    /// Writes `new` over `old` through `sub`.
    pub(super) fn write_update(
        &mut self,
        store: &Store,
        rt: &ResourceType,
        old: Value,
        new: Value,
        sub: Sub,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        let mut new = writable_part(rt, &old, with_type(new, rt), sub);
        keep_server_metadata(rt, &old, &mut new)?;
        bump_generation(rt, &old, &mut new);
        if rt.is_crd() && sub == Sub::Main {
            self.register_crd(&mut new)?;
        }
        if new == old {
            return Ok(old);
        }
        if dry_run {
            return Ok(new);
        }
        let key = rt.key();
        let (ns, name) = super::meta::ns_name(&new);
        let deleting = meta_str(&new, "deletionTimestamp").is_some();
        let stored = self.commit(store, &key, new, EventType::Modified, Some(old));
        if deleting && finalizers_empty(&stored) {
            return Ok(self
                .remove(store, &key, &ns, &name, false)
                .unwrap_or(stored));
        }
        Ok(stored)
    }
}
