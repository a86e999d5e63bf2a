//! `ktune controller`: reconciles `Experiment`s and `Trial`s
//! (`ktune.dev/v1beta1`) with kube-runtime, running each experiment through
//! the same [`Engine`](crate::engine::Engine) as `ktune run`, with
//! observations and algorithm state in the store (PostgreSQL in a cluster,
//! SQLite on a volume for small installs) rather than in etcd objects.
//!
//! - [`experiment`]: the Experiment reconciler (finalizer, one worker per
//!   experiment) and the worker writing status and Events;
//! - [`trial`]: the Trial reconciler (the workload from `runSpec`);
//! - [`workload`]: the cluster [`Runner`](crate::runner::Runner);
//! - [`kinds`]: the allowed trial kinds (`--trial-resources`) and their pods;
//! - [`push`], [`sidecar`], [`scrape`], [`collect`]: Push metrics (an
//!   endpoint, a token per trial in a Secret), File (a native sidecar
//!   streaming to that endpoint) and PrometheusMetric (the primary pod
//!   scraped) beside StdOut from the logs;
//! - [`logs`]: StdOut metrics from the primary pod's log;
//! - [`status`]: the status documents, as pure functions;
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`leader`]: leader election on a Lease, so that one replica works.

pub mod collect;
pub mod experiment;
pub mod kinds;
pub mod leader;
pub mod logs;
pub mod ops;
pub mod push;
pub mod scrape;
pub mod sidecar;
pub mod status;
pub mod trial;
pub mod workload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use tracing::Instrument as _;

use crate::api::{Experiment, Trial};
use crate::engine::EngineError;
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
    /// A trial's workload cannot be created.
    #[error("workload: {0}")]
    Workload(String),
    /// A value could not be serialised.
    #[error("serialising: {0}")]
    Json(#[from] serde_json::Error),
    /// The operations endpoints could not be served.
    #[error(transparent)]
    Ops(#[from] ops::OpsError),
    /// Another replica took the lease, or it could not be renewed: this
    /// process stops (and is restarted as a standby).
    #[error("lost the leader lease")]
    LeaseLost,
    /// The Push endpoint could not be served.
    #[error("push endpoint: {0}")]
    Push(#[from] crate::metrics::push::PushError),
    /// The CRDs are not installed.
    #[error("cannot list Experiments ({0}); are the CRDs installed? kubectl apply -f crds/")]
    CrdsMissing(#[source] kube::Error),
}

/// The File collector sidecar's default image: the controller's.
pub const DEFAULT_COLLECTOR_IMAGE: &str = "ghcr.io/ktune-dev/ktune:latest";
/// Where that image keeps `ktune` (see the Dockerfile).
pub const DEFAULT_COLLECTOR_COMMAND: &str = "/usr/local/bin/ktune";

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
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
    /// The image of the File collector's sidecar (the controller's own).
    pub collector_image: String,
    /// The `ktune` binary in that image.
    pub collector_command: String,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            tick: Duration::from_millis(500),
            seed: 0,
            listen: None,
            leader: None,
            trial_resources: kinds::default_trial_resources(),
            push_listen: None,
            push_url: None,
            collector_image: DEFAULT_COLLECTOR_IMAGE.to_owned(),
            collector_command: DEFAULT_COLLECTOR_COMMAND.to_owned(),
        }
    }
}

/// One experiment's worker.
#[derive(Debug)]
pub struct Worker {
    generation: i64,
    task: tokio::task::JoinHandle<()>,
}

/// What the reconcilers share.
pub struct Context {
    client: Client,
    store: Arc<SqlStore>,
    recorder: Recorder,
    options: ControllerOptions,
    workers: Mutex<HashMap<String, Worker>>,
    ops: Arc<ops::Ops>,
    push: Option<Arc<push::ClusterPush>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Publishes a Normal event about an object (best effort: a lost event
    /// must not fail a reconcile).
    async fn publish(&self, object: &ObjectReference, reason: &str, note: &str) {
        let event = KubeEvent {
            type_: if matches!(reason, "Failed" | "Error" | "Invalid") {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: (!note.is_empty()).then(|| note.chars().take(1024).collect()),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::debug!("publishing an event: {e}");
        }
    }

    fn stop_worker(&self, uid: &str) {
        if let Ok(mut workers) = self.workers.lock()
            && let Some(worker) = workers.remove(uid)
        {
            worker.task.abort();
        }
    }
}

/// The allowed trial kinds the API server serves, to watch: a change of a
/// trial's workload then wakes its reconciler (as Katib watches its
/// `trialResources`). A kind not served now (its CRD not installed) is
/// logged and left unwatched; its trials still work, followed by polling.
async fn served_workloads(
    client: &Client,
    options: &ControllerOptions,
) -> Vec<(Api<DynamicObject>, ApiResource)> {
    let mut out: Vec<(Api<DynamicObject>, ApiResource)> = Vec::new();
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
            Ok(_) => out.push((api, ar)),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::info!("trial resource {resource} is not served (no CRD): not watched");
            }
            Err(e) => tracing::warn!("trial resource {resource} is not watched: {e}"),
        }
    }
    out
}

fn error_policy<K>(_object: Arc<K>, error: &ControllerError, _ctx: Arc<Context>) -> Action {
    tracing::warn!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controllers until `shutdown` resolves (or a signal arrives),
/// serving the operations endpoints and the dashboard (`ktune ui`'s pages)
/// on `options.listen`; with
/// `options.leader`, only while holding the lease (a standby waits, ready).
///
/// # Errors
/// [`ControllerError::CrdsMissing`] when Experiments cannot be listed,
/// [`ControllerError::Ops`] when `listen` cannot be bound, and
/// [`ControllerError::LeaseLost`] when another replica took the lease.
pub async fn run(
    client: Client,
    store: SqlStore,
    options: ControllerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ControllerError> {
    let (experiments, trials): (Api<Experiment>, Api<Trial>) = match &options.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    experiments
        .list(&ListParams::default().limit(1))
        .await
        .map_err(ControllerError::CrdsMissing)?;
    let workloads = served_workloads(&client, &options).await;
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let ops = Arc::new(ops::Ops::new());
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match options.listen {
        Some(addr) => {
            let until = futures::future::select(shutdown.clone(), server_stopped);
            // The dashboard over the controller's store, beside the
            // operations endpoints (read-only; a standby serves it too).
            let dashboard = crate::ui::router(
                store.clone(),
                crate::ui::Config {
                    base_path: String::new(),
                    trials_dir: None,
                    poll: crate::ui::DEFAULT_POLL,
                },
            );
            let serving = ops::serve(addr, Arc::clone(&ops), dashboard, async move {
                until.await;
            });
            Some(tokio::spawn(serving.await?))
        }
        None => None,
    };
    // Under leader election: ready as a standby, then wait for the lease;
    // the controllers stop when it is lost.
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = match options.leader.clone() {
        Some(config) => {
            ops.set_ready(true);
            let mut elector = leader::Elector::new(client.clone(), config);
            tokio::select! {
                () = shutdown.clone() => {
                    let _ = stop_server.send(());
                    if let Some(server) = server {
                        let _ = server.await;
                    }
                    return Ok(());
                }
                () = elector.acquire() => {}
            }
            let (stop_holding, holding_stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let lost = elector
                    .hold(async move {
                        let _ = holding_stopped.await;
                    })
                    .await;
                if lost {
                    let _ = lost_tx.send(());
                } else {
                    elector.release().await;
                }
                lost
            });
            Some((stop_holding, task))
        }
        None => {
            drop(lost_tx);
            None
        }
    };
    let lost = async move {
        if lost_rx.await.is_err() {
            futures::future::pending::<()>().await;
        }
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(async move {
        futures::future::select(shutdown, Box::pin(lost)).await;
    }));
    // Served by the replica that works only (a standby has no trials).
    let push = match options.push_listen {
        Some(addr) => Some(Arc::new(
            push::ClusterPush::start(addr, options.push_url.clone()).await?,
        )),
        None => None,
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), Reporter::from("ktune-controller")),
        client,
        store: Arc::new(store),
        options,
        workers: Mutex::new(HashMap::new()),
        ops,
        push,
    });
    let experiment_controller = Controller::new(experiments, watcher::Config::default())
        .owns(trials.clone(), watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |object, ctx| {
                // ERROR level: enabled whatever `KTUNE_LOG` lets through,
                // so every line of the reconcile names its object.
                let span = tracing::error_span!(
                    "reconcile",
                    namespace = %object.namespace().unwrap_or_default(),
                    experiment = %object.name_any()
                );
                async move {
                    let ops = Arc::clone(&ctx.ops);
                    ops.measure("experiment", experiment::reconcile(object, ctx))
                        .await
                }
                .instrument(span)
            },
            error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("experiment reconcile: {e}");
            }
        });
    let mut trial_controller = Controller::new(trials, watcher::Config::default());
    for (api, resource) in workloads {
        trial_controller = trial_controller.owns_with(api, resource, watcher::Config::default());
    }
    let trial_controller = trial_controller
        .graceful_shutdown_on(shutdown)
        .run(
            |object, ctx| {
                let span = tracing::error_span!(
                    "reconcile",
                    namespace = %object.namespace().unwrap_or_default(),
                    trial = %object.name_any()
                );
                async move {
                    let ops = Arc::clone(&ctx.ops);
                    ops.measure("trial", trial::reconcile(object, ctx)).await
                }
                .instrument(span)
            },
            error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("trial reconcile: {e}");
            }
        });
    ctx.ops.set_leader(true);
    ctx.ops.set_ready(true);
    tokio::join!(experiment_controller, trial_controller);
    ctx.ops.set_ready(false);
    ctx.ops.set_leader(false);
    if let Ok(mut workers) = ctx.workers.lock() {
        for (_, worker) in workers.drain() {
            worker.task.abort();
        }
    }
    // Released only now that no worker runs: the next leader starts them.
    let lost = match holder {
        Some((stop_holding, task)) => {
            let _ = stop_holding.send(());
            task.await.unwrap_or(false)
        }
        None => false,
    };
    let _ = stop_server.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    if lost {
        return Err(ControllerError::LeaseLost);
    }
    Ok(())
}
