//! The controller's operations endpoints: `/healthz`, `/readyz` and
//! `/metrics`, served with axum next to the controllers.
//!
//! Kubernetes probes need to tell a wedged process (restart it) from one
//! that is still starting (wait for it); Prometheus needs counters to alert
//! on failing reconciles. kube has no metrics of its own, so, as in
//! kube-rs's controller-rs, the reconcilers are wrapped in a timer feeding
//! a prometheus-client registry (prefix `ktune`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Why the endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The listen address is taken or not ours.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address of `--listen`.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Which reconciler a sample is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `experiment` or `trial`.
    pub controller: String,
}

/// A failure of a reconciler or an experiment worker, by its kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `experiment`, `trial` or `worker`.
    pub controller: String,
    /// What failed (`api_unavailable`, `conflict`, `api`, `engine` …: see
    /// [`ControllerError::kind`](super::ControllerError::kind)).
    pub error: String,
}

/// One experiment's trials in one state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrialLabels {
    /// The experiment's namespace.
    pub namespace: String,
    /// The experiment's name.
    pub experiment: String,
    /// The trial state (`Running`, `Succeeded`, …).
    pub state: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms … about 16 s: a reconcile is a few API calls.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Labels of the suggestion latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AlgorithmLabels {
    /// The experiment's `algorithmName`.
    pub algorithm: String,
}

fn suggestion_histogram() -> Histogram {
    // 100 µs … about 3 s: random is microseconds, a GP over a long
    // history seconds.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The controller's metrics and probe state, shared by the reconcilers,
/// the experiment workers and the HTTP server.
pub struct Ops {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    trials: Family<TrialLabels, Gauge>,
    suggestions: Family<AlgorithmLabels, Histogram, fn() -> Histogram>,
    leader: Gauge,
    ready: AtomicBool,
    is_leader: AtomicBool,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("ready", &self.ready)
            .field("is_leader", &self.is_leader)
            .finish_non_exhaustive()
    }
}

impl Default for Ops {
    fn default() -> Self {
        Self::new()
    }
}

impl Ops {
    /// A fresh registry with every metric registered (at zero).
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ktune");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let trials = Family::<TrialLabels, Gauge>::default();
        let suggestions =
            Family::<AlgorithmLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                suggestion_histogram,
            );
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles and experiment worker runs, by what failed",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            duration.clone(),
        );
        registry.register(
            "trials",
            "Trials of each experiment by state, as its worker last wrote them",
            trials.clone(),
        );
        registry.register(
            "suggestion_duration_seconds",
            "How long one call of the search algorithm took (the engine's suggest step)",
            suggestions.clone(),
        );
        registry.register(
            "leader",
            "1 while this process runs the controllers (holds the lease, or leader election is off)",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            trials,
            suggestions,
            leader,
            ready: AtomicBool::new(false),
            is_leader: AtomicBool::new(false),
        }
    }

    /// Runs one reconcile, counting it and its duration (its failure is
    /// counted by the error policy, which knows what failed: see
    /// [`Self::count_error`]).
    ///
    /// # Errors
    /// The reconcile's own.
    pub async fn measure<T, E>(
        &self,
        controller: &str,
        reconcile: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        let start = Instant::now();
        let result = reconcile.await;
        self.duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
        self.reconciles.get_or_create(&labels).inc();
        result
    }

    /// Counts a failure of `controller` (`experiment`, `trial`, `worker`)
    /// of kind `error`.
    pub fn count_error(&self, controller: &str, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                error: error.to_owned(),
            })
            .inc();
    }

    /// Records an experiment's trial counts by state (states missing from
    /// `counts` drop to zero, so a finished experiment shows no Running).
    pub fn set_trials(&self, namespace: &str, experiment: &str, counts: &[(&str, i64)]) {
        for state in [
            "Created",
            "Running",
            "Succeeded",
            "Failed",
            "Killed",
            "EarlyStopped",
            "MetricsUnavailable",
        ] {
            let value = counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .sum();
            self.trials
                .get_or_create(&TrialLabels {
                    namespace: namespace.to_owned(),
                    experiment: experiment.to_owned(),
                    state: state.to_owned(),
                })
                .set(value);
        }
    }

    /// Records how long calls of an algorithm took (seconds).
    pub fn observe_suggestions(&self, algorithm: &str, seconds: &[f64]) {
        if seconds.is_empty() {
            return;
        }
        let histogram = self.suggestions.get_or_create(&AlgorithmLabels {
            algorithm: algorithm.to_owned(),
        });
        for s in seconds {
            histogram.observe(*s);
        }
    }

    /// Marks the controllers as running (or stopped): `/readyz` follows.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Marks this process as the leader (or a standby).
    pub fn set_leader(&self, leader: bool) {
        self.is_leader.store(leader, Ordering::SeqCst);
        self.leader.set(i64::from(leader));
    }

    /// The registry in OpenMetrics text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        text
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the CRDs were listable and the controllers (or, under leader
/// election, the wait for the lease) run. A standby is ready too: a
/// Deployment's rolling update waits for its new pod to be ready while the
/// old one still holds the lease.
async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    if !ops.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    if ops.is_leader.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok: leader")
    } else {
        (StatusCode::OK, "ok: standby, not leader")
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.encode(),
    )
}

/// The endpoints' routes.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

/// Binds `addr` now (so a taken port fails the start, not later) and
/// returns the server of the operations endpoints and `extra` (the
/// dashboard), which runs until `shutdown` resolves, with
/// [`crate::serve`]'s connection cap, deadlines and security headers.
///
/// # Errors
/// [`OpsError::Bind`] when the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    ops: Arc<Ops>,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send, OpsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OpsError::Bind { addr, source })?;
    tracing::info!("serving /healthz, /readyz, /metrics and the dashboard on {addr}");
    let routes = router(ops).merge(extra);
    Ok(crate::serve::serve(
        listener,
        routes,
        crate::serve::Limits::default(),
        shutdown,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measure_counts_reconciles_and_failures_per_controller() {
        let ops = Ops::new();
        let ok: Result<(), ()> = ops.measure("trial", async { Ok(()) }).await;
        assert!(ok.is_ok());
        let failed: Result<(), &str> = ops.measure("trial", async { Err("no") }).await;
        assert!(failed.is_err());
        ops.count_error("trial", "api_unavailable");
        ops.set_trials(
            "ns",
            "e",
            &[("Running", 1), ("Succeeded", 1), ("Succeeded", 1)],
        );
        let text = ops.encode();
        assert!(
            text.contains("ktune_reconciles_total{controller=\"trial\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "ktune_reconcile_errors_total{controller=\"trial\",error=\"api_unavailable\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("ktune_reconcile_duration_seconds_count{controller=\"trial\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ktune_trials{namespace=\"ns\",experiment=\"e\",state=\"Succeeded\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ktune_trials{namespace=\"ns\",experiment=\"e\",state=\"Failed\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn readyz_waits_for_the_controllers_and_tells_a_standby() {
        let ops = Arc::new(Ops::new());
        let status = |ops: &Arc<Ops>| {
            let ops = Arc::clone(ops);
            async move { readyz(State(ops)).await.into_response().status() }
        };
        assert_eq!(status(&ops).await, StatusCode::SERVICE_UNAVAILABLE);
        ops.set_ready(true);
        assert_eq!(status(&ops).await, StatusCode::OK);
        ops.set_leader(true);
        assert_eq!(status(&ops).await, StatusCode::OK);
        assert!(ops.encode().contains("ktune_leader 1"));
    }
}
