//! StdOut metrics in a cluster: the primary container's log, streamed
//! through the API while the trial runs. The training command is never
//! rewritten (no sidecar, no wrapper), so `kubectl logs` keeps working —
//! Katib's injected collector breaks both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use tokio::task::JoinHandle;

use super::health::{Backoff, transient};
use super::kinds::owner_label;
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::text::TextParser;
use crate::runner::Reporting;

/// How long to wait for a trial's pod before looking again.
const POD_WAIT: Duration = Duration::from_millis(500);

/// Reads each trial's metrics from its primary pod's log.
#[derive(Clone)]
pub struct PodLogCollector {
    client: Client,
    namespace: String,
    parser: Arc<TextParser>,
    container: String,
    primary_labels: BTreeMap<String, String>,
    owner_label: Option<&'static str>,
}

impl std::fmt::Debug for PodLogCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLogCollector")
            .field("namespace", &self.namespace)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl PodLogCollector {
    /// A collector for one experiment's trials: `api_version` and `kind`
    /// are the workload's (they say which label names its pods, see
    /// [`owner_label`]), `container` the primary container,
    /// `primary_labels` what singles out the primary pod of a multi-pod
    /// workload.
    #[must_use]
    pub fn new(
        client: Client,
        namespace: String,
        parser: TextParser,
        (api_version, kind): (&str, &str),
        container: String,
        primary_labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            client,
            namespace,
            parser: Arc::new(parser),
            container,
            primary_labels,
            owner_label: owner_label(api_version, kind),
        }
    }

    /// The label selector of a trial's primary pod: its workload's pods,
    /// narrowed by the primary-pod labels.
    fn selector(&self, trial: &str) -> String {
        pod_selector(self.owner_label, &self.primary_labels, trial)
    }
}

/// The label selector of a trial's primary pod: its workload's pods (by
/// the kind's `owner_label`), narrowed by the primary-pod labels.
pub(super) fn pod_selector(
    owner_label: Option<&str>,
    primary_labels: &BTreeMap<String, String>,
    trial: &str,
) -> String {
    owner_label
        .map(|label| format!("{label}={trial}"))
        .into_iter()
        .chain(primary_labels.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until the pod `selector` finds has started (left Pending).
pub(super) async fn started_pod(pods: &Api<Pod>, selector: &str, trial: &str) -> Pod {
    loop {
        match pods.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                let started = list.items.into_iter().find(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|phase| phase != "Pending")
                });
                if let Some(pod) = started {
                    return pod;
                }
            }
            Err(e) => tracing::debug!(trial, "listing pods: {e}"),
        }
        tokio::time::sleep(POD_WAIT).await;
    }
}

/// The reports read so far, whether the log has ended, and whether its
/// stream was cut and is being opened again.
#[derive(Debug, Default)]
struct Inbox {
    logs: Vec<MetricLog>,
    ended: bool,
    cut: bool,
}

/// One trial's log reader: a task following the log into an inbox.
#[derive(Debug)]
pub struct PodLogs {
    inbox: Arc<Mutex<Inbox>>,
    task: JoinHandle<()>,
}

impl Drop for PodLogs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodLogs {
    fn drain(&self) -> Vec<MetricLog> {
        self.inbox
            .lock()
            .map(|mut inbox| std::mem::take(&mut inbox.logs))
            .unwrap_or_default()
    }

    fn ended(&self) -> bool {
        self.inbox.lock().map_or(true, |inbox| inbox.ended)
    }

    fn cut(&self) -> bool {
        self.inbox.lock().is_ok_and(|inbox| inbox.cut)
    }
}

/// How long a finished trial's log may take to deliver its last lines.
const LAST_LINES: Duration = Duration::from_secs(2);
/// How long when its stream was cut (an outage just ended) and is being
/// opened again.
const LAST_LINES_AFTER_CUT: Duration = Duration::from_secs(30);

impl TrialMetrics for PodLogs {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.drain()
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        // The workload may report completion a moment before its log
        // stream delivers the last lines — or before a stream cut by an
        // outage is open again.
        let started = std::time::Instant::now();
        while !self.ended() {
            let limit = if self.cut() {
                LAST_LINES_AFTER_CUT
            } else {
                LAST_LINES
            };
            if started.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.drain()
    }
}

impl Collector for PodLogCollector {
    type Trial = PodLogs;

    fn prepare(&self, _trial: &str) -> Reporting {
        Reporting::default()
    }

    fn attach(&self, trial: &str, _stdout: Option<&std::path::Path>) -> PodLogs {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let task = tokio::spawn(follow(self.clone(), trial.to_owned(), Arc::clone(&inbox)));
        PodLogs { inbox, task }
    }

    fn detach(&self, _trial: &str) {}
}

/// Waits for the trial's primary pod to start, then follows its log to
/// the end, parsing each line. A stream cut short (the API server went
/// away) is opened again once the server answers, from the log's start,
/// skipping the lines already read: no report is lost or counted twice.
async fn follow(collector: PodLogCollector, trial: String, inbox: Arc<Mutex<Inbox>>) {
    let pods: Api<Pod> = Api::namespaced(collector.client.clone(), &collector.namespace);
    let selector = collector.selector(&trial);
    let pod = started_pod(&pods, &selector, &trial).await;
    let name = pod.metadata.name.unwrap_or_default();
    let mut read = 0;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
    loop {
        match read_log(&collector, &pods, &name, &mut read, &inbox).await {
            Ok(()) => break,
            Err(e) if transient(&e) => {
                tracing::debug!(trial, pod = name, "the log stream was cut: {e}");
                if let Ok(mut inbox) = inbox.lock() {
                    inbox.cut = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(trial, pod = name, "cannot follow the log: {e}");
                break;
            }
        }
    }
    if let Ok(mut inbox) = inbox.lock() {
        inbox.ended = true;
    }
}

/// Streams the pod's log from its start to its end, skipping the first
/// `read` lines (those read before a cut) and counting the new ones in it.
///
/// # Errors
/// The API's when the log cannot be opened; [`kube::Error::ReadEvents`]
/// (transient) when the stream breaks.
async fn read_log(
    collector: &PodLogCollector,
    pods: &Api<Pod>,
    name: &str,
    read: &mut usize,
    inbox: &Mutex<Inbox>,
) -> Result<(), kube::Error> {
    let params = LogParams {
        follow: true,
        container: (!collector.container.is_empty()).then(|| collector.container.clone()),
        ..LogParams::default()
    };
    let mut lines = pods.log_stream(name, &params).await?.lines();
    let mut index = 0;
    while let Some(line) = lines.try_next().await.map_err(kube::Error::ReadEvents)? {
        index += 1;
        if index <= *read {
            continue;
        }
        *read = index;
        let logs = collector.parser.parse_line(&line);
        if !logs.is_empty()
            && let Ok(mut inbox) = inbox.lock()
        {
            inbox.logs.extend(logs);
        }
    }
    Ok(())
}
