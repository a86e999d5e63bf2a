//! Random sampling of parameter values, honouring Katib's distributions.
//!
//! * `uniform`: uniform over `[min, max]`; quantised: every point equally likely;
//! * `logUniform`: uniform in `ln` space; quantised: rounded to the nearest point;
//! * `normal`: mean `(min+max)/2`, sigma `(max-min)/6` (Katib's hyperopt mapping);
//! * `logNormal`: the same on `ln min`, `ln max`, then `exp`.
//!
//! Unlike hyperopt, every sample stays inside `[min, max]`: normal draws
//! outside the range are redrawn (a truncated normal; 0.27 % of draws at
//! sigma = range/6), and after 64 misses — practically never — the mean is
//! used. Quantised values snap to the nearest point `min + k*step`.
//! `discrete` and `categorical` values are drawn uniformly.
//!
//! Uniform floats and normal deviates are computed here from raw `u64`s
//! (53-bit mantissa, Box–Muller) rather than through a distribution crate, so
//! the stream of values for a seed is fixed by this file alone.

use rand::{Rng, RngExt};

use super::{Assignment, Domain, ParamValue, ParameterSpec, SearchSpace};

/// A uniform float in `[0, 1)` from the top 53 bits of one `u64`.
pub fn unit_f64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let x = (rng.next_u64() >> 11) as f64;
    x * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal deviate (Box–Muller, one of the pair).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - unit_f64(rng);
    let u2 = unit_f64(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A normal draw with `mean` and `sigma`, redrawn until it lies in `[low, high]`.
fn truncated_normal<R: Rng + ?Sized>(
    rng: &mut R,
    mean: f64,
    sigma: f64,
    low: f64,
    high: f64,
) -> f64 {
    if sigma > 0.0 {
        for _ in 0..64 {
            let x = mean + sigma * standard_normal(rng);
            if low <= x && x <= high {
                return x;
            }
        }
    }
    mean.clamp(low, high)
}

impl ParameterSpec {
    /// One random value of this parameter (see the module docs for the
    /// distribution semantics).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> ParamValue {
        let (min, max) = match self.domain() {
            Domain::Double { min, max, .. } => (*min, *max),
            Domain::Int { min, max, .. } => (*min as f64, *max as f64),
            Domain::Discrete { .. } | Domain::Categorical { .. } => (0.0, 0.0),
        };
        let dist = self.distribution();
        let x = match dist {
            super::Distribution::Uniform => {
                if let Some(n) = self.points() {
                    let k = rng.random_range(0..n);
                    return self.point(k).unwrap_or(ParamValue::Float(min));
                }
                return self.decode(unit_f64(rng));
            }
            super::Distribution::LogUniform => self.log_value(unit_f64(rng)),
            super::Distribution::Normal => {
                truncated_normal(rng, (min + max) / 2.0, (max - min) / 6.0, min, max)
            }
            super::Distribution::LogNormal => {
                let (a, b) = (min.ln(), max.ln());
                truncated_normal(rng, (a + b) / 2.0, (b - a) / 6.0, a, b)
                    .exp()
                    .clamp(min, max)
            }
        };
        match self.points() {
            Some(_) => self
                .point(self.nearest_index(x))
                .unwrap_or(ParamValue::Float(min)),
            None => ParamValue::Float(x),
        }
    }
}

impl SearchSpace {
    /// One random assignment, parameters drawn independently in space order.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Assignment {
        self.params()
            .iter()
            .map(|p| (p.name(), p.sample(rng)))
            .collect()
    }
}
