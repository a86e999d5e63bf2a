//! `asha`: asynchronous successive halving as a stopping rule (Li et al.
//! 2020, "A System for Massively Parallel Hyperparameter Tuning"), following
//! Ray Tune's `ASHAScheduler` (the stop-based variant). Not in Katib (its
//! issue #1582); settings `reduction_factor` (eta), `grace_period`, `max_t`.
//!
//! Rungs sit at steps `grace_period * eta^k` below `max_t`. A trial whose
//! latest report has reached step `m` of its highest rung is compared with
//! every other trial that has reached that rung, whatever its state now
//! (running, finished or stopped): each trial's value at the rung is the
//! value of its first report with step `>= m` — Ray records the result that
//! crosses the milestone, not the best so far. The trial stops when its value
//! is worse than the `(1 - 1/eta)` quantile of the peers' values (numpy's
//! linear interpolation, as Ray's `np.nanpercentile`), i.e. when it is not in
//! the top `1/eta`. With no peer at the rung it continues (Ray: no cutoff).
//! A trial that reports a step `>= max_t` is stopped: its budget is spent.
//!
//! Difference from Ray: Ray compares once, against the peers recorded before
//! the trial crossed the milestone. As a function of history, ktune compares
//! against every peer at the trial's highest rung each time it is asked, so a
//! trial that a late, better peer pushes out of the top `1/eta` can still be
//! stopped before it reaches the next rung. Non-finite peer values are
//! ignored (`nanpercentile`); a trial's own non-finite value is the worst.
//! Steps come from `Observation::step` (the caller maps `step_metric`).

use crate::history::{Objective, TrialRecord};
use crate::settings::Settings;

use super::{EarlyStoppingRule, StopDecision, num};

/// ASHA, stop-based.
#[derive(Debug, Clone, PartialEq)]
pub struct Asha {
    /// The reduction factor (> 1).
    pub eta: f64,
    /// The first rung's step (≥ 1).
    pub grace_period: u64,
    /// The step at which every trial stops; no cap when absent.
    pub max_t: Option<u64>,
}

impl Default for Asha {
    fn default() -> Self {
        Self {
            eta: 3.0,
            grace_period: 1,
            max_t: None,
        }
    }
}

/// Value at `quantile` in `[0, 1]` of sorted `values`, numpy's "linear" method.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let a = *sorted.get(lo)?;
    let b = sorted.get(lo + 1).copied().unwrap_or(a);
    let frac = rank - lo as f64;
    Some(a + frac * (b - a))
}

impl Asha {
    /// Reads `reduction_factor`, `grace_period`, `max_t`.
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        let eta = settings
            .float("reduction_factor")
            .filter(|e| *e > 1.0 && e.is_finite())
            .unwrap_or(3.0);
        Self {
            eta,
            grace_period: settings
                .int("grace_period")
                .and_then(|g| u64::try_from(g).ok())
                .unwrap_or(1)
                .max(1),
            max_t: settings.int("max_t").and_then(|m| u64::try_from(m).ok()),
        }
    }

    /// The rung milestones, ascending (below `max_t`, at most 64).
    #[must_use]
    pub fn milestones(&self) -> Vec<f64> {
        let (grace, cap) = (
            self.grace_period as f64,
            self.max_t.map_or(f64::MAX, |m| m as f64),
        );
        (0..64)
            .map(|k| grace * self.eta.powi(k))
            .take_while(|m| *m < cap && m.is_finite())
            .collect()
    }
}

/// The value of the first report at or after `milestone`.
fn value_at(trial: &TrialRecord, milestone: f64) -> Option<f64> {
    trial
        .observations
        .iter()
        .find(|o| o.step as f64 >= milestone)
        .map(|o| o.value)
}

impl EarlyStoppingRule for Asha {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn evaluate(
        &self,
        trial: &TrialRecord,
        history: &[TrialRecord],
        objective: &Objective,
    ) -> StopDecision {
        if trial.state.is_terminal() {
            return StopDecision::Continue;
        }
        let Some(latest) = trial.observations.iter().map(|o| o.step).max() else {
            return StopDecision::Continue;
        };
        if let Some(max_t) = self.max_t
            && latest >= max_t
        {
            return StopDecision::Stop {
                reason: format!("asha: reached max_t = {max_t} (latest step {latest})"),
            };
        }
        let Some(milestone) = self.milestones().into_iter().rfind(|m| *m <= latest as f64) else {
            return StopDecision::Continue;
        };
        let own = objective.score(value_at(trial, milestone));
        let mut peers: Vec<f64> = history
            .iter()
            .filter(|t| t.name != trial.name)
            .filter_map(|t| value_at(t, milestone))
            .map(|v| objective.score(Some(v)))
            .filter(|s| s.is_finite())
            .collect();
        peers.sort_by(f64::total_cmp);
        let Some(cutoff) = quantile(&peers, 1.0 - 1.0 / self.eta) else {
            return StopDecision::Continue;
        };
        if own >= cutoff {
            return StopDecision::Continue;
        }
        // Scores are "larger is better"; turn them back into metric values.
        let unscore = |s: f64| match objective.direction {
            crate::history::Direction::Maximize => s,
            crate::history::Direction::Minimize => -s,
        };
        let own_text = value_at(trial, milestone).map_or_else(|| "no value".to_owned(), num);
        StopDecision::Stop {
            reason: format!(
                "asha: {} = {own_text} at rung step {} is outside the top 1/{} of {} trials at that rung (cutoff {})",
                objective.metric,
                num(milestone),
                num(self.eta),
                peers.len() + 1,
                num(unscore(cutoff)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Direction, TrialState::*};
    use crate::stopping::test_support::trial;

    #[test]
    fn milestones_follow_grace_period_times_eta_powers_below_max_t() {
        let a = Asha {
            eta: 3.0,
            grace_period: 1,
            max_t: Some(27),
        };
        assert_eq!(a.milestones(), vec![1.0, 3.0, 9.0]);
    }

    #[test]
    fn a_trial_outside_the_top_third_at_its_rung_stops() {
        let a = Asha {
            eta: 3.0,
            grace_period: 1,
            max_t: Some(100),
        };
        let acc = Objective::new("acc", Direction::Maximize);
        // Values at rung step 3 (third report): 0.3, 0.5, 0.9 → cutoff = 66.7th
        // percentile = 0.5 + (2/3*2 - 1) * 0.4 = 0.6333…
        let h = vec![
            trial("a", Succeeded, &[0.1, 0.2, 0.3, 0.4]),
            trial("b", EarlyStopped, &[0.1, 0.2, 0.5]),
            trial("c", Running, &[0.1, 0.2, 0.9]),
        ];
        let x = trial("x", Running, &[0.0, 0.0, 0.6]);
        assert!(a.evaluate(&x, &h, &acc).is_stop());
        let y = trial("y", Running, &[0.0, 0.0, 0.7]);
        assert!(!a.evaluate(&y, &h, &acc).is_stop());
        // Between rungs 3 and 9 the rung-3 value decides, not later reports.
        let z = trial("z", Running, &[0.0, 0.0, 0.6, 1.0]);
        assert!(a.evaluate(&z, &h, &acc).is_stop());
    }

    #[test]
    fn no_peer_at_the_rung_means_continue_and_max_t_stops() {
        let a = Asha {
            eta: 2.0,
            grace_period: 2,
            max_t: Some(5),
        };
        let loss = Objective::new("loss", Direction::Minimize);
        let h = vec![trial("a", Succeeded, &[1.0])];
        let x = trial("x", Running, &[9.0, 9.0]);
        assert!(!a.evaluate(&x, &h, &loss).is_stop());
        let done = trial("y", Running, &[9.0, 9.0, 9.0, 9.0, 9.0]);
        assert!(a.evaluate(&done, &h, &loss).is_stop());
    }

    #[test]
    fn minimise_stops_the_larger_values_and_nan_is_worst() {
        let a = Asha::default();
        let loss = Objective::new("loss", Direction::Minimize);
        let h = vec![
            trial("a", Succeeded, &[1.0]),
            trial("b", Succeeded, &[2.0, f64::NAN]),
        ];
        assert!(
            a.evaluate(&trial("x", Running, &[1.5]), &h, &loss)
                .is_stop()
        );
        assert!(
            !a.evaluate(&trial("x", Running, &[0.5]), &h, &loss)
                .is_stop()
        );
        assert!(
            a.evaluate(&trial("x", Running, &[f64::NAN]), &h, &loss)
                .is_stop()
        );
    }
}
