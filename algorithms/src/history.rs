//! What the suggesters and stopping rules read: the trials so far and the objective.
//!
//! The engine builds these records from its store; the algorithms only read
//! them. Values from trials are data, not invariants: a NaN or infinite
//! objective or observation is treated as missing (the worst possible value)
//! everywhere in this crate, never as a reason to panic.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::space::Assignment;

/// A trial's lifecycle state (Katib's trial conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrialState {
    /// Created, not yet running.
    Pending,
    /// Running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed.
    Failed,
    /// Killed by the user or the system.
    Killed,
    /// Stopped by an early-stopping rule.
    EarlyStopped,
    /// Finished, but its objective metric was never reported.
    MetricsUnavailable,
}

impl TrialState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Killed,
        Self::EarlyStopped,
        Self::MetricsUnavailable,
    ];

    /// Whether the trial will not change any more.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// The state's word, as stored, shown and filtered on (Katib's
    /// condition type, but `Pending` for a trial not yet running).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Killed => "Killed",
            Self::EarlyStopped => "EarlyStopped",
            Self::MetricsUnavailable => "MetricsUnavailable",
        }
    }

    /// The state whose word this is ([`Self::as_str`]).
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Whether a trial in this state with this objective value can be the
    /// best trial: it succeeded with a finite objective.
    #[must_use]
    pub fn counts_for_best(self, objective: Option<f64>) -> bool {
        self == Self::Succeeded && objective.is_some_and(f64::is_finite)
    }
}

/// One report of the objective metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The step (epoch, iteration …) of the report; the caller fills it.
    pub step: u64,
    /// The reported value (possibly NaN: treated as missing).
    pub value: f64,
}

/// One trial as the algorithms see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The trial's unique name.
    pub name: String,
    /// The parameter values it ran with.
    pub assignment: Assignment,
    /// The labels the suggester attached to it (handed back unchanged).
    pub labels: BTreeMap<String, String>,
    /// Its current state.
    pub state: TrialState,
    /// Its final objective value after Katib's metric strategy, set by the caller.
    pub objective: Option<f64>,
    /// The objective metric's reports, in order.
    pub observations: Vec<Observation>,
}

impl TrialRecord {
    /// A pending trial with no labels and no observations.
    #[must_use]
    pub fn new(name: impl Into<String>, assignment: Assignment) -> Self {
        Self {
            name: name.into(),
            assignment,
            labels: BTreeMap::new(),
            state: TrialState::Pending,
            objective: None,
            observations: Vec::new(),
        }
    }

    /// The objective value if it is a finite number.
    #[must_use]
    pub fn finite_objective(&self) -> Option<f64> {
        self.objective.filter(|v| v.is_finite())
    }
}

/// Whether smaller or larger objective values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Smaller is better.
    Minimize,
    /// Larger is better.
    Maximize,
}

/// The experiment's objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The objective metric's name.
    pub metric: String,
    /// Minimise or maximise.
    pub direction: Direction,
    /// Optional goal: reached when the best value is ≤ goal (minimise) or ≥ goal (maximise).
    pub goal: Option<f64>,
}

impl Objective {
    /// An objective without a goal.
    #[must_use]
    pub fn new(metric: impl Into<String>, direction: Direction) -> Self {
        Self {
            metric: metric.into(),
            direction,
            goal: None,
        }
    }

    /// The value as a "larger is better" score; missing or non-finite values
    /// score `-inf`, below every real value.
    #[must_use]
    pub fn score(&self, value: Option<f64>) -> f64 {
        match value.filter(|v| v.is_finite()) {
            None => f64::NEG_INFINITY,
            Some(v) => match self.direction {
                Direction::Maximize => v,
                Direction::Minimize => -v,
            },
        }
    }

    /// Whether `a` is strictly better than `b` (missing/NaN is never better).
    #[must_use]
    pub fn is_better(&self, a: Option<f64>, b: Option<f64>) -> bool {
        self.score(a) > self.score(b)
    }

    /// Orders values best first; missing/NaN last. A total order (ties equal).
    #[must_use]
    pub fn cmp_best_first(&self, a: Option<f64>, b: Option<f64>) -> Ordering {
        self.score(b).total_cmp(&self.score(a))
    }

    /// The better of two values (`a` on ties).
    #[must_use]
    pub fn best_of(&self, a: f64, b: f64) -> f64 {
        if self.is_better(Some(b), Some(a)) {
            b
        } else {
            a
        }
    }

    /// Whether `value` reaches the goal (false without a goal or for NaN).
    #[must_use]
    pub fn goal_reached(&self, value: Option<f64>) -> bool {
        match (self.goal, value.filter(|v| v.is_finite())) {
            (Some(goal), Some(v)) => match self.direction {
                Direction::Minimize => v <= goal,
                Direction::Maximize => v >= goal,
            },
            _ => false,
        }
    }

    /// The succeeded trial with the best finite objective (earliest on ties).
    #[must_use]
    pub fn best_trial<'a>(&self, history: &'a [TrialRecord]) -> Option<&'a TrialRecord> {
        self.best_by(history, |t| (t.state, t.objective))
    }

    /// The best trial of any kind of trial row, `outcome` reading a row's
    /// state and objective: the one rule for "the best trial" (see
    /// [`TrialState::counts_for_best`]; earliest on ties), whether the
    /// rows are an algorithm's history or a store's.
    pub fn best_by<'a, T: 'a>(
        &self,
        trials: impl IntoIterator<Item = &'a T>,
        outcome: impl Fn(&T) -> (TrialState, Option<f64>),
    ) -> Option<&'a T> {
        trials
            .into_iter()
            .map(|t| (t, outcome(t)))
            .filter(|(_, (state, objective))| state.counts_for_best(*objective))
            .reduce(|best, t| {
                if self.is_better(t.1.1, best.1.1) {
                    t
                } else {
                    best
                }
            })
            .map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_one_word_that_reads_back() {
        for state in TrialState::ALL {
            assert_eq!(TrialState::from_word(state.as_str()), Some(state));
        }
        assert_eq!(TrialState::from_word("Created"), None);
        assert_eq!(TrialState::EarlyStopped.as_str(), "EarlyStopped");
    }

    #[test]
    fn nan_and_missing_are_worst_in_both_directions() {
        for direction in [Direction::Minimize, Direction::Maximize] {
            let o = Objective::new("loss", direction);
            assert!(o.is_better(Some(1e300), Some(f64::NAN)));
            assert!(o.is_better(Some(-1e300), None));
            assert!(!o.is_better(Some(f64::NAN), None));
            assert!(!o.is_better(Some(f64::INFINITY), Some(0.0)));
        }
        let min = Objective::new("loss", Direction::Minimize);
        assert!(min.is_better(Some(1.0), Some(2.0)));
        assert_eq!(min.best_of(2.0, f64::NAN), 2.0);
    }

    #[test]
    fn goal_follows_direction() {
        let mut o = Objective::new("acc", Direction::Maximize);
        o.goal = Some(0.9);
        assert!(o.goal_reached(Some(0.9)));
        assert!(!o.goal_reached(Some(0.89)));
        assert!(!o.goal_reached(Some(f64::NAN)));
    }

    #[test]
    fn best_trial_ignores_unfinished_and_nan() {
        let o = Objective::new("loss", Direction::Minimize);
        let mut a = TrialRecord::new("a", Assignment::new());
        a.state = TrialState::Succeeded;
        a.objective = Some(f64::NAN);
        let mut b = a.clone();
        b.name = "b".into();
        b.objective = Some(3.0);
        let mut c = b.clone();
        c.name = "c".into();
        c.state = TrialState::Running;
        c.objective = Some(1.0);
        assert_eq!(o.best_trial(&[a, b, c]).map(|t| t.name.as_str()), Some("b"));
    }
}
