//! The object store: one global resourceVersion counter, objects per
//! resource, a bounded event history per resource for watches, finalizers,
//! owner-reference garbage collection and CRD registration.

use crate::patch::{self, PatchType};
use crate::resource::{self, ResKey, ResourceType};
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
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

#[derive(Debug, Default)]
struct History {
    events: VecDeque<Arc<Event>>,
    /// The rv of the newest event dropped: watches from before it get 410.
    compacted: u64,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main endpoint.
    Main,
    /// `/status`.
    Status,
}

/// List options.
#[derive(Debug, Default, Clone)]
pub struct ListOpts {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

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

type ObjKey = (String, String);

/// A watch's start: events to replay, the live receiver, the rv reached.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>, u64);

#[derive(Debug)]
struct State {
    rv: u64,
    types: Vec<ResourceType>,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Value>>,
    history: HashMap<ResKey, History>,
    uids: HashSet<String>,
    history_limit: usize,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
}

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random suffix as `generateName` makes (5 characters, no vowels).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

fn new_uid() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.as_object_mut()?.insert("metadata".into(), json!({}));
    }
    obj.get_mut("metadata").and_then(Value::as_object_mut)
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The object minus what does not count as a spec change for `generation`.
fn generation_view(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if status_sub {
            m.remove("status");
        }
    }
    v
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
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = store.create_internal(
                &ns_type(),
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            );
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in
        // a way later requests would trip on, so a poisoned lock is reused.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to every change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
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

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        st.get(rt, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects (all namespaces when `ns` is None).
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOpts,
    ) -> Result<Value, ApiError> {
        let st = self.lock();
        let start = match &opts.continue_token {
            Some(t) => {
                let k = unhex(t).ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                let (a, b) = k
                    .split_once('\u{0}')
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                Some((a.to_string(), b.to_string()))
            }
            None => None,
        };
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        if let Some(objs) = st.objects.get(&rt.key()) {
            for ((ons, oname), obj) in objs {
                if ns.is_some_and(|n| n != ons) {
                    continue;
                }
                if start
                    .as_ref()
                    .is_some_and(|(sn, sname)| (ons, oname) <= (sn, sname))
                {
                    continue;
                }
                if !opts.labels.matches(obj) || !opts.fields.matches(obj) {
                    continue;
                }
                if opts.limit > 0 && items.len() >= opts.limit {
                    remaining += 1;
                    continue;
                }
                if opts.limit > 0 && items.len() + 1 == opts.limit {
                    next = Some(hex(&format!("{ons}\u{0}{oname}")));
                }
                items.push(with_type(obj.clone(), rt));
            }
        }
        let mut meta = json!({"resourceVersion": st.rv.to_string()});
        if remaining > 0
            && let Some(n) = next
        {
            meta["continue"] = json!(n);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": meta,
            "items": items,
        }))
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
            None | Some(0) => {
                let replay = st
                    .objects
                    .get(&key)
                    .map(|objs| {
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
                    })
                    .unwrap_or_default();
                Ok((replay, rx, st.rv))
            }
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
        let old = st
            .get(rt, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                ApiError::MODIFIED,
            ));
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
                let mut obj = patch::parse_body(body)?;
                if obj.get("apiVersion").is_none() || obj.get("kind").is_none() {
                    return Err(ApiError::bad_request(
                        "apiVersion and kind must be set in an apply patch",
                    ));
                }
                if let Some(m) = meta_mut(&mut obj) {
                    m.insert("name".into(), json!(name));
                }
                let obj = st.prepare_create(rt, ns, obj)?;
                if dry_run {
                    return Ok((obj, true));
                }
                return st.commit_create(self, rt, obj).map(|o| (o, true));
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if pt == PatchType::Apply
            && (body.is_empty() || patch::parse_body(body)?.get("kind").is_none())
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply patch",
            ));
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
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                ApiError::MODIFIED,
            ));
        }
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        st.write_update(self, rt, old, patched, sub, dry_run)
            .map(|o| (o, false))
    }

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
        let old = st
            .get(rt, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if opts
            .uid
            .as_deref()
            .is_some_and(|u| Some(u) != meta_str(&old, "uid"))
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "Precondition failed: UID in precondition does not match the UID in record",
            ));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|r| Some(r) != meta_str(&old, "resourceVersion"))
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "Precondition failed: ResourceVersion in precondition does not match the ResourceVersion in record",
            ));
        }
        if dry_run {
            return Ok(old);
        }
        Ok(st.delete_object(self, &rt.key(), ns.unwrap_or_default(), name, opts.orphan))
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
        let mut st = self.lock();
        let old = st
            .get(rt, Some(ns), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let mut new = old.clone();
        if let Some(m) = new.as_object_mut() {
            m.insert("status".into(), status);
        }
        st.write_update(self, rt, old, new, Sub::Status, false)
    }
}

fn ns_type() -> ResourceType {
    resource::builtins()
        .into_iter()
        .find(|t| t.plural == "namespaces")
        .unwrap_or_else(|| ResourceType {
            group: String::new(),
            version: "v1".into(),
            plural: "namespaces".into(),
            singular: "namespace".into(),
            kind: "Namespace".into(),
            namespaced: false,
            short_names: vec![],
            categories: vec![],
            status_subresource: true,
            printer_columns: vec![],
            crd: None,
        })
}

/// Sets apiVersion/kind as served at `rt`'s version.
pub fn with_type(mut obj: Value, rt: &ResourceType) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    obj
}

impl State {
    fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.objects
            .get(&rt.key())?
            .get(&(ns.unwrap_or_default().to_string(), name.to_string()))
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".into()))
            .is_some_and(|o| o.contains_key(&(String::new(), ns.to_string())))
    }

    fn prepare_create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
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
        {
            let group_of = av.rsplit_once('/').map_or("", |(g, _)| g);
            if group_of != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        let ns = if rt.namespaced {
            let body_ns = meta_str(&obj, "namespace").filter(|n| !n.is_empty());
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
            Some(ns)
        } else {
            None
        };
        obj = with_type(obj, rt);
        let meta = meta_mut(&mut obj)
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => format!("{g}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
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
        let taken_by_mirror = crate::events::mirror(&rt.key(), &json!({})).is_some_and(|(k, _)| {
            self.objects
                .get(&k)
                .is_some_and(|o| o.contains_key(&(ns.clone().unwrap_or_default(), name.clone())))
        });
        if taken_by_mirror || self.get(rt, ns.as_deref(), &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        meta.insert("name".into(), json!(name));
        match &ns {
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
        if rt.status_subresource
            && rt.crd.is_some()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        defaults(rt, &mut obj)?;
        Ok(obj)
    }

    fn commit_create(
        &mut self,
        store: &Store,
        rt: &ResourceType,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let mut obj = obj;
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.register_crd(&mut obj)?;
        }
        if let Some(uid) = meta_str(&obj, "uid") {
            self.uids.insert(uid.to_string());
        }
        Ok(self.commit(store, &rt.key(), obj, EventType::Added, None))
    }

    /// Stores `obj` under a new resourceVersion and records the event.
    fn commit(
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

    fn write_update(
        &mut self,
        store: &Store,
        rt: &ResourceType,
        old: Value,
        mut new: Value,
        sub: Sub,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        new = with_type(new, rt);
        if sub == Sub::Status {
            // Only status changes (as the status strategy does).
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            if let Some(m) = merged.as_object_mut() {
                match status {
                    Some(s) => m.insert("status".into(), s),
                    None => m.remove("status"),
                };
            }
            new = merged;
        } else if rt.status_subresource
            && let Some(m) = new.as_object_mut()
        {
            match old.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        // Server-owned metadata stays.
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new)
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        if old_meta.get("deletionTimestamp").is_some() {
            // New finalizers cannot be added to an object being deleted.
            let old_f = old_meta
                .get("finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Array(nf)) = meta.get("finalizers")
                && nf.iter().any(|f| !old_f.contains(f))
            {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    meta_str(&old, "name").unwrap_or_default(),
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if generation_view(&old, rt.status_subresource)
            != generation_view(&new, rt.status_subresource)
        {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            if let Some(m) = meta_mut(&mut new) {
                m.insert("generation".into(), json!(g));
            }
        }
        if rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
            && sub == Sub::Main
        {
            self.register_crd(&mut new)?;
        }
        if new == old {
            return Ok(old);
        }
        if dry_run {
            return Ok(new);
        }
        let key = rt.key();
        let ns = meta_str(&new, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&new, "name").unwrap_or_default().to_string();
        let deleting = meta_str(&new, "deletionTimestamp").is_some();
        let stored = self.commit(store, &key, new, EventType::Modified, Some(old));
        if deleting && finalizers_empty(&stored) {
            return Ok(self
                .remove(store, &key, &ns, &name, false)
                .unwrap_or(stored));
        }
        Ok(stored)
    }

    /// Deletes honouring finalizers; returns the object's last state.
    fn delete_object(
        &mut self,
        store: &Store,
        key: &ResKey,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Value {
        let Some(obj) = self
            .objects
            .get(key)
            .and_then(|o| o.get(&(ns.to_string(), name.to_string())))
            .cloned()
        else {
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
    fn remove(
        &mut self,
        store: &Store,
        key: &ResKey,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Option<Value> {
        let obj = self
            .objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))?
            .clone();
        let removed = self.commit(store, key, obj.clone(), EventType::Deleted, Some(obj));
        let uid = meta_str(&removed, "uid").unwrap_or_default().to_string();
        self.uids.remove(&uid);
        // Namespaces take their contents; CRDs take their objects and types.
        if key.0.is_empty() && key.1 == "namespaces" {
            let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
            for k in keys {
                let names: Vec<ObjKey> = self
                    .objects
                    .get(&k)
                    .map(|o| o.keys().filter(|(n, _)| n == name).cloned().collect())
                    .unwrap_or_default();
                for (n, nm) in names {
                    self.delete_object(store, &k, &n, &nm, false);
                }
            }
        }
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            let owned: Vec<ResKey> = self
                .types
                .iter()
                .filter(|t| t.crd.as_deref() == Some(name))
                .map(ResourceType::key)
                .collect();
            for k in owned {
                let names: Vec<ObjKey> = self
                    .objects
                    .get(&k)
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                for (n, nm) in names {
                    self.remove(store, &k, &n, &nm, false);
                }
                self.objects.remove(&k);
            }
            self.types.retain(|t| t.crd.as_deref() != Some(name));
        }
        self.collect_dependents(store, &uid, orphan);
        Some(removed)
    }

    fn collect_dependents(&mut self, store: &Store, owner_uid: &str, orphan: bool) {
        if owner_uid.is_empty() {
            return;
        }
        let mut dependents = Vec::new();
        for (k, objs) in &self.objects {
            for ((ns, name), o) in objs {
                let refs = o
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array);
                if refs.is_some_and(|r| {
                    r.iter()
                        .any(|x| x.get("uid").and_then(Value::as_str) == Some(owner_uid))
                }) {
                    dependents.push((k.clone(), ns.clone(), name.clone()));
                }
            }
        }
        for (k, ns, name) in dependents {
            let Some(obj) = self
                .objects
                .get(&k)
                .and_then(|o| o.get(&(ns.clone(), name.clone())))
                .cloned()
            else {
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

    /// Registers (or re-registers) the kinds a CRD serves and marks it Established.
    fn register_crd(&mut self, crd: &mut Value) -> Result<(), ApiError> {
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        let types = resource::from_crd(crd).map_err(|e| {
            ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", &name, e)
        })?;
        for t in &types {
            if self.types.iter().any(|x| {
                x.group == t.group
                    && x.plural == t.plural
                    && x.crd.as_deref() != Some(name.as_str())
            }) {
                return Err(ApiError::invalid(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    &name,
                    format!("{}.{} is already served", t.plural, t.group),
                ));
            }
        }
        self.types
            .retain(|t| t.crd.as_deref() != Some(name.as_str()));
        let stored: Vec<Value> = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect()
            })
            .unwrap_or_default();
        let names = crd
            .pointer("/spec/names")
            .cloned()
            .unwrap_or_else(|| json!({}));
        self.types.extend(types);
        let t = now();
        if let Some(m) = crd.as_object_mut() {
            m.insert(
                "status".into(),
                json!({
                    "acceptedNames": names,
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
                    ],
                }),
            );
        }
        Ok(())
    }
}

/// What the real API server defaults on create, for the kinds where it matters.
fn defaults(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            if let Some(m) = meta_mut(obj) {
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("batch", "jobs") => {
            let spec = obj
                .get_mut("spec")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| ApiError::invalid("batch", "Job", &name, "spec: Required value"))?;
            for (k, v) in [
                ("parallelism", json!(1)),
                ("completions", json!(1)),
                ("backoffLimit", json!(6)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
                ("manualSelector", json!(false)),
            ] {
                spec.entry(k).or_insert(v);
            }
            if spec
                .get("template")
                .and_then(|t| t.get("spec"))
                .and_then(|s| s.get("containers"))
                .and_then(Value::as_array)
                .is_none_or(|c| c.is_empty())
            {
                return Err(ApiError::invalid(
                    "batch",
                    "Job",
                    &name,
                    "spec.template.spec.containers: Required value",
                ));
            }
            if spec.get("manualSelector") != Some(&json!(true)) {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                let tmeta = spec
                    .get_mut("template")
                    .and_then(Value::as_object_mut)
                    .map(|t| t.entry("metadata").or_insert_with(|| json!({})));
                if let Some(tmeta) = tmeta.and_then(Value::as_object_mut) {
                    let labels = tmeta.entry("labels").or_insert_with(|| json!({}));
                    if let Some(l) = labels.as_object_mut() {
                        l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                        l.insert("batch.kubernetes.io/job-name".into(), json!(name));
                        l.insert("controller-uid".into(), json!(uid));
                        l.insert("job-name".into(), json!(name));
                    }
                }
            }
            obj["status"] = json!({});
        }
        _ => {}
    }
    Ok(())
}

/// The namespace and name of an object.
pub fn ns_name(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").unwrap_or_default().to_string(),
        meta_str(obj, "name").unwrap_or_default().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm_type() -> ResourceType {
        resource::builtins()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap()
    }

    #[test]
    fn continue_token_round_trips() {
        assert_eq!(unhex(&hex("ns\u{0}name")).as_deref(), Some("ns\u{0}name"));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn list_pages_with_limit_and_continue() {
        let s = Store::new(100);
        let rt = cm_type();
        for i in 0..5 {
            s.create(
                &rt,
                Some("default"),
                json!({"metadata": {"name": format!("c{i}")}}),
                false,
            )
            .unwrap();
        }
        let mut opts = ListOpts {
            limit: 2,
            ..Default::default()
        };
        let mut names = Vec::new();
        loop {
            let l = s.list(&rt, Some("default"), &opts).unwrap();
            for i in l["items"].as_array().unwrap() {
                names.push(i["metadata"]["name"].as_str().unwrap().to_string());
            }
            match l["metadata"]["continue"].as_str() {
                Some(c) => opts.continue_token = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
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
