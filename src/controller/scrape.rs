//! PrometheusMetric in a cluster: the controller scrapes the primary pod's
//! endpoint (`http://<podIP>:<httpGet.port><httpGet.path>`) while the pod
//! runs, with the same parser and rule as `ktune run` (a report per change
//! of value; see [`PrometheusSource`]). No sidecar: Katib ships no
//! collector image for this kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use tokio::task::JoinHandle;

use super::health::transient;
use super::kinds::owner_label;
use super::logs::{pod_selector, started_pod};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::prometheus::{PrometheusSource, Scraper, http_get_url};
use crate::runner::Reporting;

/// Time between two scrapes of one pod.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// Scrapes each trial's primary pod.
#[derive(Clone)]
pub struct PodScrapeCollector {
    client: Client,
    namespace: String,
    owner_label: Option<&'static str>,
    primary_labels: BTreeMap<String, String>,
    port: u16,
    path: String,
    metrics: Vec<String>,
    scraper: Scraper,
}

impl std::fmt::Debug for PodScrapeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodScrapeCollector")
            .field("namespace", &self.namespace)
            .field("port", &self.port)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PodScrapeCollector {
    /// A collector for one experiment's trials (`api_version` and `kind`
    /// of its workload, its primary-pod labels, the collector's port and
    /// path, the metrics recorded).
    #[must_use]
    pub fn new(
        client: Client,
        namespace: String,
        (api_version, kind): (&str, &str),
        primary_labels: BTreeMap<String, String>,
        (port, path): (u16, String),
        metrics: Vec<String>,
    ) -> Self {
        Self {
            client,
            namespace,
            owner_label: owner_label(api_version, kind),
            primary_labels,
            port,
            path,
            metrics,
            scraper: Scraper::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Inbox {
    logs: Vec<MetricLog>,
    ended: bool,
}

/// One trial's scraper: a task scraping into an inbox until the pod ends.
#[derive(Debug)]
pub struct PodScrapes {
    inbox: Arc<Mutex<Inbox>>,
    task: JoinHandle<()>,
}

impl Drop for PodScrapes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodScrapes {
    fn drain(&self) -> Vec<MetricLog> {
        self.inbox
            .lock()
            .map(|mut inbox| std::mem::take(&mut inbox.logs))
            .unwrap_or_default()
    }
}

impl TrialMetrics for PodScrapes {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.drain()
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        // The scraper notices the pod's end at its next round.
        for _ in 0..20 {
            if self.inbox.lock().map_or(true, |i| i.ended) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.drain()
    }

    fn replays(&self) -> bool {
        false
    }
}

impl Collector for PodScrapeCollector {
    type Trial = PodScrapes;

    fn prepare(&self, _trial: &str) -> Reporting {
        Reporting::default()
    }

    fn attach(&self, trial: &str, _stdout: Option<&std::path::Path>) -> PodScrapes {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let task = tokio::spawn(scrape(self.clone(), trial.to_owned(), Arc::clone(&inbox)));
        PodScrapes { inbox, task }
    }

    fn detach(&self, _trial: &str) {}
}

/// Whether the scraped pod still runs, from a read of it: while the API
/// server is away the pod is scraped on (it is reached directly, and may
/// well run), rather than given up with the reports still to come.
fn still_running(read: Result<Option<Pod>, kube::Error>) -> bool {
    match read {
        Ok(Some(pod)) => pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        Ok(None) => false,
        Err(e) => transient(&e),
    }
}

/// Waits for the primary pod, then scrapes it until it stops running.
async fn scrape(collector: PodScrapeCollector, trial: String, inbox: Arc<Mutex<Inbox>>) {
    let pods: Api<Pod> = Api::namespaced(collector.client.clone(), &collector.namespace);
    let selector = pod_selector(collector.owner_label, &collector.primary_labels, &trial);
    let pod = started_pod(&pods, &selector, &trial).await;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    if let Some(ip) = ip {
        let url = http_get_url(Some(&ip), collector.port, &collector.path);
        let mut source = PrometheusSource::new(
            url,
            collector.metrics.iter().cloned(),
            collector.scraper.clone(),
        );
        loop {
            let running = still_running(pods.get_opt(&name).await);
            match source.poll().await {
                Ok(logs) if !logs.is_empty() => {
                    if let Ok(mut i) = inbox.lock() {
                        i.logs.extend(logs);
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_connect() => {}
                Err(e) => tracing::debug!(trial, "scraping {}: {e}", source.url()),
            }
            if !running {
                break;
            }
            tokio::time::sleep(SCRAPE_EVERY).await;
        }
    } else {
        tracing::warn!(trial, pod = name, "the primary pod has no IP to scrape");
    }
    if let Ok(mut i) = inbox.lock() {
        i.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outage does not end the scraping of a pod that runs on.
    #[test]
    fn the_api_server_away_is_no_reason_to_stop_scraping() {
        let pod = |phase: &str| {
            serde_json::from_value::<Pod>(serde_json::json!({"status": {"phase": phase}})).unwrap()
        };
        assert!(still_running(Ok(Some(pod("Running")))));
        assert!(!still_running(Ok(Some(pod("Succeeded")))));
        assert!(!still_running(Ok(None)));
        assert!(still_running(Err(kube::Error::Service(
            "connection refused".into()
        ))));
        let forbidden = kube::core::Status::failure("no", "Forbidden").with_code(403);
        assert!(!still_running(Err(kube::Error::Api(Box::new(forbidden)))));
    }
}
