//! The status the controller writes: Katib's Experiment counters, trial
//! lists, conditions and `currentOptimalTrial`, and a Trial's conditions
//! and objective — typed ([`ExperimentStatus`], [`TrialStatus`]), built
//! by pure functions without a clock (so two statuses compare equal when
//! nothing but the time changed, and each is unit-tested without an API
//! server), stamped with the time when written, and written by
//! server-side apply under the controller's field manager.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ktune_algorithms::history::TrialState;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ControllerError;
use crate::api::condition::Condition;
use crate::api::enums::{ConditionStatus, ExperimentConditionType, TrialConditionType};
use crate::api::experiment::{Metric, Observation, OptimalTrial, ParameterAssignment};
use crate::api::{ApiGroup, ExperimentStatus, TrialStatus};
use crate::engine::BestTrial;
use crate::engine::decide::Counts;
use crate::store::{ExperimentState, TrialRow};

/// The field manager of everything the controller writes by server-side
/// apply: it owns the whole status of Experiments and Trials.
pub const FIELD_MANAGER: &str = "ktune";

/// Katib's condition for a trial state, and its reason.
#[must_use]
pub fn trial_condition(state: TrialState) -> (&'static str, &'static str) {
    match state {
        TrialState::Pending => ("Created", "TrialCreated"),
        TrialState::Running => ("Running", "TrialRunning"),
        TrialState::Succeeded => ("Succeeded", "TrialSucceeded"),
        TrialState::Failed => ("Failed", "TrialFailed"),
        TrialState::Killed => ("Killed", "TrialKilled"),
        TrialState::EarlyStopped => ("EarlyStopped", "TrialEarlyStopped"),
        TrialState::MetricsUnavailable => ("MetricsUnavailable", "MetricsUnavailable"),
    }
}

/// A condition without its times (see [`stamp_conditions`]).
fn condition<T>(kind: T, holds: bool, reason: &str, message: &str) -> Condition<T> {
    Condition {
        type_: kind,
        status: if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_update_time: None,
        last_transition_time: None,
    }
}

/// A Trial's status once it ended (or started): the conditions Katib
/// shows (Created, then Running, then the outcome) and the objective.
#[must_use]
pub fn trial_status(state: TrialState, reason: &str, objective: Option<f64>) -> TrialStatus {
    use TrialConditionType as T;
    let mut conditions = vec![condition(T::Created, true, "TrialCreated", "")];
    let (kind, default_reason) = trial_condition(state);
    let reason = if reason.is_empty() {
        default_reason
    } else {
        reason
    };
    if state == TrialState::Running {
        conditions.push(condition(T::Running, true, "TrialRunning", ""));
    } else if state.is_terminal() {
        let outcome = T::from_word(kind);
        conditions.push(condition(T::Running, false, kind, ""));
        conditions.push(condition(outcome, true, default_reason, reason));
    }
    TrialStatus {
        conditions,
        objective_value: objective.filter(|v| v.is_finite()),
        ..TrialStatus::default()
    }
}

/// Counts as Katib's `int32` fields.
fn count(n: u32) -> Option<i32> {
    Some(i32::try_from(n).unwrap_or(i32::MAX))
}

/// An Experiment's status: counters and trial lists by state, the
/// conditions for `state`, and the best trial.
#[must_use]
pub fn experiment_status(
    rows: &[TrialRow],
    best: Option<(&BestTrial, &[Metric])>,
    state: ExperimentState,
    reason: &str,
) -> ExperimentStatus {
    use ExperimentConditionType as E;
    let counts = Counts::from_states(rows.iter().map(|r| r.state));
    let names = |s: TrialState| -> Vec<String> {
        rows.iter()
            .filter(|r| r.state == s)
            .map(|r| r.name.clone())
            .collect()
    };
    let mut conditions = vec![condition(E::Created, true, "ExperimentCreated", "")];
    match state {
        ExperimentState::Succeeded | ExperimentState::Failed => {
            let kind = if state == ExperimentState::Succeeded {
                E::Succeeded
            } else {
                E::Failed
            };
            conditions.push(condition(E::Running, false, reason, ""));
            conditions.push(condition(kind, true, reason, ""));
        }
        _ => conditions.push(condition(E::Running, true, "ExperimentRunning", "")),
    }
    ExperimentStatus {
        conditions,
        trials: count(counts.total()),
        trials_pending: count(counts.pending),
        trials_running: count(counts.running),
        trials_succeeded: count(counts.succeeded),
        trials_failed: count(counts.failed),
        trials_killed: count(counts.killed),
        trials_early_stopped: count(counts.early_stopped),
        trial_metrics_unavailable: count(counts.metrics_unavailable),
        pending_trial_list: names(TrialState::Pending),
        running_trial_list: names(TrialState::Running),
        succeeded_trial_list: names(TrialState::Succeeded),
        failed_trial_list: names(TrialState::Failed),
        killed_trial_list: names(TrialState::Killed),
        early_stopped_trial_list: names(TrialState::EarlyStopped),
        metrics_unavailable_trial_list: names(TrialState::MetricsUnavailable),
        current_optimal_trial: best.map(|(best, metrics)| optimal_trial(best, metrics)),
        ..ExperimentStatus::default()
    }
}

/// Parameter values (name, value) as Katib's assignments.
#[must_use]
pub fn parameter_assignments(parameters: &[(String, String)]) -> Vec<ParameterAssignment> {
    parameters
        .iter()
        .map(|(name, value)| ParameterAssignment {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn optimal_trial(best: &BestTrial, metrics: &[Metric]) -> OptimalTrial {
    OptimalTrial {
        best_trial_name: best.name.clone(),
        parameter_assignments: parameter_assignments(&best.parameters),
        observation: Some(Observation {
            metrics: metrics.to_vec(),
        }),
        objective_value: Some(best.objective),
    }
}

/// An Experiment that cannot run: Created, and Failed saying why.
#[must_use]
pub fn refused_status(reason: &str, message: &str) -> ExperimentStatus {
    use ExperimentConditionType as E;
    ExperimentStatus {
        conditions: vec![
            condition(E::Created, true, "ExperimentCreated", ""),
            condition(E::Failed, true, reason, message),
        ],
        ..ExperimentStatus::default()
    }
}

/// Stamps conditions with `now`: each was updated now, and changed now
/// unless `previous` (the conditions written last) had it with the same
/// status, whose transition time it keeps.
fn stamp_conditions<T: PartialEq>(
    conditions: &mut [Condition<T>],
    previous: &[Condition<T>],
    now: &Time,
) {
    for c in conditions {
        let since = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(since.unwrap_or_else(|| now.clone()));
        c.last_update_time = Some(now.clone());
    }
}

/// A Trial's status stamped with `now`: its conditions, its last
/// reconcile, and its completion once it ended.
#[must_use]
pub fn stamped_trial(mut status: TrialStatus, now: &Time) -> TrialStatus {
    stamp_conditions(&mut status.conditions, &[], now);
    status.last_reconcile_time = Some(now.clone());
    let ended = status.conditions.iter().any(|c| {
        c.status == ConditionStatus::True
            && !matches!(
                c.type_,
                TrialConditionType::Created | TrialConditionType::Running
            )
    });
    if ended {
        status.completion_time = Some(now.clone());
    }
    status
}

/// An Experiment's status stamped with `now`, `previous` being the status
/// written last (its condition transition times and completion are kept).
#[must_use]
pub fn stamped_experiment(
    mut status: ExperimentStatus,
    previous: Option<&ExperimentStatus>,
    now: &Time,
) -> ExperimentStatus {
    let before = previous.map_or(&[][..], |p| p.conditions.as_slice());
    stamp_conditions(&mut status.conditions, before, now);
    status.last_reconcile_time = Some(now.clone());
    let ended = status.conditions.iter().any(|c| {
        c.status == ConditionStatus::True
            && matches!(
                c.type_,
                ExperimentConditionType::Succeeded | ExperimentConditionType::Failed
            )
    });
    if ended {
        status.completion_time = previous
            .and_then(|p| p.completion_time.clone())
            .or_else(|| Some(now.clone()));
    }
    status
}

/// The time now, as status fields have it.
#[must_use]
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The apply patch that sets an object's whole status.
fn status_patch<K: Resource<DynamicType = ApiGroup>>(
    group: ApiGroup,
    status: &impl Serialize,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": K::api_version(&group),
        "kind": K::kind(&group),
        "status": status,
    })
}

/// Writes an object's status by server-side apply under
/// [`FIELD_MANAGER`] (forced: the controller owns the status, whoever
/// wrote it before); returns the object. `api` is of `group`.
///
/// # Errors
/// The API's.
pub async fn apply_status<K>(
    api: &Api<K>,
    group: ApiGroup,
    name: &str,
    status: &impl Serialize,
) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ApiGroup> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(status_patch::<K>(group, status));
    Ok(api.patch_status(name, &params, &patch).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Experiment;
    use serde_json::json;

    fn row(name: &str, state: TrialState) -> TrialRow {
        TrialRow {
            name: name.to_owned(),
            ..TrialRow::example(1, state)
        }
    }

    fn value(status: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(status).unwrap()
    }

    #[test]
    fn experiment_status_counts_lists_and_best() {
        let rows = [
            row("a", TrialState::Succeeded),
            row("b", TrialState::Running),
            row("c", TrialState::Failed),
        ];
        let best = BestTrial {
            name: "a".into(),
            parameters: vec![("lr".into(), "0.1".into())],
            objective: 0.5,
        };
        let metrics = [Metric {
            name: "loss".into(),
            min: "0.5".into(),
            max: "0.9".into(),
            latest: "0.5".into(),
        }];
        let s = value(&experiment_status(
            &rows,
            Some((&best, &metrics)),
            ExperimentState::Running,
            "",
        ));
        assert_eq!(
            s["currentOptimalTrial"]["observation"]["metrics"][0]["max"],
            "0.9"
        );
        assert_eq!(s["trials"], 3);
        assert_eq!(s["trialsRunning"], 1);
        assert_eq!(s["trialsKilled"], 0);
        assert_eq!(s["succeededTrialList"], json!(["a"]));
        assert_eq!(s["currentOptimalTrial"]["bestTrialName"], "a");
        assert_eq!(s["currentOptimalTrial"]["objectiveValue"], 0.5);
        assert_eq!(
            s["currentOptimalTrial"]["parameterAssignments"],
            json!([{"name": "lr", "value": "0.1"}])
        );
        assert_eq!(s["conditions"][1]["type"], "Running");
        assert!(s.get("completionTime").is_none());
        let done = value(&experiment_status(
            &rows,
            None,
            ExperimentState::Succeeded,
            "ExperimentGoalReached",
        ));
        assert_eq!(done["conditions"][2]["type"], "Succeeded");
        assert_eq!(done["conditions"][2]["reason"], "ExperimentGoalReached");
        assert_eq!(done["conditions"][1]["status"], "False");
    }

    #[test]
    fn trial_status_ends_with_its_outcome() {
        let s = value(&trial_status(
            TrialState::EarlyStopped,
            "median rule",
            Some(2.0),
        ));
        assert_eq!(s["conditions"][2]["type"], "EarlyStopped");
        assert_eq!(s["conditions"][2]["message"], "median rule");
        assert_eq!(s["objectiveValue"], 2.0);
        let running = value(&trial_status(TrialState::Running, "", None));
        assert_eq!(running["conditions"][1]["type"], "Running");
        assert!(running.get("completionTime").is_none());
        assert!(
            value(&trial_status(TrialState::Succeeded, "", Some(f64::NAN)))
                .get("objectiveValue")
                .is_none()
        );
    }

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).unwrap())
    }

    /// A condition that holds as it did keeps when it began; one that
    /// changed begins now; an ended experiment keeps its completion.
    #[test]
    fn stamping_keeps_transition_times_of_conditions_that_did_not_change() {
        let running = experiment_status(&[], None, ExperimentState::Running, "");
        let first = stamped_experiment(running.clone(), None, &at(10));
        assert_eq!(first.conditions[1].last_transition_time, Some(at(10)));
        assert_eq!(first.last_reconcile_time, Some(at(10)));
        assert_eq!(first.completion_time, None);
        let again = stamped_experiment(running, Some(&first), &at(20));
        assert_eq!(again.conditions[1].last_transition_time, Some(at(10)));
        assert_eq!(again.conditions[1].last_update_time, Some(at(20)));
        let done = experiment_status(&[], None, ExperimentState::Failed, "ExperimentFailed");
        let ended = stamped_experiment(done.clone(), Some(&again), &at(30));
        assert_eq!(ended.conditions[0].last_transition_time, Some(at(10)));
        assert_eq!(ended.conditions[1].last_transition_time, Some(at(30)));
        assert_eq!(ended.completion_time, Some(at(30)));
        let later = stamped_experiment(done, Some(&ended), &at(40));
        assert_eq!(later.completion_time, Some(at(30)));
        let trial = stamped_trial(trial_status(TrialState::Failed, "", None), &at(5));
        assert_eq!(trial.completion_time, Some(at(5)));
        let started = stamped_trial(trial_status(TrialState::Running, "", None), &at(5));
        assert_eq!(started.completion_time, None);
    }

    /// The apply patch names the kind (server-side apply requires it) and
    /// carries the status only.
    #[test]
    fn the_apply_patch_names_the_kind_and_carries_the_status() {
        let status = refused_status("ExperimentInvalid", "no parameters");
        let patch = status_patch::<Experiment>(ApiGroup::Ktune, &status);
        assert_eq!(patch["apiVersion"], "ktune.dev/v1beta1");
        let katib = status_patch::<Experiment>(ApiGroup::Kubeflow, &status);
        assert_eq!(katib["apiVersion"], "kubeflow.org/v1beta1");
        assert_eq!(patch["kind"], "Experiment");
        assert_eq!(patch["status"]["conditions"][1]["type"], "Failed");
        assert_eq!(patch["status"]["conditions"][1]["message"], "no parameters");
        assert_eq!(patch.as_object().unwrap().len(), 3);
    }
}
