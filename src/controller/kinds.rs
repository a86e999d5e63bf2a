//! Which workload kinds trials may use, and how to find a kind's pods.
//!
//! Like Katib's `trialResources` (katib-config `init.controller`), the
//! controller is given the kinds it may create as `Kind.version.group`
//! (`ktune controller --trial-resources`): it watches those that are
//! served, and an experiment whose template is of another kind fails at
//! once with [`not_allowed`]'s reason (Katib instead creates such a
//! workload and never sees it finish). The default list is every kind of
//! the trial-kind table (`ktune-kinds`); `deploy/rbac.yaml`, generated
//! from the same table (`ktune rbac`), grants exactly it, and
//! deploy/deployment.yaml passes it explicitly.

use std::fmt;
use std::str::FromStr;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// One allowed trial kind: `Kind.version.group` (`Job.v1.batch`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrialResource {
    /// `PyTorchJob`.
    pub kind: String,
    /// `v1`.
    pub version: String,
    /// `kubeflow.org`; empty for the core group.
    pub group: String,
}

/// A `--trial-resources` entry that is not `Kind.version.group`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not Kind.version.group (e.g. PyTorchJob.v1.kubeflow.org)")]
pub struct BadTrialResource(pub String);

impl FromStr for TrialResource {
    type Err = BadTrialResource;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadTrialResource(text.to_owned());
        let mut parts = text.trim().splitn(3, '.');
        let kind = parts.next().filter(|k| !k.is_empty()).ok_or_else(bad)?;
        let version = parts.next().filter(|v| !v.is_empty()).ok_or_else(bad)?;
        // Katib writes the core group's kinds (Pod.v1.) with an empty group.
        let group = parts.next().unwrap_or_default();
        if !kind.chars().next().is_some_and(char::is_alphabetic) {
            return Err(bad());
        }
        Ok(Self {
            kind: kind.to_owned(),
            version: version.to_owned(),
            group: group.to_owned(),
        })
    }
}

impl fmt::Display for TrialResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.kind, self.version, self.group)
    }
}

impl TrialResource {
    /// The kind of a workload object (its `apiVersion` and `kind`).
    #[must_use]
    pub fn of_workload(workload: &Value) -> Option<Self> {
        let api_version = workload.get("apiVersion")?.as_str()?;
        let kind = workload.get("kind")?.as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Some(Self {
            kind: kind.to_owned(),
            version: version.to_owned(),
            group: group.to_owned(),
        })
    }

    /// The API resource: the plural from the trial-kind table, or for a
    /// kind it does not know, guessed as kube does (`pytorchjobs`).
    #[must_use]
    pub fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(&self.group, &self.version, &self.kind);
        match ktune_kinds::find(&self.group, &self.version, &self.kind) {
            Some(known) => ApiResource::from_gvk_with_plural(&gvk, known.plural),
            None => ApiResource::from_gvk(&gvk),
        }
    }
}

impl TrialResource {
    /// Kubeflow Trainer's `TrainJob`: the trials of an OptimizationJob.
    #[must_use]
    pub fn train_job() -> Self {
        Self {
            kind: "TrainJob".to_owned(),
            version: "v1alpha1".to_owned(),
            group: "trainer.kubeflow.org".to_owned(),
        }
    }
}

impl From<&ktune_kinds::TrialKind> for TrialResource {
    fn from(kind: &ktune_kinds::TrialKind) -> Self {
        Self {
            kind: kind.kind.to_owned(),
            version: kind.version.to_owned(),
            group: kind.group.to_owned(),
        }
    }
}

/// Every kind of the trial-kind table, the default of `--trial-resources`:
/// Katib's standalone list plus the other Kubeflow jobs, mpi-operator's
/// MPIJob, Argo and Tekton.
#[must_use]
pub fn default_trial_resources() -> Vec<TrialResource> {
    ktune_kinds::KINDS.iter().map(TrialResource::from).collect()
}

/// Why a workload may not run as a trial, or `None` when it may.
#[must_use]
pub fn not_allowed(workload: &Value, allowed: &[TrialResource]) -> Option<String> {
    let list = || {
        allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match TrialResource::of_workload(workload) {
        Some(r) if allowed.contains(&r) => None,
        Some(r) => Some(format!(
            "trial template kind {r} is not among the controller's trial resources ({}); add it to ktune controller --trial-resources and grant it in the RBAC rules",
            list()
        )),
        None => Some("the trial template has no apiVersion and kind".to_owned()),
    }
}

/// The label every pod of a workload carries with the workload's name, as
/// its controller sets it (the trial-kind table's `owner_label`: `job-name`
/// for a Job, `training.kubeflow.org/job-name` for the Kubeflow jobs, the
/// JobSet's name for a TrainJob, the Workflow's or PipelineRun's name for
/// Argo and Tekton); `None` for other kinds, whose pods only
/// `primaryPodLabels` select.
#[must_use]
pub fn owner_label(api_version: &str, kind: &str) -> Option<&'static str> {
    ktune_kinds::in_group(api_version, kind)?.owner_label
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_trainjob_of_optimization_jobs_is_a_kind_of_the_table() {
        let train_job = TrialResource::train_job();
        assert!(default_trial_resources().contains(&train_job));
        assert_eq!(train_job.api_resource().plural, "trainjobs");
    }

    #[test]
    fn trial_resources_parse_and_print_as_katib_writes_them() {
        let r: TrialResource = "TrainJob.v1alpha1.trainer.kubeflow.org".parse().unwrap();
        assert_eq!(
            (r.kind.as_str(), r.version.as_str(), r.group.as_str()),
            ("TrainJob", "v1alpha1", "trainer.kubeflow.org")
        );
        assert_eq!(r.to_string(), "TrainJob.v1alpha1.trainer.kubeflow.org");
        assert_eq!(r.api_resource().plural, "trainjobs");
        assert!("Job".parse::<TrialResource>().is_err());
        assert!(".v1.batch".parse::<TrialResource>().is_err());
        let defaults: Vec<String> = default_trial_resources()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(defaults[0], "Job.v1.batch");
        assert!(defaults.contains(&"MPIJob.v2beta1.kubeflow.org".to_owned()));
        assert_eq!(defaults.len(), ktune_kinds::KINDS.len());
        for text in &defaults {
            assert_eq!(text.parse::<TrialResource>().unwrap().to_string(), *text);
        }
    }

    #[test]
    fn a_workload_of_an_unlisted_kind_is_refused_naming_the_list() {
        let allowed: Vec<TrialResource> = vec!["Job.v1.batch".parse().unwrap()];
        let job = json!({"apiVersion": "batch/v1", "kind": "Job"});
        assert_eq!(not_allowed(&job, &allowed), None);
        let torch = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"});
        let why = not_allowed(&torch, &allowed).unwrap();
        assert!(
            why.contains("PyTorchJob.v1.kubeflow.org") && why.contains("(Job.v1.batch)"),
            "{why}"
        );
        // The version counts, as in Katib.
        let mpi: Vec<TrialResource> = vec!["MPIJob.v1.kubeflow.org".parse().unwrap()];
        let v2 = json!({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob"});
        assert!(not_allowed(&v2, &mpi).is_some());
    }
}
