//! The experiment worker's collector, by the experiment's collector kind:
//! the primary pod's log ([`PodLogCollector`], StdOut), what the trials
//! push to the controller ([`PushCollector`], Push), or the primary pod's
//! Prometheus endpoint ([`PodScrapeCollector`], PrometheusMetric).

use std::path::Path;

use super::logs::{PodLogCollector, PodLogs};
use super::push::{PushCollector, PushedMetrics};
use super::scrape::{PodScrapeCollector, PodScrapes};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};

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

    fn prepare(&self, trial: &str) -> Vec<(String, String)> {
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
