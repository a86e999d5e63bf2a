//! For tests: [`FakeCollector`], an in-memory [`Collector`] whose trials
//! report what the test scripted, and records what the engine asked of
//! it. Nothing here is used outside tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::MetricLog;
use super::collector::{Collector, TrialMetrics};
use crate::runner::TrialRun;

/// One report: `name` = `value`, without a timestamp.
#[must_use]
pub fn report(name: &str, value: &str) -> MetricLog {
    MetricLog {
        name: name.to_owned(),
        value: value.to_owned(),
        time: None,
    }
}

/// What the engine asked of a [`FakeCollector`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `prepare(trial)`.
    Prepare(String),
    /// `attach(trial, _)`.
    Attach(String),
    /// `detach(trial)`.
    Detach(String),
}

/// A collector for tests: each trial's readers hand over the batches
/// scripted for it with [`Self::script`], one batch per poll (all that is
/// left on `finish`), whenever scripted — before the trial starts or while
/// it runs.
#[derive(Debug, Clone, Default)]
pub struct FakeCollector {
    shared: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    batches: HashMap<String, VecDeque<Vec<MetricLog>>>,
    env: Vec<(String, String)>,
    replays: bool,
    calls: Vec<Call>,
}

impl FakeCollector {
    /// A collector with nothing scripted: its trials report nothing, need
    /// no environment and do not replay.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn script_mut(&self) -> MutexGuard<'_, Script> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a batch `trial` hands over at one poll, after those scripted
    /// before.
    pub fn script(&self, trial: &str, batch: impl IntoIterator<Item = MetricLog>) -> &Self {
        self.script_mut()
            .batches
            .entry(trial.to_owned())
            .or_default()
            .push_back(batch.into_iter().collect());
        self
    }

    /// The environment every trial is prepared with.
    #[must_use]
    pub fn with_env(self, env: &[(&str, &str)]) -> Self {
        self.script_mut().env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    /// Makes the trials' readers replay what an adopted trial stored
    /// before, as a log read from its start does.
    #[must_use]
    pub fn replaying(self) -> Self {
        self.script_mut().replays = true;
        self
    }

    /// What the engine asked so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.script_mut().calls.clone()
    }

    /// The batches scripted for `trial` that no reader has taken yet.
    #[must_use]
    pub fn pending(&self, trial: &str) -> usize {
        self.script_mut()
            .batches
            .get(trial)
            .map_or(0, VecDeque::len)
    }
}

impl Collector for FakeCollector {
    type Trial = FakeTrial;

    fn prepare(&self, trial: &str) -> Vec<(String, String)> {
        let mut script = self.script_mut();
        script.calls.push(Call::Prepare(trial.to_owned()));
        script.env.clone()
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> FakeTrial {
        let mut script = self.script_mut();
        script.calls.push(Call::Attach(trial.to_owned()));
        FakeTrial {
            shared: Arc::clone(&self.shared),
            trial: trial.to_owned(),
            replays: script.replays,
        }
    }

    fn detach(&self, trial: &str) {
        self.script_mut().calls.push(Call::Detach(trial.to_owned()));
    }
}

/// One trial's reader of a [`FakeCollector`].
#[derive(Debug)]
pub struct FakeTrial {
    shared: Arc<Mutex<Script>>,
    trial: String,
    replays: bool,
}

impl FakeTrial {
    fn take(&self, all: bool) -> Vec<MetricLog> {
        let mut script = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(batches) = script.batches.get_mut(&self.trial) else {
            return Vec::new();
        };
        if all {
            batches.drain(..).flatten().collect()
        } else {
            batches.pop_front().unwrap_or_default()
        }
    }
}

impl TrialMetrics for FakeTrial {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.take(false)
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        self.take(true)
    }

    fn replays(&self) -> bool {
        self.replays
    }
}

#[cfg(test)]
pub(crate) use for_kinds::*;

/// What the collector kinds' own tests share.
#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_batches_come_one_per_poll_and_the_rest_at_the_end() {
        let collector = FakeCollector::new().with_env(&[("K", "V")]);
        collector
            .script("t1", [report("loss", "1")])
            .script("t1", [report("loss", "2")])
            .script("t1", [report("loss", "3"), report("acc", "4")]);
        assert_eq!(collector.prepare("t1"), [("K".into(), "V".into())]);
        let mut trial = collector.attach("t1", &FakeRun::default());
        assert!(!trial.replays());
        assert_eq!(trial.poll().await, [report("loss", "1")]);
        assert_eq!(collector.pending("t1"), 2);
        assert_eq!(trial.finish().await.len(), 3);
        assert!(trial.poll().await.is_empty());
        collector.script("t1", [report("loss", "5")]);
        assert_eq!(
            trial.poll().await,
            [report("loss", "5")],
            "scripted while it runs"
        );
        let mut other = collector.attach("t2", &FakeRun::default());
        assert!(other.poll().await.is_empty(), "nothing scripted");
        collector.detach("t1");
        assert_eq!(
            collector.calls(),
            [
                Call::Prepare("t1".into()),
                Call::Attach("t1".into()),
                Call::Attach("t2".into()),
                Call::Detach("t1".into()),
            ]
        );
        let replaying = FakeCollector::new().replaying();
        assert!(replaying.attach("t", &FakeRun::default()).replays());
    }
}
