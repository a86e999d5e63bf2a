//! `ktune controller`: reconciles `Experiment`s and `Trial`s
//! (`ktune.dev/v1beta1`, or Katib's `kubeflow.org/v1beta1` with
//! `--api-group`: one code path, the group a value in the
//! [`Context`]) with kube-runtime, running each experiment through
//! the same [`Engine`](crate::engine::Engine) as `ktune run`, with
//! observations and algorithm state in the store (PostgreSQL in a cluster,
//! SQLite on a volume for small installs) rather than in etcd objects.
//!
//! - [`experiment`]: the Experiment reconciler (finalizer, one worker per
//!   experiment) and the worker writing status and Events;
//! - [`trial`]: the Trial reconciler (the workload from `runSpec`);
//! - [`trial_pods`]: what every pod of a trial carries (Katib's trial
//!   label, `KATIB_TRIAL_NAME`);
//! - [`workload`]: the cluster [`Runner`](crate::runner::Runner);
//! - [`kinds`]: the allowed trial kinds (`--trial-resources`) and their pods;
//! - [`collect`]: the experiment's collector, from the one factory of
//!   [`crate::metrics::kinds`] (StdOut, File, PrometheusMetric and Push
//!   each have their cluster half there);
//! - [`status`]: the status documents, as pure functions;
//! - [`events`]: Events, as core/v1 Events (what Katib's SDK reads);
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`leader`]: leader election on a Lease, so that one replica works;
//! - [`health`]: API server outages (transient errors, backoff, and
//!   logging an outage once per interval);
//! - [`served`]: whether the cluster serves a trial's workload kind;
//! - [`watch`]: the caches of Trials and workloads the workers read, and
//!   whom a change wakes (the workers watch; they do not poll the API).

pub mod checkpoint;
pub mod collect;
pub mod dbmanager;
pub mod events;
pub mod experiment;
pub mod health;
pub mod kinds;
pub mod leader;
pub mod ops;
pub mod optimization;
pub mod rbac;
pub mod served;
pub mod status;
pub mod trial;
pub mod trial_pods;
pub mod watch;
pub mod workload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt as _};
use tokio::sync::Notify;
use tracing::Instrument as _;

use health::{ApiHealth, Backoff};
use watch::Caches;

use crate::api::optimization_job::OptimizationJob;
use crate::api::{ApiGroup, Experiment, Trial};
use crate::engine::EngineError;
use crate::metrics::kinds::push;
use crate::metrics::push::PushServer;
use crate::store::SqlStore;

/// Why reconciling failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer could not be added or removed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ControllerError>>),
    /// The engine stopped.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The experiment is invalid.
    #[error("invalid experiment: {0}")]
    Invalid(String),
    /// A value could not be serialised.
    #[error("serialising: {0}")]
    Json(#[from] serde_json::Error),
    /// The operations endpoints could not be served.
    #[error(transparent)]
    Ops(#[from] ops::OpsError),
    /// The Push endpoint could not be served.
    #[error("push endpoint: {0}")]
    Push(#[from] crate::metrics::push::PushError),
    /// Katib's gRPC DBManager API could not be served.
    #[error(transparent)]
    DbManager(#[from] crate::metrics::katib_grpc::DbManagerError),
    /// The CRDs are not installed.
    #[error("cannot list Experiments ({0}); are the CRDs installed? kubectl apply -f crds/")]
    CrdsMissing(#[source] kube::Error),
    /// `--optimization-jobs` without the OptimizationJob CRD.
    #[error(
        "cannot list OptimizationJobs ({0}); install Kubeflow Trainer's CRDs, or ktune's: kubectl apply -f crds/trainer.kubeflow.org/"
    )]
    OptimizationJobsMissing(#[source] kube::Error),
}

impl ControllerError {
    /// Whether retrying may succeed without anyone changing anything (the
    /// API server was away or overloaded; see [`health::transient`]).
    #[must_use]
    pub fn transient(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Kube(e) | Self::CrdsMissing(e) | Self::OptimizationJobsMissing(e) => {
                health::transient(e)
            }
            Self::Finalizer(e) => match e.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.transient(),
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => health::transient(e),
                _ => false,
            },
            _ => false,
        }
    }

    /// The error's kind: the `error` label of
    /// `ktune_reconcile_errors_total`, so an alert can tell an API server
    /// that is away from a conflict or a store that fails.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Kube(e) if health::transient(e) => "api_unavailable",
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(_) => "api",
            Self::Finalizer(e) => match e.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.kind(),
                _ => "finalizer",
            },
            Self::Engine(_) => "engine",
            Self::Invalid(_) => "invalid",
            Self::Json(_) => "serialization",
            Self::Ops(_) => "ops",
            Self::Push(_) | Self::DbManager(_) => "push",
            Self::CrdsMissing(_) | Self::OptimizationJobsMissing(_) => "crds_missing",
        }
    }
}

/// The File collector sidecar's default image: the controller's.
pub const DEFAULT_COLLECTOR_IMAGE: &str = "ghcr.io/ktune-dev/ktune:latest";
/// Where that image keeps `ktune` (see the Dockerfile).
pub const DEFAULT_COLLECTOR_COMMAND: &str = "/usr/local/bin/ktune";

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The API group of the Experiments and Trials reconciled: ktune's
    /// own, or Katib's (`kubeflow.org`) to replace a Katib installation.
    pub group: ApiGroup,
    /// Watch one namespace only; all when `None`.
    pub namespace: Option<String>,
    /// Time between two engine steps of one experiment.
    pub tick: Duration,
    /// Seed for the suggesters.
    pub seed: u64,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; nowhere when `None`.
    pub listen: Option<SocketAddr>,
    /// Run the controllers only while holding this lease; always when `None`.
    pub leader: Option<leader::LeaseConfig>,
    /// The workload kinds trials may use (Katib's `trialResources`).
    pub trial_resources: Vec<kinds::TrialResource>,
    /// Where the Push metrics endpoint listens; no Push collector when `None`.
    pub push_listen: Option<SocketAddr>,
    /// The endpoint's URL as trials reach it (default: the bound address).
    pub push_url: Option<String>,
    /// Where Katib's gRPC DBManager API listens (reports go to the Push
    /// endpoint's queues, so it needs `push_listen`); nowhere when `None`.
    pub db_manager_listen: Option<SocketAddr>,
    /// Whether that address is only Katib mode's default: failing to bind
    /// it is then a warning, not an error.
    pub db_manager_defaulted: bool,
    /// Who may report for a trial there.
    pub db_manager_callers: dbmanager::CallerRule,
    /// The image of the File collector's sidecar (the controller's own).
    pub collector_image: String,
    /// The `ktune` binary in that image.
    pub collector_command: String,
    /// The storage class of PBT's checkpoint volumes (the cluster's
    /// default when `None`; it must offer `ReadWriteMany`).
    pub checkpoint_storage_class: Option<String>,
    /// Where the store is, as the start-up log line shows it (no password).
    pub store: String,
    /// Whether Kubeflow Trainer's OptimizationJobs are reconciled too
    /// (off by default: Trainer's own controller may serve them).
    pub optimization_jobs: bool,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            group: ApiGroup::default(),
            namespace: None,
            tick: Duration::from_millis(500),
            seed: 0,
            listen: None,
            leader: None,
            trial_resources: kinds::default_trial_resources(),
            push_listen: None,
            push_url: None,
            db_manager_listen: None,
            db_manager_defaulted: false,
            db_manager_callers: dbmanager::CallerRule::default(),
            collector_image: DEFAULT_COLLECTOR_IMAGE.to_owned(),
            collector_command: DEFAULT_COLLECTOR_COMMAND.to_owned(),
            checkpoint_storage_class: None,
            store: String::new(),
            optimization_jobs: false,
        }
    }
}

/// One experiment's worker.
#[derive(Debug)]
pub struct Worker {
    /// The spec it runs for (see `experiment::spec_key`).
    spec: u64,
    task: tokio::task::JoinHandle<()>,
    /// Wakes the worker: one of its trials or workloads changed.
    wake: Arc<Notify>,
}

/// The experiment workers of one term, by experiment uid.
#[derive(Debug, Default)]
pub struct Workers(Mutex<HashMap<String, Worker>>);

impl Workers {
    fn lock(&self) -> Option<MutexGuard<'_, HashMap<String, Worker>>> {
        self.0.lock().ok()
    }

    /// Wakes the worker of the experiment `uid`, if it runs (a wake-up
    /// that finds it busy is kept for its next wait).
    pub fn wake(&self, uid: &str) {
        if let Some(worker) = self.lock().as_ref().and_then(|w| w.get(uid)) {
            worker.wake.notify_one();
        }
    }

    /// Wakes every worker (a cache was filled anew).
    pub fn wake_all(&self) {
        for worker in self.lock().iter().flat_map(|w| w.values()) {
            worker.wake.notify_one();
        }
    }

    /// Starts a worker for the object `uid` running `spec`, unless one
    /// runs for that spec — or ran to the end of an object whose status
    /// says it `finished` — which is woken instead; a worker for another
    /// spec is replaced. `run` makes the worker from its wake-up; `span`
    /// names the object in every line it logs.
    fn ensure<F>(
        &self,
        (uid, spec, finished): (String, u64, bool),
        span: tracing::Span,
        run: impl FnOnce(Arc<Notify>) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(mut workers) = self.lock() else {
            return;
        };
        if let Some(worker) = workers.get(&uid)
            && worker.spec == spec
            && (!worker.task.is_finished() || finished)
        {
            worker.wake.notify_one();
            return;
        }
        if let Some(old) = workers.remove(&uid) {
            old.task.abort();
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(Arc::clone(&wake)).instrument(span));
        workers.insert(uid, Worker { spec, task, wake });
    }

    fn stop(&self, uid: &str) {
        if let Some(worker) = self.lock().and_then(|mut w| w.remove(uid)) {
            worker.task.abort();
        }
    }

    /// Stops every worker (the lease is lost, or the controller stops).
    fn stop_all(&self) {
        if let Some(mut workers) = self.lock() {
            for (_, worker) in workers.drain() {
                worker.task.abort();
            }
        }
    }
}

/// What the reconcilers share.
pub struct Context {
    client: Client,
    store: Arc<SqlStore>,
    events: events::Events,
    options: ControllerOptions,
    workers: Arc<Workers>,
    caches: Caches,
    /// Workloads created and not seen in their cache yet.
    created: watch::Expectations,
    ops: Arc<ops::Ops>,
    push: Option<Arc<PushServer>>,
    /// Failed reconciles in a row, by object (for the error policy's backoff).
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("options", &self.options)
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The reconcilers' shared state over `client`, reading everything
    /// from the API until [`Self::with_caches`].
    fn new(
        client: Client,
        store: Arc<SqlStore>,
        options: ControllerOptions,
        ops: Arc<ops::Ops>,
        push: Option<Arc<PushServer>>,
    ) -> Self {
        Self {
            events: events::Events::new(client.clone()),
            client,
            store,
            options,
            workers: Arc::default(),
            caches: Caches::default(),
            created: watch::Expectations::default(),
            ops,
            push,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// A context like this one for the next term: no workers, no caches,
    /// no failures counted.
    fn fresh(&self) -> Self {
        Self::new(
            self.client.clone(),
            Arc::clone(&self.store),
            self.options.clone(),
            Arc::clone(&self.ops),
            self.push.clone(),
        )
    }

    /// Reads Trials and workloads from these watch caches.
    fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = caches;
        self
    }

    /// Publishes an event about an object, a Warning for failures (best
    /// effort: a lost event must not fail a reconcile).
    async fn publish(&self, object: &ObjectReference, reason: &str, note: &str) {
        let warning = matches!(
            reason,
            "Failed" | "Error" | "Invalid" | trial::WORKLOAD_ERROR_REASON
        );
        self.events.publish(object, reason, note, warning).await;
    }

    /// The group of the Experiments and Trials reconciled.
    fn group(&self) -> ApiGroup {
        self.options.group
    }

    /// Experiments in `namespace`, in the group reconciled.
    fn experiments(&self, namespace: &str) -> Api<Experiment> {
        Api::namespaced_with(self.client.clone(), namespace, &self.options.group)
    }

    /// Trials in `namespace`, in the group reconciled.
    fn trials(&self, namespace: &str) -> Api<Trial> {
        Api::namespaced_with(self.client.clone(), namespace, &self.options.group)
    }

    /// Wakes the worker of the experiment `uid`.
    fn wake(&self, uid: &str) {
        self.workers.wake(uid);
    }

    /// Counts one more failed reconcile of `key` in a row; returns the count.
    fn failed(&self, key: String) -> u32 {
        self.failures.lock().map_or(1, |mut failures| {
            let count = failures.entry(key).or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
    }

    /// Runs one reconcile of `controller`, measured; one that works
    /// forgets the object's (`key`'s) failures in a row.
    async fn reconciled(
        &self,
        controller: &str,
        key: String,
        reconcile: impl Future<Output = Result<Action, ControllerError>>,
    ) -> Result<Action, ControllerError> {
        let result = self.ops.measure(controller, reconcile).await;
        if result.is_ok()
            && let Ok(mut failures) = self.failures.lock()
        {
            failures.remove(&key);
        }
        result
    }
}

/// Reconciles an object that has a worker (an Experiment or an
/// OptimizationJob) behind the finalizer: `apply` makes sure its worker
/// runs, every minute at least; once the object is deleted, its worker
/// stops.
///
/// # Errors
/// [`ControllerError`] when `apply`, the API or the finalizer fails.
async fn reconcile_worker<K, Fut>(
    api: &Api<K>,
    object: Arc<K>,
    workers: &Workers,
    apply: impl FnOnce(Arc<K>) -> Fut,
) -> Result<Action, ControllerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    use kube::runtime::finalizer::{Event as Finalizer, finalizer};
    finalizer(api, experiment::FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => {
                apply(object).await?;
                Ok(Action::requeue(Duration::from_secs(60)))
            }
            Finalizer::Cleanup(object) => {
                workers.stop(&object.uid().unwrap_or_default());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(Box::new(e)))
}

/// The engine's options for the worker of `object` (an Experiment or an
/// OptimizationJob): the controller's seed, and the object's key in the
/// store (namespace, name and uid: a deleted and recreated object starts
/// afresh).
fn engine_options<K: Resource>(ctx: &Context, object: &K) -> crate::engine::EngineOptions {
    crate::engine::EngineOptions {
        seed: ctx.options.seed,
        gpus: Vec::new(),
        store_key: Some(format!(
            "{}/{}/{}",
            object.namespace().unwrap_or_else(|| "default".to_owned()),
            object.name_any(),
            object.uid().unwrap_or_default()
        )),
    }
}

/// Runs a worker's `work` until it ends; after an error that may pass
/// (the API server away) it starts again, later each time — the engine
/// reopens its experiment from the store and adopts its running trials.
/// Each error is counted by its kind (the `controller` label); one that
/// will not pass stops the worker, logged and published on `object`.
async fn retry_worker<Fut>(
    ctx: &Context,
    (controller, object): (&str, &ObjectReference),
    mut work: impl FnMut() -> Fut,
) where
    Fut: Future<Output = Result<(), ControllerError>>,
{
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let Err(e) = work().await else {
            return;
        };
        ctx.ops.count_error(controller, e.kind());
        if !e.transient() {
            tracing::warn!("{controller} stopped: {e}");
            ctx.publish(object, "Error", &e.to_string()).await;
            return;
        }
        tracing::debug!("{controller} interrupted: {e}");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The error policy's key of an object: kind, namespace and name.
fn object_key<K: Resource>(object: &K) -> String
where
    K::DynamicType: Default,
{
    format!(
        "{}/{}/{}",
        K::kind(&K::DynamicType::default()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// The allowed trial kinds the API server serves, to watch: a change of a
/// trial's workload then wakes its experiment's worker (as Katib watches
/// its `trialResources`), which reads it from the watch's cache (see
/// [`watch`]). A kind not served now (its CRD not installed) is logged and
/// left unwatched: its trials fail saying what to install (see [`served`])
/// until its CRD appears, and then work without a restart, read from the
/// API.
async fn served_workloads(
    client: &Client,
    options: &ControllerOptions,
) -> Vec<(Api<DynamicObject>, ApiResource)> {
    let mut out: Vec<(Api<DynamicObject>, ApiResource)> = Vec::new();
    let mut unserved = Vec::new();
    let mut watched = Vec::new();
    for resource in &options.trial_resources {
        let ar = resource.api_resource();
        // Versions of one kind share a watch (its objects are the same).
        if out
            .iter()
            .any(|(_, seen)| seen.group == ar.group && seen.plural == ar.plural)
        {
            continue;
        }
        let api: Api<DynamicObject> = match &options.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {
                watched.push(resource.to_string());
                out.push((api, ar));
            }
            Err(kube::Error::Api(e)) if e.code == 404 => unserved.push(resource.to_string()),
            Err(e) => tracing::warn!("trial resource {resource} is not watched: {e}"),
        }
    }
    // One line, not one per kind: most clusters lack most of them.
    tracing::info!(
        watched = watched.join(","),
        not_served = unserved.join(","),
        "trial resources (those not served have no CRD: their trials fail until it is installed)"
    );
    out
}

/// The first requeue after a failed reconcile; it doubles with each
/// failure in a row, up to [`RETRY_TRANSIENT_MAX`] while the API server is
/// away (kube-runtime's watches back off up to 30 s too) and
/// [`RETRY_MAX`] for errors that need someone to act.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// See [`RETRY_MIN`].
const RETRY_TRANSIENT_MAX: Duration = Duration::from_secs(30);
/// See [`RETRY_MIN`].
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Requeues a failed reconcile exponentially later for each failure of the
/// same object in a row. An outage is logged by [`ApiHealth`], not here;
/// other errors are logged at the first failure and then each time the
/// count doubles, not at every retry.
fn error_policy<K: Reconciled>(
    object: Arc<K>,
    error: &ControllerError,
    ctx: Arc<Context>,
) -> Action {
    ctx.ops.count_error(K::CONTROLLER, error.kind());
    let failures = ctx.failed(object_key(object.as_ref()));
    let transient = error.transient();
    let max = if transient {
        RETRY_TRANSIENT_MAX
    } else {
        RETRY_MAX
    };
    let delay = Backoff::after(RETRY_MIN, max, failures);
    if !transient && failures.is_power_of_two() {
        tracing::warn!(
            "reconcile failed ({failures} in a row; next try in {}s): {error}",
            delay.as_secs()
        );
    } else {
        tracing::debug!("reconcile failed ({failures} in a row): {error}");
    }
    Action::requeue(delay)
}

/// A future every part of the controller can wait on.
type Stop =
    futures::future::Shared<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>>;

/// Runs the controllers until `shutdown` resolves (or a signal arrives),
/// serving the operations endpoints and the dashboard (`ktune ui`'s pages)
/// on `options.listen`; with `options.leader`, only while holding the lease
/// (a standby waits, ready). A replica that loses the lease — taken by
/// another, or not renewed in time while the API server was away — stops
/// its experiments and waits as a standby again, rather than exiting.
///
/// # Errors
/// [`ControllerError::CrdsMissing`] when Experiments cannot be listed, and
/// [`ControllerError::Ops`] when `listen` cannot be bound.
pub async fn run(
    client: Client,
    store: SqlStore,
    options: ControllerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ControllerError> {
    // Every request reports to one place, which logs an outage once per
    // interval rather than once per failed request.
    let client = health::observed(client, Arc::new(ApiHealth::default()));
    let watched = Watched::start(&client, &options).await?;
    let shutdown: Stop = futures::future::FutureExt::shared(Box::pin(shutdown));
    let store = Arc::new(store);
    let ops = Arc::new(ops::Ops::new());
    let server = serve_ops(&options, &store, &ops, shutdown.clone()).await?;
    let worked = terms(
        Context::new(client, store, options, Arc::clone(&ops), None),
        &watched,
        shutdown,
    )
    .await;
    ops.set_ready(false);
    if let Some(server) = server {
        // It stops at `shutdown`, which ends the terms unless they failed.
        if worked.is_err() {
            server.abort();
        }
        let _ = server.await;
    }
    worked
}

/// Works term after term until `shutdown`: with leader election, each
/// term waits (ready, as a standby) for the lease first, and a term that
/// lost the lease is followed by the next; without, one term. `first` is
/// the first term's context; each later term gets a fresh one like it.
///
/// # Errors
/// [`ControllerError::Push`] when the Push endpoint cannot be served.
async fn terms(first: Context, watched: &Watched, shutdown: Stop) -> Result<(), ControllerError> {
    let mut elector = first
        .options
        .leader
        .clone()
        .map(|config| leader::Elector::new(first.client.clone(), config));
    let mut ctx = first;
    // Katib's DBManager API, started with the push endpoint it feeds and
    // kept, like it, from one term to the next.
    let mut db_manager = None;
    loop {
        // Under leader election: ready as a standby, then wait for the lease.
        if let Some(elector) = elector.as_mut() {
            ctx.ops.set_ready(true);
            tokio::select! {
                () = shutdown.clone() => break,
                () = elector.acquire() => {}
            }
        }
        // Served by the replica that works only (a standby has no trials),
        // and kept from one term to the next.
        if ctx.push.is_none()
            && let Some(addr) = ctx.options.push_listen
        {
            let url = ctx.options.push_url.clone();
            ctx.push = Some(Arc::new(push::listen(addr, url).await?));
        }
        if db_manager.is_none()
            && let (Some(addr), Some(push)) = (ctx.options.db_manager_listen, &ctx.push)
        {
            let served = dbmanager::serve(
                addr,
                ctx.options.db_manager_callers,
                ctx.client.clone(),
                Arc::clone(push),
                SqlStore::clone(&ctx.store),
            )
            .await;
            db_manager = match served {
                Ok(server) => Some(server),
                Err(e) if ctx.options.db_manager_defaulted => {
                    tracing::warn!(
                        "Katib's gRPC metrics API is off: {e} (give --db-manager-listen another address)"
                    );
                    ctx.options.db_manager_listen = None;
                    None
                }
                Err(e) => return Err(e.into()),
            };
        }
        let next = ctx.fresh();
        if !term(ctx, watched, shutdown.clone(), elector.as_mut()).await {
            break;
        }
        tracing::warn!(
            "lost the leader lease: this replica stopped its experiments and waits as a standby"
        );
        ctx = next;
    }
    Ok(())
}

/// Says, once the API server answered with the CRDs, what this controller
/// is and where it works: without it an operator sees nothing at all.
fn log_start(options: &ControllerOptions) {
    let address =
        |addr: Option<SocketAddr>| addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        api = %Experiment::api_version(&options.group),
        namespace = options.namespace.as_deref().unwrap_or("(all)"),
        store = options.store,
        listen = address(options.listen),
        push_listen = address(options.push_listen),
        optimization_jobs = options.optimization_jobs,
        leader_election = options.leader.as_ref().map_or_else(
            || "off".to_owned(),
            |l| format!("lease {}/{} as {}", l.namespace, l.name, l.identity)
        ),
        "ktune controller started"
    );
}

/// Serves the operations endpoints and the dashboard on `options.listen`
/// (read-only; a standby serves them too) until `shutdown`.
async fn serve_ops(
    options: &ControllerOptions,
    store: &SqlStore,
    ops: &Arc<ops::Ops>,
    shutdown: Stop,
) -> Result<Option<tokio::task::JoinHandle<()>>, ControllerError> {
    let Some(addr) = options.listen else {
        return Ok(None);
    };
    let dashboard = crate::ui::router(
        store.clone(),
        crate::ui::Config {
            base_path: String::new(),
            trials_dir: None,
            poll: crate::ui::DEFAULT_POLL,
        },
    );
    let serving = ops::serve(addr, Arc::clone(ops), dashboard, shutdown);
    Ok(Some(tokio::spawn(serving.await?)))
}

/// What the controller watches: Experiments, Trials and the served trial
/// kinds.
struct Watched {
    experiments: Api<Experiment>,
    trials: Api<Trial>,
    /// OptimizationJobs, with `--optimization-jobs`.
    jobs: Option<Api<OptimizationJob>>,
    workloads: Vec<(Api<DynamicObject>, ApiResource)>,
}

impl Watched {
    /// The APIs to watch, once the API server answers: one that is away at
    /// start-up is waited for, one that answers without the CRDs is an
    /// error.
    ///
    /// # Errors
    /// [`ControllerError::CrdsMissing`] when Experiments cannot be listed.
    async fn start(client: &Client, options: &ControllerOptions) -> Result<Self, ControllerError> {
        let group = &options.group;
        let (experiments, trials): (Api<Experiment>, Api<Trial>) = match &options.namespace {
            Some(ns) => (
                Api::namespaced_with(client.clone(), ns, group),
                Api::namespaced_with(client.clone(), ns, group),
            ),
            None => (
                Api::all_with(client.clone(), group),
                Api::all_with(client.clone(), group),
            ),
        };
        let startup = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let one = ListParams::default().limit(1);
        health::retry(startup, || experiments.list(&one))
            .await
            .map_err(ControllerError::CrdsMissing)?;
        log_start(options);
        let jobs = if options.optimization_jobs {
            let jobs: Api<OptimizationJob> = match &options.namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let startup = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
            health::retry(startup, || jobs.list(&one))
                .await
                .map_err(ControllerError::OptimizationJobsMissing)?;
            Some(jobs)
        } else {
            None
        };
        Ok(Self {
            experiments,
            trials,
            jobs,
            workloads: served_workloads(client, options).await,
        })
    }
}

/// One term as the working replica: the controllers run (holding the
/// lease beside them, if any) until `shutdown` or the loss of the lease;
/// then every worker stops, and a lease still held is released — only
/// now that no worker runs, so the next leader starts them. Returns
/// whether the lease was lost.
async fn term(
    ctx: Context,
    watched: &Watched,
    shutdown: Stop,
    elector: Option<&mut leader::Elector>,
) -> bool {
    let (ops, workers) = (Arc::clone(&ctx.ops), Arc::clone(&ctx.workers));
    ops.set_leader(true);
    ops.set_ready(true);
    let working = run_controllers(ctx, watched, shutdown);
    let lost = match elector {
        None => {
            working.await;
            false
        }
        Some(elector) => {
            // Renewing forever: `hold` returns only when the lease is lost.
            let lost = tokio::select! {
                () = working => false,
                lost = elector.hold(futures::future::pending()) => lost,
            };
            if !lost {
                workers.stop_all();
                elector.release().await;
            }
            lost
        }
    };
    ops.set_leader(false);
    workers.stop_all();
    lost
}

/// A custom resource one of the controllers reconciles: what differs
/// between the Experiment, Trial and OptimizationJob controllers.
trait Reconciled:
    Resource<
        DynamicType: Default + Clone + Eq + std::hash::Hash + std::fmt::Debug + Unpin + Send + Sync,
    > + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name (metrics, logs).
    const CONTROLLER: &'static str;

    /// The span that names the object in every line its reconcile logs
    /// (ERROR level: enabled whatever `KTUNE_LOG` lets through).
    fn span(&self) -> tracing::Span;

    /// Reconciles one object.
    fn reconcile(
        object: Arc<Self>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Action, ControllerError>> + Send + 'static;
}

impl Reconciled for Experiment {
    const CONTROLLER: &'static str = "experiment";

    fn span(&self) -> tracing::Span {
        tracing::error_span!(
            "reconcile",
            namespace = %self.namespace().unwrap_or_default(),
            experiment = %self.name_any()
        )
    }

    fn reconcile(
        object: Arc<Self>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Action, ControllerError>> + Send + 'static {
        experiment::reconcile(object, ctx)
    }
}

impl Reconciled for Trial {
    const CONTROLLER: &'static str = "trial";

    fn span(&self) -> tracing::Span {
        tracing::error_span!(
            "reconcile",
            namespace = %self.namespace().unwrap_or_default(),
            trial = %self.name_any()
        )
    }

    fn reconcile(
        object: Arc<Self>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Action, ControllerError>> + Send + 'static {
        trial::reconcile(object, ctx)
    }
}

impl Reconciled for OptimizationJob {
    const CONTROLLER: &'static str = "optimization-job";

    fn span(&self) -> tracing::Span {
        tracing::error_span!(
            "reconcile",
            namespace = %self.namespace().unwrap_or_default(),
            optimization_job = %self.name_any()
        )
    }

    fn reconcile(
        object: Arc<Self>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Action, ControllerError>> + Send + 'static {
        optimization::reconcile(object, ctx)
    }
}

/// Runs one controller until `until`: each reconcile measured and named
/// in its log lines, each failure retried by [`error_policy`].
async fn drive<K: Reconciled>(controller: Controller<K>, ctx: Arc<Context>, until: Stop) {
    controller
        .graceful_shutdown_on(until)
        .run(
            |object, ctx| {
                let span = object.span();
                async move {
                    let key = object_key(object.as_ref());
                    let reconcile = K::reconcile(object, Arc::clone(&ctx));
                    ctx.reconciled(K::CONTROLLER, key, reconcile).await
                }
                .instrument(span)
            },
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("{} reconcile: {e}", K::CONTROLLER);
            }
        })
        .await;
}

/// Runs the controllers until `until`: Experiments, Trials, and the
/// watches of the workload kinds that keep the caches the workers read and
/// wake them.
async fn run_controllers(ctx: Context, watched: &Watched, until: Stop) {
    let config = watcher::Config::default;
    // Neither is woken by what it owns: a Trial's reconcile wakes its
    // experiment's worker, the workload watches below wake the worker of
    // each workload's trial, and a workload deleted under a running trial
    // is created again at the trial's next requeue.
    let group = ctx.group();
    let experiments = Controller::new_with(watched.experiments.clone(), config(), group);
    let trials = Controller::new_with(watched.trials.clone(), config(), group);
    let (wake, wake_all) = (Arc::clone(&ctx.workers), Arc::clone(&ctx.workers));
    let (stores, keep_workloads) = watch::workload_watches(
        watched.workloads.clone(),
        (group, trials.store()),
        move |uid| wake.wake(uid),
        move || wake_all.wake_all(),
    );
    let ctx = Arc::new(ctx.with_caches(Caches::new(group, trials.store(), stores)));
    let watching = async {
        tokio::select! {
            () = keep_workloads => {}
            () = until.clone() => {}
        }
    };
    let jobs = async {
        if let Some(jobs) = &watched.jobs {
            let controller = Controller::new(jobs.clone(), config());
            drive(controller, Arc::clone(&ctx), until.clone()).await;
        }
    };
    tokio::join!(
        drive(experiments, Arc::clone(&ctx), until.clone()),
        drive(trials, Arc::clone(&ctx), until.clone()),
        jobs,
        watching,
    );
}
