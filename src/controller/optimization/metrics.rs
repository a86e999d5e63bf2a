//! An OptimizationJob trial's metrics by Trainer's progress protocol
//! (KEP-2779): the trainer posts `update_trainjob_status(metrics=…)` to
//! Trainer's status server, which writes `TrainJob.status.trainerStatus`;
//! this collector reads that field from the watch cache (no request per
//! tick) and hands each new `metrics[]` to the engine. The objective is
//! the latest value, as the API says (the mapping's `Latest` strategy).

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::runner::{train_job_name, train_job_resource};
use crate::controller::watch::{Caches, TrialReads};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::runner::{Reporting, TrialRun};

/// Reads `status.trainerStatus.metrics` of one job's TrainJobs.
#[derive(Clone)]
pub struct TrainerStatus {
    client: Client,
    job: String,
    namespace: String,
    caches: Caches,
}

impl std::fmt::Debug for TrainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainerStatus")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl TrainerStatus {
    /// The collector of job `namespace/job`.
    #[must_use]
    pub fn new(client: Client, (namespace, job): (&str, &str), caches: Caches) -> Self {
        Self {
            client,
            job: job.to_owned(),
            namespace: namespace.to_owned(),
            caches,
        }
    }
}

impl Collector for TrainerStatus {
    type Trial = TrainerStatusReader;

    /// Trainer's controller hands trials its endpoint's variables itself.
    fn prepare(&self, _trial: &str) -> Reporting {
        Reporting::default()
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> TrainerStatusReader {
        let kind = train_job_resource();
        TrainerStatusReader {
            reads: TrialReads::new(self.caches.clone(), &self.namespace, kind.clone()),
            api: Api::namespaced_with(self.client.clone(), &self.namespace, &kind),
            name: train_job_name(&self.job, trial),
            last: None,
        }
    }

    fn detach(&self, _trial: &str) {}
}

/// One TrainJob's `status.trainerStatus`, read for what changed.
pub struct TrainerStatusReader {
    reads: TrialReads,
    api: Api<DynamicObject>,
    name: String,
    /// The trainer status last handed on.
    last: Option<Value>,
}

impl std::fmt::Debug for TrainerStatusReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainerStatusReader")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TrialMetrics for TrainerStatusReader {
    async fn poll(&mut self) -> Vec<MetricLog> {
        let Some(object) = self.reads.workload(&self.api, &self.name).await else {
            return Vec::new();
        };
        let Some(status) = object.data.pointer("/status/trainerStatus") else {
            return Vec::new();
        };
        if self.last.as_ref() == Some(status) {
            return Vec::new();
        }
        self.last = Some(status.clone());
        reports(status)
    }

    /// The field holds the latest update only: after a restart it brings
    /// that one again, not what was stored before.
    fn replays(&self) -> bool {
        false
    }
}

/// The reports in one `trainerStatus`: each metric's value (as text, as
/// Trainer keeps it) at its `lastUpdatedTime`.
#[must_use]
pub fn reports(status: &Value) -> Vec<MetricLog> {
    let time = status
        .get("lastUpdatedTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    status
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|metric| {
            let name = metric.get("name")?.as_str()?;
            let value = match metric.get("value")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(MetricLog {
                name: name.to_owned(),
                value,
                time,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trainer_status_becomes_reports_at_its_time() {
        let status = json!({
            "lastUpdatedTime": "2026-12-07T10:00:00Z",
            "progressPercentage": 50,
            "metrics": [{"name": "loss", "value": "0.25"}, {"name": "acc", "value": 0.9},
                        {"name": "broken"}, {"value": "1"}]
        });
        let got = reports(&status);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].name.as_str(), got[0].value.as_str()),
            ("loss", "0.25")
        );
        assert_eq!(got[1].number(), Some(0.9));
        assert_eq!(
            got[0].time,
            Some("2026-12-07T10:00:00Z".parse::<Timestamp>().unwrap())
        );
        assert!(reports(&json!({"progressPercentage": 10})).is_empty());
    }
}
