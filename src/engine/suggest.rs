//! New trials: the algorithm asked for configurations, each stored as a
//! Pending trial under a deterministic name before anything launches it.

use ktune_algorithms::history::TrialRecord;
use ktune_algorithms::suggest::{AlgorithmState, SuggestRequest};

use super::core::{Engine, EngineError, now_ms};
use crate::metrics::collector::Collector;
use crate::runner::Runner;
use crate::store::{NewTrial, Store};

/// The name of an experiment's `seq`-th trial (from 1): deterministic, so
/// a retried insert after a crash is a no-op, and the same in `ktune run`,
/// the controller and `ktune suggest`.
#[must_use]
pub fn trial_name(experiment: &str, seq: usize) -> String {
    format!("{experiment}-{seq:04}")
}

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// Asks the algorithm for `count` trials and stores them as Pending.
    pub(super) async fn suggest(
        &mut self,
        history: &[TrialRecord],
        count: usize,
    ) -> Result<(), EngineError> {
        let request = SuggestRequest {
            space: &self.setup.plan.space,
            objective: &self.setup.plan.objective,
            history,
            count,
            seed: self.options.seed,
            state: self.algorithm_state.as_ref(),
        };
        let started = std::time::Instant::now();
        let suggestions = self.setup.plan.suggester.suggest(&request);
        self.suggest_seconds.push(started.elapsed().as_secs_f64());
        let suggestions = suggestions?;
        self.exhausted = suggestions.exhausted;
        // Exhaustion ends the experiment once nothing runs: look again.
        self.changed |= suggestions.exhausted;
        if let Some(new_state) = suggestions.state {
            self.save_state(new_state).await?;
        }
        let first = self.rows.len();
        let new: Vec<NewTrial> = suggestions
            .suggestions
            .into_iter()
            .enumerate()
            .map(|(i, s)| NewTrial {
                name: trial_name(&self.setup.name, first + i + 1),
                assignment: s.assignment.to_katib_strings(),
                labels: s.labels,
            })
            .collect();
        let id = self.setup.experiment_id;
        if self.store.insert_trials(id, &new, now_ms()).await? > 0 {
            self.rows = self.store.trials(id).await?;
        }
        Ok(())
    }

    /// Keeps the algorithm's new state, and stores it unless another
    /// writer stored one since: the state is a cache the algorithm can
    /// rebuild from history, so a save lost that way costs only speed.
    async fn save_state(&mut self, state: AlgorithmState) -> Result<(), EngineError> {
        if self
            .store
            .save_algorithm_state(self.setup.experiment_id, self.state_version, &state)
            .await?
        {
            self.state_version += 1;
        }
        self.algorithm_state = Some(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_are_numbered_from_one_in_four_digits() {
        assert_eq!(trial_name("mnist", 1), "mnist-0001");
        assert_eq!(trial_name("mnist", 12_345), "mnist-12345");
    }
}
