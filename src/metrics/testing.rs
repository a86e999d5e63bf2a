//! For tests only: [`FakeCollector`], an in-memory [`Collector`] (a test
//! queues a trial's reports with [`FakeCollector::report`] and the engine
//! reads them at its next poll), and what the collector kinds' own tests
//! share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::push::PushCredentials;
use crate::runner::{Reporting, TrialRun};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports queued per trial; what the trials were handed and which are
/// attached.
#[derive(Debug, Default)]
struct Queues {
    reports: BTreeMap<String, Vec<MetricLog>>,
    attached: BTreeSet<String>,
    detached: Vec<String>,
}

/// A collector whose reports the test queues.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeCollector {
    queues: Arc<Mutex<Queues>>,
    /// Whether an adopted trial's source delivers again what was stored
    /// (as a log read from its start does).
    replays: bool,
}

impl FakeCollector {
    /// A collector whose sources replay an adopted trial's reports.
    pub(crate) fn replaying() -> Self {
        Self {
            replays: true,
            ..Self::default()
        }
    }

    /// Queues a report of `metric` for `trial`, read at its next poll.
    pub(crate) fn report(&self, trial: &str, metric: &str, value: &str) {
        lock(&self.queues)
            .reports
            .entry(trial.to_owned())
            .or_default()
            .push(MetricLog {
                name: metric.to_owned(),
                value: value.to_owned(),
                time: None,
            });
    }

    /// Whether `trial` is attached now.
    pub(crate) fn attached(&self, trial: &str) -> bool {
        lock(&self.queues).attached.contains(trial)
    }

    /// The trials detached, in order.
    pub(crate) fn detached(&self) -> Vec<String> {
        lock(&self.queues).detached.clone()
    }
}

impl Collector for FakeCollector {
    type Trial = FakeMetrics;

    /// Hands each trial a push token named after it, so tests can see the
    /// runner receive what the collector prepared.
    fn prepare(&self, trial: &str) -> Reporting {
        Reporting {
            push: Some(PushCredentials {
                url: format!("http://push.test/{trial}"),
                token: format!("token-{trial}"),
                trainer_url: None,
            }),
            metrics_port: None,
            db_manager: None,
        }
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> FakeMetrics {
        lock(&self.queues).attached.insert(trial.to_owned());
        FakeMetrics {
            trial: trial.to_owned(),
            queues: Arc::clone(&self.queues),
            replays: self.replays,
        }
    }

    fn detach(&self, trial: &str) {
        let mut queues = lock(&self.queues);
        queues.attached.remove(trial);
        queues.detached.push(trial.to_owned());
    }
}

/// One trial's queued reports.
#[derive(Debug)]
pub(crate) struct FakeMetrics {
    trial: String,
    queues: Arc<Mutex<Queues>>,
    replays: bool,
}

impl TrialMetrics for FakeMetrics {
    async fn poll(&mut self) -> Vec<MetricLog> {
        lock(&self.queues)
            .reports
            .remove(&self.trial)
            .unwrap_or_default()
    }

    fn replays(&self) -> bool {
        self.replays
    }
}

pub(crate) use for_kinds::*;

/// What the collector kinds' own tests share.
mod for_kinds {
    use std::path::{Path, PathBuf};

    use crate::api::experiment::{ExperimentSpec, ObjectiveSpec};
    use crate::runner::{Exit, TrialRun};

    /// A started trial whose output is `stdout`, if any.
    #[derive(Debug, Default)]
    pub(crate) struct FakeRun {
        stdout: Option<PathBuf>,
    }

    impl FakeRun {
        pub(crate) fn with_stdout(stdout: PathBuf) -> Self {
            Self {
                stdout: Some(stdout),
            }
        }
    }

    impl TrialRun for FakeRun {
        async fn poll(&mut self) -> Option<Exit> {
            None
        }

        async fn stop(&mut self) {}

        fn stdout(&self) -> Option<&Path> {
            self.stdout.as_deref()
        }
    }

    /// An experiment minimizing `loss` with `collector` as its
    /// `metricsCollectorSpec`.
    pub(crate) fn spec_with_collector(collector: serde_json::Value) -> ExperimentSpec {
        ExperimentSpec {
            objective: Some(ObjectiveSpec {
                objective_metric_name: "loss".into(),
                ..ObjectiveSpec::default()
            }),
            metrics_collector_spec: Some(serde_json::from_value(collector).unwrap()),
            ..ExperimentSpec::default()
        }
    }

    /// The cluster backend of namespace `ns`, with `push` as the
    /// controller's endpoint; its client reaches no API server (call
    /// within a tokio runtime).
    pub(crate) fn cluster_backend(
        push: Option<std::sync::Arc<crate::metrics::push::PushServer>>,
    ) -> crate::metrics::cluster::ClusterBackend {
        use crate::metrics::cluster::{ClusterBackend, SidecarImage, TrialPods};
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        ClusterBackend {
            pods: TrialPods {
                client: kube::Client::try_from(config).unwrap(),
                namespace: "ns".into(),
                owner_label: Some("batch.kubernetes.io/job-name"),
                primary_labels: std::collections::BTreeMap::new(),
                primary_container: String::new(),
            },
            push,
            sidecar: SidecarImage {
                image: "ktune".into(),
                command: "/usr/local/bin/ktune".into(),
            },
        }
    }

    /// POSTs a JSON `body` with `token`; returns the status.
    pub(crate) async fn post(url: &str, token: &str, body: &str) -> u16 {
        use http_body_util::Full;
        use hyper::body::Bytes;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = hyper::Request::post(url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        client.request(request).await.unwrap().status().as_u16()
    }
}
