//! What the store reads and writes, as plain Rust values.

use std::collections::BTreeMap;

use ktune_algorithms::history::{Direction, Objective, TrialState};
use ktune_algorithms::suggest::AlgorithmState;

use super::StoreError;

/// Where an experiment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExperimentState {
    /// Stored, no trial yet.
    Created,
    /// Trials are being run.
    Running,
    /// Completed: goal, budget or search space reached.
    Succeeded,
    /// Completed: too many failures or an algorithm error.
    Failed,
}

impl ExperimentState {
    /// The stored word (Katib's condition type).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    /// Parses a stored word.
    ///
    /// # Errors
    /// [`StoreError::UnknownState`] for any other word.
    pub fn parse(word: &str) -> Result<Self, StoreError> {
        Ok(match word {
            "Created" => Self::Created,
            "Running" => Self::Running,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            other => return Err(StoreError::UnknownState(other.to_owned())),
        })
    }
}

/// Parses a stored trial state (its [`TrialState::as_str`] word).
///
/// # Errors
/// [`StoreError::UnknownState`] for any other word.
pub fn state_from_str(word: &str) -> Result<TrialState, StoreError> {
    TrialState::from_word(word).ok_or_else(|| StoreError::UnknownState(word.to_owned()))
}

/// A stored experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRecord {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The experiment as JSON (defaulted spec and metadata).
    pub spec: serde_json::Value,
    /// Where it stands.
    pub state: ExperimentState,
    /// Why (Katib's condition reason), empty while running.
    pub reason: String,
    /// When it was stored (Unix ms).
    pub created_at: i64,
    /// When it completed (Unix ms).
    pub completed_at: Option<i64>,
    /// The algorithm's saved state, if any.
    pub algorithm_state: Option<AlgorithmState>,
    /// Version of the saved state (0 = none), for compare-and-set.
    pub algorithm_state_version: i64,
}

impl ExperimentRecord {
    /// The objective as the stored spec states it (minimise `objective`
    /// when the spec says nothing).
    #[must_use]
    pub fn objective(&self) -> Objective {
        let objective = self.spec.pointer("/spec/objective");
        let metric = objective
            .and_then(|o| o.get("objectiveMetricName"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("objective");
        let maximize = objective
            .and_then(|o| o.get("type"))
            .and_then(serde_json::Value::as_str)
            == Some("maximize");
        let direction = if maximize {
            Direction::Maximize
        } else {
            Direction::Minimize
        };
        Objective::new(metric, direction)
    }
}

/// The succeeded trial with the best finite objective — `ktune run`'s
/// rule ([`Objective::best_by`]) over stored rows, for `ktune best` and
/// the dashboard.
#[must_use]
pub fn best_trial<'a>(trials: &'a [TrialRow], objective: &Objective) -> Option<&'a TrialRow> {
    objective.best_by(trials, |t| (t.state, t.objective))
}

/// A trial to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    /// Unique within the experiment; deterministic, so a retried insert is a no-op.
    pub name: String,
    /// Parameter name → value, as the text handed to the trial.
    pub assignment: Vec<(String, String)>,
    /// The suggester's labels.
    pub labels: BTreeMap<String, String>,
}

/// A stored trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    /// Database id.
    pub id: i64,
    /// Position in the experiment, from 1.
    pub seq: i64,
    /// Unique name within the experiment.
    pub name: String,
    /// Parameter name → value text.
    pub assignment: Vec<(String, String)>,
    /// The suggester's labels.
    pub labels: BTreeMap<String, String>,
    /// Where it stands.
    pub state: TrialState,
    /// Why (Katib's condition reason).
    pub reason: String,
    /// For humans.
    pub message: String,
    /// The objective after the metric strategy, once known.
    pub objective: Option<f64>,
    /// When it was stored (Unix ms).
    pub created_at: i64,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it completed.
    pub completed_at: Option<i64>,
}

impl TrialRow {
    /// Whether it can be the best trial: succeeded, with a finite objective.
    #[must_use]
    pub fn counts_for_best(&self) -> bool {
        self.state.counts_for_best(self.objective)
    }

    /// A trial for unit tests: id and position `seq`, named `t{seq}`, in
    /// `state`, nothing else set (override fields with `..`).
    #[cfg(test)]
    pub(crate) fn example(seq: i64, state: TrialState) -> Self {
        Self {
            id: seq,
            seq,
            name: format!("t{seq}"),
            assignment: Vec::new(),
            labels: BTreeMap::new(),
            state,
            reason: String::new(),
            message: String::new(),
            objective: None,
            created_at: 0,
            started_at: None,
            completed_at: None,
        }
    }

    /// The value assigned to parameter `name`, as stored.
    #[must_use]
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.assignment
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a trial's state changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// The new state.
    pub state: TrialState,
    /// Katib's condition reason.
    pub reason: String,
    /// For humans.
    pub message: String,
    /// The objective, when the trial completed with one.
    pub objective: Option<f64>,
    /// When (Unix ms).
    pub at: i64,
}

/// One stored report of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    /// The metric.
    pub metric: String,
    /// The report's position (the n-th report of this metric, or the step the trial gave).
    pub step: i64,
    /// The value as reported.
    pub value: String,
    /// The value as a number, when it is one.
    pub number: Option<f64>,
    /// When it was reported (Unix ms), when known.
    pub time: Option<i64>,
}
