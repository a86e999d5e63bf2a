//! What the experiment workers watch instead of polling: the Trials (the
//! trial controller's own cache) and each served workload kind (a
//! reflector per kind), and whom a change wakes.
//!
//! A worker used to GET each running Trial and its workload every tick —
//! two requests per running trial per tick, whether anything changed or
//! not. Now a Trial's change (its reconcile) or a workload's (its kind's
//! watch) wakes the worker of the experiment that owns it, and the worker
//! reads both from these caches: no request at all. The API is read only
//! for what the caches lack — a kind that is not watched (its CRD was
//! installed after the start), or, at most once per [`RESYNC`] per trial,
//! an object the cache should hold and does not (a safety net for a watch
//! that fell behind).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, ResourceExt as _};

use crate::api::{ApiGroup, Trial};

/// How long a cache may lack an object it should hold before the API is
/// asked (also the longest an idle worker sleeps without a wake-up).
pub const RESYNC: Duration = Duration::from_secs(30);

/// The caches one term of the controller keeps: Trials, and the workloads
/// of each watched kind. The default holds nothing: every read goes to
/// the API.
#[derive(Clone, Default)]
pub struct Caches {
    /// The group of the Trials (the key of each in their store).
    group: ApiGroup,
    trials: Option<Store<Trial>>,
    workloads: Arc<Vec<(ApiResource, Store<DynamicObject>)>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("trials", &self.trials.as_ref().map(Store::len))
            .field(
                "workloads",
                &self.workloads.iter().map(|(r, s)| (&r.kind, s.len())),
            )
            .finish()
    }
}

/// What a cache says of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached<T> {
    /// It holds the object.
    Found(Arc<T>),
    /// It is filled and lacks the object.
    Missing,
    /// No cache holds its kind, or it is not filled yet: ask the API.
    Unknown,
}

/// Whether a store has had its first complete list.
fn filled<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|ready| ready.is_ok())
}

/// What `store` says of `key`.
fn lookup<K>(store: Option<&Store<K>>, key: &ObjectRef<K>) -> Cached<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match store.filter(|s| filled(s)) {
        None => Cached::Unknown,
        Some(store) => store.get(key).map_or(Cached::Missing, Cached::Found),
    }
}

impl Caches {
    /// Caches over the trial controller's store and one store per watched
    /// workload kind.
    #[must_use]
    pub fn new(
        group: ApiGroup,
        trials: Store<Trial>,
        workloads: Vec<(ApiResource, Store<DynamicObject>)>,
    ) -> Self {
        Self {
            group,
            trials: Some(trials),
            workloads: Arc::new(workloads),
        }
    }

    /// The Trial `namespace/name`.
    #[must_use]
    pub fn trial(&self, namespace: &str, name: &str) -> Cached<Trial> {
        lookup(
            self.trials.as_ref(),
            &ObjectRef::new_with(name, self.group).within(namespace),
        )
    }

    /// The workload `namespace/name` of `kind` (any version: the versions
    /// of one kind share a watch).
    #[must_use]
    pub fn workload(
        &self,
        kind: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Cached<DynamicObject> {
        let Some((watched, store)) = self
            .workloads
            .iter()
            .find(|(r, _)| r.group == kind.group && r.plural == kind.plural)
        else {
            return Cached::Unknown;
        };
        lookup(
            Some(store),
            &ObjectRef::new_with(name, watched.clone()).within(namespace),
        )
    }

    /// The uid of the experiment that owns the workload's Trial, if the
    /// cache holds that Trial; or of the OptimizationJob that owns the
    /// workload itself (its trials are TrainJobs, without Trials).
    fn experiment_of_workload(&self, workload: &DynamicObject) -> Option<String> {
        if let Some(job) = workload
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "OptimizationJob")
        {
            return Some(job.uid.clone());
        }
        let trial = workload
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == Trial::kind(&ApiGroup::default()))?;
        let namespace = workload.namespace().unwrap_or_default();
        match self.trial(&namespace, &trial.name) {
            Cached::Found(t) => experiment_of(&t).map(str::to_owned),
            Cached::Missing | Cached::Unknown => None,
        }
    }
}

/// The uid of the experiment that owns a Trial (its controller).
#[must_use]
pub fn experiment_of(trial: &Trial) -> Option<&str> {
    trial
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Experiment")
        .map(|o| o.uid.as_str())
}

/// The stores of the watched workload kinds, and the future that keeps
/// them: each change of a workload wakes (`wake`, with its experiment's
/// uid) the worker of the experiment owning its Trial — after the store
/// holds the change, so the worker reads it — and a kind's first complete
/// list wakes every worker (`wake_all`). Runs until dropped.
pub fn workload_watches(
    kinds: Vec<(Api<DynamicObject>, ApiResource)>,
    (group, trials): (ApiGroup, Store<Trial>),
    wake: impl Fn(&str) + Clone + Send + 'static,
    wake_all: impl Fn() + Clone + Send + 'static,
) -> (
    Vec<(ApiResource, Store<DynamicObject>)>,
    impl Future<Output = ()> + Send,
) {
    let mut stores = Vec::with_capacity(kinds.len());
    let mut streams = Vec::with_capacity(kinds.len());
    for (api, kind) in kinds {
        let writer = reflector::store::Writer::new(kind.clone());
        stores.push((kind, writer.as_reader()));
        streams.push(reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        ));
    }
    let owners = Caches::new(group, trials, stores.clone());
    let keep = futures::stream::select_all(streams).for_each(move |event| {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                if let Some(uid) = owners.experiment_of_workload(&o) {
                    wake(&uid);
                }
            }
            Ok(watcher::Event::InitDone) => wake_all(),
            Ok(_) => {}
            // An outage is logged once by the client's health; the
            // watcher backs off and lists again.
            Err(e) => tracing::debug!("watching workloads: {e}"),
        }
        std::future::ready(())
    });
    (stores, keep)
}

/// One kind's watch, keeping `writer`'s store (boxed: the kinds' streams
/// are merged into one).
fn reflector(
    writer: reflector::store::Writer<DynamicObject>,
    events: impl futures::Stream<Item = watcher::Result<watcher::Event<DynamicObject>>> + Send + 'static,
) -> futures::stream::BoxStream<'static, watcher::Result<watcher::Event<DynamicObject>>> {
    reflector::reflector(writer, events).boxed()
}

/// Objects created and not seen in their cache yet, so that a reconcile
/// in between does not create them again (Kubernetes' own controllers keep
/// such "expectations" for the same reason: a cache lags behind the
/// writes). An expectation lapses after [`RESYNC`]: an object deleted
/// before its cache ever held it is created again then.
#[derive(Debug, Default)]
pub struct Expectations(std::sync::Mutex<std::collections::HashMap<String, Instant>>);

impl Expectations {
    /// `key` was just created.
    pub fn created(&self, key: String) {
        if let Ok(mut created) = self.0.lock() {
            let now = Instant::now();
            created.retain(|_, at| now.duration_since(*at) < RESYNC);
            created.insert(key, now);
        }
    }

    /// Whether the cache's answer about `key` means it exists: a cached
    /// object does (and is expected no more), a missing one only if it was
    /// created a moment ago; `None`: the cache does not know.
    pub fn exists<T>(&self, key: &str, cached: &Cached<T>) -> Option<bool> {
        let Ok(mut created) = self.0.lock() else {
            return None;
        };
        match cached {
            Cached::Found(_) => {
                created.remove(key);
                Some(true)
            }
            Cached::Missing => Some(created.get(key).is_some_and(|at| at.elapsed() < RESYNC)),
            Cached::Unknown => None,
        }
    }
}

/// What a read of a running trial's Trial found.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialRead {
    /// The Trial.
    Found(Arc<Trial>),
    /// It was there and is gone: deleted by someone.
    Gone,
    /// Not known now (not in the cache yet, or the API failed): ask later.
    Unknown,
}

/// Where one running trial's Trial and workload are read: the caches, and
/// the API for what they lack.
#[derive(Debug, Clone)]
pub struct TrialReads {
    caches: Caches,
    namespace: String,
    kind: ApiResource,
    /// The Trial was in the cache once (so its absence means deleted).
    seen: bool,
    /// When the API may be asked next for the Trial the cache lacks.
    trial_due: Instant,
    /// When the API may be asked next for the workload the cache lacks.
    workload_due: Instant,
}

/// Whether `due` has passed; if so, the next one is [`RESYNC`] later.
fn take_due(due: &mut Instant) -> bool {
    let now = Instant::now();
    if now < *due {
        return false;
    }
    *due = now + RESYNC;
    true
}

impl TrialReads {
    /// Reads of a trial in `namespace` whose workload is of `kind`: the
    /// caches say nothing of it for [`RESYNC`] before the API is asked.
    #[must_use]
    pub fn new(caches: Caches, namespace: &str, kind: ApiResource) -> Self {
        let due = Instant::now() + RESYNC;
        Self {
            caches,
            namespace: namespace.to_owned(),
            kind,
            seen: false,
            trial_due: due,
            workload_due: due,
        }
    }

    /// The trial's Trial, as `trials` (the API) has it when no cache does.
    pub async fn trial(&mut self, trials: &Api<Trial>, name: &str) -> TrialRead {
        match self.caches.trial(&self.namespace, name) {
            Cached::Found(t) => {
                self.seen = true;
                return TrialRead::Found(t);
            }
            Cached::Missing if self.seen => return TrialRead::Gone,
            Cached::Missing if !take_due(&mut self.trial_due) => return TrialRead::Unknown,
            Cached::Missing | Cached::Unknown => {}
        }
        match trials.get_opt(name).await {
            Ok(Some(t)) => TrialRead::Found(Arc::new(t)),
            Ok(None) => TrialRead::Gone,
            Err(e) => {
                tracing::debug!(trial = name, "reading the trial: {e}");
                TrialRead::Unknown
            }
        }
    }

    /// The trial's workload, as `workloads` (the API) has it when no cache
    /// does; `None` while it is not created (or cannot be read).
    pub async fn workload(
        &mut self,
        workloads: &Api<DynamicObject>,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        match self.caches.workload(&self.kind, &self.namespace, name) {
            Cached::Found(o) => return Some(o),
            Cached::Missing if !take_due(&mut self.workload_due) => return None,
            Cached::Missing | Cached::Unknown => {}
        }
        match workloads.get_opt(name).await {
            Ok(o) => o.map(Arc::new),
            Err(e) => {
                tracing::debug!(trial = name, "reading the workload: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TrialSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::runtime::reflector::store::Writer;

    fn owned(trial: &mut Trial, kind: &str, name: &str, uid: &str) {
        trial.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "ktune.dev/v1beta1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
    }

    fn trial(name: &str) -> Trial {
        let mut t = Trial::new(ApiGroup::Ktune, name, TrialSpec::default());
        t.metadata.namespace = Some("ns".into());
        owned(&mut t, "Experiment", "e", "uid-e");
        t
    }

    fn job_kind() -> ApiResource {
        super::super::kinds::TrialResource::of_workload(
            &serde_json::json!({"apiVersion": "batch/v1", "kind": "Job"}),
        )
        .map(|k| k.api_resource())
        .unwrap()
    }

    fn job(name: &str, trial: &str) -> DynamicObject {
        let mut job = DynamicObject::new(name, &job_kind()).within("ns");
        job.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "ktune.dev/v1beta1".into(),
            kind: "Trial".into(),
            name: trial.into(),
            uid: "uid-t".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        job
    }

    /// `writer`'s store after a first list of `objects`.
    fn filled<K>(mut writer: Writer<K>, objects: Vec<K>) -> Store<K>
    where
        K: Resource + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        writer.as_reader()
    }

    /// Caches filled with `trials` and `jobs`.
    fn caches(trials: Vec<Trial>, jobs: Vec<DynamicObject>) -> Caches {
        Caches::new(
            ApiGroup::Ktune,
            filled(Writer::default(), trials),
            vec![(job_kind(), filled(Writer::new(job_kind()), jobs))],
        )
    }

    #[test]
    fn a_filled_cache_finds_or_misses_and_an_unwatched_kind_is_unknown() {
        let caches = caches(vec![trial("t1")], vec![job("t1", "t1")]);
        assert!(matches!(caches.trial("ns", "t1"), Cached::Found(_)));
        assert_eq!(caches.trial("ns", "t2"), Cached::Missing);
        assert_eq!(caches.trial("other", "t1"), Cached::Missing);
        assert!(matches!(
            caches.workload(&job_kind(), "ns", "t1"),
            Cached::Found(_)
        ));
        assert_eq!(caches.workload(&job_kind(), "ns", "t2"), Cached::Missing);
        let torch = ApiResource {
            group: "kubeflow.org".into(),
            version: "v1".into(),
            api_version: "kubeflow.org/v1".into(),
            kind: "PyTorchJob".into(),
            plural: "pytorchjobs".into(),
        };
        assert_eq!(caches.workload(&torch, "ns", "t1"), Cached::Unknown);
        assert_eq!(Caches::default().trial("ns", "t1"), Cached::Unknown);
    }

    #[test]
    fn a_cache_not_filled_yet_is_unknown() {
        let writer: Writer<Trial> = Writer::default();
        let caches = Caches::new(ApiGroup::Ktune, writer.as_reader(), Vec::new());
        assert_eq!(caches.trial("ns", "t1"), Cached::Unknown);
    }

    #[test]
    fn a_workload_leads_to_the_experiment_owning_its_trial() {
        let caches = caches(vec![trial("t1")], Vec::new());
        assert_eq!(
            caches.experiment_of_workload(&job("t1", "t1")).as_deref(),
            Some("uid-e")
        );
        // A Trial the cache does not hold (yet): nobody to wake.
        assert_eq!(caches.experiment_of_workload(&job("t2", "t2")), None);
        let mut stray = trial("t3");
        owned(&mut stray, "Deployment", "d", "uid-d");
        assert_eq!(experiment_of(&stray), None);
    }

    /// A client whose every request fails, and how many it was sent.
    fn counting_client() -> (kube::Client, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<http::Response<kube::client::Body>, _>(
                std::io::Error::other("no server"),
            ))
        });
        (kube::Client::new(service, "ns"), requests)
    }

    /// Reads of what the cache holds cost no request; a trial that leaves
    /// the cache after it was seen is gone; the API is asked for what the
    /// cache lacks only once that is due.
    #[tokio::test]
    async fn reads_come_from_the_cache_and_the_api_only_when_due() {
        use std::sync::atomic::Ordering;
        let (client, requests) = counting_client();
        let trials: Api<Trial> = Api::namespaced_with(client.clone(), "ns", &ApiGroup::Ktune);
        let jobs: Api<DynamicObject> = Api::namespaced_with(client, "ns", &job_kind());
        let mut reads = TrialReads::new(
            caches(vec![trial("t1")], vec![job("t1", "t1")]),
            "ns",
            job_kind(),
        );
        assert!(matches!(
            reads.trial(&trials, "t1").await,
            TrialRead::Found(_)
        ));
        assert!(reads.workload(&jobs, "t1").await.is_some());
        reads.caches = caches(Vec::new(), Vec::new());
        assert_eq!(reads.trial(&trials, "t1").await, TrialRead::Gone);
        // Not created yet, and the API not due: nothing to read.
        assert!(reads.workload(&jobs, "t1").await.is_none());
        let mut fresh = TrialReads::new(caches(Vec::new(), Vec::new()), "ns", job_kind());
        assert_eq!(fresh.trial(&trials, "t1").await, TrialRead::Unknown);
        assert_eq!(requests.load(Ordering::SeqCst), 0);
        // Due: the API is asked once, and not again before RESYNC.
        fresh.trial_due = Instant::now();
        fresh.workload_due = Instant::now();
        assert_eq!(fresh.trial(&trials, "t1").await, TrialRead::Unknown);
        assert!(fresh.workload(&jobs, "t1").await.is_none());
        assert_eq!(fresh.trial(&trials, "t1").await, TrialRead::Unknown);
        assert!(fresh.workload(&jobs, "t1").await.is_none());
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        // No cache of the kind at all: always the API.
        let mut unwatched = TrialReads::new(Caches::default(), "ns", job_kind());
        assert!(unwatched.workload(&jobs, "t1").await.is_none());
        assert!(unwatched.workload(&jobs, "t1").await.is_none());
        assert_eq!(requests.load(Ordering::SeqCst), 4);
    }

    /// A workload created a moment ago exists though its cache lacks it;
    /// once the cache holds it, it is expected no more.
    #[test]
    fn a_created_object_exists_until_its_cache_catches_up() {
        let expectations = Expectations::default();
        let missing: Cached<Trial> = Cached::Missing;
        assert_eq!(expectations.exists("ns/t1", &missing), Some(false));
        expectations.created("ns/t1".into());
        assert_eq!(expectations.exists("ns/t1", &missing), Some(true));
        assert_eq!(expectations.exists("ns/t2", &missing), Some(false));
        let found = Cached::Found(Arc::new(trial("t1")));
        assert_eq!(expectations.exists("ns/t1", &found), Some(true));
        // Seen: deleted later, it is missing for good.
        assert_eq!(expectations.exists("ns/t1", &missing), Some(false));
        assert_eq!(
            expectations.exists("ns/t1", &Cached::<Trial>::Unknown),
            None
        );
    }

    #[test]
    fn the_api_is_due_once_per_resync() {
        let mut due = Instant::now();
        assert!(take_due(&mut due));
        assert!(!take_due(&mut due));
        assert!(due > Instant::now() + RESYNC - Duration::from_secs(1));
    }
}
