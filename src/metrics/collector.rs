//! The seam between the engine and metric collection: an experiment's
//! [`Collector`] and one trial's [`TrialMetrics`]. The engine sees only
//! these two traits; `ktune run` and the controller get theirs from the
//! one factory, [`super::kinds::start`], which builds the collector kind
//! the experiment asks for on the backend it runs on.
//!
//! The traits name a trial's sources without saying where they are: a
//! trial is its name (which keys its pods, its push inbox, its port) and
//! its runner's handle (which knows where the trial's own output is).

use std::future::Future;

use super::MetricLog;
use super::filter::FilterError;
use super::push::PushError;
use crate::runner::{Reporting, TrialRun};

/// Reads an experiment's trials' metric reports.
pub trait Collector: Sync {
    /// One trial's reader.
    type Trial: TrialMetrics;

    /// Environment variables a trial needs to report (where to push, which
    /// port to serve); asked for before it starts.
    fn prepare(&self, trial: &str) -> Reporting;

    /// Starts reading a started trial; `run` is its runner's handle, asked
    /// by collectors that read the trial's own output where it is.
    fn attach(&self, trial: &str, run: &impl TrialRun) -> Self::Trial;

    /// Forgets a trial that ended (after its last poll).
    fn detach(&self, trial: &str);
}

/// One trial's metric reader.
pub trait TrialMetrics: Send {
    /// The reports that arrived since the last poll, in order.
    fn poll(&mut self) -> impl Future<Output = Vec<MetricLog>> + Send;

    /// The last reports, once the trial has ended: a source that lags
    /// behind the trial (a log stream) waits for them here.
    fn finish(&mut self) -> impl Future<Output = Vec<MetricLog>> + Send {
        self.poll()
    }

    /// Whether, attached to a trial adopted after a restart, this source
    /// delivers again the reports stored before (a log or file read from
    /// its start does; pushes and scrapes only bring new ones), so the
    /// engine skips that many.
    fn replays(&self) -> bool {
        true
    }
}

/// Why an experiment's collector cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A metrics filter is not a usable regex.
    #[error("metrics filter: {0}")]
    Filter(#[from] FilterError),
    /// No collector of this kind exists (yet).
    #[error(
        "the {0} metrics collector is not supported yet ({supported} are)",
        supported = super::kinds::SUPPORTED.join(", ")
    )]
    Unsupported(String),
    /// The PrometheusMetric source has no usable port.
    #[error(
        "metricsCollectorSpec.source.httpGet.port {0} is not a port number (named ports cannot be resolved)"
    )]
    Port(String),
    /// A File or TensorFlowEvent collector without a path.
    #[error(
        "metricsCollectorSpec.source.fileSystemPath.path is required for the File and TensorFlowEvent collectors"
    )]
    NoPath,
    /// A Custom collector without its container.
    #[error("metricsCollectorSpec.collector.customCollector is required for the Custom collector")]
    NoCustomContainer,
    /// The Push endpoint could not start.
    #[error("push endpoint: {0}")]
    Push(#[from] PushError),
    /// In a cluster, Push and File trials report to the controller's push
    /// endpoint, and it serves none.
    #[error(
        "the Push and File metrics collectors need the controller's push endpoint: run ktune controller with --push-listen"
    )]
    NoPushEndpoint,
    /// Katib's gRPC DBManager API could not start.
    #[error(transparent)]
    DbManager(#[from] super::katib_grpc::DbManagerError),
}

impl CollectorError {
    /// The reason of the Failed condition of an experiment refused for it.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Filter(_) | Self::Port(_) | Self::NoPath | Self::NoCustomContainer => {
                "ExperimentInvalid"
            }
            Self::Unsupported(_) => "CollectorUnsupported",
            Self::Push(_) | Self::NoPushEndpoint | Self::DbManager(_) => "PushUnavailable",
        }
    }
}
