//! `medianstop`: Katib's median stopping rule (katib-reference §5.1).
//!
//! Katib's rule, reproduced with the default `aggregate = "mean"`:
//! 1. for every *Succeeded* trial, the mean of its first `start_step`
//!    reported objective values;
//! 2. with at least `min_trials_required` such trials, the threshold is the
//!    arithmetic **mean** of those means (Katib calls it the median);
//! 3. a running trial is compared once it has `start_step` reports, using its
//!    best value among them (Katib's sidecar compares its best-so-far at the
//!    `start_step`-th report): minimise → stop if best > threshold,
//!    maximise → stop if best < threshold.
//!
//! ktune's choices (documented deviations):
//! * the rule is a function of history, so it can be evaluated at any report
//!   `>= start_step` and always looks at the first `start_step` reports — the
//!   same verdict Katib's one-shot check gives, no matter how often or late
//!   the caller asks. The threshold uses the Succeeded trials in the history
//!   passed in (Katib froze it when the trial was created);
//! * `aggregate = "median"` uses the true median of the per-trial means;
//! * non-finite values are skipped when averaging; a trial whose first
//!   `start_step` reports are all non-finite counts as worse than any threshold.

use crate::history::{Direction, Objective, TrialRecord, TrialState};
use crate::settings::Settings;

use super::{EarlyStoppingRule, StopDecision, num};

/// How per-trial means are combined into the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Arithmetic mean (Katib).
    Mean,
    /// True median.
    Median,
}

/// The median stopping rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedianStop {
    /// Succeeded trials needed before any trial is stopped.
    pub min_trials_required: usize,
    /// The number of reports compared.
    pub start_step: usize,
    /// Mean (Katib) or median.
    pub aggregate: Aggregate,
}

impl Default for MedianStop {
    fn default() -> Self {
        Self {
            min_trials_required: 3,
            start_step: 4,
            aggregate: Aggregate::Mean,
        }
    }
}

impl MedianStop {
    /// Reads `min_trials_required`, `start_step` and `aggregate` (Katib's defaults 3, 4, mean).
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        let count = |name, default| {
            settings
                .int(name)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(default)
                .max(1)
        };
        Self {
            min_trials_required: count("min_trials_required", 3),
            start_step: count("start_step", 4),
            aggregate: match settings.text("aggregate") {
                Some("median") => Aggregate::Median,
                _ => Aggregate::Mean,
            },
        }
    }

    /// The threshold from `history` (excluding `skip`), with the number of
    /// trials it came from; `None` below `min_trials_required`.
    #[must_use]
    pub fn threshold(&self, history: &[TrialRecord], skip: &str) -> Option<(f64, usize)> {
        let mut means: Vec<f64> = history
            .iter()
            .filter(|t| t.state == TrialState::Succeeded && t.name != skip)
            .filter_map(|t| {
                let first: Vec<f64> = t
                    .observations
                    .iter()
                    .take(self.start_step)
                    .map(|o| o.value)
                    .filter(|v| v.is_finite())
                    .collect();
                (!first.is_empty()).then(|| first.iter().sum::<f64>() / first.len() as f64)
            })
            .collect();
        if means.len() < self.min_trials_required {
            return None;
        }
        let n = means.len();
        let value = match self.aggregate {
            Aggregate::Mean => means.iter().sum::<f64>() / n as f64,
            Aggregate::Median => {
                means.sort_by(f64::total_cmp);
                let hi = means.get(n / 2).copied().unwrap_or(f64::NAN);
                if n % 2 == 1 {
                    hi
                } else {
                    let lo = means.get(n / 2 - 1).copied().unwrap_or(hi);
                    lo + (hi - lo) / 2.0
                }
            }
        };
        value.is_finite().then_some((value, n))
    }
}

impl EarlyStoppingRule for MedianStop {
    fn name(&self) -> &'static str {
        "medianstop"
    }

    fn evaluate(
        &self,
        trial: &TrialRecord,
        history: &[TrialRecord],
        objective: &Objective,
    ) -> StopDecision {
        if trial.state.is_terminal() || trial.observations.len() < self.start_step {
            return StopDecision::Continue;
        }
        let Some((threshold, n)) = self.threshold(history, &trial.name) else {
            return StopDecision::Continue;
        };
        let best = trial
            .observations
            .iter()
            .take(self.start_step)
            .map(|o| o.value)
            .filter(|v| v.is_finite())
            .reduce(|a, b| objective.best_of(a, b));
        let worse = match best {
            None => true,
            Some(b) => match objective.direction {
                Direction::Minimize => b > threshold,
                Direction::Maximize => b < threshold,
            },
        };
        if !worse {
            return StopDecision::Continue;
        }
        let aggregate = match self.aggregate {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
        };
        let best = best.map_or_else(
            || "no finite value".to_owned(),
            |b| format!("best {} = {}", objective.metric, num(b)),
        );
        StopDecision::Stop {
            reason: format!(
                "medianstop: {best} in the first {} reports is {} than {} = {}, the {aggregate} over {n} succeeded trials of their mean in the first {} reports",
                self.start_step,
                match objective.direction {
                    Direction::Minimize => "higher",
                    Direction::Maximize => "lower",
                },
                aggregate,
                num(threshold),
                self.start_step,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stopping::test_support::trial;
    use TrialState::{Running, Succeeded};

    fn loss() -> Objective {
        Objective::new("loss", Direction::Minimize)
    }

    fn history() -> Vec<TrialRecord> {
        // Means of the first 4 reports: 2.5, 4.5, 6.5 → Katib's threshold 4.5.
        vec![
            trial("a", Succeeded, &[1.0, 2.0, 3.0, 4.0, 0.1]),
            trial("b", Succeeded, &[3.0, 4.0, 5.0, 6.0]),
            trial("c", Succeeded, &[5.0, 6.0, 7.0, 8.0]),
            trial("d", TrialState::Failed, &[0.0, 0.0, 0.0, 0.0]),
        ]
    }

    #[test]
    fn katib_threshold_is_the_mean_of_per_trial_means_of_the_first_start_step_values() {
        assert_eq!(
            MedianStop::default().threshold(&history(), ""),
            Some((4.5, 3))
        );
    }

    #[test]
    fn running_trial_is_compared_by_its_best_of_the_first_start_step_reports() {
        let rule = MedianStop::default();
        // best of first 4 = 4.6 > 4.5 → stop (the fifth report, 0.0, is not looked at).
        let bad = trial("x", Running, &[9.0, 4.6, 7.0, 8.0, 0.0]);
        let d = rule.evaluate(&bad, &history(), &loss());
        match d {
            StopDecision::Stop { reason } => {
                assert!(reason.contains("4.6") && reason.contains("4.5"), "{reason}");
            }
            StopDecision::Continue => panic!("should stop"),
        }
        // best 4.5 equals the threshold → continue (Katib compares strictly).
        let tie = trial("y", Running, &[9.0, 4.5, 7.0, 8.0]);
        assert_eq!(
            rule.evaluate(&tie, &history(), &loss()),
            StopDecision::Continue
        );
        // Fewer than start_step reports → not evaluated yet.
        let early = trial("z", Running, &[99.0, 99.0, 99.0]);
        assert_eq!(
            rule.evaluate(&early, &history(), &loss()),
            StopDecision::Continue
        );
    }

    #[test]
    fn too_few_succeeded_trials_means_no_rule() {
        let rule = MedianStop {
            min_trials_required: 4,
            ..MedianStop::default()
        };
        let bad = trial("x", Running, &[99.0; 4]);
        assert_eq!(
            rule.evaluate(&bad, &history(), &loss()),
            StopDecision::Continue
        );
    }

    #[test]
    fn maximise_flips_the_comparison_and_median_aggregate_uses_the_median() {
        let acc = Objective::new("acc", Direction::Maximize);
        let mut h = history();
        h.push(trial("e", Succeeded, &[100.0; 4]));
        let mean = MedianStop::default();
        let median = MedianStop {
            aggregate: Aggregate::Median,
            ..MedianStop::default()
        };
        assert_eq!(mean.threshold(&h, ""), Some((28.375, 4)));
        assert_eq!(median.threshold(&h, ""), Some((5.5, 4)));
        let t = trial("x", Running, &[1.0, 2.0, 3.0, 6.0]);
        assert!(mean.evaluate(&t, &h, &acc).is_stop());
        assert!(!median.evaluate(&t, &h, &acc).is_stop());
    }

    #[test]
    fn nan_reports_are_skipped_and_all_nan_is_worst() {
        let mut h = history();
        h.push(trial("n", Succeeded, &[f64::NAN; 4]));
        assert_eq!(MedianStop::default().threshold(&h, ""), Some((4.5, 3)));
        let t = trial("x", Running, &[f64::NAN; 4]);
        assert!(MedianStop::default().evaluate(&t, &h, &loss()).is_stop());
    }
}
