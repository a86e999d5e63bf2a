//! Parzen estimators: mixtures of one kernel per observation plus a prior
//! kernel (Bergstra et al., "Algorithms for Hyper-Parameter Optimization",
//! NeurIPS 2011; Optuna's `_ParzenEstimator` and
//! `_MixtureOfProductDistribution`).
//!
//! A mixture covers one dimension (univariate `tpe`) or all of them
//! (`multivariate-tpe`: every kernel is a product over the dimensions and
//! one kernel index is drawn for all of them, Falkner et al. 2018, "BOHB").
//! Kernel weights are the observations' weights and `prior_weight` for the
//! prior, normalised. Bandwidths follow Optuna 5 (which dropped Scott's
//! rule for the multivariate estimator), with one change to the clip:
//!
//! * per dimension, each kernel's sigma is the larger gap to its neighbours
//!   among the sorted observations, the range ends counting as neighbours
//!   except for the outermost kernels, which use their inner gap
//!   (`consider_endpoints=False`);
//! * then the "magic clip" to `[width / min(100, r + 2), width]`, which keeps
//!   a cluster of observations from collapsing the density to a spike.
//!   Optuna takes `r = m`, the estimator's own kernel count; ktune takes
//!   `r = sqrt(m * n)`, the geometric mean of `m` and the `n` ranked trials
//!   of the whole history (see [`min_sigma`]). The bad group holds nearly
//!   every trial, so its floor is Optuna's; the good group's floor narrows
//!   with the history instead of with its own tenth of it;
//! * on integer and discrete dimensions of the per-dimension estimators
//!   (`tpe`), the floor is the geometric mean of that and Optuna's (see
//!   [`ladder_min_sigma`]): a floor much under a step turns the good
//!   kernels into point masses and the search never tries the
//!   neighbouring integers;
//! * the prior kernel: centre of the range, sigma = width (Katib's
//!   `normal`/`logNormal`: width / 6).
//!
//! Numeric kernels are normals truncated to the dimension's interval (see
//! [`super::dims`] for quantised points); categorical kernels put
//! `1 + prior_weight / n_kernels` on the observed value and
//! `prior_weight / n_kernels` on every value, normalised.

use rand::Rng;

use super::dims::{Dim, Ladder};
use super::truncnorm::{Gauss, LN_SQRT_2PI, exp_neg, norm_mass};
use crate::space::sample::unit_f64;

/// Estimator-wide settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup<'a> {
    /// The model of every parameter, in space order.
    pub(crate) dims: &'a [Dim],
    /// The prior kernel's weight before normalisation.
    pub(crate) prior_weight: f64,
    /// The ranked trials (succeeded or early-stopped with a finite
    /// objective) of the whole history, both groups together: the
    /// resolution the search has reached, for the clip's floor.
    pub(crate) n_ranked: usize,
    /// Whether the estimators are joint over all dimensions
    /// (`multivariate-tpe`) rather than one per dimension: integer and
    /// discrete dimensions keep the narrower floor there (see
    /// [`ladder_min_sigma`]).
    pub(crate) joint: bool,
}

/// The observations one estimator is fitted to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fit<'a> {
    /// Row-major coordinates, `setup.dims.len()` per row.
    pub(crate) coords: &'a [f64],
    /// The rows to use.
    pub(crate) rows: &'a [usize],
}

/// Normalised kernel weights, shared by every dimension's estimator of
/// one group (their logarithms are a good part of the cost at 1 000 trials).
#[derive(Debug, Clone)]
pub(crate) struct KernelWeights {
    log: Vec<f64>,
    cumulative: Vec<f64>,
}

impl KernelWeights {
    /// The observations' `weights` followed by `prior_weight`, normalised.
    pub(crate) fn new(weights: &[f64], prior_weight: f64) -> Self {
        let total = weights.iter().sum::<f64>() + prior_weight;
        // Most weights are 1 (the newest 25 and all of a small history).
        let ln_total = total.ln();
        let all = weights.iter().chain(std::iter::once(&prior_weight));
        let log = all
            .clone()
            .map(|&w| {
                if w == 1.0 {
                    -ln_total
                } else {
                    w.ln() - ln_total
                }
            })
            .collect();
        let mut running = 0.0;
        let cumulative = all
            .map(|w| {
                running += w / total;
                running
            })
            .collect();
        Self { log, cumulative }
    }
}

#[derive(Debug, Clone)]
struct Numeric {
    low: f64,
    high: f64,
    ladder: Option<Ladder>,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    inv_sigmas: Vec<f64>,
    /// Continuous: `-ln sigma - ln sqrt(2 pi) - ln Z`; ladder: `-ln Z`.
    log_norm: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Categorical {
    n: usize,
    /// The observed index of each observation kernel (the prior has none).
    observed: Vec<usize>,
    ln_hit: f64,
    ln_miss: f64,
    /// The probability that an observation kernel returns its own value
    /// through the "hit" branch when sampling.
    hit_share: f64,
}

#[derive(Debug, Clone)]
enum Column {
    Numeric(Numeric),
    Categorical(Categorical),
}

/// A fitted mixture over some dimensions.
#[derive(Debug, Clone)]
pub(crate) struct Parzen<'a> {
    columns: Vec<(usize, Column)>,
    weights: &'a KernelWeights,
}

fn coordinate(fit: &Fit<'_>, d: usize, row: usize, dim: usize) -> f64 {
    fit.coords.get(row * d + dim).copied().unwrap_or(0.0)
}

/// Optuna 5's bandwidths (`_calculate_numerical_distributions`): per
/// kernel, the larger gap to its sorted neighbours among the observations,
/// the range ends counting as neighbours except for the outermost kernels
/// when there are two or more (`consider_endpoints=False`).
fn neighbour_sigmas(mus: &[f64], low: f64, high: f64) -> Vec<f64> {
    let m = mus.len();
    // (mean, kernel) pairs. Sorting pairs by value (ties by kernel) is
    // deterministic and cheaper than an index sort.
    let mut pairs: Vec<(f64, usize)> = mus.iter().copied().zip(0..m).collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut sigmas = vec![0.0; m];
    for (p, &(x, i)) in pairs.iter().enumerate() {
        let left = p
            .checked_sub(1)
            .and_then(|q| pairs.get(q))
            .map_or(low, |q| q.0);
        let right = pairs.get(p + 1).map_or(high, |q| q.0);
        let sigma = if m >= 2 && p == 0 {
            right - x
        } else if m >= 2 && p == m - 1 {
            x - left
        } else {
            (x - left).max(right - x)
        };
        if let Some(slot) = sigmas.get_mut(i) {
            *slot = sigma;
        }
    }
    sigmas
}

/// The clip's floor for `m` kernels when the history has `n_ranked` ranked
/// trials: `width / min(100, sqrt(m * max(m, n_ranked)) + 2)`.
///
/// Optuna's floor, `width / min(100, m + 2)`, ties the good estimator's
/// resolution to its own size, a tenth of the history (`gamma`), so `l(x)`
/// cannot sharpen below a twelfth of the range in 100 trials however
/// tightly the good trials cluster; the geometric mean with the history's
/// size lets it narrow as the search accumulates evidence, while the bad
/// estimator, which holds nearly every trial, keeps Optuna's floor. The
/// floor is never wider than Optuna's. On the peer benchmark
/// (`benches/peers/`) this is what lets ktune refine faster than Optuna.
pub(crate) fn min_sigma(width: f64, m: usize, n_ranked: usize) -> f64 {
    let resolution = (m as f64 * m.max(n_ranked) as f64).sqrt();
    width / (resolution + 2.0).min(100.0)
}

/// The clip's floor on a quantised dimension (`int`, stepped `double`,
/// `discrete`) for the per-dimension estimators of `tpe`: the geometric
/// mean of [`min_sigma`] and Optuna's `width / min(100, m + 2)`.
///
/// On a handful of points a kernel narrower than about half a step is a
/// point mass: when the good trials agree on one integer, [`min_sigma`]'s
/// floor leaves its neighbours almost no probability under `l(x)`, so they
/// are never drawn as candidates, never tried, and the search settles on
/// that integer for good even when the next one is better (a double
/// refines locally however narrow its kernels; an integer cannot). Optuna's
/// floor keeps the neighbours alive but refines the doubles that interact
/// with the integer more slowly; halfway between, on `benches/peers/`'s
/// `mixed` function over 400 seeds, 78 % of the seeds end on the right
/// integers (56 % with [`min_sigma`], 76 % with Optuna's floor) and the
/// median regret at 100 trials is half Optuna's floor's. The joint
/// estimators of `multivariate-tpe` keep [`min_sigma`]: there a kernel's
/// integer comes with the rest of its trial's coordinates, which are tuned
/// for that integer, and widening it made `mixed` worse (median regret at
/// 100 trials three times higher with this floor, eight with Optuna's).
pub(crate) fn ladder_min_sigma(width: f64, m: usize, n_ranked: usize) -> f64 {
    let optuna = width / (m as f64 + 2.0).min(100.0);
    (min_sigma(width, m, n_ranked) * optuna).sqrt()
}

impl Numeric {
    fn new(dim: &Dim, mus: Vec<f64>, setup: &Setup<'_>) -> Option<Self> {
        let (low, high, prior_mu, prior_sigma) = dim.numeric_prior()?;
        let ladder = match dim {
            Dim::Ladder { ladder, .. } => Some(*ladder),
            _ => None,
        };
        let width = high - low;
        let mut sigmas = neighbour_sigmas(&mus, low, high);
        let floor = match ladder {
            // One estimator per dimension: see `ladder_min_sigma`.
            Some(_) if !setup.joint => ladder_min_sigma(width, mus.len(), setup.n_ranked),
            _ => min_sigma(width, mus.len(), setup.n_ranked),
        };
        for s in &mut sigmas {
            *s = s.clamp(floor, width);
        }
        let mut mus = mus;
        mus.push(prior_mu);
        sigmas.push(prior_sigma);
        let inv_sigmas: Vec<f64> = sigmas.iter().map(|s| 1.0 / s).collect();
        // Many kernels share a sigma (the magic clip's floor)
        // and cover the interval (Z = 1): skip their logarithms.
        let mut last_sigma = (f64::NAN, 0.0);
        let log_norm = mus
            .iter()
            .zip(&sigmas)
            .map(|(&mu, &sigma)| {
                // Kernels sit inside the interval and are at most as wide as it,
                // so Z >= 0.34; a zero (NaN input) disables the kernel.
                let z = norm_mass((low - mu) / sigma, (high - mu) / sigma);
                let ln_z = if z == 1.0 { 0.0 } else { z.ln() };
                if !ln_z.is_finite() {
                    return f64::NEG_INFINITY;
                }
                if ladder.is_some() {
                    return -ln_z;
                }
                if last_sigma.0 != sigma {
                    last_sigma = (sigma, sigma.ln());
                }
                -ln_z - last_sigma.1 - LN_SQRT_2PI
            })
            .collect();
        Some(Self {
            low,
            high,
            ladder,
            mus,
            sigmas,
            inv_sigmas,
            log_norm,
        })
    }

    fn add_terms(&self, c: f64, acc: &mut [f64]) {
        let kernels = self.mus.iter().zip(&self.inv_sigmas).zip(&self.log_norm);
        match &self.ladder {
            None => {
                for (((mu, inv), norm), a) in kernels.zip(acc.iter_mut()) {
                    let t = (c - mu) * inv;
                    *a += norm - 0.5 * t * t;
                }
            }
            Some(ladder) => {
                let (low, high) = ladder.bin(c.max(0.0) as u64);
                for (((mu, inv), norm), a) in kernels.zip(acc.iter_mut()) {
                    *a += norm + norm_mass((low - mu) * inv, (high - mu) * inv).ln();
                }
            }
        }
    }

    fn sample<R: Rng + ?Sized>(&self, j: usize, rng: &mut R, gauss: &mut Gauss) -> f64 {
        let (mu, sigma) = (
            self.mus
                .get(j)
                .copied()
                .unwrap_or(0.5 * (self.low + self.high)),
            self.sigmas.get(j).copied().unwrap_or(self.high - self.low),
        );
        let z = gauss.truncated(rng, mu, sigma, self.low, self.high);
        match &self.ladder {
            None => z,
            Some(ladder) => ladder.point_at(z) as f64,
        }
    }
}

impl Categorical {
    fn new(n: usize, observed: Vec<usize>, prior_weight: f64) -> Self {
        let n_kernels = (observed.len() + 1) as f64;
        let base = prior_weight / n_kernels;
        let total = 1.0 + base * n as f64;
        Self {
            n,
            observed,
            ln_hit: ((1.0 + base) / total).ln(),
            ln_miss: (base / total).ln(),
            hit_share: 1.0 / total,
        }
    }

    fn add_terms(&self, c: f64, acc: &mut [f64]) {
        let c = c.max(0.0) as usize;
        let (obs, prior) = acc.split_at_mut(self.observed.len().min(acc.len()));
        for (&o, a) in self.observed.iter().zip(obs) {
            *a += if o == c { self.ln_hit } else { self.ln_miss };
        }
        let uniform = -(self.n as f64).ln();
        for a in prior {
            *a += uniform;
        }
    }

    fn sample<R: Rng + ?Sized>(&self, j: usize, rng: &mut R) -> f64 {
        let u = unit_f64(rng);
        let k = match self.observed.get(j) {
            Some(&o) if u < self.hit_share => o,
            _ => {
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let k = (unit_f64(rng) * self.n as f64) as usize;
                k.min(self.n.saturating_sub(1))
            }
        };
        k as f64
    }
}

impl<'a> Parzen<'a> {
    /// Fits a mixture over the dimensions `which` to `fit`'s rows, with
    /// `weights` (one per row, then the prior's).
    pub(crate) fn new(
        setup: &Setup<'_>,
        which: &[usize],
        fit: &Fit<'_>,
        weights: &'a KernelWeights,
    ) -> Self {
        let d = setup.dims.len();
        let columns = which
            .iter()
            .filter_map(|&dim| {
                let spec = setup.dims.get(dim)?;
                let values = fit.rows.iter().map(|&r| coordinate(fit, d, r, dim));
                let column = match spec {
                    Dim::Fixed => return None,
                    Dim::Categorical { n } => Column::Categorical(Categorical::new(
                        *n,
                        values.map(|c| c.max(0.0) as usize).collect(),
                        setup.prior_weight,
                    )),
                    Dim::Ladder { ladder, .. } => {
                        let mus = values.map(|c| ladder.z(c.max(0.0) as u64)).collect();
                        Column::Numeric(Numeric::new(spec, mus, setup)?)
                    }
                    Dim::Continuous { .. } => {
                        Column::Numeric(Numeric::new(spec, values.collect(), setup)?)
                    }
                };
                Some((dim, column))
            })
            .collect();
        Self { columns, weights }
    }

    /// The log density (probability for quantised dimensions) of the
    /// coordinates `x` (indexed by dimension); `scratch` is reused between calls.
    pub(crate) fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.weights.log);
        for (dim, column) in &self.columns {
            let c = x.get(*dim).copied().unwrap_or(0.0);
            match column {
                Column::Numeric(n) => n.add_terms(c, scratch),
                Column::Categorical(k) => k.add_terms(c, scratch),
            }
        }
        log_sum_exp(scratch)
    }

    /// Draws one point: a kernel by weight, then each dimension from it.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R, gauss: &mut Gauss, x: &mut [f64]) {
        let u = unit_f64(rng);
        let cumulative = &self.weights.cumulative;
        let j = cumulative
            .partition_point(|&c| c <= u)
            .min(cumulative.len().saturating_sub(1));
        for (dim, column) in &self.columns {
            let value = match column {
                Column::Numeric(n) => n.sample(j, rng, gauss),
                Column::Categorical(k) => k.sample(j, rng),
            };
            if let Some(slot) = x.get_mut(*dim) {
                *slot = value;
            }
        }
    }
}

/// Terms this far below the largest are left out of a log-sum-exp: each
/// is below 2.4e-16 of the largest, under half an ulp of the sum.
const NEGLIGIBLE: f64 = 36.0;

/// `ln(sum(exp(t)))`; `-inf` when every term is. NaN terms count as none.
fn log_sum_exp(terms: &[f64]) -> f64 {
    // A plain comparison (not f64::max) vectorises; NaN never wins it.
    let max = terms
        .iter()
        .fold(f64::NEG_INFINITY, |m, &t| if t > m { t } else { m });
    if !max.is_finite() {
        return max;
    }
    let floor = max - NEGLIGIBLE;
    let sum: f64 = terms
        .iter()
        .filter(|&&t| t > floor)
        .map(|&t| exp_neg(t - max))
        .sum();
    max + sum.ln()
}

#[cfg(test)]
mod tests;
