//! The normal-distribution pieces the Parzen estimators need: the CDF with
//! full relative precision in both tails, the probability of an interval
//! without cancellation, and draws from a truncated normal.
//!
//! Optuna computes these with scipy-derived code (`_truncnorm.py`,
//! `_erf.py`); Rust's standard library has no `erf`, and the crate takes no
//! special-function dependency, so the CDF here is Hart's double-precision
//! rational approximation (J. F. Hart, *Computer Approximations*, 1968,
//! algorithm 5666, in the arrangement of G. West, "Better approximations to
//! cumulative normal functions", Wilmott Magazine 2005) up to 5 standard
//! deviations and a Mills-ratio continued fraction beyond. Its
//! relative error is below 1e-9 everywhere (1e-15 near the mean), which the
//! tests check against a slow series/continued-fraction reference — far
//! finer than anything a Parzen estimator's log density can resolve.

use rand::Rng;

use crate::space::sample::unit_f64;

/// `ln(sqrt(2 pi))`.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Beyond this many standard deviations the lower tail is below the
/// smallest subnormal double (`Φ(-38) ≈ 2.9e-316`).
const TAIL_LIMIT: f64 = 37.5;

/// Numerator and denominator of Hart's approximation of the lower tail,
/// highest power first (evaluated by Horner's rule in `|x|`).
const HART_P: [f64; 7] = [
    3.526_249_659_989_11e-2,
    0.700_383_064_443_688,
    6.373_962_203_531_65,
    33.912_866_078_383,
    112.079_291_497_871,
    221.213_596_169_931,
    220.206_867_912_376,
];
const HART_Q: [f64; 8] = [
    8.838_834_764_831_84e-2,
    1.755_667_163_182_64,
    16.064_177_579_207,
    86.780_732_202_946_1,
    296.564_248_779_674,
    637.333_633_378_831,
    793.826_512_519_948,
    440.413_735_824_752,
];

/// Hart's rational function loses relative precision in the far tail (1e-9
/// near 6.4 sigma); from 5 sigma on the continued fraction takes over.
const HART_SWITCH: f64 = 5.0;

fn horner(coefficients: &[f64], x: f64) -> f64 {
    coefficients.iter().fold(0.0, |acc, c| acc * x + c)
}

/// The lower tail `Φ(-t)` for `t >= 0`, computed directly (no `1 - x`).
fn lower_tail(t: f64) -> f64 {
    if t > TAIL_LIMIT {
        return 0.0;
    }
    if t < HART_SWITCH {
        return hart(t);
    }
    // The Mills-ratio continued fraction t + 1/(t + 2/(t + 3/(t + …))),
    // evaluated bottom-up. It converges faster the further out t is:
    // 110/t + 2 levels are exact to rounding from t = 5 on (23 needed at
    // t = 5, 12 at t = 10, 7 at t = 20).
    let levels = (110.0 / t).ceil() as u32 + 2;
    let mut cf = t;
    for k in (1..=levels).rev() {
        cf = t + f64::from(k) / cf;
    }
    (-0.5 * t * t).exp() / cf / (2.0 * std::f64::consts::PI).sqrt()
}

/// Hart's rational approximation of `Φ(-t)`: relative error below 1e-13
/// up to 5 sigma, below 1e-9 up to 8.3 sigma.
fn hart(t: f64) -> f64 {
    (-0.5 * t * t).exp() * horner(&HART_P, t) / horner(&HART_Q, t)
}

/// A tail that is only ever subtracted from 1: absolute accuracy suffices,
/// and beyond 8.3 sigma it is below half an ulp of 1.
fn small_tail(t: f64) -> f64 {
    if t > 8.3 { 0.0 } else { hart(t) }
}

/// `Φ(b) - Φ(a)` for `a <= b`, using whichever tail keeps the difference
/// accurate (both ends above the mean: `Q(a) - Q(b)`), so that narrow bins
/// far from a kernel's mean keep their relative precision; 0 when `b <= a`.
#[must_use]
pub(crate) fn norm_mass(a: f64, b: f64) -> f64 {
    if a.partial_cmp(&b) != Some(std::cmp::Ordering::Less) {
        return 0.0;
    }
    let mass = if a >= 0.0 {
        lower_tail(a) - lower_tail(b)
    } else if b <= 0.0 {
        lower_tail(-b) - lower_tail(-a)
    } else {
        1.0 - small_tail(-a) - small_tail(b)
    };
    mass.max(0.0)
}

/// `e^x` for `x` in `[-700, 0]` (the range of a log-sum-exp's shifted
/// terms), without a libm call: `x = k ln 2 + r` with `|r| <= ln 2 / 2`,
/// then the degree-12 Taylor polynomial of `e^r` (truncation error below
/// 2e-16), evaluated by Estrin's scheme so its multiplications overlap
/// instead of queueing as in Horner's rule, and `2^k` built from exponent
/// bits. Within 1e-15 of `f64::exp` there (checked in the tests); inputs
/// outside are clamped to the range and NaN reads as -700.
#[must_use]
pub(crate) fn exp_neg(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Round to nearest by adding 1.5 * 2^52; k's integer value sits in the
    // low bits of the sum.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let x = if x.is_nan() {
        -700.0
    } else {
        x.clamp(-700.0, 0.0)
    };
    let shifted = x * std::f64::consts::LOG2_E + SHIFTER;
    let k = shifted - SHIFTER;
    // Cody–Waite: ln 2 in two parts keeps r exact to rounding.
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let (r2, r4) = (r * r, r * r * r * r);
    let pair = |a: f64, b: f64| a + b * r;
    let low = pair(1.0, 1.0) + r2 * pair(1.0 / 2.0, 1.0 / 6.0);
    let mid = pair(1.0 / 24.0, 1.0 / 120.0) + r2 * pair(1.0 / 720.0, 1.0 / 5_040.0);
    let high = pair(1.0 / 40_320.0, 1.0 / 362_880.0)
        + r2 * pair(1.0 / 3_628_800.0, 1.0 / 39_916_800.0)
        + r4 * (1.0 / 479_001_600.0);
    let p = low + r4 * (mid + r4 * high);
    // k is in [-1010, 0]: the biased exponent k + 1023 is in [13, 1023].
    let k_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    p * scale
}

/// Standard normal deviates by Box–Muller, using both values of each pair.
#[derive(Debug, Default)]
pub(crate) struct Gauss {
    spare: Option<f64>,
}

impl Gauss {
    /// The next standard normal deviate.
    pub(crate) fn next<R: Rng + ?Sized>(&mut self, rng: &mut R) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - unit_f64(rng)).ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * unit_f64(rng)).sin_cos();
        self.spare = Some(radius * sin);
        radius * cos
    }

    /// A draw from the normal `(mu, sigma)` truncated to `[low, high]`.
    ///
    /// Rejection from the untruncated normal: the estimators only build
    /// kernels with `mu` inside the interval and `sigma` at most its width,
    /// so at least a third of the draws land inside and the loop ends after
    /// three draws on average. A degenerate kernel (zero or non-finite
    /// sigma, empty interval) and the practically impossible 64 misses in a
    /// row return `mu` clamped to the interval.
    pub(crate) fn truncated<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        mu: f64,
        sigma: f64,
        low: f64,
        high: f64,
    ) -> f64 {
        let fallback = if mu.is_nan() {
            low
        } else {
            mu.clamp(low, high)
        };
        if !(sigma > 0.0 && sigma.is_finite() && low < high) {
            return fallback;
        }
        for _ in 0..64 {
            let x = mu + sigma * self.next(rng);
            if low <= x && x <= high {
                return x;
            }
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    /// The standard normal CDF `Φ(x)`; NaN for NaN.
    fn norm_cdf(x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if x <= 0.0 {
            lower_tail(-x)
        } else {
            1.0 - lower_tail(x)
        }
    }

    /// A slow reference: the all-positive series
    /// `Φ(-t) = 1/2 - φ(t) Σ t^(2n+1) / (2n+1)!!` for small `t`, and the
    /// continued fraction `Φ(-t) = φ(t) / (t + 1/(t + 2/(t + 3/(t + …))))`
    /// (evaluated bottom-up with many levels) for larger `t`.
    fn reference_lower_tail(t: f64) -> f64 {
        let phi = (-0.5 * t * t - LN_SQRT_2PI).exp();
        if t < 3.0 {
            let (mut term, mut sum) = (t, t);
            for n in 1..200 {
                term *= t * t / f64::from(2 * n + 1);
                sum += term;
            }
            0.5 - phi * sum
        } else {
            let mut cf = t;
            for k in (1..400).rev() {
                cf = t + f64::from(k) / cf;
            }
            phi / cf
        }
    }

    #[test]
    fn cdf_matches_known_values() {
        let known = [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.0, 0.158_655_253_931_457_07),
            (2.0, 0.977_249_868_051_820_8),
            (-3.0, 0.001_349_898_031_630_094_6),
            (-5.0, 2.866_515_718_791_939e-7),
            (-10.0, 7.619_853_024_160_527e-24),
        ];
        for (x, want) in known {
            let got = norm_cdf(x);
            assert!(
                ((got - want) / want).abs() < 1e-9,
                "Φ({x}) = {got}, want {want}"
            );
        }
        assert!(norm_cdf(f64::NAN).is_nan());
        assert_eq!(norm_cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(norm_cdf(f64::INFINITY), 1.0);
    }

    #[test]
    fn lower_tail_keeps_relative_precision_to_thirty_six_sigma() {
        for i in 0..=360 {
            let t = f64::from(i) * 0.1;
            let (got, want) = (lower_tail(t), reference_lower_tail(t));
            assert!(
                ((got - want) / want).abs() < 1e-9,
                "t = {t}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn interval_mass_keeps_precision_in_the_far_tail() {
        let (a, b) = (20.0, 20.5);
        let want = reference_lower_tail(a) - reference_lower_tail(b);
        assert!(((norm_mass(a, b) - want) / want).abs() < 1e-9);
        assert!(((norm_mass(-b, -a) - want) / want).abs() < 1e-9);
        assert_eq!(norm_mass(-9.0, 9.0), 1.0);
        assert_eq!(norm_mass(1.0, 1.0), 0.0);
        assert_eq!(norm_mass(f64::NAN, 1.0), 0.0);
        assert!((norm_mass(-1.0, 1.0) - 0.682_689_492_137_085_9).abs() < 1e-15);
    }

    #[test]
    fn truncated_draws_stay_inside_and_degenerate_kernels_clamp() {
        let mut rng = derive_rng(1, 2, "test");
        let mut g = Gauss::default();
        for _ in 0..2000 {
            let x = g.truncated(&mut rng, 0.9, 0.5, 0.0, 1.0);
            assert!((0.0..=1.0).contains(&x));
        }
        assert_eq!(g.truncated(&mut rng, 3.0, 0.0, 0.0, 1.0), 1.0);
        assert_eq!(g.truncated(&mut rng, f64::NAN, 1.0, 0.0, 1.0), 0.0);
        assert_eq!(g.truncated(&mut rng, 0.5, f64::INFINITY, 0.0, 1.0), 0.5);
    }

    #[test]
    fn polynomial_exp_matches_the_library() {
        for i in 0..=700_000 {
            let x = -f64::from(i) * 1e-3;
            let (got, want) = (exp_neg(x), x.exp());
            assert!(((got - want) / want).abs() < 1e-15, "{x}: {got} vs {want}");
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(f64::NEG_INFINITY), exp_neg(-700.0));
        assert_eq!(exp_neg(f64::NAN), exp_neg(-700.0));
    }

    #[test]
    fn gauss_has_unit_moments() {
        let mut rng = derive_rng(3, 4, "test");
        let mut g = Gauss::default();
        let n = 40_000;
        let xs: Vec<f64> = (0..n).map(|_| g.next(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }
}
