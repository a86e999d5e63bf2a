//! An OptimizationJob's trials as Trainer creates them: one TrainJob per
//! trial, named `<job>-trial-<suffix>`, owned by the job, with the
//! template's labels and annotations plus [`JOB_LABEL`], and each
//! assignment in `spec.trainer.env` as `KUBEFLOW_TRAINER_OPT_<name>` (the
//! mapping's trial-parameter substitution put it there). No Trial object:
//! the engine follows the TrainJob itself, through the watch caches.

use std::sync::Arc;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams, PropagationPolicy};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use super::super::health::{self, Backoff};
use super::super::kinds::TrialResource;
use super::super::watch::{Caches, TrialReads};
use super::super::workload::workload_exit;
use crate::api::optimization_job::OptimizationJob;
use crate::runner::{Exit, LaunchRequest, Runner, RunnerError, TrialRun};

/// The label naming the OptimizationJob a TrainJob is a trial of.
pub const JOB_LABEL: &str = "trainer.kubeflow.org/optimization-job";

/// Between two tries of a write while the API server is away.
const BACKOFF: Backoff = Backoff::new(
    std::time::Duration::from_millis(250),
    std::time::Duration::from_secs(5),
);

/// The TrainJob of the engine's trial `trial` of job `job`: the engine
/// names trials `<job>-<seq>`, Trainer `<job>-trial-<suffix>`; the mapping
/// is fixed, so a restarted controller finds the TrainJobs it created.
#[must_use]
pub fn train_job_name(job: &str, trial: &str) -> String {
    let suffix = trial
        .strip_prefix(job)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(trial);
    format!("{job}-trial-{suffix}")
}

/// The TrainJob kind, as the dynamic API addresses it.
#[must_use]
pub fn train_job_resource() -> ApiResource {
    TrialResource::train_job().api_resource()
}

/// Creates one job's trials as TrainJobs.
#[derive(Clone)]
pub struct TrainJobRunner {
    client: Client,
    job: Arc<OptimizationJob>,
    caches: Caches,
}

impl std::fmt::Debug for TrainJobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainJobRunner")
            .field("job", &self.job.name_any())
            .finish_non_exhaustive()
    }
}

impl TrainJobRunner {
    /// A runner for `job`, reading TrainJobs from `caches` (the API for
    /// what they lack).
    #[must_use]
    pub fn new(client: Client, job: Arc<OptimizationJob>, caches: Caches) -> Self {
        Self {
            client,
            job,
            caches,
        }
    }

    fn namespace(&self) -> String {
        self.job.namespace().unwrap_or_else(|| "default".to_owned())
    }

    /// The TrainJob of a trial: the substituted template named, labelled
    /// and owned.
    fn train_job(&self, request: &LaunchRequest<'_>) -> Value {
        let job = self.job.name_any();
        let mut workload = request.workload.clone();
        if !workload.get("metadata").is_some_and(Value::is_object) {
            workload["metadata"] = json!({});
        }
        let metadata = &mut workload["metadata"];
        metadata["name"] = json!(train_job_name(&job, request.trial));
        metadata["namespace"] = json!(self.namespace());
        if !metadata.get("labels").is_some_and(Value::is_object) {
            metadata["labels"] = json!({});
        }
        metadata["labels"][JOB_LABEL] = json!(job);
        if let Some(owner) = self.job.controller_owner_ref(&()) {
            metadata["ownerReferences"] = json!([owner]);
        }
        workload
    }
}

impl Runner for TrainJobRunner {
    type Trial = TrainJobTrial;

    async fn launch(&self, request: &LaunchRequest<'_>) -> Result<TrainJobTrial, RunnerError> {
        let namespace = self.namespace();
        let kind = train_job_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &namespace, &kind);
        let object: DynamicObject = serde_json::from_value(self.train_job(request))
            .map_err(|e| RunnerError::Api(format!("the TrainJob template: {e}")))?;
        let name = object.name_any();
        let params = PostParams::default();
        // A create whose answer was lost comes back 409: adopted.
        let adopted = match health::retry(BACKOFF, || api.create(&params, &object)).await {
            Ok(_) => false,
            Err(kube::Error::Api(e)) if e.code == 409 => true,
            Err(e) => return Err(RunnerError::Api(e.to_string())),
        };
        Ok(TrainJobTrial {
            reads: TrialReads::new(self.caches.clone(), &namespace, kind),
            api,
            name,
            seen: false,
            adopted,
        })
    }

    fn reap(&self, _trial: &str) {
        // A TrainJob outlives a controller that died; `launch` adopts it.
    }
}

/// One trial's TrainJob.
pub struct TrainJobTrial {
    reads: TrialReads,
    api: Api<DynamicObject>,
    name: String,
    /// Whether it was read once (so its absence means deleted).
    seen: bool,
    adopted: bool,
}

impl std::fmt::Debug for TrainJobTrial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainJobTrial")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TrialRun for TrainJobTrial {
    async fn poll(&mut self) -> Option<Exit> {
        match self.reads.workload(&self.api, &self.name).await {
            Some(object) => {
                self.seen = true;
                if object.metadata.deletion_timestamp.is_some() {
                    return Some(Exit::Stopped);
                }
                let value = serde_json::to_value(object.as_ref()).unwrap_or_default();
                // Trainer's own conditions: Complete, Failed.
                workload_exit(&value, "", "")
            }
            // Deleted by someone after it was seen: it will not finish.
            None if self.seen => match self.api.get_opt(&self.name).await {
                Ok(None) => Some(Exit::Stopped),
                Ok(Some(_)) | Err(_) => None,
            },
            None => None,
        }
    }

    async fn stop(&mut self) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        if let Err(e) = health::retry(BACKOFF, || self.api.delete(&self.name, &params)).await {
            tracing::debug!(train_job = self.name, "deleting the TrainJob: {e}");
        }
    }

    fn stdout(&self) -> Option<&std::path::Path> {
        None
    }

    fn adopted(&self) -> bool {
        self.adopted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_names_become_trainers_names() {
        assert_eq!(train_job_name("tune", "tune-0003"), "tune-trial-0003");
        // A trial the engine did not name after the job keeps its name.
        assert_eq!(train_job_name("tune", "other-1"), "tune-trial-other-1");
    }
}
