//! The status the controller writes: Katib's Experiment counters, trial
//! lists, conditions and `currentOptimalTrial`, and a Trial's conditions
//! and objective — built as JSON merge patches by pure functions, so each
//! is unit-tested without an API server.

use ktune_algorithms::history::TrialState;
use serde_json::{Value, json};

use crate::api::experiment::Metric;
use crate::engine::BestTrial;
use crate::engine::decide::Counts;
use crate::store::{ExperimentState, TrialRow};

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

fn condition(kind: &str, holds: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": if holds { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    })
}

/// A Trial's status once it ended (or started): the conditions Katib
/// shows (Created, then Running, then the outcome) and the objective.
#[must_use]
pub fn trial_status(state: TrialState, reason: &str, objective: Option<f64>, now: &str) -> Value {
    let mut conditions = vec![condition("Created", true, "TrialCreated", "", now)];
    let (kind, default_reason) = trial_condition(state);
    let reason = if reason.is_empty() {
        default_reason
    } else {
        reason
    };
    if state == TrialState::Running {
        conditions.push(condition("Running", true, "TrialRunning", "", now));
    } else if state.is_terminal() {
        conditions.push(condition("Running", false, kind, "", now));
        conditions.push(condition(kind, true, default_reason, reason, now));
    }
    let mut status = json!({ "conditions": conditions, "lastReconcileTime": now });
    if state.is_terminal() {
        status["completionTime"] = json!(now);
    }
    if let Some(v) = objective.filter(|v| v.is_finite()) {
        status["objectiveValue"] = json!(v);
    }
    status
}

/// An Experiment's status: counters and trial lists by state, the
/// conditions for `state`, and the best trial.
#[must_use]
pub fn experiment_status(
    rows: &[TrialRow],
    best: Option<(&BestTrial, &[Metric])>,
    state: ExperimentState,
    reason: &str,
    now: &str,
) -> Value {
    let counts = Counts::from_states(rows.iter().map(|r| r.state));
    let names = |s: TrialState| -> Vec<&str> {
        rows.iter()
            .filter(|r| r.state == s)
            .map(|r| r.name.as_str())
            .collect()
    };
    let mut conditions = vec![condition("Created", true, "ExperimentCreated", "", now)];
    match state {
        ExperimentState::Succeeded | ExperimentState::Failed => {
            let kind = if state == ExperimentState::Succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
            conditions.push(condition("Running", false, reason, "", now));
            conditions.push(condition(kind, true, reason, "", now));
        }
        _ => conditions.push(condition("Running", true, "ExperimentRunning", "", now)),
    }
    let mut status = json!({
        "conditions": conditions,
        "lastReconcileTime": now,
        "trials": counts.total(),
        "trialsPending": counts.pending,
        "trialsRunning": counts.running,
        "trialsSucceeded": counts.succeeded,
        "trialsFailed": counts.failed,
        "trialsKilled": counts.killed,
        "trialsEarlyStopped": counts.early_stopped,
        "trialMetricsUnavailable": counts.metrics_unavailable,
        "pendingTrialList": names(TrialState::Pending),
        "runningTrialList": names(TrialState::Running),
        "succeededTrialList": names(TrialState::Succeeded),
        "failedTrialList": names(TrialState::Failed),
        "killedTrialList": names(TrialState::Killed),
        "earlyStoppedTrialList": names(TrialState::EarlyStopped),
        "metricsUnavailableTrialList": names(TrialState::MetricsUnavailable),
    });
    if matches!(state, ExperimentState::Succeeded | ExperimentState::Failed) {
        status["completionTime"] = json!(now);
    }
    if let Some((best, metrics)) = best {
        status["currentOptimalTrial"] = json!({
            "bestTrialName": best.name,
            "parameterAssignments": best
                .parameters
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
            "observation": {"metrics": metrics},
            "objectiveValue": best.objective,
        });
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: TrialState) -> TrialRow {
        TrialRow {
            name: name.to_owned(),
            ..TrialRow::example(1, state)
        }
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
        let s = experiment_status(
            &rows,
            Some((&best, &metrics)),
            ExperimentState::Running,
            "",
            "t",
        );
        assert_eq!(
            s["currentOptimalTrial"]["observation"]["metrics"][0]["max"],
            "0.9"
        );
        assert_eq!(s["trials"], 3);
        assert_eq!(s["trialsRunning"], 1);
        assert_eq!(s["succeededTrialList"], json!(["a"]));
        assert_eq!(s["currentOptimalTrial"]["bestTrialName"], "a");
        assert_eq!(s["currentOptimalTrial"]["objectiveValue"], 0.5);
        assert_eq!(s["conditions"][1]["type"], "Running");
        assert!(s.get("completionTime").is_none());
        let done = experiment_status(
            &rows,
            None,
            ExperimentState::Succeeded,
            "ExperimentGoalReached",
            "t",
        );
        assert_eq!(done["conditions"][2]["type"], "Succeeded");
        assert_eq!(done["conditions"][2]["reason"], "ExperimentGoalReached");
        assert_eq!(done["conditions"][1]["status"], "False");
    }

    #[test]
    fn trial_status_ends_with_its_outcome() {
        let s = trial_status(TrialState::EarlyStopped, "median rule", Some(2.0), "t");
        assert_eq!(s["conditions"][2]["type"], "EarlyStopped");
        assert_eq!(s["conditions"][2]["message"], "median rule");
        assert_eq!(s["objectiveValue"], 2.0);
        let running = trial_status(TrialState::Running, "", None, "t");
        assert_eq!(running["conditions"][1]["type"], "Running");
        assert!(running.get("completionTime").is_none());
    }
}
