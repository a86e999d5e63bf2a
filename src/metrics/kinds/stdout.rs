//! StdOut (katib-reference.md §6.2): Katib's TEXT lines in the trial's
//! primary output, read while the trial runs so early stopping can act
//! mid-training.
//!
//! - Locally: the file the runner copies the trial's stdout to.
//! - In a cluster: the primary container's log, streamed through the API.
//!   The training command is never rewritten (no sidecar, no wrapper), so
//!   `kubectl logs` keeps working — Katib's injected collector breaks both.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use super::{Backend, Settings, TrialReader};
use crate::api::enums::FileFormat;
use crate::controller::health::{Backoff, transient};
use crate::metrics::cluster::{Feed, Follower, TrialPods};
use crate::metrics::collector::{Collector, CollectorError};
use crate::metrics::lines::{LineFormat, LineReader};
use crate::runner::{Reporting, TrialRun};

/// The StdOut collector.
#[derive(Debug)]
pub struct StdOut {
    format: Arc<LineFormat>,
    /// The trials' pods, in a cluster.
    pods: Option<TrialPods>,
}

impl StdOut {
    /// TEXT with the experiment's filters, on `backend`.
    ///
    /// # Errors
    /// [`CollectorError::Filter`] for a filter that does not compile.
    pub fn new(settings: &Settings, backend: Backend<'_>) -> Result<Self, CollectorError> {
        Ok(Self {
            format: Arc::new(settings.line_format(&FileFormat::Text)?),
            pods: match backend {
                Backend::Local => None,
                Backend::Cluster(cluster) => Some(cluster.pods.clone()),
            },
        })
    }
}

impl Collector for StdOut {
    type Trial = TrialReader;

    fn prepare(&self, _trial: &str) -> Reporting {
        Reporting::default()
    }

    fn attach(&self, trial: &str, run: &impl TrialRun) -> TrialReader {
        let format = Arc::clone(&self.format);
        match &self.pods {
            None => TrialReader::Lines(LineReader::new(format, run.stdout().map(Into::into))),
            Some(pods) => {
                let (pods, trial) = (pods.clone(), trial.to_owned());
                TrialReader::Follower(Follower::spawn(true, move |feed| {
                    follow(pods, trial, format, feed)
                }))
            }
        }
    }

    fn detach(&self, _trial: &str) {}
}

/// Waits for the trial's primary pod to start, then follows its log to
/// the end, parsing each line. A stream cut short (the API server went
/// away) is opened again once the server answers, from the log's start,
/// skipping the lines already read: no report is lost or counted twice.
async fn follow(pods: TrialPods, trial: String, format: Arc<LineFormat>, feed: Feed) {
    let api = pods.api();
    let pod = pods.started(&api, &trial).await;
    let name = pod.metadata.name.unwrap_or_default();
    let log = PodLog {
        api: &api,
        name: &name,
        container: &pods.primary_container,
        format: &format,
        feed: &feed,
    };
    let mut read = 0;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
    loop {
        match log.read(&mut read).await {
            Ok(()) => break,
            Err(e) if transient(&e) => {
                tracing::debug!(trial, pod = name, "the log stream was cut: {e}");
                feed.cut();
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(trial, pod = name, "cannot follow the log: {e}");
                break;
            }
        }
    }
}

/// One pod's log, and where its reports go.
struct PodLog<'a> {
    api: &'a Api<Pod>,
    name: &'a str,
    container: &'a str,
    format: &'a LineFormat,
    feed: &'a Feed,
}

impl PodLog<'_> {
    /// Streams the log from its start to its end, skipping the first
    /// `read` lines (those read before a cut) and counting the new ones in
    /// it.
    ///
    /// # Errors
    /// The API's when the log cannot be opened; [`kube::Error::ReadEvents`]
    /// (transient) when the stream breaks.
    async fn read(&self, read: &mut usize) -> Result<(), kube::Error> {
        let params = LogParams {
            follow: true,
            container: (!self.container.is_empty()).then(|| self.container.to_owned()),
            ..LogParams::default()
        };
        let mut lines = self.api.log_stream(self.name, &params).await?.lines();
        let mut index = 0;
        while let Some(line) = lines.try_next().await.map_err(kube::Error::ReadEvents)? {
            index += 1;
            if index <= *read {
                continue;
            }
            *read = index;
            self.feed.send(self.format.parse(&line));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::collector::TrialMetrics;
    use crate::metrics::testing::FakeRun;

    /// Locally the trial's output file is read as it grows, TEXT with the
    /// experiment's filters.
    #[tokio::test]
    async fn local_trials_are_read_from_the_runners_output_file() {
        let dir = std::env::temp_dir().join(format!("ktune-stdout-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("stdout.log");
        std::fs::write(&out, "epoch 1 loss=0.5\nnoise\n").unwrap();
        let spec = crate::metrics::testing::spec_with_collector(serde_json::json!({}));
        let collector = StdOut::new(&Settings::of(&spec), Backend::Local).unwrap();
        assert_eq!(collector.prepare("t"), Reporting::default());
        let mut reader = collector.attach("t", &FakeRun::with_stdout(out));
        let logs = reader.poll().await;
        assert_eq!(logs.len(), 1);
        assert_eq!(
            (logs[0].name.as_str(), logs[0].value.as_str()),
            ("loss", "0.5")
        );
        assert!(reader.replays(), "a file is read again from its start");
        let mut none = collector.attach("t", &FakeRun::default());
        assert!(none.poll().await.is_empty(), "no output, no reports");
        let _ = std::fs::remove_dir_all(dir);
    }
}
