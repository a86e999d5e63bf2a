//! PrometheusMetric (katib-reference.md §6.5): the trial serves its
//! metrics in the Prometheus text format at `source.httpGet` and it is
//! scraped every 500 ms while it runs, a report per change of
//! value (see [`PrometheusSource`]).
//!
//! - Locally: `http://127.0.0.1:<port><path>`, the port in
//!   `$KTUNE_METRICS_PORT`: the spec's, or when trials run side by side a
//!   free one per trial (they cannot all listen on one).
//! - In a cluster: `http://<podIP>:<port><path>` of the trial's primary
//!   pod. No sidecar: Katib ships no collector image for this kind.
//!
//! The port is decided once, by [`port`], for both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Backend, Settings, TrialReader};
use crate::api::defaults::prometheus_port;
use crate::controller::health::transient;
use crate::metrics::MetricLog;
use crate::metrics::cluster::{Feed, Follower, TrialPods};
use crate::metrics::collector::{Collector, CollectorError, TrialMetrics};
use crate::metrics::prometheus::{PrometheusSource, Scraper, http_get_url};
use crate::runner::{Reporting, TrialRun};

/// The variable naming the port a local PrometheusMetric trial should
/// serve `/metrics` on.
pub const METRICS_PORT_ENV: &str = "KTUNE_METRICS_PORT";

/// Least time between two scrapes of one trial.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// The port to scrape for `source.httpGet.port` ([`prometheus_port`]).
///
/// # Errors
/// [`CollectorError::Port`] for a name or a number out of range.
pub fn port(port: &IntOrString) -> Result<u16, CollectorError> {
    prometheus_port(port).ok_or_else(|| CollectorError::Port(format!("{port:?}")))
}

/// The PrometheusMetric collector.
#[derive(Debug)]
pub struct Prometheus {
    endpoint: Endpoint,
    side: Side,
}

/// What is scraped, wherever the trial runs.
#[derive(Debug, Clone)]
struct Endpoint {
    /// The spec's port.
    port: u16,
    path: String,
    metrics: Vec<String>,
    scraper: Scraper,
}

impl Endpoint {
    /// A source scraping `host` (this machine when `None`) on `port`.
    fn source(&self, host: Option<&str>, port: u16) -> PrometheusSource {
        let url = http_get_url(host, port, &self.path);
        PrometheusSource::new(url, self.metrics.iter().cloned(), self.scraper.clone())
    }
}

/// Where the trials run.
#[derive(Debug)]
enum Side {
    /// On this machine: with several trials at once (`parallel`) each
    /// gets a port of its own, remembered by trial.
    Local {
        parallel: bool,
        ports: Mutex<HashMap<String, u16>>,
    },
    /// In pods.
    Cluster(TrialPods),
}

impl Prometheus {
    /// The collector for the spec's `httpGet` on `backend`.
    ///
    /// # Errors
    /// [`CollectorError::Port`] for a port that is not a number.
    pub fn new(settings: &Settings, backend: Backend<'_>) -> Result<Self, CollectorError> {
        let get = settings.source.http_get.clone().unwrap_or_default();
        Ok(Self {
            endpoint: Endpoint {
                port: port(&get.port)?,
                path: get.path.unwrap_or_default(),
                metrics: settings.metrics.to_vec(),
                scraper: Scraper::new(),
            },
            side: match backend {
                Backend::Local => Side::Local {
                    parallel: settings.parallel,
                    ports: Mutex::new(HashMap::new()),
                },
                Backend::Cluster(cluster) => Side::Cluster(cluster.pods.clone()),
            },
        })
    }
}

impl Collector for Prometheus {
    type Trial = TrialReader;

    fn prepare(&self, trial: &str) -> Reporting {
        let Side::Local { parallel, ports } = &self.side else {
            return Reporting::default();
        };
        let port = if *parallel {
            crate::runner::replicas::free_port()
        } else {
            self.endpoint.port
        };
        if let Ok(mut ports) = ports.lock() {
            ports.insert(trial.to_owned(), port);
        }
        Reporting {
            push: None,
            metrics_port: Some(port),
            db_manager: None,
        }
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> TrialReader {
        match &self.side {
            Side::Local { ports, .. } => {
                let port = ports
                    .lock()
                    .ok()
                    .and_then(|p| p.get(trial).copied())
                    .unwrap_or(self.endpoint.port);
                TrialReader::Scrape(LocalScrape {
                    source: Box::new(self.endpoint.source(None, port)),
                    last: None,
                })
            }
            Side::Cluster(pods) => {
                let pod = PodEndpoint {
                    pods: pods.clone(),
                    trial: trial.to_owned(),
                    endpoint: self.endpoint.clone(),
                };
                TrialReader::Follower(Follower::spawn(false, move |feed| pod.scrape(feed)))
            }
        }
    }

    fn detach(&self, trial: &str) {
        if let Side::Local { ports, .. } = &self.side
            && let Ok(mut ports) = ports.lock()
        {
            ports.remove(trial);
        }
    }
}

/// Scrapes once: the new reports, none while the endpoint is not up (yet,
/// or any more).
async fn scrape_once(source: &mut PrometheusSource) -> Vec<MetricLog> {
    match source.poll().await {
        Ok(logs) => logs,
        Err(e) if e.is_connect() => Vec::new(),
        Err(e) => {
            tracing::debug!("scraping {}: {e}", source.url());
            Vec::new()
        }
    }
}

/// A local trial's endpoint, scraped when polled (at most every 500 ms).
#[derive(Debug)]
pub struct LocalScrape {
    source: Box<PrometheusSource>,
    /// When it was last scraped.
    last: Option<Instant>,
}

impl TrialMetrics for LocalScrape {
    async fn poll(&mut self) -> Vec<MetricLog> {
        if self.last.is_some_and(|t| t.elapsed() < SCRAPE_EVERY) {
            return Vec::new();
        }
        self.last = Some(Instant::now());
        scrape_once(&mut self.source).await
    }

    fn replays(&self) -> bool {
        false
    }
}

/// A cluster trial's endpoint on its primary pod.
struct PodEndpoint {
    pods: TrialPods,
    trial: String,
    endpoint: Endpoint,
}

impl PodEndpoint {
    /// Waits for the primary pod, then scrapes it until it stops running.
    async fn scrape(self, feed: Feed) {
        let Self {
            pods,
            trial,
            endpoint,
        } = &self;
        let api = pods.api();
        let pod = pods.started(&api, trial).await;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            tracing::warn!(trial, pod = name, "the primary pod has no IP to scrape");
            return;
        };
        let mut source = endpoint.source(Some(&ip), endpoint.port);
        loop {
            let running = still_running(api.get_opt(&name).await);
            feed.send(scrape_once(&mut source).await);
            if !running {
                break;
            }
            tokio::time::sleep(SCRAPE_EVERY).await;
        }
    }
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

    /// Katib's default when unset, the number otherwise, and names refused
    /// — the same rule locally and in a cluster.
    #[test]
    fn the_port_is_katibs_default_when_unset_and_names_are_refused() {
        let int = IntOrString::Int;
        let text = |s: &str| IntOrString::String(s.to_owned());
        for unset in [int(0), text(""), text("0")] {
            assert_eq!(port(&unset).unwrap(), 8080, "{unset:?}");
        }
        assert_eq!(port(&int(9090)).unwrap(), 9090);
        assert_eq!(port(&text("9090")).unwrap(), 9090);
        for bad in [int(-1), int(70_000), text("metrics"), text("-1")] {
            assert!(
                matches!(port(&bad), Err(CollectorError::Port(_))),
                "{bad:?}"
            );
        }
    }
}
