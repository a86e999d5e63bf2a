//! One round of the engine ([`Engine::step`]): read the running trials,
//! then — when anything changed — decide completion, ask for new trials
//! and launch what is pending; and the summary a run ends with.

use ktune_algorithms::history::{TrialRecord, TrialState};

use super::core::{Engine, EngineError, now_ms};
use super::decide::{Counts, completion, trials_to_start};
use super::events::{Event, RunSummary};
use crate::metrics::collector::Collector;
use crate::runner::Runner;
use crate::store::{ExperimentState, Store, TrialRow};

/// How many failed trials a run's summary quotes.
const FAILURES_SHOWN: usize = 3;

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// One round: read the running trials, record those that ended or were
    /// stopped early, and — when anything changed — decide completion, ask
    /// for new trials and launch what is pending. Returns the summary once
    /// the experiment is complete and nothing runs any more.
    ///
    /// # Errors
    /// [`EngineError`] when the store or the algorithm fails.
    pub async fn step(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<RunSummary>, EngineError> {
        if let Some((state, reason)) = self.closed.clone() {
            return Ok(Some(self.summary_now(state, &reason).await?));
        }
        if let Some((done, rerun)) = self.resumed.take() {
            on_event(Event::Resumed {
                experiment: self.setup.name.clone(),
                done,
                rerun,
            });
        }
        self.watch(on_event).await?;
        if !self.changed {
            return Ok(None);
        }
        self.changed = false;
        let decided = self.decide(on_event).await;
        // Decided nothing: the next step decides again.
        self.changed |= decided.is_err();
        decided
    }

    /// Decides on fresh rows: completes the experiment once its budget or
    /// goal is reached and nothing runs, else asks for and launches trials.
    async fn decide(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<RunSummary>, EngineError> {
        self.rows = self.store.trials(self.setup.experiment_id).await?;
        let history = self.history();
        on_event(Event::Progress {
            counts: Counts::of(&history),
        });
        if self.done.is_none() {
            self.done = completion(
                &self.setup.budget,
                &self.setup.plan.objective,
                &history,
                self.exhausted,
            );
        }
        if let Some(reason) = self.done {
            if !self.live.is_empty() {
                return Ok(None);
            }
            let state = if reason.succeeded() {
                ExperimentState::Succeeded
            } else {
                ExperimentState::Failed
            };
            self.store
                .set_experiment_state(
                    self.setup.experiment_id,
                    state,
                    reason.reason(),
                    Some(now_ms()),
                )
                .await?;
            return Ok(Some(self.summary(&history, state, reason.reason())));
        }
        let wanted = usize::try_from(trials_to_start(&self.setup.budget, &history)).unwrap_or(0);
        if !self.exhausted && wanted > 0 {
            self.suggest(&history, wanted).await?;
        }
        self.launch_pending(on_event).await?;
        Ok(None)
    }

    /// The summary of the experiment as stored now.
    pub(super) async fn summary_now(
        &mut self,
        state: ExperimentState,
        reason: &str,
    ) -> Result<RunSummary, EngineError> {
        self.rows = self.store.trials(self.setup.experiment_id).await?;
        if self.finished.is_empty() {
            let ended: Vec<TrialRow> = self
                .rows
                .iter()
                .filter(|r| r.state.is_terminal())
                .cloned()
                .collect();
            for row in &ended {
                self.load_finished(row).await?;
            }
        }
        let history = self.history();
        Ok(self.summary(&history, state, reason))
    }

    fn summary(&self, history: &[TrialRecord], state: ExperimentState, reason: &str) -> RunSummary {
        RunSummary {
            state,
            reason: reason.to_owned(),
            counts: Counts::of(history),
            best: self.best_of(history),
            closed: self.closed.is_some(),
            failures: self.failures(),
            interrupted: self.interrupted,
        }
    }

    /// The last few failed trials and their messages, for the summary.
    fn failures(&self) -> Vec<(String, String)> {
        let failed: Vec<&TrialRow> = self
            .rows
            .iter()
            .filter(|r| r.state == TrialState::Failed)
            .collect();
        failed[failed.len().saturating_sub(FAILURES_SHOWN)..]
            .iter()
            .map(|r| (r.name.clone(), r.message.clone()))
            .collect()
    }
}
