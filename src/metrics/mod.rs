//! Metric collection: pure parsers for what trials report (Katib's TEXT
//! filters, JSON lines, Prometheus exposition text), the network pieces
//! ([`prometheus`] scrapes a trial's `/metrics` endpoint, [`push`] is the
//! endpoint trials POST their metrics to, on its own route and on Kubeflow
//! Trainer's progress route, whose body [`trainer_status`] reads), the collectors ([`collector`]:
//! the traits the engine sees; [`kinds`]: one module per collector kind
//! and the one factory), and the reduction of a metric's reports to
//! Katib's `{min, max, latest}` and to the trial's objective value.
//!
//! Parsers never fail on a trial's output: a line that is not a metric is
//! skipped, a value that is not a number is kept as text, NaN and infinities
//! are data. Only the experiment's own configuration (a filter that is not
//! a regex) is an error. The network collectors report their failures
//! (an endpoint not up yet, a push with a wrong token) as errors or HTTP
//! statuses, never as panics.

pub mod cluster;
pub mod collector;
pub mod filter;
pub mod json;
pub mod katib_grpc;
pub mod kinds;
pub mod lines;
pub mod prometheus;
pub mod push;
pub mod reduce;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod tfevent;
pub mod trainer_status;

use jiff::Timestamp;

use crate::api::experiment::ExperimentSpec;

/// One reported value of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLog {
    /// The metric's name.
    pub name: String,
    /// The value as reported (Katib keeps metric values as text).
    pub value: String,
    /// When it was reported, if the line said so.
    pub time: Option<Timestamp>,
}

impl MetricLog {
    /// The value as a number, if it is one (NaN and infinities included).
    #[must_use]
    pub fn number(&self) -> Option<f64> {
        parse_number(&self.value)
    }
}

/// Parses a metric value the way Katib's collectors accept numbers.
#[must_use]
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// The metrics an experiment collects: its objective metric, then the
/// additional ones ([`crate::api::experiment::ObjectiveSpec::metric_names`];
/// none without an objective).
#[must_use]
pub fn metric_names(spec: &ExperimentSpec) -> Vec<String> {
    spec.objective
        .as_ref()
        .map(crate::api::experiment::ObjectiveSpec::metric_names)
        .unwrap_or_default()
}
