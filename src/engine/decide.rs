//! Pure decisions of the experiment loop, as Katib makes them
//! (katib-reference.md §9, §10.2), from the plan's budget and the trials so
//! far: no clock, no I/O, so every rule is unit-tested on small histories.
//!
//! Two deliberate differences from Katib: a suggester that has nothing more
//! to offer ends the experiment (`ExperimentSuggestionEndReached`, a reason
//! Katib defines but never sets), and `maxTrialCount` caps the number of
//! trials *created*, so metrics-unavailable trials cannot push the total past
//! the budget as they can in Katib.

use ktune_algorithms::history::{Objective, TrialRecord, TrialState};

/// The trial budget of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most trials pending or running at once.
    pub parallel_trial_count: u32,
    /// Completed trials after which the experiment succeeds.
    pub max_trial_count: Option<u32>,
    /// Failed (or metrics-unavailable) trials after which it fails.
    pub max_failed_trial_count: Option<u32>,
}

/// Trials by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Created, not yet running.
    pub pending: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Killed.
    pub killed: u32,
    /// Stopped by the early-stopping rule.
    pub early_stopped: u32,
    /// Succeeded without an objective value.
    pub metrics_unavailable: u32,
}

impl Counts {
    /// Counts the trials of a history.
    #[must_use]
    pub fn of(trials: &[TrialRecord]) -> Self {
        Self::from_states(trials.iter().map(|t| t.state))
    }

    /// Counts trials given only their states.
    #[must_use]
    pub fn from_states(states: impl IntoIterator<Item = TrialState>) -> Self {
        let mut c = Self::default();
        for state in states {
            let slot = match state {
                TrialState::Pending => &mut c.pending,
                TrialState::Running => &mut c.running,
                TrialState::Succeeded => &mut c.succeeded,
                TrialState::Failed => &mut c.failed,
                TrialState::Killed => &mut c.killed,
                TrialState::EarlyStopped => &mut c.early_stopped,
                TrialState::MetricsUnavailable => &mut c.metrics_unavailable,
            };
            *slot = slot.saturating_add(1);
        }
        c
    }

    /// Pending and running trials.
    #[must_use]
    pub fn active(&self) -> u32 {
        self.pending.saturating_add(self.running)
    }

    /// Trials in a terminal state (Katib's maxTrialCount check counts all of these).
    #[must_use]
    pub fn completed(&self) -> u32 {
        [
            self.succeeded,
            self.failed,
            self.killed,
            self.early_stopped,
            self.metrics_unavailable,
        ]
        .into_iter()
        .fold(0, u32::saturating_add)
    }

    /// All trials.
    #[must_use]
    pub fn total(&self) -> u32 {
        self.active().saturating_add(self.completed())
    }
}

/// Why an experiment completed, with Katib's condition reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The best objective reached the goal (Succeeded).
    GoalReached,
    /// Failed and metrics-unavailable trials reached maxFailedTrialCount (Failed).
    TooManyFailures,
    /// Completed trials reached maxTrialCount (Succeeded).
    MaxTrialsReached,
    /// The algorithm has nothing more to suggest and every trial finished (Succeeded).
    SearchExhausted,
}

impl Completion {
    /// Katib's condition reason.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::GoalReached => "ExperimentGoalReached",
            Self::TooManyFailures => "ExperimentFailed",
            Self::MaxTrialsReached => "ExperimentMaxTrialsReached",
            Self::SearchExhausted => "ExperimentSuggestionEndReached",
        }
    }

    /// Whether the experiment succeeded (otherwise it failed).
    #[must_use]
    pub fn succeeded(self) -> bool {
        self != Self::TooManyFailures
    }
}

/// Whether the experiment is complete, checked in Katib's order: goal,
/// failures, budget — then exhaustion, once no trial is still active.
#[must_use]
pub fn completion(
    budget: &Budget,
    objective: &Objective,
    trials: &[TrialRecord],
    exhausted: bool,
) -> Option<Completion> {
    let counts = Counts::of(trials);
    let best = objective
        .best_trial(trials)
        .and_then(TrialRecord::finite_objective);
    if objective.goal_reached(best) {
        return Some(Completion::GoalReached);
    }
    let failures = counts.failed.saturating_add(counts.metrics_unavailable);
    if let Some(max_failed) = budget.max_failed_trial_count
        && failures > 0
        && failures >= max_failed
    {
        return Some(Completion::TooManyFailures);
    }
    if let Some(max) = budget.max_trial_count
        && counts.completed() >= max
    {
        return Some(Completion::MaxTrialsReached);
    }
    (exhausted && counts.active() == 0).then_some(Completion::SearchExhausted)
}

/// How many new trials to ask the algorithm for now: the free parallel
/// slots, never more than the budget has left.
#[must_use]
pub fn trials_to_start(budget: &Budget, trials: &[TrialRecord]) -> u32 {
    let counts = Counts::of(trials);
    let free = budget
        .parallel_trial_count
        .max(1)
        .saturating_sub(counts.active());
    match budget.max_trial_count {
        Some(max) => free.min(max.saturating_sub(counts.total())),
        None => free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_algorithms::history::Direction;
    use ktune_algorithms::space::Assignment;

    fn trial(state: TrialState, objective: Option<f64>) -> TrialRecord {
        let mut t = TrialRecord::new("t", Assignment::new());
        t.state = state;
        t.objective = objective;
        t
    }

    fn budget(parallel: u32, max: Option<u32>, failed: Option<u32>) -> Budget {
        Budget {
            parallel_trial_count: parallel,
            max_trial_count: max,
            max_failed_trial_count: failed,
        }
    }

    fn minimize(goal: Option<f64>) -> Objective {
        let mut o = Objective::new("loss", Direction::Minimize);
        o.goal = goal;
        o
    }

    #[test]
    fn free_slots_are_capped_by_what_the_budget_has_left() {
        let b = budget(3, Some(5), None);
        assert_eq!(trials_to_start(&b, &[]), 3);
        let running = [trial(TrialState::Running, None)];
        assert_eq!(trials_to_start(&b, &running), 2);
        let four = [
            trial(TrialState::Succeeded, Some(1.0)),
            trial(TrialState::Failed, None),
            trial(TrialState::MetricsUnavailable, None),
            trial(TrialState::Running, None),
        ];
        assert_eq!(
            trials_to_start(&b, &four),
            1,
            "never more than maxTrialCount trials"
        );
        assert_eq!(trials_to_start(&budget(2, None, None), &four), 1);
    }

    #[test]
    fn the_goal_wins_over_everything_else() {
        let trials = [
            trial(TrialState::Succeeded, Some(0.01)),
            trial(TrialState::Failed, None),
        ];
        let c = completion(
            &budget(1, Some(2), Some(1)),
            &minimize(Some(0.05)),
            &trials,
            false,
        );
        assert_eq!(c, Some(Completion::GoalReached));
        assert_eq!(c.map(Completion::reason), Some("ExperimentGoalReached"));
    }

    #[test]
    fn failures_count_metrics_unavailable_and_zero_fails_on_the_first() {
        let trials = [trial(TrialState::MetricsUnavailable, None)];
        assert_eq!(
            completion(&budget(1, None, Some(0)), &minimize(None), &trials, false),
            Some(Completion::TooManyFailures)
        );
        assert_eq!(
            completion(&budget(1, None, Some(0)), &minimize(None), &[], false),
            None
        );
        assert_eq!(
            completion(&budget(1, None, Some(2)), &minimize(None), &trials, false),
            None
        );
    }

    #[test]
    fn the_budget_counts_every_completed_state() {
        let trials = [
            trial(TrialState::Succeeded, Some(1.0)),
            trial(TrialState::EarlyStopped, Some(2.0)),
            trial(TrialState::Killed, None),
        ];
        assert_eq!(
            completion(
                &budget(1, Some(3), None),
                &minimize(Some(0.5)),
                &trials,
                false
            ),
            Some(Completion::MaxTrialsReached)
        );
        assert_eq!(
            completion(&budget(1, Some(4), None), &minimize(None), &trials, false),
            None
        );
    }

    #[test]
    fn exhaustion_ends_the_experiment_once_nothing_is_running() {
        let running = [trial(TrialState::Running, None)];
        assert_eq!(
            completion(&budget(1, None, None), &minimize(None), &running, true),
            None
        );
        let done = [trial(TrialState::Succeeded, Some(1.0))];
        let c = completion(&budget(1, None, None), &minimize(None), &done, true);
        assert_eq!(c, Some(Completion::SearchExhausted));
        assert!(c.is_some_and(Completion::succeeded));
    }

    #[test]
    fn nan_objectives_never_reach_a_goal() {
        let trials = [trial(TrialState::Succeeded, Some(f64::NAN))];
        assert_eq!(
            completion(&budget(1, None, None), &minimize(Some(1.0)), &trials, false),
            None
        );
    }
}
