//! What a replica's pod is called and how it is labelled, as the kind's
//! controller names and labels it: the labels the controller selects a
//! trial's pods by ([`TrialKind::owner_label`],
//! [`TrialKind::primary_pod_labels`]) come from here on the fake cluster,
//! and a replica's folder under `ktune run` is named like its pod.

use crate::TrialKind;
use crate::replicas::{Labelling, Replica, Replicas};

const OPERATOR_NAME: &str = "training.kubeflow.org/operator-name";
const REPLICA_TYPE: &str = "training.kubeflow.org/replica-type";
const REPLICA_INDEX: &str = "training.kubeflow.org/replica-index";
const JOB_ROLE: &str = "training.kubeflow.org/job-role";
const REPLICATED_JOB: &str = "jobset.sigs.k8s.io/replicatedjob-name";
const JOB_INDEX: &str = "jobset.sigs.k8s.io/job-index";
const JOB_GLOBAL_INDEX: &str = "jobset.sigs.k8s.io/job-global-index";
/// The label and annotation the Job controller gives an indexed pod.
pub(crate) const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The label Kubeflow Trainer gives the pods of a TrainJob's trainer step.
const TRAINJOB_STEP: &str = "trainer.kubeflow.org/trainjob-ancestor-step";

/// A replica's pod: its name, labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// `<workload>-<replica name>`.
    pub name: String,
    /// What the kind's controller labels it with.
    pub labels: Vec<(String, String)>,
    /// What the kind's controller annotates it with.
    pub annotations: Vec<(String, String)>,
}

fn pair(key: &str, value: impl ToString) -> (String, String) {
    (key.to_owned(), value.to_string())
}

impl TrialKind {
    /// A replica's name: its pod's name without the workload's
    /// (`master-0`, `launcher`, `node-0-1`).
    #[must_use]
    pub fn replica_name(&self, replica: &Replica) -> String {
        let role = replica.role.to_lowercase();
        match (&self.replicas, replica.job) {
            (_, Some(job)) => format!("{}-{}-{}", replica.role, job.job, job.completion),
            (Replicas::Typed(typed), None)
                if typed.labelling == Labelling::MpiOperator && replica.lead =>
            {
                role
            }
            _ => format!("{role}-{}", replica.index),
        }
    }

    /// The pod of a replica of workload `workload_name`.
    #[must_use]
    pub fn pod(&self, workload_name: &str, replica: &Replica) -> PodIdentity {
        let mut labels: Vec<(String, String)> = self
            .owner_label
            .map(|owner| pair(owner, workload_name))
            .into_iter()
            .collect();
        let mut annotations = Vec::new();
        let role = replica.role.to_lowercase();
        match (&self.replicas, replica.job) {
            (Replicas::Typed(typed), _) => {
                labels.extend([
                    pair(OPERATOR_NAME, typed.operator),
                    pair(REPLICA_TYPE, &role),
                    pair(REPLICA_INDEX, replica.index),
                ]);
                match typed.labelling {
                    Labelling::MpiOperator => labels.push(pair(JOB_ROLE, &role)),
                    Labelling::TrainingOperator { role_label } => {
                        if replica.lead {
                            labels.push(pair(JOB_ROLE, "master"));
                        }
                        labels.extend(role_label.map(|key| pair(key, &role)));
                    }
                }
            }
            (replicas, Some(job)) => {
                labels.extend([
                    pair(REPLICATED_JOB, &replica.role),
                    pair(JOB_INDEX, job.job),
                    pair(JOB_GLOBAL_INDEX, job.global),
                    pair(COMPLETION_INDEX, job.completion),
                ]);
                if *replicas == Replicas::Trainer {
                    labels.push(pair(TRAINJOB_STEP, "trainer"));
                }
                annotations.push(pair(COMPLETION_INDEX, job.completion));
            }
            _ => {}
        }
        PodIdentity {
            name: format!("{workload_name}-{}", self.replica_name(replica)),
            labels,
            annotations,
        }
    }
}
