//! How trials end: an ended trial's last reports are read and its outcome
//! stored (Succeeded, MetricsUnavailable, EarlyStopped or Failed, as Katib
//! decides); an interrupted run sends its trials back to Pending, and an
//! abandoned one stops them and writes nothing.

use ktune_algorithms::history::TrialState;

use super::core::{Engine, EngineError, now_ms};
use super::events::{Event, RunSummary};
use super::live::Live;
use super::tail;
use crate::metrics::collector::Collector;
use crate::metrics::reduce::{UNAVAILABLE, objective_value, reduce};
use crate::runner::{Exit, Runner, TrialRun};
use crate::store::{ExperimentState, Store, TrialOutcome};

/// The stored message of a trial an interrupted run stopped.
const INTERRUPTED: &str = "the run was interrupted while the trial ran; it runs again, under the same name and folder, when the experiment is resumed";

/// How an ended trial is recorded: its state, Katib's reason and a message.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    state: TrialState,
    reason: &'static str,
    message: String,
}

/// Katib's verdict on a trial that ended with `exit`: stopped by the rule
/// when it gave a reason; succeeded only with an objective value (else its
/// metrics are unavailable); otherwise failed, with `failure`'s message.
fn verdict(
    exit: &Exit,
    stop_reason: Option<String>,
    (objective, reported): (Option<f64>, bool),
    metric: &str,
    failure: impl FnOnce() -> String,
) -> Verdict {
    let (state, reason, message) = match (exit, stop_reason) {
        (_, Some(why)) => (TrialState::EarlyStopped, "TrialEarlyStopped", why),
        // A value that is not a number counts as reported, as in Katib
        // (DARTS reports its genotype).
        (Exit::Succeeded, None) if objective.is_some() || reported => {
            (TrialState::Succeeded, "TrialSucceeded", String::new())
        }
        (Exit::Succeeded, None) => (
            TrialState::MetricsUnavailable,
            "MetricsUnavailable",
            format!("the objective metric {metric:?} was never reported"),
        ),
        (_, None) => (TrialState::Failed, "TrialFailed", failure()),
    };
    Verdict {
        state,
        reason,
        message,
    }
}

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// Reads an ended trial's last reports and records how it ended. On a
    /// store failure the trial keeps what is left to write, for a retry.
    pub(super) async fn record_end(
        &mut self,
        l: &mut Live<R::Trial, C::Trial>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let Some((exit, stop_reason)) = l.pending.ended.clone() else {
            return Ok(());
        };
        self.read_reports(l, true, on_event).await;
        // Reports read only with the end are judged too: had they come a
        // poll earlier, the rule would have stopped the trial.
        let stop_reason = match stop_reason {
            None if !l.pending.interrupted && self.setup.plan.early_stopping.is_some() => {
                let reason = self.judge(l, &self.history());
                l.pending.ended = Some((exit.clone(), reason.clone()));
                reason
            }
            given => given,
        };
        self.store_reports(l).await?;
        if l.pending.interrupted {
            return self.requeue(l, on_event).await;
        }
        let reduced = reduce(&self.setup.plan.objective.metric, &l.logs);
        let objective = objective_value(&reduced, &self.setup.strategy);
        let reported = reduced.latest != UNAVAILABLE;
        let verdict = verdict(
            &exit,
            stop_reason,
            (objective, reported),
            &self.setup.plan.objective.metric,
            || {
                let stderr = l.run.stderr().map(tail::last_lines).unwrap_or_default();
                tail::with_stderr(&exit.reason(), &l.row.name, &stderr)
            },
        );
        self.store_end(l, verdict, objective, on_event).await
    }

    /// Stores an ended trial's verdict and lets it go.
    async fn store_end(
        &mut self,
        l: &mut Live<R::Trial, C::Trial>,
        verdict: Verdict,
        objective: Option<f64>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let outcome = TrialOutcome {
            state: verdict.state,
            reason: verdict.reason.to_owned(),
            message: verdict.message,
            objective,
            at: now_ms(),
        };
        self.store
            .transition(l.row.id, &[TrialState::Running], &outcome)
            .await?;
        self.collector.detach(&l.row.name);
        self.finished
            .insert(l.row.name.clone(), std::mem::take(&mut l.series));
        self.changed = true;
        on_event(Event::Finished {
            trial: l.row.name.clone(),
            state: outcome.state,
            objective: outcome.objective,
            reason: if outcome.message.is_empty() {
                outcome.reason
            } else {
                outcome.message
            },
        });
        Ok(())
    }

    /// Stops every running trial and sends it back to Pending with its
    /// reports (one that had already ended is recorded as it ended): the
    /// experiment stays Running, so opening it again runs those trials
    /// again under their names and folders (a trainer that checkpoints
    /// into `KTUNE_TRIAL_DIR` continues), as after a crash, and they do
    /// not count toward the budget. The trials are stopped together (one
    /// grace period in all). Every trial is stopped even when the store
    /// fails; the first failure is returned, and the trials not recorded
    /// run again on resume all the same.
    ///
    /// # Errors
    /// [`EngineError`] when the store fails.
    pub async fn interrupt(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<RunSummary, EngineError> {
        let mut live = std::mem::take(&mut self.live);
        futures::future::join_all(live.iter_mut().filter(|l| l.pending.ended.is_none()).map(
            |l| async {
                l.run.stop().await;
                l.pending.ended = Some((Exit::Stopped, None));
                l.pending.interrupted = true;
            },
        ))
        .await;
        for mut l in live {
            self.record_end(&mut l, on_event).await?;
        }
        let (state, reason) = self
            .closed
            .clone()
            .unwrap_or((ExperimentState::Running, String::new()));
        self.summary_now(state, &reason).await
    }

    /// Records a trial stopped by the run's interruption: its last reports
    /// are stored and it is Pending again, to run on resume.
    async fn requeue(
        &mut self,
        l: &mut Live<R::Trial, C::Trial>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let outcome = TrialOutcome {
            state: TrialState::Pending,
            reason: "Interrupted".into(),
            message: INTERRUPTED.into(),
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(l.row.id, &[TrialState::Running], &outcome)
            .await?;
        self.collector.detach(&l.row.name);
        self.interrupted += 1;
        on_event(Event::Interrupted {
            trial: l.row.name.clone(),
        });
        Ok(())
    }

    /// Stops every running trial and writes nothing: for a driver that
    /// lost the experiment to another (whose rows they are now), or that
    /// cannot reach the store (the trials run again on resume).
    pub async fn abandon(&mut self) {
        let mut live = std::mem::take(&mut self.live);
        // Together, as `interrupt` does: one grace period in all.
        futures::future::join_all(live.iter_mut().map(|l| l.run.stop())).await;
        for l in &live {
            self.collector.detach(&l.row.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> String {
        "exit 1".into()
    }

    #[test]
    fn katib_decides_how_an_ended_trial_is_recorded() {
        let stopped = verdict(
            &Exit::Stopped,
            Some("below median".into()),
            (Some(1.0), true),
            "loss",
            failed,
        );
        assert_eq!(stopped.state, TrialState::EarlyStopped);
        assert_eq!(stopped.message, "below median");
        let ok = verdict(&Exit::Succeeded, None, (Some(0.5), true), "loss", failed);
        assert_eq!(
            (ok.state, ok.reason),
            (TrialState::Succeeded, "TrialSucceeded")
        );
        let silent = verdict(&Exit::Succeeded, None, (None, false), "loss", failed);
        assert_eq!(silent.state, TrialState::MetricsUnavailable);
        assert!(silent.message.contains("\"loss\""), "{}", silent.message);
        // Katib accepts an objective that is not a number (DARTS's genotype).
        let genotype = verdict(&Exit::Succeeded, None, (None, true), "loss", failed);
        assert_eq!(genotype.state, TrialState::Succeeded);
        let crashed = verdict(
            &Exit::Failed { code: 1 },
            None,
            (Some(0.5), true),
            "loss",
            failed,
        );
        assert_eq!(
            crashed,
            Verdict {
                state: TrialState::Failed,
                reason: "TrialFailed",
                message: "exit 1".into()
            }
        );
    }
}
