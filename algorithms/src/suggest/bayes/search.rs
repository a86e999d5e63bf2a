//! Maximising the acquisition over the mixed space.
//!
//! Two stages, as in BoTorch's `optimize_acqf` and Optuna's `optim_mixed`:
//! 1. score a few thousand candidates at once — scrambled Sobol points over
//!    the whole space plus Gaussian perturbations (three radii) of the best
//!    observed configurations (reflected at the bounds, not clamped), where the optimum usually is once the model
//!    has learnt something — each snapped to a real configuration;
//! 2. polish the best few with projected L-BFGS on the ordered coordinates
//!    (categorical one-hot blocks held fixed), snap, then one sweep of
//!    coordinate moves that tries every value of each categorical and of
//!    each ordered parameter with at most [`SWEEP_POINTS`] points.
//!
//! Candidates that decode to a configuration already tried (or already
//! picked in this batch) are skipped, so a suggestion is never a duplicate
//! unless the caller's set says otherwise.

use std::collections::BTreeSet;

use rand::Rng;

use super::acquisition::Acquisition;
use super::features::{Column, FeatureMap};
use super::gp::Gp;
use super::optimize::{Budget, minimize};
use crate::space::SearchSpace;
use crate::space::sample::{standard_normal, unit_f64};
use crate::suggest::sobol::sobol_point;

/// Parameters with at most this many points are swept exhaustively.
const SWEEP_POINTS: u64 = 16;

/// A configuration's identity for duplicate checks: its Katib strings.
pub(crate) type Key = Vec<(String, String)>;

/// `x` folded into `[0, 1]` by reflection at the bounds. Clamping would
/// put half the perturbations of an incumbent on a bound exactly onto that
/// bound, so a parameter that reached its bound early (e.g. dropout 0)
/// would be tried nowhere else nearby.
fn reflect(x: f64) -> f64 {
    if !x.is_finite() {
        return x.clamp(0.0, 1.0);
    }
    let m = x.rem_euclid(2.0);
    if m > 1.0 { 2.0 - m } else { m }
}

/// How hard to search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effort {
    /// Sobol candidates over the whole space.
    pub global: usize,
    /// Perturbations around the incumbents.
    pub local: usize,
    /// Candidates polished by L-BFGS (0: sampling only).
    pub starts: usize,
}

/// Everything one acquisition maximisation needs.
pub(crate) struct Search<'a> {
    /// The space.
    pub space: &'a SearchSpace,
    /// Its feature map.
    pub map: &'a FeatureMap,
    /// The conditioned GP (fantasies included).
    pub gp: &'a Gp,
    /// The acquisition.
    pub acq: Acquisition,
    /// The incumbent (smallest standardised value observed).
    pub best: f64,
}

impl Search<'_> {
    /// Acquisition values of many feature vectors (`m x width`, row-major).
    fn score_many(&self, xs: &[f64]) -> Vec<f64> {
        let width = self.map.width().max(1);
        let mut out = Vec::with_capacity(xs.len() / width);
        // Chunks bound the n x m scratch matrix of the batched solve.
        for chunk in xs.chunks(512 * width) {
            let (mean, var) = self.gp.predict_many(chunk);
            out.extend(
                mean.iter()
                    .zip(&var)
                    .map(|(m, v)| self.acq.value(*m, *v, self.best).0),
            );
        }
        out
    }

    /// Negative acquisition and its gradient, for the minimiser.
    fn neg_acq(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let (m, v, dm, dv) = self.gp.predict_with_gradient(x);
        let (a, da_dm, da_dv) = self.acq.value(m, v, self.best);
        for ((g, dmi), dvi) in grad.iter_mut().zip(&dm).zip(&dv) {
            *g = -(da_dm * dmi + da_dv * dvi);
        }
        -a
    }

    /// The best configuration's features whose key is not in `taken`;
    /// `None` when every candidate looked at is taken.
    pub fn maximize<R: Rng + ?Sized>(
        &self,
        incumbents: &[Vec<f64>],
        taken: &BTreeSet<Key>,
        effort: Effort,
        rng: &mut R,
    ) -> Option<Vec<f64>> {
        let width = self.map.width();
        let candidates = self.candidates(incumbents, effort, rng);
        let scores = self.score_many(&candidates);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let row = |i: usize| {
            candidates
                .get(i * width..(i + 1) * width)
                .map(<[f64]>::to_vec)
        };

        let mut finalists: Vec<(Vec<f64>, f64)> = Vec::new();
        for &i in order.iter().take(effort.starts) {
            if let Some(start) = row(i) {
                let polished = self.polish(start, scores[i]);
                finalists.push(polished);
            }
        }
        // Unpolished candidates back the finalists up when those are taken.
        finalists.extend(order.iter().filter_map(|&i| Some((row(i)?, scores[i]))));
        finalists.sort_by(|a, b| b.1.total_cmp(&a.1));
        finalists
            .into_iter()
            .map(|(f, _)| f)
            .find(|f| !taken.contains(&self.map.decode(self.space, f).to_katib_strings()))
    }

    /// Sobol points and incumbent perturbations, snapped.
    fn candidates<R: Rng + ?Sized>(
        &self,
        incumbents: &[Vec<f64>],
        effort: Effort,
        rng: &mut R,
    ) -> Vec<f64> {
        let width = self.map.width();
        let dims = self.space.len();
        let mut out = Vec::with_capacity((effort.global + effort.local + incumbents.len()) * width);
        let scramble = rng.next_u64();
        for k in 0..effort.global as u64 {
            let mut f = self.map.features_at(&sobol_point(scramble, k, dims));
            self.map.snap(self.space, &mut f);
            out.extend_from_slice(&f);
        }
        if !incumbents.is_empty() {
            let flip = 1.0 / dims.max(1) as f64;
            for j in 0..effort.local {
                let Some(base) = incumbents.get(j % incumbents.len()) else {
                    break;
                };
                let radius = [0.02, 0.08, 0.25][j % 3];
                let mut f = base.clone();
                for c in self.map.columns() {
                    match *c {
                        Column::Ordered { at, .. } => {
                            if let Some(x) = f.get_mut(at) {
                                *x = reflect(*x + radius * standard_normal(rng));
                            }
                        }
                        Column::OneHot { at, len } => {
                            if unit_f64(rng) < flip {
                                #[allow(
                                    clippy::cast_possible_truncation,
                                    clippy::cast_sign_loss,
                                    clippy::cast_precision_loss
                                )]
                                let k = ((unit_f64(rng) * len as f64) as usize).min(len - 1);
                                if let Some(block) = f.get_mut(at..at + len) {
                                    block
                                        .iter_mut()
                                        .enumerate()
                                        .for_each(|(i, x)| *x = f64::from(u8::from(i == k)));
                                }
                            }
                        }
                    }
                }
                self.map.snap(self.space, &mut f);
                out.extend_from_slice(&f);
            }
        }
        out
    }

    /// L-BFGS on the ordered coordinates, snap, then coordinate sweeps;
    /// the start is kept if polishing made it worse.
    fn polish(&self, start: Vec<f64>, start_score: f64) -> (Vec<f64>, f64) {
        let width = self.map.width();
        let (mut lo, mut hi) = (start.clone(), start.clone());
        for c in self.map.columns() {
            if let Column::Ordered { at, .. } = *c
                && at < width
            {
                lo[at] = 0.0;
                hi[at] = 1.0;
            }
        }
        let budget = Budget {
            max_iter: 25,
            max_evals: 40,
            gtol: 1e-6,
            ftol: 1e-9,
        };
        let (mut x, _) = minimize(|x, g| self.neg_acq(x, g), &start, &lo, &hi, budget);
        self.map.snap(self.space, &mut x);
        let mut score = self
            .score_many(&x)
            .first()
            .copied()
            .unwrap_or(f64::NEG_INFINITY);
        if score.is_nan() || score < start_score {
            (x, score) = (start, start_score);
        }
        self.sweep(x, score)
    }

    /// One pass over the parameters with few values, trying each value.
    fn sweep(&self, mut x: Vec<f64>, mut score: f64) -> (Vec<f64>, f64) {
        let width = self.map.width();
        for (c, p) in self.map.columns().iter().zip(self.space.params()) {
            let trials: Vec<Vec<f64>> = match *c {
                Column::OneHot { at, len } => (0..len)
                    .map(|k| {
                        let mut f = x.clone();
                        if let Some(block) = f.get_mut(at..at + len) {
                            block
                                .iter_mut()
                                .enumerate()
                                .for_each(|(i, v)| *v = f64::from(u8::from(i == k)));
                        }
                        f
                    })
                    .collect(),
                Column::Ordered {
                    at,
                    quantised: true,
                } => match p.points() {
                    Some(n) if n <= SWEEP_POINTS => (0..n)
                        .filter_map(|k| {
                            let u = p.encode(&p.point(k)?)?;
                            let mut f = x.clone();
                            *f.get_mut(at)? = u;
                            Some(f)
                        })
                        .collect(),
                    _ => continue,
                },
                Column::Ordered { .. } => continue,
            };
            let flat: Vec<f64> = trials.concat();
            let scores = self.score_many(&flat);
            for (i, s) in scores.iter().enumerate() {
                if *s > score
                    && let Some(f) = flat.get(i * width..(i + 1) * width)
                {
                    score = *s;
                    x = f.to_vec();
                }
            }
        }
        (x, score)
    }
}
