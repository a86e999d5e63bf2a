//! What the cluster halves of the collector kinds share: the experiment's
//! place in the cluster ([`ClusterBackend`]: how its trials' primary pods
//! are found, the controller's push endpoint, the File sidecar's image),
//! and [`Follower`], a trial's reader fed by a task that follows one of
//! its pods (its log, its endpoint) while the pod runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::task::JoinHandle;

use super::MetricLog;
use super::collector::TrialMetrics;
use super::push::PushServer;

/// How long to wait for a trial's pod before looking again.
const POD_WAIT: Duration = Duration::from_millis(500);

/// How long a finished trial's follower may take to deliver its last
/// reports.
const LAST_REPORTS: Duration = Duration::from_secs(2);
/// How long when its stream was cut (an outage just ended) and is being
/// opened again.
const LAST_REPORTS_AFTER_CUT: Duration = Duration::from_secs(30);

/// An experiment's place in the cluster, as its collector needs it.
#[derive(Debug)]
pub struct ClusterBackend {
    /// How its trials' primary pods are found.
    pub pods: TrialPods,
    /// The controller's push endpoint, when it serves one (Push and File
    /// trials report to it).
    pub push: Option<Arc<PushServer>>,
    /// What the File collector's sidecar runs.
    pub sidecar: SidecarImage,
}

/// The image and binary of the File collector's sidecar (`ktune
/// collect-file`; the controller's own image by default).
#[derive(Debug, Clone)]
pub struct SidecarImage {
    /// The image.
    pub image: String,
    /// The `ktune` binary in that image.
    pub command: String,
}

/// How one experiment's trials' primary pods are found.
#[derive(Clone)]
pub struct TrialPods {
    /// The API.
    pub client: Client,
    /// The experiment's namespace.
    pub namespace: String,
    /// The label naming a trial's pods in its workload's kind, if the kind
    /// has one.
    pub owner_label: Option<&'static str>,
    /// What singles out the primary pod of a multi-pod workload.
    pub primary_labels: BTreeMap<String, String>,
    /// The container whose log is the trial's output (empty: the pod's
    /// only one).
    pub primary_container: String,
}

impl std::fmt::Debug for TrialPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrialPods")
            .field("namespace", &self.namespace)
            .field("owner_label", &self.owner_label)
            .field("primary_labels", &self.primary_labels)
            .field("primary_container", &self.primary_container)
            .finish_non_exhaustive()
    }
}

impl TrialPods {
    /// The pods of the experiment's namespace.
    #[must_use]
    pub fn api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The label selector of a trial's primary pod: its workload's pods,
    /// narrowed by the primary-pod labels.
    #[must_use]
    pub fn selector(&self, trial: &str) -> String {
        self.owner_label
            .map(|label| format!("{label}={trial}"))
            .into_iter()
            .chain(self.primary_labels.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until the trial's primary pod has started (left Pending).
    pub async fn started(&self, pods: &Api<Pod>, trial: &str) -> Pod {
        let params = ListParams::default().labels(&self.selector(trial));
        loop {
            match pods.list(&params).await {
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
}

/// What a follower's task has delivered so far, whether it has ended, and
/// whether its stream was cut and is being opened again.
#[derive(Debug, Default)]
struct Inbox {
    logs: Vec<MetricLog>,
    ended: bool,
    cut: bool,
}

/// The task's end of a [`Follower`].
#[derive(Debug, Clone)]
pub struct Feed(Arc<Mutex<Inbox>>);

impl Feed {
    /// Delivers reports.
    pub fn send(&self, logs: Vec<MetricLog>) {
        if !logs.is_empty()
            && let Ok(mut inbox) = self.0.lock()
        {
            inbox.logs.extend(logs);
        }
    }

    /// Says the stream was cut and is being opened again: the last reports
    /// may take longer.
    pub fn cut(&self) {
        if let Ok(mut inbox) = self.0.lock() {
            inbox.cut = true;
        }
    }
}

/// One trial's reader fed by a task (a pod's log followed, its endpoint
/// scraped) until the task ends; the task stops when the reader is dropped.
#[derive(Debug)]
pub struct Follower {
    inbox: Arc<Mutex<Inbox>>,
    task: JoinHandle<()>,
    replays: bool,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Spawns `follow` with the feed it delivers to; `replays` says whether
    /// its source starts over for an adopted trial (see
    /// [`TrialMetrics::replays`]).
    pub fn spawn<F>(replays: bool, follow: impl FnOnce(Feed) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let run = follow(Feed(Arc::clone(&inbox)));
        let ended = Arc::clone(&inbox);
        let task = tokio::spawn(async move {
            run.await;
            if let Ok(mut inbox) = ended.lock() {
                inbox.ended = true;
            }
        });
        Self {
            inbox,
            task,
            replays,
        }
    }

    fn drain(&self) -> Vec<MetricLog> {
        self.inbox
            .lock()
            .map(|mut inbox| std::mem::take(&mut inbox.logs))
            .unwrap_or_default()
    }

    /// Whether the task has ended, and whether its stream was cut.
    fn state(&self) -> (bool, bool) {
        self.inbox
            .lock()
            .map_or((true, false), |inbox| (inbox.ended, inbox.cut))
    }
}

impl TrialMetrics for Follower {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.drain()
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        // The workload may report completion a moment before the pod's
        // last reports arrive — or before a stream cut by an outage is
        // open again.
        let started = Instant::now();
        loop {
            let (ended, cut) = self.state();
            let limit = if cut {
                LAST_REPORTS_AFTER_CUT
            } else {
                LAST_REPORTS
            };
            if ended || started.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.drain()
    }

    fn replays(&self) -> bool {
        self.replays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(value: &str) -> MetricLog {
        MetricLog {
            name: "loss".into(),
            value: value.into(),
            time: None,
        }
    }

    #[tokio::test]
    async fn a_follower_hands_over_what_its_task_delivered_until_it_ends() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let mut follower = Follower::spawn(false, |feed| async move {
            feed.send(vec![log("1")]);
            let _ = wait.await;
            feed.send(vec![log("2")]);
        });
        assert!(!follower.replays());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(follower.poll().await, [log("1")]);
        assert!(follower.poll().await.is_empty());
        go.send(()).unwrap();
        let started = Instant::now();
        assert_eq!(follower.finish().await, [log("2")]);
        assert!(started.elapsed() < LAST_REPORTS, "waited for the end only");
    }

    #[tokio::test]
    async fn finishing_waits_a_little_for_a_task_that_does_not_end() {
        let mut follower = Follower::spawn(true, |_| std::future::pending::<()>());
        let started = Instant::now();
        assert!(follower.finish().await.is_empty());
        assert!(started.elapsed() >= LAST_REPORTS);
        assert!(follower.replays());
    }

    #[tokio::test]
    async fn a_trials_primary_pod_is_selected_by_its_kinds_label_and_the_primary_labels() {
        let mut pods = crate::metrics::testing::cluster_backend(None).pods;
        assert_eq!(pods.selector("t1"), "batch.kubernetes.io/job-name=t1");
        pods.primary_labels = BTreeMap::from([("role".into(), "master".into())]);
        assert_eq!(
            pods.selector("t1"),
            "batch.kubernetes.io/job-name=t1,role=master"
        );
        pods.owner_label = None;
        assert_eq!(pods.selector("t1"), "role=master");
    }
}
