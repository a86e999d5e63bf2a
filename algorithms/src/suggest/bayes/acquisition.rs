//! Acquisition functions on the posterior `(μ, σ²)` of a minimised,
//! standardised objective, all as "larger is better" with their
//! derivatives with respect to `μ` and `σ²` (the chain rule to `x` is done
//! by the caller).
//!
//! * log-EI — the logarithm of expected improvement computed without
//!   underflow (Ament, Daulton, Eriksson, Balandat & Bakshy, "Unexpected
//!   Improvements to Expected Improvement for Bayesian Optimization",
//!   NeurIPS 2023). Plain EI is exactly zero in double precision over most
//!   of the space once the model is confident, which leaves a gradient-based
//!   optimiser nothing to follow; log-EI stays finite and smooth. For
//!   `z ≤ −3` it uses the Laplace continued fraction of Mills' ratio,
//!   rearranged so `1 − z·R` never cancels.
//!   An optional `ξ` shifts the incumbent (scikit-optimize's EI uses 0.01;
//!   ktune uses 0, see `XI` in the module root).
//! * LCB — `−(μ − κσ)`, κ = 1.96 as in scikit-optimize (Katib's `LCB`).
//! * log-PI — `log Φ((best − ξ − μ)/σ)`, ξ = 0.01 as in scikit-optimize.

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Which acquisition to maximise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Acquisition {
    /// Log expected improvement over `best − xi`.
    LogEi {
        /// Required improvement, in standardised units.
        xi: f64,
    },
    /// Lower confidence bound with exploration weight `kappa`.
    Lcb {
        /// Weight of `σ`.
        kappa: f64,
    },
    /// Log probability of improving by more than `xi`.
    LogPi {
        /// Required improvement, in standardised units.
        xi: f64,
    },
}

/// The standard normal density.
fn pdf(z: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * z * z).exp()
}

/// `Φ(z)` for `|z| < 3` from the Taylor series of `erf` (terms shrink
/// factorially; at `|z| < 3` the largest term is below 10, so about 15
/// digits survive).
fn cdf_series(z: f64) -> f64 {
    let x = z * std::f64::consts::FRAC_1_SQRT_2;
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    for k in 1..60 {
        let kf = f64::from(k);
        term *= -x2 / kf;
        let add = term / (2.0 * kf + 1.0);
        sum += add;
        if add.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    0.5 + sum * std::f64::consts::FRAC_2_SQRT_PI * 0.5
}

/// For `t ≥ 3`: `(R, u)` with Mills' ratio `R(t) = Φ(−t)/φ(t) = 1/(t + u)`
/// and `u = 1/(t + 2/(t + 3/(t + …)))`, by backward evaluation of the
/// Laplace continued fraction (converged to rounding at `t = 3` with 120 terms).
fn mills(t: f64) -> (f64, f64) {
    let mut tail = 0.0;
    for k in (2..120).rev() {
        tail = f64::from(k) / (t + tail);
    }
    let u = 1.0 / (t + tail);
    (1.0 / (t + u), u)
}

/// `(log h(z), Φ(z)/h(z))` with `h(z) = φ(z) + zΦ(z)`, the EI of a unit
/// normal; `h' = Φ`.
fn log_h(z: f64) -> (f64, f64) {
    if z > -3.0 {
        let p = if z < 3.0 {
            cdf_series(z)
        } else {
            1.0 - pdf(z) * mills(z).0
        };
        let h = pdf(z) + z * p;
        (h.ln(), p / h)
    } else {
        // h = φ(t)(1 − tR) = φ(t) u/(t + u), and Φ/h = R(t+u)/u = 1/u.
        let t = -z;
        let (_, u) = mills(t);
        (-0.5 * t * t - LN_SQRT_2PI + u.ln() - (t + u).ln(), 1.0 / u)
    }
}

/// `(log Φ(z), φ(z)/Φ(z))`.
fn log_cdf(z: f64) -> (f64, f64) {
    if z > -3.0 {
        let p = if z < 3.0 {
            cdf_series(z)
        } else {
            1.0 - pdf(z) * mills(z).0
        };
        (p.ln(), pdf(z) / p)
    } else {
        let t = -z;
        let (r, u) = mills(t);
        (-0.5 * t * t - LN_SQRT_2PI + r.ln(), t + u)
    }
}

impl Acquisition {
    /// `(a, ∂a/∂μ, ∂a/∂σ²)` at posterior mean `mu`, variance `var` (> 0),
    /// for incumbent `best` (the smallest standardised value observed).
    pub fn value(self, mu: f64, var: f64, best: f64) -> (f64, f64, f64) {
        let sigma = var.sqrt();
        let (a, da_dmu, da_dsigma) = match self {
            Self::LogEi { xi } => {
                let z = (best - xi - mu) / sigma;
                let (lh, ratio) = log_h(z);
                (sigma.ln() + lh, -ratio / sigma, (1.0 - ratio * z) / sigma)
            }
            Self::Lcb { kappa } => (kappa * sigma - mu, -1.0, kappa),
            Self::LogPi { xi } => {
                let z = (best - xi - mu) / sigma;
                let (lc, ratio) = log_cdf(z);
                (lc, -ratio / sigma, -ratio * z / sigma)
            }
        };
        (a, da_dmu, da_dsigma / (2.0 * sigma))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EI by direct quadrature of `∫ max(best − y, 0) N(y; μ, σ²) dy`.
    fn ei_quadrature(mu: f64, sigma: f64, best: f64) -> f64 {
        let steps = 200_000;
        let (lo, hi) = (mu - 12.0 * sigma, best);
        if hi <= lo {
            return 0.0;
        }
        let h = (hi - lo) / f64::from(steps);
        (0..steps)
            .map(|i| {
                let y = lo + (f64::from(i) + 0.5) * h;
                (best - y) * pdf((y - mu) / sigma) / sigma * h
            })
            .sum()
    }

    #[test]
    fn cdf_branches_agree_where_they_meet() {
        let series = cdf_series(-3.0);
        let cf = pdf(3.0) * mills(3.0).0;
        assert!((series - cf).abs() < 1e-11 * cf, "{series} {cf}");
        assert!((cf - 0.001_349_898_031_630_094_6).abs() < 1e-17);
        assert!((cdf_series(0.0) - 0.5).abs() < 1e-16);
        assert!((cdf_series(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
        let (l1, _) = log_h(-3.0 + 1e-12);
        let (l2, _) = log_h(-3.0 - 1e-12);
        assert!((l1 - l2).abs() < 1e-9, "{l1} {l2}");
    }

    #[test]
    fn log_ei_matches_quadrature() {
        for (mu, sigma) in [(0.0, 1.0), (0.5, 0.3), (-0.2, 2.0), (2.0, 0.5)] {
            let (a, _, _) = Acquisition::LogEi { xi: 0.0 }.value(mu, sigma * sigma, 0.0);
            let q = ei_quadrature(mu, sigma, 0.0);
            assert!(
                (a.exp() - q).abs() < 1e-6 * q.max(1e-3),
                "{mu} {sigma}: {} {q}",
                a.exp()
            );
        }
    }

    #[test]
    fn ei_vanishes_far_from_the_incumbent_but_log_ei_stays_finite() {
        // Mean 40 standard deviations above the incumbent, variance ~ 0.
        let (a, dmu, dvar) = Acquisition::LogEi { xi: 0.0 }.value(1.0, 1e-6 * 1e-6 * 625.0, 0.0);
        assert!(a.exp() < 1e-300, "{a}");
        assert!(a.is_finite() && a < -700.0);
        assert!(dmu.is_finite() && dmu < 0.0 && dvar.is_finite() && dvar > 0.0);
        // Variance zero at the floor: still finite.
        let (a, _, _) = Acquisition::LogEi { xi: 0.0 }.value(1.0, 1e-12, 0.0);
        assert!(a.is_finite());
        let (p, _, _) = Acquisition::LogPi { xi: 0.01 }.value(1.0, 1e-12, 0.0);
        assert!(p.is_finite() && p.exp() == 0.0);
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-6;
        for acq in [
            Acquisition::LogEi { xi: 0.0 },
            Acquisition::LogEi { xi: 0.01 },
            Acquisition::Lcb { kappa: 1.96 },
            Acquisition::LogPi { xi: 0.01 },
        ] {
            for (mu, var) in [(0.3, 0.5), (2.0, 0.01), (-1.0, 0.2), (6.0, 0.25)] {
                let (_, dmu, dvar) = acq.value(mu, var, 0.0);
                let fd_mu =
                    (acq.value(mu + h, var, 0.0).0 - acq.value(mu - h, var, 0.0).0) / (2.0 * h);
                let fd_var =
                    (acq.value(mu, var + h, 0.0).0 - acq.value(mu, var - h, 0.0).0) / (2.0 * h);
                assert!(
                    (fd_mu - dmu).abs() < 1e-5 * dmu.abs().max(1.0),
                    "{acq:?} {mu} {var}: {fd_mu} {dmu}"
                );
                assert!(
                    (fd_var - dvar).abs() < 1e-5 * dvar.abs().max(1.0),
                    "{acq:?} {mu} {var}: {fd_var} {dvar}"
                );
            }
        }
    }
}
