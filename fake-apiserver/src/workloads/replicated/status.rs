//! The status a replicated workload's controller writes, in one of two
//! shapes: the Kubeflow operators' (`Created`, `Running`, then the
//! success or failure condition, and `replicaStatuses`), or JobSet's
//! (only the final condition, and a count of Jobs per replicated job,
//! under `replicatedJobsStatus`; a TrainJob copies it as `jobsStatus`).
//! The condition types are the trial-kind table's, so Katib's default
//! conditions hold exactly when the simulated job ends.

use super::super::{Ctx, Owner, now};
use crate::pod::PodEnd;
use ktune_kinds::{Conditions, Replica, Replicas, TrialKind};
use serde_json::{Value, json};

/// Writes one workload's status as its kind's controller would.
pub(super) struct Report<'a> {
    owner: &'a Owner,
    kind: &'static str,
    conditions: Conditions,
    shape: Shape,
    start: String,
}

/// Which controller's status shape.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Operator,
    JobSet { field: &'static str },
}

impl<'a> Report<'a> {
    pub(super) fn new(kind: &'static TrialKind, owner: &'a Owner) -> Self {
        let shape = match kind.replicas {
            Replicas::Trainer => Shape::JobSet {
                field: "jobsStatus",
            },
            Replicas::ReplicatedJobs => Shape::JobSet {
                field: "replicatedJobsStatus",
            },
            _ => Shape::Operator,
        };
        Self {
            owner,
            kind: kind.kind,
            // The table gives every kind with listed replicas its
            // conditions (a table test checks); the operators' are the
            // fallback.
            conditions: kind.conditions.unwrap_or(Conditions {
                success: "Succeeded",
                failure: "Failed",
            }),
            shape,
            start: now(),
        }
    }

    /// The workload has nothing to run: it fails at once.
    pub(super) fn failed_to_start(&self, ctx: &Ctx) {
        let status = match self.shape {
            Shape::Operator => json!({
                "conditions": [self.operator("Created", true, "Created"), self.operator(self.conditions.failure, true, "Failed")],
                "startTime": self.start,
                "replicaStatuses": {},
            }),
            Shape::JobSet { .. } => json!({"conditions": [self.jobset(false)]}),
        };
        self.owner.set_status(ctx, status);
    }

    /// Its pods are starting.
    pub(super) fn running(&self, ctx: &Ctx, replicas: &[Replica], ends: &[Option<PodEnd>]) {
        let status = match self.shape {
            Shape::Operator => json!({
                "conditions": [self.operator("Created", true, "Created"), self.operator("Running", true, "Running")],
                "startTime": self.start,
                "replicaStatuses": replica_statuses(replicas, ends),
            }),
            Shape::JobSet { field } => json!({ field: jobs_statuses(replicas, ends) }),
        };
        self.owner.set_status(ctx, status);
    }

    /// It has ended, `succeeded` or not, its pods as `ends` says.
    pub(super) fn ended(
        &self,
        ctx: &Ctx,
        succeeded: bool,
        replicas: &[Replica],
        ends: &[Option<PodEnd>],
    ) {
        let status = match self.shape {
            Shape::Operator => {
                let mut running = self.operator("Running", false, "Running");
                let last = if succeeded {
                    self.operator(self.conditions.success, true, "Succeeded")
                } else {
                    running["reason"] = json!(format!("{}Failed", self.kind));
                    self.operator(self.conditions.failure, true, "Failed")
                };
                json!({
                    "conditions": [self.operator("Created", true, "Created"), running, last],
                    "startTime": self.start,
                    "completionTime": now(),
                    "replicaStatuses": replica_statuses(replicas, ends),
                })
            }
            Shape::JobSet { field } => json!({
                "conditions": [self.jobset(succeeded)],
                field: jobs_statuses(replicas, ends),
            }),
        };
        self.owner.set_status(ctx, status);
    }

    /// A Kubeflow `JobCondition` (reason `<Kind><Phase>`).
    fn operator(&self, ty: &str, status: bool, phase: &str) -> Value {
        let t = now();
        let (kind, ns, name) = (self.kind, &self.owner.ns, &self.owner.name);
        json!({
            "type": ty,
            "status": if status { "True" } else { "False" },
            "reason": format!("{kind}{phase}"),
            "message": format!("{kind} {ns}/{name} is {}.", phase.to_lowercase()),
            "lastUpdateTime": t,
            "lastTransitionTime": t,
        })
    }

    /// JobSet's final `metav1.Condition`.
    fn jobset(&self, succeeded: bool) -> Value {
        let (ty, reason, message) = if succeeded {
            (
                self.conditions.success,
                "AllJobsCompleted",
                "jobset completed successfully",
            )
        } else {
            (
                self.conditions.failure,
                "FailedJobs",
                "jobset failed due to one or more job failures",
            )
        };
        json!({"type": ty, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now()})
    }
}

/// `replicaStatuses`: active/succeeded/failed pods per replica type.
fn replica_statuses(replicas: &[Replica], ends: &[Option<PodEnd>]) -> Value {
    let mut out = serde_json::Map::new();
    for (r, end) in replicas.iter().zip(ends) {
        let entry = out.entry(r.role.clone()).or_insert_with(|| json!({}));
        let key = match end {
            None => "active",
            Some(PodEnd::Succeeded) => "succeeded",
            Some(_) => "failed",
        };
        let n = entry.get(key).and_then(Value::as_u64).unwrap_or(0) + 1;
        entry[key] = json!(n);
    }
    Value::Object(out)
}

/// The state of one Job of a JobSet-shaped workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Active,
    Succeeded,
    Failed,
}

impl JobState {
    fn of(end: Option<PodEnd>) -> Self {
        match end {
            None => Self::Active,
            Some(PodEnd::Succeeded) => Self::Succeeded,
            Some(_) => Self::Failed,
        }
    }

    /// A Job with one more pod: failed once one has, succeeded once all have.
    fn with(self, pod: Self) -> Self {
        match (self, pod) {
            (Self::Failed, _) | (_, Self::Failed) => Self::Failed,
            (Self::Succeeded, Self::Succeeded) => Self::Succeeded,
            _ => Self::Active,
        }
    }
}

/// Per replicated job, in order: how many of its Jobs are active, have
/// succeeded (every pod has) and have failed (a pod has).
fn jobs_statuses(replicas: &[Replica], ends: &[Option<PodEnd>]) -> Value {
    let mut jobs: Vec<((&str, u64), JobState)> = Vec::new();
    for (r, end) in replicas.iter().zip(ends) {
        let key = (r.role.as_str(), r.job.map_or(0, |j| j.job));
        let pod = JobState::of(*end);
        match jobs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, state)) => *state = state.with(pod),
            None => jobs.push((key, pod)),
        }
    }
    let mut roles: Vec<&str> = jobs.iter().map(|((role, _), _)| *role).collect();
    roles.dedup();
    roles
        .iter()
        .map(|role| {
            let count = |wanted: JobState| {
                jobs.iter()
                    .filter(|((r, _), state)| r == role && *state == wanted)
                    .count()
            };
            json!({
                "name": role,
                "ready": 0,
                "active": count(JobState::Active),
                "succeeded": count(JobState::Succeeded),
                "failed": count(JobState::Failed),
                "suspended": 0,
            })
        })
        .collect()
}
