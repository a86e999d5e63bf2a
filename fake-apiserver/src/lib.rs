//! A faithful in-process fake Kubernetes API server, for ktune's controller
//! tests and as a dev tool (`cargo run --release --example fake-apiserver`).
//!
//! It serves discovery, get/list/watch/create/update/patch/delete with
//! resourceVersions, selectors, paging, bookmarks and `410 Gone`,
//! finalizers, the status subresource, owner-reference garbage collection
//! and kubectl's Table output, for the built-in kinds the controller
//! touches and for any CRD created through it. Objects are plain
//! `serde_json::Value`s; there is no schema validation, authentication or
//! admission. An optional [`Executor`] runs workloads of every kind in
//! ktune's trial-kind table (`ktune-kinds`) — Jobs, the Kubeflow training
//! jobs, Trainer `TrainJob`s, `JobSet`s, Argo `Workflow`s and Tekton
//! `PipelineRun`s — as pods whose containers are local processes (images
//! are ignored), and serves their logs; [`crds`] holds minimal CRDs for the
//! kinds that are not built in. As Kubeflow Trainer with its
//! `TrainJobStatus` gate does, it hands TrainJob pods a status endpoint and
//! token and writes what they report to `status.trainerStatus`
//! ([`progress`]; [`Config::trainer_status`] switches it). Served on a socket, it can go away and come
//! back on the same port with its store kept ([`ServerHandle::stop`],
//! [`ServerHandle::restart`]), to test clients through an outage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ktune_fake_apiserver::Error> {
//! let server = ktune_fake_apiserver::FakeApiServer::new();
//! // In process: `kube::Client::new(server.router(), "default")`.
//! // Over TCP, for kubectl:
//! let (addr, _handle) = server.serve("127.0.0.1:0".parse().unwrap()).await?;
//! ktune_fake_apiserver::kubeconfig("/tmp/kubeconfig".as_ref(), &format!("http://{addr}"))?;
//! # Ok(()) }
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod discovery;
mod events;
mod executor;
mod http;
mod logs;
mod patch;
mod pod;
pub mod progress;
mod resource;
mod select;
mod status;
mod store;
mod table;
mod volumes;
mod workloads;

pub use executor::{Executor, ExecutorConfig};
pub use pod::PLACEHOLDER_IMAGE;

/// Minimal CRDs (names and versions, schemaless, status subresource) of the
/// workload kinds the [`Executor`] runs that Kubernetes does not build in;
/// install one with [`FakeApiServer::create_manifest`] or `kubectl apply`.
pub mod crds {
    /// `PyTorchJob`, `TFJob`, `XGBoostJob`, `PaddleJob`, `JAXJob` (`kubeflow.org/v1`).
    pub const TRAINING_OPERATOR: &str = include_str!("../crds/training-operator.yaml");
    /// The training operator's `MPIJob` (`kubeflow.org/v1`).
    pub const MPIJOB_V1: &str = include_str!("../crds/mpijob-v1.yaml");
    /// mpi-operator's `MPIJob` (`kubeflow.org/v2beta1`); excludes [`MPIJOB_V1`].
    pub const MPIJOB_V2BETA1: &str = include_str!("../crds/mpijob-v2beta1.yaml");
    /// Kubeflow Trainer's `TrainJob` (`trainer.kubeflow.org/v1alpha1`).
    pub const TRAINER: &str = include_str!("../crds/trainer.yaml");
    /// Kubeflow Trainer's runtimes, `ClusterTrainingRuntime` (cluster-scoped)
    /// and `TrainingRuntime` (`trainer.kubeflow.org/v1alpha1`): not workloads,
    /// but what a TrainJob's `runtimeRef` names and the Kubeflow SDK reads.
    pub const TRAINER_RUNTIMES: &str = include_str!("../crds/trainer-runtimes.yaml");
    /// Argo's `Workflow` (`argoproj.io/v1alpha1`).
    pub const ARGO: &str = include_str!("../crds/argo.yaml");
    /// Tekton's `PipelineRun` (`tekton.dev/v1`, `v1beta1`).
    pub const TEKTON: &str = include_str!("../crds/tekton.yaml");

    /// A minimal CRD (as JSON) serving one kind of the trial-kind table at
    /// its version: for a kind without a manifest above.
    pub fn for_kind(kind: &ktune_kinds::TrialKind) -> String {
        serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{}.{}", kind.plural, kind.group)},
            "spec": {
                "group": kind.group,
                "scope": "Namespaced",
                "names": {
                    "kind": kind.kind,
                    "plural": kind.plural,
                    "singular": kind.kind.to_lowercase(),
                    "listKind": format!("{}List", kind.kind),
                },
                "versions": [{
                    "name": kind.version,
                    "served": true,
                    "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        })
        .to_string()
    }
}
pub use resource::ResourceType;
pub use status::ApiError;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong outside a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding, serving or writing a file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A YAML or JSON manifest that does not parse.
    #[error("cannot parse manifest: {0}")]
    Manifest(String),
    /// The server refused an object.
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// The fake API server: cheap to clone, all clones share one store.
#[derive(Debug, Clone)]
pub struct FakeApiServer {
    app: http::App,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings for [`FakeApiServer::with_config`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Events kept per resource for watches; older resourceVersions get 410.
    pub history_limit: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Kubeflow Trainer's `TrainJobStatus` feature gate (on by default, as
    /// on a cluster with it on): TrainJob pods get the status server's
    /// variables and token, and `POST …/trainjobs/{name}/status` writes
    /// `status.trainerStatus` (see [`progress`]).
    pub trainer_status: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(10),
            trainer_status: true,
        }
    }
}

/// A server running on a socket; dropping it stops the server.
///
/// It can also go away and come back, as a real API server does when it
/// restarts: [`ServerHandle::stop`] refuses new connections and closes the
/// open ones (watches and log streams included), [`ServerHandle::restart`]
/// listens again on the same address; the store is kept throughout, so
/// clients find every object as they left it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    router: axum::Router,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ServerHandle {
    /// Where it listens (also while stopped: where it will listen again).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it listens now.
    pub fn is_serving(&self) -> bool {
        self.task
            .lock()
            .is_ok_and(|t| t.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// Goes away: the listening socket and every open connection are
    /// closed (clients see connections refused and streams cut), the
    /// store is kept.
    pub fn stop(&self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
            tracing::info!(addr = %self.addr, "fake API server stopped");
        }
    }

    /// Comes back on the same address after [`Self::stop`] (nothing
    /// happens while it serves).
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound again.
    pub async fn restart(&self) -> Result<(), Error> {
        if self.is_serving() {
            return Ok(());
        }
        let (listener, _) = bind(self.addr).await?;
        let task = tokio::spawn(accept(listener, self.router.clone()));
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
        tracing::info!(addr = %self.addr, "fake API server listening again");
        Ok(())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr`; returns the listener and the bound address.
async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            context: format!("binding {addr}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the bound address".into(),
        source,
    })?;
    Ok((listener, bound))
}

/// Serves each accepted connection (HTTP/1.1) until this future is
/// dropped, which closes them all: unlike `axum::serve`, whose connection
/// tasks outlive its accept loop, aborting this task is an outage.
async fn accept(listener: tokio::net::TcpListener, router: axum::Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let served = Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            tracing::trace!("connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little.
                    tracing::debug!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl FakeApiServer {
    /// A server with the default [`Config`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A server with the given settings.
    pub fn with_config(config: Config) -> Self {
        Self {
            app: http::App {
                store: Arc::new(store::Store::new(config.history_limit)),
                logs: Arc::new(logs::Logs::default()),
                bookmark_interval: config.bookmark_interval,
                requests: Arc::default(),
                progress: Arc::new(progress::ProgressServer::new(config.trainer_status)),
            },
        }
    }

    /// The axum router; hand it to `kube::Client::new(router, "default")`
    /// to talk to the server without a socket.
    pub fn router(&self) -> axum::Router {
        http::router(self.app.clone())
    }

    /// Serves on `addr` (use `127.0.0.1:0` for a free port); returns the
    /// bound address and a handle that stops the server when dropped.
    pub async fn serve(&self, addr: SocketAddr) -> Result<(SocketAddr, ServerHandle), Error> {
        let (listener, bound) = bind(addr).await?;
        let router = self.router();
        let task = tokio::spawn(accept(listener, router.clone()));
        tracing::info!(%bound, "fake API server listening");
        // Trainer's status server is the fake itself: pods reach it here.
        self.app.progress.set_base_url(format!("http://{bound}"));
        Ok((
            bound,
            ServerHandle {
                addr: bound,
                router,
                task: std::sync::Mutex::new(Some(task)),
            },
        ))
    }

    /// Starts the Job executor (needs a Tokio runtime).
    pub fn start_executor(&self, config: ExecutorConfig) -> Executor {
        Executor::start(
            self.app.store.clone(),
            self.app.logs.clone(),
            self.app.progress.clone(),
            config,
        )
    }

    /// Simulates an etcd compaction: history is dropped, so open watches
    /// end with `410 Gone` and clients must relist.
    pub fn compact(&self) {
        self.app.store.compact();
    }

    /// How many HTTP requests the server has answered (a watch or a log
    /// stream counts once): what a client costs the API server.
    pub fn requests(&self) -> u64 {
        self.app.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.resource_version()
    }

    /// Serves every kind of the trial-kind table that Kubernetes does not
    /// build in, and Trainer's runtimes: the [`crds`] manifests (MPIJob at
    /// `v1`), then a minimal
    /// CRD ([`crds::for_kind`]) for each kind whose resource is still not
    /// served.
    pub fn install_workload_crds(&self) -> Result<(), Error> {
        for manifest in [
            crds::TRAINING_OPERATOR,
            crds::MPIJOB_V1,
            crds::TRAINER,
            crds::TRAINER_RUNTIMES,
            crds::ARGO,
            crds::TEKTON,
        ] {
            self.create_manifest(manifest)?;
        }
        for kind in ktune_kinds::KINDS.iter().filter(|k| k.served_by.is_some()) {
            let served = self
                .app
                .store
                .types()
                .iter()
                .any(|t| t.group == kind.group && t.plural == kind.plural);
            if !served {
                self.create_manifest(&crds::for_kind(kind))?;
            }
        }
        Ok(())
    }

    /// Creates every object of a (multi-document) YAML or JSON manifest, as
    /// `kubectl create -f` would; handy to install CRDs in tests.
    pub fn create_manifest(&self, text: &str) -> Result<Vec<serde_json::Value>, Error> {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).map_err(|e| Error::Manifest(e.to_string()))?;
        let mut out = Vec::new();
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let av = doc
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
            let (group, version) = av.rsplit_once('/').unwrap_or(("", av));
            let rt = self
                .app
                .store
                .types()
                .into_iter()
                .find(|t| t.group == group && t.version == version && t.kind == kind)
                .ok_or_else(|| Error::Manifest(format!("no resource serves {av} {kind}")))?;
            let ns = rt.namespaced.then(|| {
                doc.pointer("/metadata/namespace")
                    .and_then(|n| n.as_str())
                    .unwrap_or("default")
                    .to_string()
            });
            out.push(self.app.store.create(&rt, ns.as_deref(), doc, false)?);
        }
        Ok(out)
    }
}

/// Writes a kubeconfig for `server` (e.g. `http://127.0.0.1:PORT`) with
/// an empty user, usable by kubectl and `kube::Config`.
pub fn kubeconfig(path: &Path, server: &str) -> Result<(), Error> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
    );
    std::fs::write(path, text).map_err(|source| Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}
