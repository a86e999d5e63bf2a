//! The object store: one global resourceVersion counter and the objects of
//! each served resource, behind one lock. Each job is a module:
//! [`meta`] (metadata and server-made values), [`create`], [`update`]
//! (PUT, patches, status), [`delete`] (finalizers and garbage collection),
//! [`list`] (selectors and paging), [`watch`] (events and their bounded
//! history), [`crd`] (CustomResourceDefinitions serving kinds) and
//! [`defaults`] (what the API server defaults for built-in kinds).

mod crd;
mod create;
mod defaults;
mod delete;
mod list;
mod meta;
mod update;
mod watch;

pub use delete::DeleteOpts;
pub use list::ListOpts;
pub use meta::{now, ns_name, random_suffix, with_type};
pub use watch::{Event, EventType};

use crate::resource::{self, ResKey, ResourceType};
use crate::status::ApiError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main endpoint.
    Main,
    /// `/status`.
    Status,
}

/// An object's key within its resource: (namespace, name).
type ObjKey = (String, String);

#[derive(Debug)]
struct State {
    rv: u64,
    types: Vec<ResourceType>,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Value>>,
    history: HashMap<ResKey, watch::History>,
    uids: HashSet<String>,
    history_limit: usize,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// A store serving the built-in kinds, with namespaces `default`,
    /// `kube-system`, `kube-public` and `kube-node-lease`.
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(8192);
        let store = Self {
            state: Mutex::new(State {
                rv: 1,
                types: resource::builtins(),
                objects: HashMap::new(),
                history: HashMap::new(),
                uids: HashSet::new(),
                history_limit: history_limit.max(1),
            }),
            events,
        };
        let namespaces = store.find_type("", "v1", "namespaces");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if let Some(rt) = &namespaces {
                let _ = store.create_internal(
                    rt,
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in
        // a way later requests would trip on, so a poisoned lock is reused.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// All served resource types.
    pub fn types(&self) -> Vec<ResourceType> {
        self.lock().types.clone()
    }

    /// The type served at group/version/plural.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.lock().existing(rt, ns, name)
    }
}

impl State {
    /// An object of a resource, by its storage key.
    fn object(&self, key: &ResKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.object(&rt.key(), ns.unwrap_or_default(), name)
    }

    /// An object that must exist (404 otherwise), as it is now.
    fn existing(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.get(rt, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".into()))
            .is_some_and(|o| o.contains_key(&(String::new(), ns.to_string())))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cm_type() -> ResourceType {
        resource::builtins()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap()
    }

    #[test]
    fn history_limit_makes_old_watches_gone() {
        let s = Store::new(2);
        let rt = cm_type();
        let first = s
            .create(
                &rt,
                Some("default"),
                json!({"metadata": {"name": "a"}}),
                false,
            )
            .unwrap();
        let rv: u64 = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        for n in ["b", "c", "d"] {
            s.create(
                &rt,
                Some("default"),
                json!({"metadata": {"name": n}}),
                false,
            )
            .unwrap();
        }
        assert_eq!(s.watch(&rt, None, Some(rv)).unwrap_err().code, 410);
        let (replay, _, _) = s.watch(&rt, None, Some(rv + 2)).unwrap();
        assert_eq!(replay.len(), 1);
    }
}
