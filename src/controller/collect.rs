//! The experiment worker's collector, by the experiment's collector kind:
//! the primary pod's log ([`PodLogCollector`], StdOut), what the trials
//! push to the controller ([`PushCollector`], Push), or the primary pod's
//! Prometheus endpoint ([`PodScrapeCollector`], PrometheusMetric).

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::logs::{PodLogCollector, PodLogs};
use super::push::{PushCollector, PushedMetrics};
use super::scrape::{PodScrapeCollector, PodScrapes};
use super::sidecar::FileSidecar;
use super::workload::ClusterRunner;
use super::{Context, ControllerError};
use crate::api::enums::{CollectorKind, FileFormat};
use crate::api::experiment::{ExperimentSpec, TrialTemplate};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::text::TextParser;
use crate::runner::Reporting;

/// Why an experiment's collector cannot run: the Failed condition's
/// reason and message.
#[derive(Debug)]
pub struct Refusal {
    /// The condition's reason.
    pub reason: &'static str,
    /// What to do about it.
    pub message: String,
}

/// An experiment's collector, by its collector kind, and its runner set up
/// for it (the push endpoint for Push and File, the File sidecar);
/// `Ok(Err(_))` when this controller cannot collect that kind.
/// `workload` is the namespace and the workload's apiVersion and kind.
///
/// # Errors
/// [`ControllerError::Invalid`] for a TEXT filter that does not compile.
pub fn for_experiment(
    ctx: &Context,
    spec: &ExperimentSpec,
    (namespace, workload): (&str, (&str, &str)),
    template: &TrialTemplate,
    metrics: &[String],
    runner: ClusterRunner,
) -> Result<Result<(ClusterRunner, ClusterCollector), Refusal>, ControllerError> {
    let source = spec
        .metrics_collector_spec
        .as_ref()
        .and_then(|m| m.source.clone())
        .unwrap_or_default();
    let filters = source
        .filter
        .as_ref()
        .map(|f| f.metrics_format.clone())
        .unwrap_or_default();
    let kind = spec
        .metrics_collector_spec
        .as_ref()
        .and_then(|m| m.collector.as_ref())
        .and_then(|c| c.kind.clone())
        .unwrap_or(CollectorKind::StdOut);
    let primary_labels = template.primary_pod_labels.clone().unwrap_or_default();
    let push_needed = || {
        Refusal {
        reason: "PushUnavailable",
        message: "the Push and File metrics collectors need the controller's push endpoint: run ktune controller with --push-listen".to_owned(),
    }
    };
    Ok(Ok(match kind {
        CollectorKind::StdOut => {
            let parser = TextParser::new(metrics.iter().cloned(), &filters)
                .map_err(|e| ControllerError::Invalid(e.to_string()))?;
            let collector = PodLogCollector::new(
                ctx.client.clone(),
                namespace.to_owned(),
                parser,
                workload,
                template.primary_container_name.clone().unwrap_or_default(),
                primary_labels,
            );
            (runner, ClusterCollector::Logs(collector))
        }
        CollectorKind::Push | CollectorKind::File => {
            let Some(endpoint) = &ctx.push else {
                return Ok(Err(push_needed()));
            };
            let mut runner = runner.with_push(Arc::clone(endpoint));
            if kind == CollectorKind::File {
                let file = source.file_system_path.unwrap_or_default();
                runner = runner.with_file_sidecar(FileSidecar {
                    image: ctx.options.collector_image.clone(),
                    command: ctx.options.collector_command.clone(),
                    path: file.path,
                    format: if file.format == Some(FileFormat::Json) {
                        "JSON".to_owned()
                    } else {
                        "TEXT".to_owned()
                    },
                    metrics: metrics.to_vec(),
                    filters,
                });
            }
            let collector =
                PushCollector::new(Arc::clone(endpoint), namespace.to_owned(), metrics.to_vec());
            (runner, ClusterCollector::Push(collector))
        }
        CollectorKind::PrometheusMetric => {
            let get = source.http_get.unwrap_or_default();
            let port = match &get.port {
                IntOrString::Int(p) => u16::try_from(*p).ok().filter(|p| *p > 0),
                IntOrString::String(s) => s.parse().ok(),
            };
            let Some(port) = port else {
                return Ok(Err(Refusal {
                    reason: "ExperimentInvalid",
                    message: format!(
                        "metricsCollectorSpec.source.httpGet.port {:?}: the controller scrapes numeric ports only",
                        get.port
                    ),
                }));
            };
            let collector = PodScrapeCollector::new(
                ctx.client.clone(),
                namespace.to_owned(),
                workload,
                primary_labels,
                (port, get.path.unwrap_or_default()),
                metrics.to_vec(),
            );
            (runner, ClusterCollector::Scrape(collector))
        }
        other => {
            return Ok(Err(Refusal {
                reason: "CollectorUnsupported",
                message: format!(
                    "the {other} metrics collector does not run in a cluster yet (StdOut, File, PrometheusMetric and Push do)"
                ),
            }));
        }
    }))
}

/// One experiment's collector in a cluster.
#[derive(Debug, Clone)]
pub enum ClusterCollector {
    /// StdOut: the primary container's log.
    Logs(PodLogCollector),
    /// Push: the controller's endpoint.
    Push(PushCollector),
    /// PrometheusMetric: the primary pod's endpoint.
    Scrape(PodScrapeCollector),
}

/// One trial's metrics in a cluster.
#[derive(Debug)]
pub enum ClusterMetrics {
    /// Read from the log.
    Logs(PodLogs),
    /// Pushed.
    Push(PushedMetrics),
    /// Scraped.
    Scrape(PodScrapes),
}

impl TrialMetrics for ClusterMetrics {
    async fn poll(&mut self) -> Vec<MetricLog> {
        match self {
            Self::Logs(m) => m.poll().await,
            Self::Push(m) => m.poll().await,
            Self::Scrape(m) => m.poll().await,
        }
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        match self {
            Self::Logs(m) => m.finish().await,
            Self::Push(m) => m.finish().await,
            Self::Scrape(m) => m.finish().await,
        }
    }

    fn replays(&self) -> bool {
        match self {
            Self::Logs(m) => m.replays(),
            Self::Push(m) => m.replays(),
            Self::Scrape(m) => m.replays(),
        }
    }
}

impl Collector for ClusterCollector {
    type Trial = ClusterMetrics;

    fn prepare(&self, trial: &str) -> Reporting {
        match self {
            Self::Logs(c) => c.prepare(trial),
            Self::Push(c) => c.prepare(trial),
            Self::Scrape(c) => c.prepare(trial),
        }
    }

    fn attach(&self, trial: &str, stdout: Option<&Path>) -> ClusterMetrics {
        match self {
            Self::Logs(c) => ClusterMetrics::Logs(c.attach(trial, stdout)),
            Self::Push(c) => ClusterMetrics::Push(c.attach(trial, stdout)),
            Self::Scrape(c) => ClusterMetrics::Scrape(c.attach(trial, stdout)),
        }
    }

    fn detach(&self, trial: &str) {
        match self {
            Self::Logs(c) => c.detach(trial),
            Self::Push(c) => c.detach(trial),
            Self::Scrape(c) => c.detach(trial),
        }
    }
}
