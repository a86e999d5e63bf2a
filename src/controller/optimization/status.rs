//! An OptimizationJob's status as Trainer's API defines it, as pure
//! functions: conditions `Created`, `Complete` and `Failed` (each keeps
//! the time it last changed), and `result` — the best trial's TrainJob
//! and parameter values.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::runner::train_job_name;
use crate::api::optimization_job::{OptimizationJobStatus, OptimizationResult, ParameterValue};
use crate::engine::BestTrial;
use crate::store::ExperimentState;

/// Where a job stands, as its status says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase<'a> {
    /// Accepted and running.
    Running,
    /// Ended: the budget was spent or the goal reached (the reason).
    Complete(&'a str),
    /// Ended: too many trials failed, or the job cannot run (reason, message).
    Failed(&'a str, &'a str),
}

impl<'a> Phase<'a> {
    /// The phase of a run that ended in `state` for `reason`.
    #[must_use]
    pub fn ended(state: ExperimentState, reason: &'a str) -> Self {
        match state {
            ExperimentState::Failed => Self::Failed(reason, "the search failed"),
            ExperimentState::Succeeded => Self::Complete(reason),
            ExperimentState::Created | ExperimentState::Running => Self::Running,
        }
    }
}

/// The status of job `job` in `phase`, with `best` as its result, built on
/// `previous` (whose conditions keep their times while they hold).
#[must_use]
pub fn job_status(
    previous: Option<&OptimizationJobStatus>,
    job: &str,
    phase: &Phase<'_>,
    best: Option<&BestTrial>,
    now: &Time,
) -> OptimizationJobStatus {
    let mut conditions = vec![condition(
        previous,
        "Created",
        "OptimizationJobCreated",
        "the search runs in ktune's controller",
        now,
    )];
    match phase {
        Phase::Running => {}
        Phase::Complete(reason) => conditions.push(condition(
            previous,
            "Complete",
            reason,
            "the search ended; status.result names the best trial",
            now,
        )),
        Phase::Failed(reason, message) => {
            conditions.push(condition(previous, "Failed", reason, message, now));
        }
    }
    OptimizationJobStatus {
        conditions,
        result: best.map(|best| OptimizationResult {
            train_job_name: train_job_name(job, &best.name),
            parameters: best
                .parameters
                .iter()
                .map(|(name, value)| ParameterValue {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }),
    }
}

/// A condition that holds, keeping `previous`'s time when it held already
/// with the same reason.
fn condition(
    previous: Option<&OptimizationJobStatus>,
    type_: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> Condition {
    let reason = if reason.is_empty() { type_ } else { reason };
    let time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == "True" && c.reason == reason)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: time,
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn conditions_follow_the_phase_and_keep_their_times() {
        let best = BestTrial {
            name: "tune-0002".into(),
            parameters: vec![("lr".into(), "0.01".into())],
            objective: 0.1,
        };
        let running = job_status(None, "tune", &Phase::Running, None, &at(10));
        let types: Vec<_> = running
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["Created"]);
        assert_eq!(running.result, None);

        let done = job_status(
            Some(&running),
            "tune",
            &Phase::ended(ExperimentState::Succeeded, "MaxTrialsReached"),
            Some(&best),
            &at(20),
        );
        let types: Vec<_> = done.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Created", "Complete"]);
        assert_eq!(done.conditions[0].last_transition_time, at(10));
        assert_eq!(done.conditions[1].last_transition_time, at(20));
        assert_eq!(done.conditions[1].reason, "MaxTrialsReached");
        let result = done.result.unwrap();
        assert_eq!(result.train_job_name, "tune-trial-0002");
        assert_eq!(
            result.parameters,
            [ParameterValue {
                name: "lr".into(),
                value: "0.01".into()
            }]
        );

        let failed = job_status(
            None,
            "tune",
            &Phase::Failed("InvalidSpec", "spec.numTrials: must be at least 1"),
            None,
            &at(5),
        );
        assert_eq!(failed.conditions[1].type_, "Failed");
        assert_eq!(
            failed.conditions[1].message,
            "spec.numTrials: must be at least 1"
        );
    }
}
