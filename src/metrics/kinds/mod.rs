//! The collector kinds and [`start`], the one factory: it reads the
//! experiment's `metricsCollectorSpec` and objective once ([`Settings`])
//! and builds the kind it names on the backend the trials run on. Each
//! kind is one module holding its local half (`ktune run`: processes on
//! this machine) and its cluster half (`ktune controller`: pods) side by
//! side.
//!
//! Adding a kind: a module
//! implementing [`Collector`] with [`TrialReader`] as its trial reader, a
//! variant of [`KindCollector`] and its arm in [`start`] and [`SUPPORTED`],
//! plus its tests. Katib's `None` kind needs nothing: defaulting renames it
//! Push (`api/defaults.rs`).

pub mod custom;
pub mod file;
pub mod prometheus;
pub mod push;
pub mod stdout;
pub mod tfevent;

use std::sync::Arc;

use super::MetricLog;
use super::cluster::{ClusterBackend, Follower};
use super::collector::{Collector, CollectorError, TrialMetrics};
use super::lines::{LineFormat, LineReader};
use crate::api::enums::{CollectorKind, FileFormat};
use crate::api::experiment::{ExperimentSpec, SourceSpec};
use crate::runner::{Reporting, TrialRun};

/// The kinds [`start`] builds, as Katib spells them.
pub const SUPPORTED: &[&str] = &[
    "StdOut",
    "File",
    "TensorFlowEvent",
    "PrometheusMetric",
    "Push",
    "Custom",
];

/// Where an experiment's trials run.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// `ktune run`: processes on this machine.
    Local,
    /// `ktune controller`: pods in a cluster.
    Cluster(&'a ClusterBackend),
}

/// The experiment's collector, as it asks for it in `spec` (its
/// `metricsCollectorSpec`, defaulted, and its objective), on `backend`. A
/// local Push collector starts its endpoint on 127.0.0.1 here.
///
/// # Errors
/// [`CollectorError`] for a kind that has no collector, a bad filter, a
/// missing path or port, or a push endpoint that cannot be had.
pub async fn start(
    spec: &ExperimentSpec,
    backend: Backend<'_>,
) -> Result<KindCollector, CollectorError> {
    let settings = Settings::of(spec);
    Ok(match &settings.kind {
        CollectorKind::StdOut => KindCollector::StdOut(stdout::StdOut::new(&settings, backend)?),
        CollectorKind::File => KindCollector::File(file::File::new(&settings, backend)?),
        CollectorKind::TensorFlowEvent => tfevent::start(&settings, backend)?,
        CollectorKind::PrometheusMetric => {
            KindCollector::Prometheus(Box::new(prometheus::Prometheus::new(&settings, backend)?))
        }
        CollectorKind::Push => KindCollector::Push(push::Push::start(&settings, backend).await?),
        CollectorKind::Custom => {
            let container = spec
                .metrics_collector_spec
                .as_ref()
                .and_then(|m| m.collector.as_ref())
                .and_then(|c| c.custom_collector.as_ref());
            KindCollector::Custom(Box::new(
                custom::Custom::start(&settings, container, backend).await?,
            ))
        }
        other => return Err(CollectorError::Unsupported(other.to_string())),
    })
}

/// One reading of an experiment's `metricsCollectorSpec` and objective:
/// what every kind is built from.
#[derive(Debug)]
pub struct Settings {
    /// The collector kind (StdOut when unset).
    pub kind: CollectorKind,
    /// The objective metric and the additional ones: what is collected.
    pub metrics: Arc<[String]>,
    /// The TEXT filters (`source.filter.metricsFormat`).
    pub filters: Vec<String>,
    /// The rest of `source`.
    pub source: SourceSpec,
    /// Whether trials run side by side (`parallelTrialCount` above 1).
    pub parallel: bool,
}

impl Settings {
    /// Reads `spec`.
    #[must_use]
    pub fn of(spec: &ExperimentSpec) -> Self {
        let collector = spec.metrics_collector_spec.clone().unwrap_or_default();
        let source = collector.source.unwrap_or_default();
        Self {
            kind: collector
                .collector
                .and_then(|c| c.kind)
                .unwrap_or(CollectorKind::StdOut),
            metrics: super::metric_names(spec).into(),
            filters: source
                .filter
                .as_ref()
                .map(|f| f.metrics_format.clone())
                .unwrap_or_default(),
            source,
            parallel: spec.parallel_trial_count.unwrap_or(1) > 1,
        }
    }

    /// How lines in `format` become this experiment's reports.
    ///
    /// # Errors
    /// [`CollectorError::Filter`] for a TEXT filter that does not compile.
    pub fn line_format(&self, format: &FileFormat) -> Result<LineFormat, CollectorError> {
        Ok(LineFormat::new(format, &self.metrics, &self.filters)?)
    }
}

/// An experiment's collector, one variant per kind.
#[derive(Debug)]
pub enum KindCollector {
    /// StdOut: the trial's primary output.
    StdOut(stdout::StdOut),
    /// File: a file the trial writes.
    File(file::File),
    /// TensorFlowEvent on this machine: the TensorBoard event files the
    /// trial writes (in a cluster it is a File collector whose sidecar
    /// reads event files).
    TfEvent(tfevent::TfEvent),
    /// PrometheusMetric: the trial's `/metrics` endpoint.
    /// (Boxed: its HTTP client, with HTTP/2 compiled in for the DBManager
    /// API, is several times the size of the other kinds.)
    Prometheus(Box<prometheus::Prometheus>),
    /// Push: what the trial posts.
    Push(push::Push),
    /// Custom: the user's collector beside each trial, pushing.
    Custom(Box<custom::Custom>),
}

/// Calls the same method on whichever kind `$collector` is.
macro_rules! each_kind {
    ($collector:expr, $kind:ident => $call:expr) => {
        match $collector {
            KindCollector::StdOut($kind) => $call,
            KindCollector::File($kind) => $call,
            KindCollector::TfEvent($kind) => $call,
            KindCollector::Prometheus($kind) => $call,
            KindCollector::Push($kind) => $call,
            KindCollector::Custom($kind) => $call,
        }
    };
}

impl KindCollector {
    /// Serves Katib's gRPC DBManager API for a local Push experiment's
    /// trials ([`push::Push::serve_db_manager`]); other kinds have no use
    /// for it.
    ///
    /// # Errors
    /// [`CollectorError::DbManager`] when it cannot listen.
    pub async fn serve_db_manager(
        &mut self,
        experiment: &str,
        store: crate::store::SqlStore,
    ) -> Result<(), CollectorError> {
        match self {
            Self::Push(push) => push.serve_db_manager(experiment, store).await,
            Self::Custom(custom) => custom.push_mut().serve_db_manager(experiment, store).await,
            Self::StdOut(_) | Self::File(_) | Self::TfEvent(_) | Self::Prometheus(_) => Ok(()),
        }
    }

    /// The push endpoint the cluster runner hands this experiment's
    /// trials (through a Secret), for Push and File in a cluster.
    #[must_use]
    pub fn push_endpoint(&self) -> Option<Arc<super::push::PushServer>> {
        match self {
            Self::Push(push) => push.cluster_endpoint(),
            Self::File(file) => file.cluster_push().and_then(push::Push::cluster_endpoint),
            Self::Custom(custom) => custom.push().cluster_endpoint(),
            Self::StdOut(_) | Self::TfEvent(_) | Self::Prometheus(_) => None,
        }
    }

    /// The sidecar the cluster runner adds to the trials' primary pods,
    /// for File (and so TensorFlowEvent) in a cluster.
    #[must_use]
    pub fn file_sidecar(&self) -> Option<&file::FileSidecar> {
        match self {
            Self::File(file) => file.sidecar(),
            _ => None,
        }
    }

    /// The user's collector container the cluster runner adds to the
    /// trials' primary pods, for Custom.
    #[must_use]
    pub fn custom_sidecar(&self) -> Option<&custom::CustomSidecar> {
        match self {
            Self::Custom(custom) => Some(custom.sidecar()),
            _ => None,
        }
    }
}

impl Collector for KindCollector {
    type Trial = TrialReader;

    fn prepare(&self, trial: &str) -> Reporting {
        each_kind!(self, kind => kind.prepare(trial))
    }

    fn attach(&self, trial: &str, run: &impl TrialRun) -> TrialReader {
        each_kind!(self, kind => kind.attach(trial, run))
    }

    fn detach(&self, trial: &str) {
        each_kind!(self, kind => kind.detach(trial));
    }
}

/// One trial's reader, one variant per way reports arrive.
#[derive(Debug)]
pub enum TrialReader {
    /// Lines of a file on this machine (local StdOut and File).
    Lines(LineReader),
    /// A task following the trial's pod (StdOut and PrometheusMetric in a
    /// cluster).
    Follower(Follower),
    /// The trial's endpoint on this machine (local PrometheusMetric).
    Scrape(prometheus::LocalScrape),
    /// What the trial pushed (Push; File and TensorFlowEvent in a cluster).
    Pushed(push::Pushed),
    /// Event files on this machine (local TensorFlowEvent).
    Events(tfevent::EventReader),
    /// What the trial's own collector pushed, and its local process (Custom).
    Custom(custom::CustomReader),
}

/// Calls the same method on whichever reader `$reader` is.
macro_rules! each_reader {
    ($reader:expr, $r:ident => $call:expr) => {
        match $reader {
            TrialReader::Lines($r) => $call,
            TrialReader::Follower($r) => $call,
            TrialReader::Scrape($r) => $call,
            TrialReader::Pushed($r) => $call,
            TrialReader::Events($r) => $call,
            TrialReader::Custom($r) => $call,
        }
    };
}

impl TrialMetrics for TrialReader {
    async fn poll(&mut self) -> Vec<MetricLog> {
        each_reader!(self, r => r.poll().await)
    }

    async fn finish(&mut self) -> Vec<MetricLog> {
        each_reader!(self, r => r.finish().await)
    }

    fn replays(&self) -> bool {
        each_reader!(self, r => r.replays())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::experiment::ObjectiveSpec;

    fn spec(collector: serde_json::Value) -> ExperimentSpec {
        ExperimentSpec {
            objective: Some(ObjectiveSpec {
                objective_metric_name: "loss".into(),
                additional_metric_names: vec!["accuracy".into()],
                ..ObjectiveSpec::default()
            }),
            metrics_collector_spec: Some(serde_json::from_value(collector).unwrap()),
            ..ExperimentSpec::default()
        }
    }

    #[test]
    fn settings_read_the_spec_once() {
        let s = Settings::of(&spec(serde_json::json!({
            "source": {"filter": {"metricsFormat": ["(\\w+):(\\S+)"]}}
        })));
        assert_eq!(s.kind, CollectorKind::StdOut, "StdOut when unset");
        assert_eq!(&*s.metrics, ["loss", "accuracy"]);
        assert_eq!(s.filters, ["(\\w+):(\\S+)"]);
        assert!(!s.parallel);
        let text = s.line_format(&FileFormat::Text).unwrap();
        assert_eq!(text.parse("loss:0.5 accuracy:0.9").len(), 2);
    }

    #[tokio::test]
    async fn every_supported_kind_starts_locally_and_the_others_are_refused() {
        let kinds = [
            ("StdOut", serde_json::json!({})),
            (
                "File",
                serde_json::json!({"fileSystemPath": {"path": "/m.log"}}),
            ),
            (
                "PrometheusMetric",
                serde_json::json!({"httpGet": {"port": 9090}}),
            ),
            ("Push", serde_json::json!({})),
            ("Custom", serde_json::json!({})),
            (
                "TensorFlowEvent",
                serde_json::json!({"fileSystemPath": {"path": "/tmp/tfevent", "kind": "Directory"}}),
            ),
        ];
        for (kind, source) in kinds.clone() {
            assert!(SUPPORTED.contains(&kind));
            let collector =
                serde_json::json!({"kind": kind, "customCollector": {"name": "c", "image": "i"}});
            let spec = spec(serde_json::json!({"collector": collector, "source": source}));
            let collector = start(&spec, Backend::Local).await;
            assert!(collector.is_ok(), "{kind}: {collector:?}");
        }
        assert_eq!(SUPPORTED.len(), kinds.len());
        for kind in ["Bogus"] {
            let spec = spec(serde_json::json!({"collector": {"kind": kind}}));
            let error = start(&spec, Backend::Local).await.unwrap_err();
            assert_eq!(error.reason(), "CollectorUnsupported");
            assert!(error.to_string().contains(kind), "{error}");
        }
        let custom = spec(serde_json::json!({"collector": {"kind": "Custom"}}));
        let error = start(&custom, Backend::Local).await.unwrap_err();
        assert_eq!(error.reason(), "ExperimentInvalid", "{error}");
        let bad = spec(serde_json::json!({"source": {"filter": {"metricsFormat": ["("]}}}));
        let error = start(&bad, Backend::Local).await.unwrap_err();
        assert_eq!(error.reason(), "ExperimentInvalid");
    }
}
