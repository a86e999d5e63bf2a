//! Trials in a cluster: the [`Runner`] that creates a `Trial` object per
//! trial (the trial controller then creates its workload), and the
//! [`TrialRun`] that follows the workload's conditions.
//!
//! Success and failure follow the trial template's `successCondition` and
//! `failureCondition` (Katib's gjson expressions). ktune evaluates the form
//! every Katib default takes — `status.conditions.#(type=="X")#|#(status=="True")#`,
//! "a condition of type X holds" — and refuses nothing: an expression of
//! another form falls back to the kind's usual conditions (`Complete` or
//! `Succeeded`, and `Failed`).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams, PropagationPolicy,
};
use kube::{Client, Resource, ResourceExt};
use regex::Regex;
use serde_json::Value;

use crate::api::experiment::{ParameterAssignment, TrialTemplate};
use crate::api::{Experiment, Trial, TrialSpec};
use crate::runner::{Exit, LaunchRequest, Runner, RunnerError, TrialRun};

/// The label Katib puts on every trial: its experiment's name.
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";

/// Creates trials as `Trial` objects owned by their experiment.
#[derive(Clone)]
pub struct ClusterRunner {
    client: Client,
    experiment: Arc<Experiment>,
    template: TrialTemplate,
}

impl std::fmt::Debug for ClusterRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRunner")
            .field("experiment", &self.experiment.name_any())
            .finish_non_exhaustive()
    }
}

impl ClusterRunner {
    /// A runner for one experiment.
    #[must_use]
    pub fn new(client: Client, experiment: Arc<Experiment>) -> Self {
        let template = experiment.spec.trial_template.clone().unwrap_or_default();
        Self {
            client,
            experiment,
            template,
        }
    }

    fn namespace(&self) -> String {
        self.experiment
            .namespace()
            .unwrap_or_else(|| "default".to_owned())
    }

    fn trial_object(&self, request: &LaunchRequest<'_>) -> Trial {
        let experiment = self.experiment.name_any();
        let mut trial = Trial::new(
            request.trial,
            TrialSpec {
                objective: self.experiment.spec.objective.clone(),
                parameter_assignments: parameters(&request.env),
                run_spec: Some(request.workload.clone()),
                retain_run: self.template.retain,
                metrics_collector: self.experiment.spec.metrics_collector_spec.clone(),
                primary_pod_labels: self.template.primary_pod_labels.clone(),
                primary_container_name: self
                    .template
                    .primary_container_name
                    .clone()
                    .unwrap_or_default(),
                success_condition: self.template.success_condition.clone().unwrap_or_default(),
                failure_condition: self.template.failure_condition.clone().unwrap_or_default(),
                labels: BTreeMap::new(),
                ..TrialSpec::default()
            },
        );
        trial.metadata.namespace = Some(self.namespace());
        trial.metadata.labels = Some(BTreeMap::from([(EXPERIMENT_LABEL.to_owned(), experiment)]));
        trial.metadata.owner_references =
            self.experiment.controller_owner_ref(&()).map(|r| vec![r]);
        trial
    }
}

/// The trial's parameters, from the `KTUNE_PARAMETERS` JSON the engine
/// passes in its environment.
fn parameters(env: &[(String, String)]) -> Vec<ParameterAssignment> {
    env.iter()
        .find(|(k, _)| k == "KTUNE_PARAMETERS")
        .and_then(|(_, v)| serde_json::from_str::<BTreeMap<String, String>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| ParameterAssignment { name, value })
        .collect()
}

impl Runner for ClusterRunner {
    type Trial = ClusterTrial;

    async fn launch(&self, request: &LaunchRequest<'_>) -> Result<ClusterTrial, RunnerError> {
        let namespace = self.namespace();
        let trials: Api<Trial> = Api::namespaced(self.client.clone(), &namespace);
        let adopted = match trials
            .create(&PostParams::default(), &self.trial_object(request))
            .await
        {
            Ok(_) => false,
            // Created by an earlier controller that died: take it over.
            Err(kube::Error::Api(e)) if e.code == 409 => true,
            Err(e) => return Err(RunnerError::Api(e.to_string())),
        };
        let workload = workload_api(&self.client, &namespace, request.workload)
            .ok_or_else(|| RunnerError::Api("the workload has no apiVersion and kind".into()))?;
        Ok(ClusterTrial {
            trials,
            workload,
            name: request.trial.to_owned(),
            success: condition_type(self.template.success_condition.as_deref()),
            failure: condition_type(self.template.failure_condition.as_deref()),
            adopted,
        })
    }

    fn reap(&self, _trial: &str) {
        // Nothing to reap: a trial of a controller that died keeps running
        // in the cluster, and `launch` adopts it.
    }
}

/// The dynamic API of a workload's kind in a namespace.
#[must_use]
pub fn workload_api(
    client: &Client,
    namespace: &str,
    workload: &Value,
) -> Option<Api<DynamicObject>> {
    let api_version = workload.get("apiVersion")?.as_str()?;
    let kind = workload.get("kind")?.as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Some(Api::namespaced_with(client.clone(), namespace, &resource))
}

static CONDITION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"^status\.conditions\.#\(type=="([^"]+)"\)#\|#\(status=="True"\)#$"#).ok()
});

/// The condition type a Katib success/failure expression waits for.
fn condition_type(expression: Option<&str>) -> Option<String> {
    let re = CONDITION.as_ref()?;
    re.captures(expression?.trim())
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
}

/// Whether the workload has a condition of this type that holds.
fn holds(workload: &Value, kind: &str) -> bool {
    workload
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// How a workload ended, if it did.
#[must_use]
pub fn workload_exit(
    workload: &Value,
    success: Option<&str>,
    failure: Option<&str>,
) -> Option<Exit> {
    let failed = failure.map_or_else(|| holds(workload, "Failed"), |k| holds(workload, k));
    if failed {
        return Some(Exit::Failed { code: 1 });
    }
    let succeeded = success.map_or_else(
        || holds(workload, "Complete") || holds(workload, "Succeeded"),
        |k| holds(workload, k),
    );
    succeeded.then_some(Exit::Succeeded)
}

/// A trial running in the cluster.
pub struct ClusterTrial {
    trials: Api<Trial>,
    workload: Api<DynamicObject>,
    name: String,
    success: Option<String>,
    failure: Option<String>,
    adopted: bool,
}

impl std::fmt::Debug for ClusterTrial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTrial")
            .field("name", &self.name)
            .field("adopted", &self.adopted)
            .finish_non_exhaustive()
    }
}

impl TrialRun for ClusterTrial {
    async fn poll(&mut self) -> Option<Exit> {
        match self.trials.get_opt(&self.name).await {
            // Deleted by someone: it will not finish.
            Ok(None) => return Some(Exit::Stopped),
            Ok(Some(t)) if t.meta().deletion_timestamp.is_some() => return Some(Exit::Stopped),
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::debug!(trial = self.name, "reading the trial: {e}");
                return None;
            }
        }
        let object = match self.workload.get_opt(&self.name).await {
            Ok(Some(o)) => o,
            Ok(None) => return None, // not created yet
            Err(e) => {
                tracing::debug!(trial = self.name, "reading the workload: {e}");
                return None;
            }
        };
        let value = serde_json::to_value(&object).unwrap_or_default();
        workload_exit(&value, self.success.as_deref(), self.failure.as_deref())
    }

    async fn stop(&mut self) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        if let Err(e) = self.workload.delete(&self.name, &params).await {
            tracing::debug!(trial = self.name, "deleting the workload: {e}");
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
    use serde_json::json;

    #[test]
    fn katib_default_expressions_name_their_condition() {
        let expr = r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;
        assert_eq!(condition_type(Some(expr)).as_deref(), Some("Complete"));
        assert_eq!(condition_type(Some("status.phase")), None);
        assert_eq!(condition_type(None), None);
    }

    #[test]
    fn workload_conditions_decide_the_exit() {
        let job = |kind: &str, status: &str| json!({"status": {"conditions": [{"type": kind, "status": status}]}});
        assert_eq!(
            workload_exit(&job("Complete", "True"), None, None),
            Some(Exit::Succeeded)
        );
        assert_eq!(
            workload_exit(&job("Succeeded", "True"), None, None),
            Some(Exit::Succeeded)
        );
        assert_eq!(workload_exit(&job("Complete", "False"), None, None), None);
        assert_eq!(
            workload_exit(&job("Failed", "True"), None, None),
            Some(Exit::Failed { code: 1 })
        );
        assert_eq!(
            workload_exit(&job("Complete", "True"), Some("Succeeded"), None),
            None
        );
        assert_eq!(workload_exit(&json!({}), None, None), None);
    }
}
