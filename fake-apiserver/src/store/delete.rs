//! Deleting: finalizers hold an object (it only gets a
//! deletionTimestamp), and removing one takes what it owns along —
//! dependents by owner reference (unless orphaned), a namespace's
//! contents, a CRD's objects and kinds.

use super::meta::{finalizers_empty, meta_mut, meta_str, now};
use super::{ObjKey, State, Store};
use crate::resource::{ResKey, ResourceType};
use crate::status::ApiError;
use crate::store::EventType;
use serde_json::{Value, json};

/// Delete options.
#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    /// `Orphan` keeps dependents; anything else deletes them.
    pub orphan: bool,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl Store {
    /// Deletes an object: with finalizers it only gets a deletionTimestamp.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let old = st.existing(rt, ns, name)?;
        let failed = |what: &str| {
            ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: {what} in precondition does not match the {what} in record"
                ),
            )
        };
        if opts
            .uid
            .as_deref()
            .is_some_and(|u| Some(u) != meta_str(&old, "uid"))
        {
            return Err(failed("UID"));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|r| Some(r) != meta_str(&old, "resourceVersion"))
        {
            return Err(failed("ResourceVersion"));
        }
        if dry_run {
            return Ok(old);
        }
        Ok(st.delete_object(self, &rt.key(), ns.unwrap_or_default(), name, opts.orphan))
    }
}

impl State {
    /// Deletes honouring finalizers; returns the object's last state.
    pub(super) fn delete_object(
        &mut self,
        store: &Store,
        key: &ResKey,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Value {
        let Some(obj) = self.object(key, ns, name).cloned() else {
            return Value::Null;
        };
        if !finalizers_empty(&obj) {
            if meta_str(&obj, "deletionTimestamp").is_some() {
                return obj;
            }
            let mut new = obj.clone();
            if let Some(m) = meta_mut(&mut new) {
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            return self.commit(store, key, new, EventType::Modified, Some(obj));
        }
        self.remove(store, key, ns, name, orphan)
            .unwrap_or(Value::Null)
    }

    /// Removes an object now, then its dependents (owner-reference GC), its
    /// namespace's contents or its CRD's objects.
    pub(super) fn remove(
        &mut self,
        store: &Store,
        key: &ResKey,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Option<Value> {
        let obj = self.object(key, ns, name)?.clone();
        let removed = self.commit(store, key, obj.clone(), EventType::Deleted, Some(obj));
        let uid = meta_str(&removed, "uid").unwrap_or_default().to_string();
        self.uids.remove(&uid);
        if key.0.is_empty() && key.1 == "namespaces" {
            self.empty_namespace(store, name);
        }
        if ResourceType::is_crd_key(key) {
            self.unregister_crd(store, name);
        }
        self.collect_dependents(store, &uid, orphan);
        Some(removed)
    }

    /// Deletes everything in a namespace that is gone.
    fn empty_namespace(&mut self, store: &Store, namespace: &str) {
        let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
        for k in keys {
            let names: Vec<ObjKey> = self
                .objects
                .get(&k)
                .map(|o| o.keys().filter(|(n, _)| n == namespace).cloned().collect())
                .unwrap_or_default();
            for (n, nm) in names {
                self.delete_object(store, &k, &n, &nm, false);
            }
        }
    }

    /// Owner-reference garbage collection after `owner_uid` went: its
    /// dependents lose the reference (`orphan`) or, owned by nothing else
    /// that exists, are deleted.
    fn collect_dependents(&mut self, store: &Store, owner_uid: &str, orphan: bool) {
        if owner_uid.is_empty() {
            return;
        }
        let owned_by = |o: &Value, uid: &str| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .any(|x| x.get("uid").and_then(Value::as_str) == Some(uid))
                })
        };
        let mut dependents = Vec::new();
        for (k, objs) in &self.objects {
            for ((ns, name), o) in objs {
                if owned_by(o, owner_uid) {
                    dependents.push((k.clone(), ns.clone(), name.clone()));
                }
            }
        }
        for (k, ns, name) in dependents {
            let Some(obj) = self.object(&k, &ns, &name).cloned() else {
                continue;
            };
            if orphan {
                let mut new = obj.clone();
                if let Some(Value::Array(refs)) = new.pointer_mut("/metadata/ownerReferences") {
                    refs.retain(|x| x.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                self.commit(store, &k, new, EventType::Modified, Some(obj));
                continue;
            }
            let owners_left = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .filter_map(|x| x.get("uid").and_then(Value::as_str))
                        .any(|u| self.uids.contains(u))
                });
            if !owners_left {
                self.delete_object(store, &k, &ns, &name, false);
            }
        }
    }
}
