//! Categorical parameters, which CMA-ES cannot model: their values have no
//! order, so a Gaussian over a category index means nothing.
//!
//! Optuna's `CmaEsSampler` draws them uniformly at random forever. ktune
//! draws each one independently from a smoothed histogram of the best
//! quarter of the finished trials (a univariate estimation-of-distribution
//! step, like TPE's categorical kernel or PBIL):
//! `p_k = 0.8 · (c_k + 1) / (T + K) + 0.2 / K`, with `c_k` the count of
//! category `k` among the `T` best trials and `K` categories. The `+1` prior
//! and the 20 % uniform floor keep every category alive, so a bad early
//! streak cannot lock one out; with no finished trial it is uniform.
//!
//! Only trials of *completed* generations count, so the distribution is the
//! same however the current generation's members are batched or resumed.

use crate::history::{Objective, TrialRecord, TrialState};
use crate::space::sample::unit_f64;
use crate::space::{Domain, ParamValue, ParameterSpec};

use rand::Rng;

/// Share of the finished trials that make up the "good" histogram.
const TOP_FRACTION: f64 = 0.25;
/// Weight of the plain uniform distribution in the mixture.
const UNIFORM_FLOOR: f64 = 0.2;

/// The histogram source: finished trials, best first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Elite<'a> {
    best_first: Vec<&'a TrialRecord>,
}

impl<'a> Elite<'a> {
    /// The best quarter (at least one) of the trials with a finite value.
    pub(crate) fn new(
        objective: &Objective,
        finished: impl Iterator<Item = &'a TrialRecord>,
    ) -> Self {
        let mut scored: Vec<(f64, &TrialRecord)> = finished
            .filter(|t| matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped))
            .map(|t| (objective.score(t.objective), t))
            .filter(|(s, _)| s.is_finite())
            .collect();
        // Stable: ties keep creation order, so the choice is deterministic.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let top = ((scored.len() as f64 * TOP_FRACTION).ceil() as usize).min(scored.len());
        Self {
            best_first: scored.into_iter().take(top).map(|(_, t)| t).collect(),
        }
    }

    /// A value of the categorical `param`, drawn with `rng`.
    pub(crate) fn draw<R: Rng + ?Sized>(&self, param: &ParameterSpec, rng: &mut R) -> ParamValue {
        let Domain::Categorical { values } = param.domain() else {
            return param.decode(unit_f64(rng));
        };
        let k = values.len().max(1);
        let mut counts = vec![0usize; k];
        for t in &self.best_first {
            let index = t
                .assignment
                .get(param.name())
                .and_then(|v| param.index_of(v))
                .and_then(|i| usize::try_from(i).ok());
            if let Some(c) = index.and_then(|i| counts.get_mut(i)) {
                *c += 1;
            }
        }
        let (kf, total) = (k as f64, self.best_first.len() as f64);
        let u = unit_f64(rng);
        let mut acc = 0.0;
        for (value, count) in values.iter().zip(&counts) {
            let p =
                (1.0 - UNIFORM_FLOOR) * (*count as f64 + 1.0) / (total + kf) + UNIFORM_FLOOR / kf;
            acc += p;
            if u < acc {
                return ParamValue::Text(value.clone());
            }
        }
        // Round-off left `acc` a hair below 1: the last category.
        values
            .last()
            .map_or_else(|| param.decode(u), |v| ParamValue::Text(v.clone()))
    }
}
