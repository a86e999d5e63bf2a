//! Trials in a cluster: the [`Runner`] that creates a `Trial` object per
//! trial (the trial controller then creates its workload), and the
//! [`TrialRun`] that follows the workload's conditions.
//!
//! Success and failure follow the trial template's `successCondition` and
//! `failureCondition`: gjson queries on the workload's JSON, evaluated as
//! Katib does (katib-reference.md §7.3) — failure first, and a condition
//! matches when the query yields an object or a non-empty array. Without a
//! condition (a kind Katib gives no default), the kind's usual conditions
//! decide: `Complete` or `Succeeded`, and `Failed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams, PropagationPolicy};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use super::checkpoint;
use super::health::{self, Backoff};
use super::trial::WORKLOAD_ERROR;
use super::trial_pods;
use super::watch::{Caches, TrialRead, TrialReads};
use crate::api::experiment::TrialTemplate;
use crate::api::{ApiGroup, Experiment, Trial, TrialSpec};
use crate::metrics::cluster::SidecarImage;
use crate::metrics::kinds::custom::CustomSidecar;
use crate::metrics::kinds::file::FileSidecar;
use crate::metrics::kinds::push;
use crate::metrics::push::PushServer;
use crate::runner::{Exit, LaunchRequest, Runner, RunnerError, TrialRun};
use k8s_openapi::api::core::v1::Secret;

/// Between two tries of a launch's writes while the API server is away.
const LAUNCH_BACKOFF: Backoff = Backoff::new(
    std::time::Duration::from_millis(250),
    std::time::Duration::from_secs(5),
);

/// The label Katib puts on every trial: its experiment's name.
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";

/// Creates trials as `Trial` objects owned by their experiment.
#[derive(Clone)]
pub struct ClusterRunner {
    client: Client,
    group: ApiGroup,
    experiment: Arc<Experiment>,
    template: TrialTemplate,
    file_sidecar: Option<FileSidecar>,
    custom_sidecar: Option<CustomSidecar>,
    push: Option<Arc<PushServer>>,
    caches: Caches,
    checkpoints: Option<CheckpointVolumes>,
}

/// How PBT trials get their checkpoint folders (see [`checkpoint`]).
#[derive(Debug, Clone)]
pub struct CheckpointVolumes {
    /// The image and binary of the init container that copies a parent's folder.
    pub image: SidecarImage,
    /// The claims' storage class (the cluster's default when `None`).
    pub storage_class: Option<String>,
    /// Set once this experiment's claim is known to exist (created or
    /// found by an earlier launch), so later launches skip the call.
    pub claimed: Arc<std::sync::atomic::AtomicBool>,
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
    pub fn new(client: Client, group: ApiGroup, experiment: Arc<Experiment>) -> Self {
        let template = experiment.spec.trial_template.clone().unwrap_or_default();
        Self {
            client,
            group,
            experiment,
            template,
            file_sidecar: None,
            custom_sidecar: None,
            push: None,
            caches: Caches::default(),
            checkpoints: None,
        }
    }

    /// Gives PBT trials their checkpoint folders on the experiment's volume.
    #[must_use]
    pub fn with_checkpoints(mut self, checkpoints: CheckpointVolumes) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// PBT: the experiment's checkpoint volume (created by the first trial
    /// that needs it) mounted in the trial's primary container, and
    /// the copy of its parent's folder before it starts.
    async fn mount_checkpoint(
        &self,
        request: &LaunchRequest<'_>,
        namespace: &str,
        workload: &mut serde_json::Value,
    ) -> Result<(), RunnerError> {
        let Some(checkpoint) = request.checkpoint else {
            return Ok(());
        };
        let volumes = self.checkpoints.as_ref().ok_or_else(|| {
            RunnerError::Api("a checkpoint folder without checkpoint volumes".to_owned())
        })?;
        let experiment = self.experiment.name_any();
        let claimed = &volumes.claimed;
        if !claimed.load(std::sync::atomic::Ordering::Acquire) {
            let claim = checkpoint::claim(
                &experiment,
                self.experiment.controller_owner_ref(&self.group),
                volumes.storage_class.as_deref(),
            );
            health::retry(LAUNCH_BACKOFF, || {
                checkpoint::ensure_claim(&self.client, namespace, &claim)
            })
            .await
            .map_err(|e| RunnerError::Api(format!("creating the checkpoint volume: {e}")))?;
            claimed.store(true, std::sync::atomic::Ordering::Release);
        }
        let primary = self
            .template
            .primary_container_name
            .as_deref()
            .unwrap_or_default();
        let mounted = checkpoint::mount(
            workload,
            primary,
            (&experiment, request.trial),
            checkpoint,
            &volumes.image,
        );
        if mounted == 0 {
            tracing::warn!(
                trial = request.trial,
                "no pod template holds the primary container {primary:?}: no checkpoint folder"
            );
        }
        Ok(())
    }

    /// Reads its trials and their workloads from the controller's watch
    /// caches instead of the API (see [`super::watch`]).
    #[must_use]
    pub fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = caches;
        self
    }

    /// Hands Push (and File) trials their tokens from this endpoint.
    #[must_use]
    pub fn with_push(mut self, push: Arc<PushServer>) -> Self {
        self.push = Some(push);
        self
    }

    /// Adds the File collector's sidecar to each trial's primary pod
    /// templates (see [`crate::metrics::kinds::file`]).
    #[must_use]
    pub fn with_file_sidecar(mut self, sidecar: FileSidecar) -> Self {
        self.file_sidecar = Some(sidecar);
        self
    }

    /// Adds the Custom collector's container to each trial's primary pod
    /// templates (see [`crate::metrics::kinds::custom`]).
    #[must_use]
    pub fn with_custom_sidecar(mut self, sidecar: CustomSidecar) -> Self {
        self.custom_sidecar = Some(sidecar);
        self
    }

    fn namespace(&self) -> String {
        self.experiment
            .namespace()
            .unwrap_or_else(|| "default".to_owned())
    }

    /// A Trial's labels, as Katib gives them: the experiment's own and
    /// the experiment's name.
    fn trial_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.experiment.labels().clone();
        labels.insert(EXPERIMENT_LABEL.to_owned(), self.experiment.name_any());
        labels
    }

    /// Push: hands the trial its token through a Secret written before
    /// the Trial (so before any pod can look for it), and points the
    /// workload's containers (and the File collector's sidecar) at it.
    async fn hand_push_credentials(
        &self,
        trial: &str,
        credentials: &crate::metrics::push::PushCredentials,
        namespace: &str,
        workload: &mut serde_json::Value,
    ) -> Result<(), RunnerError> {
        let Some(endpoint) = &self.push else {
            return Err(RunnerError::Api(
                "push credentials without a push endpoint".to_owned(),
            ));
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let labels = BTreeMap::from([(EXPERIMENT_LABEL.to_owned(), self.experiment.name_any())]);
        let owner = self
            .experiment
            .controller_owner_ref(&self.group)
            .map(|mut o| {
                o.controller = None;
                o
            });
        health::retry(LAUNCH_BACKOFF, || {
            push::deliver(
                endpoint,
                &secrets,
                (namespace, trial),
                (&credentials.url, &credentials.token),
                owner.clone(),
                labels.clone(),
            )
        })
        .await
        .map_err(|e| RunnerError::Api(format!("writing the push Secret: {e}")))?;
        let secret = push::secret_name(trial);
        push::inject_env(workload, &secret);
        let primary = self
            .template
            .primary_container_name
            .as_deref()
            .unwrap_or_default();
        if let Some(sidecar) = &self.custom_sidecar
            && sidecar.inject(workload, primary, trial, &secret) == 0
        {
            tracing::warn!(
                trial = trial,
                "no pod template holds the primary container {primary:?}: no Custom collector"
            );
        }
        if let Some(sidecar) = &self.file_sidecar
            && sidecar.inject(workload, primary, &secret) == 0
        {
            tracing::warn!(
                trial = trial,
                "no pod template holds the primary container {primary:?}: no File collector sidecar"
            );
        }
        Ok(())
    }

    /// Its pods say whose they are, as Katib's give them: the Trial's
    /// labels and Katib's trial label, and with Push the trial's name.
    fn mark_pods(&self, request: &LaunchRequest<'_>, workload: &mut serde_json::Value) {
        let mut pod_labels = self.trial_labels();
        pod_labels.insert(trial_pods::TRIAL_LABEL.to_owned(), request.trial.to_owned());
        trial_pods::label_pods(workload, &pod_labels);
        if request.reporting.push.is_some() {
            trial_pods::add_trial_name(workload, request.trial);
        }
    }

    fn trial_object(&self, request: &LaunchRequest<'_>, workload: serde_json::Value) -> Trial {
        let mut trial = Trial::new(
            self.group,
            request.trial,
            TrialSpec {
                objective: self.experiment.spec.objective.clone(),
                parameter_assignments: super::status::parameter_assignments(request.parameters),
                run_spec: Some(workload),
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
        // The suggester's labels too (PBT's generation and parent), as
        // Katib's Trials carry them — those a label can hold.
        let mut labels = self.trial_labels();
        labels.extend(
            request
                .labels
                .iter()
                .filter(|(_, value)| is_label_value(value))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        trial.metadata.labels = Some(labels);
        trial.metadata.owner_references = self
            .experiment
            .controller_owner_ref(&self.group)
            .map(|r| vec![r]);
        trial
    }
}

impl Runner for ClusterRunner {
    type Trial = ClusterTrial;

    async fn launch(&self, request: &LaunchRequest<'_>) -> Result<ClusterTrial, RunnerError> {
        let namespace = self.namespace();
        let trials: Api<Trial> = Api::namespaced_with(self.client.clone(), &namespace, &self.group);
        let mut workload = request.workload.clone();
        if let Some(credentials) = &request.reporting.push {
            self.hand_push_credentials(request.trial, credentials, &namespace, &mut workload)
                .await?;
        }
        self.mount_checkpoint(request, &namespace, &mut workload)
            .await?;
        self.mark_pods(request, &mut workload);
        // Retried while the API server is away (a trial failed for an
        // outage would be lost); a create whose answer was lost comes
        // back 409 and the trial is adopted.
        let trial = self.trial_object(request, workload);
        let params = PostParams::default();
        let created = health::retry(LAUNCH_BACKOFF, || trials.create(&params, &trial)).await;
        let adopted = match created {
            Ok(_) => false,
            // Created by an earlier controller that died: take it over.
            Err(kube::Error::Api(e)) if e.code == 409 => true,
            Err(e) => return Err(RunnerError::Api(e.to_string())),
        };
        let kind = super::kinds::TrialResource::of_workload(request.workload)
            .ok_or_else(|| RunnerError::Api("the workload has no apiVersion and kind".into()))?
            .api_resource();
        let workload = Api::namespaced_with(self.client.clone(), &namespace, &kind);
        Ok(ClusterTrial {
            reads: TrialReads::new(self.caches.clone(), &namespace, kind),
            trials,
            workload,
            name: request.trial.to_owned(),
            success: self.template.success_condition.clone().unwrap_or_default(),
            failure: self.template.failure_condition.clone().unwrap_or_default(),
            adopted,
        })
    }

    fn reap(&self, _trial: &str) {
        // Nothing to reap: a trial of a controller that died keeps running
        // in the cluster, and `launch` adopts it.
    }
}

/// Whether `value` can be a Kubernetes label value: at most 63
/// characters, alphanumerics with `-`, `_` and `.` inside.
fn is_label_value(value: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    value.len() <= 63
        && value.chars().all(inner)
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

/// Whether a Katib condition (a gjson query) matches the workload: the
/// query yields an object or a non-empty array.
fn matches(workload_json: &str, condition: &str) -> bool {
    let result = gjson::get(workload_json, condition);
    match result.kind() {
        gjson::Kind::Object => true,
        gjson::Kind::Array => !result.array().is_empty(),
        _ => false,
    }
}

/// Whether the workload has a condition of this type that holds.
fn holds(workload_json: &str, kind: &str) -> bool {
    matches(
        workload_json,
        &format!(r#"status.conditions.#(type=="{kind}")#|#(status=="True")#"#),
    )
}

/// How a workload ended, if it did, under the template's success and
/// failure conditions (empty: the kind's usual conditions).
#[must_use]
pub fn workload_exit(workload: &Value, success: &str, failure: &str) -> Option<Exit> {
    let json = workload.to_string();
    let failed = if failure.trim().is_empty() {
        holds(&json, "Failed")
    } else {
        matches(&json, failure.trim())
    };
    if failed {
        return Some(Exit::Failed { code: 1 });
    }
    let succeeded = if success.trim().is_empty() {
        holds(&json, "Complete") || holds(&json, "Succeeded")
    } else {
        matches(&json, success.trim())
    };
    succeeded.then_some(Exit::Succeeded)
}

/// A trial running in the cluster.
pub struct ClusterTrial {
    reads: TrialReads,
    trials: Api<Trial>,
    workload: Api<DynamicObject>,
    name: String,
    success: String,
    failure: String,
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
        match self.reads.trial(&self.trials, &self.name).await {
            // Deleted by someone: it will not finish.
            TrialRead::Gone => return Some(Exit::Stopped),
            TrialRead::Found(t) if t.meta().deletion_timestamp.is_some() => {
                return Some(Exit::Stopped);
            }
            // The cluster refused its workload for good (see the trial
            // reconciler): the trial fails with that reason.
            TrialRead::Found(t) => {
                if let Some(reason) = t.annotations().get(WORKLOAD_ERROR) {
                    return Some(Exit::Refused {
                        reason: reason.clone(),
                    });
                }
            }
            TrialRead::Unknown => return None,
        }
        // None: not created yet.
        let object = self.reads.workload(&self.workload, &self.name).await?;
        let value = serde_json::to_value(object.as_ref()).unwrap_or_default();
        workload_exit(&value, &self.success, &self.failure)
    }

    async fn stop(&mut self) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        // Retried through an outage: a stop that is lost leaves an
        // early-stopped trial running.
        let deleted =
            health::retry(LAUNCH_BACKOFF, || self.workload.delete(&self.name, &params)).await;
        if let Err(e) = deleted {
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

    /// A trial whose workload is `run_spec`'s kind, read from the API
    /// (no watch caches).
    fn cluster_trial(client: &Client, trials: Api<Trial>, run_spec: &Value) -> ClusterTrial {
        let kind = super::super::kinds::TrialResource::of_workload(run_spec)
            .unwrap()
            .api_resource();
        ClusterTrial {
            reads: TrialReads::new(Caches::default(), "default", kind.clone()),
            trials,
            workload: Api::namespaced_with(client.clone(), "default", &kind),
            name: "t1".into(),
            success: String::new(),
            failure: String::new(),
            adopted: false,
        }
    }

    #[test]
    fn workload_conditions_decide_the_exit() {
        let job = |kind: &str, status: &str| json!({"status": {"conditions": [{"type": kind, "status": status}]}});
        let complete = r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;
        let failed = r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;
        let katib = |w: &Value| workload_exit(w, complete, failed);
        assert_eq!(katib(&job("Complete", "True")), Some(Exit::Succeeded));
        assert_eq!(katib(&job("Complete", "False")), None);
        assert_eq!(
            katib(&job("Failed", "True")),
            Some(Exit::Failed { code: 1 })
        );
        assert_eq!(katib(&json!({})), None);
        // The kind's usual conditions without a template condition.
        assert_eq!(
            workload_exit(&job("Succeeded", "True"), "", ""),
            Some(Exit::Succeeded)
        );
        assert_eq!(
            workload_exit(&job("Failed", "True"), "", ""),
            Some(Exit::Failed { code: 1 })
        );
        // Argo's form: the phase of the workflow itself.
        let argo = r#"status.[@this].#(phase=="Succeeded")#"#;
        let workflow = json!({"status": {"phase": "Succeeded"}});
        assert_eq!(workload_exit(&workflow, argo, ""), Some(Exit::Succeeded));
        let running = json!({"status": {"phase": "Running"}});
        assert_eq!(workload_exit(&running, argo, ""), None);
    }

    /// A trial whose workload the cluster refused for good (the trial
    /// reconciler's annotation) ends, failed with that reason.
    #[tokio::test]
    async fn a_trial_marked_with_a_workload_error_is_refused_with_its_reason() {
        let server = ktune_fake_apiserver::FakeApiServer::new();
        server
            .create_manifest(include_str!("../../crds/trials.ktune.dev.yaml"))
            .unwrap();
        let client = Client::new(server.router(), "default");
        let trials: Api<Trial> = Api::namespaced_with(client.clone(), "default", &ApiGroup::Ktune);
        let run_spec = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"});
        let mut object = Trial::new(ApiGroup::Ktune, "t1", TrialSpec::default());
        object.metadata.namespace = Some("default".into());
        trials
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        let mut run = cluster_trial(&client, trials.clone(), &run_spec);
        // Not created yet, and not refused: it waits.
        assert_eq!(run.poll().await, None);
        let why = "PyTorchJob kubeflow.org/v1 is not served by this cluster: install the Kubeflow training operator";
        let patch = json!({"metadata": {"annotations": {WORKLOAD_ERROR: why}}});
        trials
            .patch(
                "t1",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .unwrap();
        let exit = run.poll().await.unwrap();
        assert_eq!(exit.reason(), why);
        assert_eq!(
            exit,
            Exit::Refused {
                reason: why.to_owned()
            }
        );
    }

    /// Stopping a trial while the API server is away deletes its workload
    /// once the server answers again, instead of leaving it running.
    #[tokio::test]
    async fn a_stop_during_an_outage_is_retried_until_it_lands() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let run_spec = json!({"apiVersion": "batch/v1", "kind": "Job"});
        let trials = Api::namespaced_with(client.clone(), "default", &ApiGroup::Ktune);
        let mut run = cluster_trial(&client, trials, &run_spec);
        let server = tokio::spawn(async move {
            for code in [503_u16, 200] {
                let (request, send) = handle.next_request().await.unwrap();
                assert_eq!(request.method(), "DELETE");
                assert_eq!(
                    request.uri().path(),
                    "/apis/batch/v1/namespaces/default/jobs/t1"
                );
                let body = json!({"kind": "Status", "apiVersion": "v1", "code": code, "status": if code == 200 { "Success" } else { "Failure" }});
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                );
            }
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), run.stop())
            .await
            .unwrap();
        // Both calls made: the one the outage failed, and the retry.
        tokio::time::timeout(std::time::Duration::from_secs(1), server)
            .await
            .expect("the delete was not retried")
            .unwrap();
    }
}
