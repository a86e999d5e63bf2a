//! Changes: every write gets the next resourceVersion and becomes an
//! event, kept in a bounded history per resource (a watch from an older
//! resourceVersion than the history holds gets `410 Gone`) and broadcast
//! to the open watches.

use super::meta::{meta_mut, meta_str};
use super::{State, Store};
use crate::resource::{ResKey, ResourceType};
use crate::status::ApiError;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in history and broadcast to watches.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Which resource.
    pub key: ResKey,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for `Deleted`, the last state).
    pub object: Value,
    /// The object before the change, for selector transitions.
    pub old: Option<Value>,
}

/// One resource's recent events.
#[derive(Debug, Default)]
pub(super) struct History {
    events: VecDeque<Arc<Event>>,
    /// The rv of the newest event dropped: watches from before it get 410.
    compacted: u64,
}

/// A watch's start: events to replay, the live receiver, the rv reached.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>, u64);

impl Store {
    /// Subscribes to every change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Drops all history (as an etcd compaction does) and bumps the
    /// resourceVersion, so every open watch and every later watch from an
    /// older resourceVersion gets `410 Gone`.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.rv += 1;
        let rv = st.rv;
        let keys: Vec<ResKey> = st.types.iter().map(ResourceType::key).collect();
        for k in keys {
            let h = st.history.entry(k).or_default();
            h.events.clear();
            h.compacted = rv;
        }
    }

    /// Starts a watch: the events to replay first (after `rv`, or the
    /// current objects as `ADDED` when `rv` is None/0), a receiver for what
    /// follows, and the rv the replay reaches.
    pub fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        rv: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let st = self.lock();
        let rx = self.events.subscribe();
        let key = rt.key();
        match rv {
            None | Some(0) => Ok((st.current_as_added(&key, ns), rx, st.rv)),
            Some(from) => {
                let h = st.history.get(&key);
                let compacted = h.map_or(0, |h| h.compacted);
                if from < compacted {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {from} ({compacted})"
                    )));
                }
                let replay: Vec<Arc<Event>> = h
                    .map(|h| h.events.iter().filter(|e| e.rv > from).cloned().collect())
                    .unwrap_or_default();
                Ok((replay, rx, st.rv.max(from)))
            }
        }
    }
}

impl State {
    /// The objects of a resource (in `ns`, if given) as `ADDED` events at
    /// their own resourceVersions: a watch from "now" replays them first.
    fn current_as_added(&self, key: &ResKey, ns: Option<&str>) -> Vec<Arc<Event>> {
        let Some(objs) = self.objects.get(key) else {
            return Vec::new();
        };
        objs.iter()
            .filter(|((ons, _), _)| ns.is_none_or(|n| n == ons))
            .map(|(_, o)| {
                let orv = meta_str(o, "resourceVersion")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                Arc::new(Event {
                    rv: orv,
                    key: key.clone(),
                    kind: EventType::Added,
                    object: o.clone(),
                    old: None,
                })
            })
            .collect()
    }

    /// Stores `obj` under a new resourceVersion and records the event.
    pub(super) fn commit(
        &mut self,
        store: &Store,
        key: &ResKey,
        mut obj: Value,
        kind: EventType,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(m) = meta_mut(&mut obj) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        // core/v1 and events.k8s.io/v1 Events are one storage on a real
        // server: keep a converted copy on the other side.
        if let Some((mirror_key, mirrored)) = crate::events::mirror(key, &obj) {
            let mirror_old = old
                .as_ref()
                .and_then(|o| crate::events::mirror(key, o))
                .map(|(_, o)| o);
            self.record(store, &mirror_key, mirrored, kind, mirror_old, rv);
        }
        self.record(store, key, obj, kind, old, rv)
    }

    /// Stores an object at `rv` and records and broadcasts the event.
    fn record(
        &mut self,
        store: &Store,
        key: &ResKey,
        obj: Value,
        kind: EventType,
        old: Option<Value>,
        rv: u64,
    ) -> Value {
        let okey = (
            meta_str(&obj, "namespace").unwrap_or_default().to_string(),
            meta_str(&obj, "name").unwrap_or_default().to_string(),
        );
        let objs = self.objects.entry(key.clone()).or_default();
        if kind == EventType::Deleted {
            objs.remove(&okey);
        } else {
            objs.insert(okey, obj.clone());
        }
        let ev = Arc::new(Event {
            rv,
            key: key.clone(),
            kind,
            object: obj.clone(),
            old,
        });
        let limit = self.history_limit;
        let h = self.history.entry(key.clone()).or_default();
        h.events.push_back(ev.clone());
        while h.events.len() > limit {
            if let Some(dropped) = h.events.pop_front() {
                h.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = store.events.send(ev);
        obj
    }
}
