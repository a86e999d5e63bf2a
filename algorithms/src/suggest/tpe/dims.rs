//! How each parameter lives in the estimators' model space.
//!
//! Every parameter becomes one *coordinate* per trial:
//!
//! * a continuous `double` — its value, or `ln` value for `logUniform` and
//!   `logNormal` (Optuna's `log=True`); kernels are truncated normals on
//!   `[min, max]` in that scale;
//! * a quantised range (`int`, stepped `double`) and a `discrete` list — the
//!   *index* `k` of its point, with the point placed at `z_k = k` on a
//!   linear scale or `z_k = ln(value_k)` for the log distributions. Each
//!   point owns the bin between the midpoints to its neighbours (`k ± 1/2`
//!   on the linear scale, Optuna's `low - step/2 … high + step/2`), and its
//!   probability under a kernel is the normal mass of its bin (Optuna's
//!   discretised truncated normal). `discrete` lists are ordered by value
//!   and modelled on the index scale, so `[32, 64, 128, 256]` has evenly
//!   spaced neighbours and each value the same prior mass; Katib's goptuna
//!   service treats them as unordered categories, which throws the order
//!   away;
//! * a `categorical` — the index of its value, with Optuna's weighted
//!   categorical kernels;
//! * a parameter with a single value — nothing to model (`Fixed`).

use crate::space::{Distribution, Domain, ParamValue, ParameterSpec};

/// Points on an ordered numeric scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ladder {
    /// The number of points (at least 2).
    pub(crate) n: u64,
    /// `Some((min, step))` when point `k` sits at `ln(min + k * step)`;
    /// `None` when it sits at `k`.
    pub(crate) log: Option<(f64, f64)>,
}

impl Ladder {
    /// The position of point `k` in model space.
    pub(crate) fn z(&self, k: u64) -> f64 {
        match self.log {
            None => k as f64,
            Some((min, step)) => (min + k as f64 * step).ln(),
        }
    }

    /// The bin `[low, high)` of point `k`: halfway to each neighbour; the
    /// outer bins reach as far beyond the end points as the inner ones do.
    pub(crate) fn bin(&self, k: u64) -> (f64, f64) {
        if self.log.is_none() {
            let x = k as f64;
            return (x - 0.5, x + 0.5);
        }
        let z = self.z(k);
        let last = self.n - 1;
        let low = if k > 0 {
            0.5 * (self.z(k - 1) + z)
        } else {
            z - 0.5 * (self.z(1) - z)
        };
        let high = if k < last {
            0.5 * (z + self.z(k + 1))
        } else {
            z + 0.5 * (z - self.z(last - 1))
        };
        (low, high)
    }

    /// The lowest and highest edge: the truncation interval of the kernels.
    pub(crate) fn bounds(&self) -> (f64, f64) {
        (self.bin(0).0, self.bin(self.n - 1).1)
    }

    /// The point whose bin holds `z` (the nearest end point outside).
    pub(crate) fn point_at(&self, z: f64) -> u64 {
        let last = (self.n - 1) as f64;
        let guess = match self.log {
            None => z.round(),
            Some((min, step)) => ((z.exp() - min) / step).round(),
        };
        let mut k = if guess.is_nan() {
            0
        } else {
            guess.clamp(0.0, last) as u64
        };
        // The guess rounds in value space; the bins are halfway in log
        // space, so the answer can be a neighbour or two away.
        for _ in 0..4 {
            let (low, high) = self.bin(k);
            if z < low && k > 0 {
                k -= 1;
            } else if z >= high && k < self.n - 1 {
                k += 1;
            } else {
                break;
            }
        }
        k
    }
}

/// How one parameter is modelled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dim {
    /// A single possible value: nothing to learn.
    Fixed,
    /// A continuous `double`.
    Continuous {
        /// The value bounds.
        min: f64,
        /// Upper value bound.
        max: f64,
        /// Whether the model works on `ln` values.
        log: bool,
        /// Whether the prior is Katib's normal shape (sigma = range / 6).
        narrow_prior: bool,
    },
    /// Ordered points (`int`, stepped `double`, `discrete`).
    Ladder {
        /// The points.
        ladder: Ladder,
        /// Whether the prior is Katib's normal shape.
        narrow_prior: bool,
    },
    /// Unordered values.
    Categorical {
        /// The number of values.
        n: usize,
    },
}

impl Dim {
    /// The model of `spec`.
    pub(crate) fn new(spec: &ParameterSpec) -> Self {
        let narrow_prior = matches!(
            spec.distribution(),
            Distribution::Normal | Distribution::LogNormal
        );
        let log = spec.distribution().is_log();
        match (spec.domain(), spec.points()) {
            (Domain::Double { min, max, .. }, None) if min < max => Self::Continuous {
                min: *min,
                max: *max,
                log,
                narrow_prior,
            },
            (_, Some(n)) if n >= 2 => match spec.domain() {
                Domain::Categorical { .. } => Self::Categorical {
                    n: usize::try_from(n).unwrap_or(usize::MAX),
                },
                Domain::Discrete { .. } => Self::Ladder {
                    ladder: Ladder { n, log: None },
                    narrow_prior: false,
                },
                Domain::Int { min, step, .. } => Self::Ladder {
                    ladder: Ladder {
                        n,
                        log: log.then_some((*min as f64, *step as f64)),
                    },
                    narrow_prior,
                },
                Domain::Double { min, step, .. } => Self::Ladder {
                    ladder: Ladder {
                        n,
                        log: step.filter(|_| log).map(|s| (*min, s)),
                    },
                    narrow_prior,
                },
            },
            _ => Self::Fixed,
        }
    }

    /// The truncation interval and the prior kernel `(low, high, mu, sigma)`
    /// of a numeric dimension; `None` for categorical and fixed ones.
    ///
    /// The prior is Optuna's (centre, full width); Katib's `normal` and
    /// `logNormal` narrow it to hyperopt's `sigma = (max - min) / 6`.
    pub(crate) fn numeric_prior(&self) -> Option<(f64, f64, f64, f64)> {
        let (low, high, narrow) = match self {
            Self::Continuous {
                min,
                max,
                log,
                narrow_prior,
            } => {
                if *log {
                    (min.ln(), max.ln(), *narrow_prior)
                } else {
                    (*min, *max, *narrow_prior)
                }
            }
            Self::Ladder {
                ladder,
                narrow_prior,
            } => {
                let (low, high) = ladder.bounds();
                (low, high, *narrow_prior)
            }
            Self::Fixed | Self::Categorical { .. } => return None,
        };
        let width = high - low;
        let sigma = if narrow { width / 6.0 } else { width };
        Some((low, high, 0.5 * (low + high), sigma))
    }

    /// The coordinate of `value`; `None` when the value is not in the domain
    /// (such trials are left out of the model).
    pub(crate) fn encode(&self, spec: &ParameterSpec, value: &ParamValue) -> Option<f64> {
        match self {
            Self::Fixed => spec.contains(value).then_some(0.0),
            Self::Continuous { min, max, log, .. } => {
                let x = value.as_f64()?;
                if !(*min <= x && x <= *max) {
                    return None;
                }
                Some(if *log { x.ln() } else { x })
            }
            Self::Ladder { ladder, .. } => {
                Some(stepped_index(spec, ladder.n, value).or_else(|| spec.index_of(value))? as f64)
            }
            Self::Categorical { .. } => Some(spec.index_of(value)? as f64),
        }
    }

    /// The value at coordinate `c` (clamped into the domain).
    pub(crate) fn decode(&self, spec: &ParameterSpec, c: f64) -> ParamValue {
        match self {
            Self::Fixed => spec.decode(0.5),
            Self::Continuous { min, max, log, .. } => {
                let x = if *log { c.exp() } else { c };
                ParamValue::Float(if x.is_nan() {
                    *min
                } else {
                    x.clamp(*min, *max)
                })
            }
            Self::Ladder { .. } | Self::Categorical { .. } => {
                let last = spec.points().unwrap_or(1).saturating_sub(1);
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let k = if c.is_nan() {
                    0
                } else {
                    c.round().clamp(0.0, last as f64) as u64
                };
                spec.point(k).unwrap_or_else(|| spec.decode(0.5))
            }
        }
    }
}

/// The index of a stepped double's value by arithmetic: `ParameterSpec::index_of`
/// tidies every candidate point through a decimal round trip, which costs
/// more than the whole model at a thousand trials. `None` defers to it.
fn stepped_index(spec: &ParameterSpec, n: u64, value: &ParamValue) -> Option<u64> {
    let Domain::Double {
        min,
        step: Some(step),
        ..
    } = spec.domain()
    else {
        return None;
    };
    let x = value.as_f64()?;
    let k = ((x - min) / step).round();
    let inside = k >= 0.0 && k < n as f64 && (min + k * step - x).abs() <= step * 1e-6;
    inside.then_some(k as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ladder_bins_tile_the_range_and_find_their_points() {
        let spec =
            ParameterSpec::int("units", 16, 512, Some(16), Distribution::LogUniform).unwrap();
        let Dim::Ladder { ladder, .. } = Dim::new(&spec) else {
            panic!("not a ladder")
        };
        assert_eq!(ladder.n, 32);
        for k in 0..ladder.n {
            let (low, high) = ladder.bin(k);
            assert!(low < ladder.z(k) && ladder.z(k) < high);
            if k + 1 < ladder.n {
                assert_eq!(high, ladder.bin(k + 1).0);
            }
            assert_eq!(ladder.point_at(ladder.z(k)), k);
            assert_eq!(ladder.point_at(low), k);
            assert_eq!(ladder.point_at(high.next_down()), k);
        }
        let (low, high) = ladder.bounds();
        assert_eq!(ladder.point_at(low - 1.0), 0);
        assert_eq!(ladder.point_at(high + 1.0), 31);
        assert_eq!(ladder.point_at(f64::NAN), 0);
    }

    #[test]
    fn values_round_trip_through_coordinates() {
        let specs = [
            ParameterSpec::double("a", 1e-4, 1e-1, None, Distribution::LogUniform).unwrap(),
            ParameterSpec::double("b", 0.5, 0.9, Some(0.1), Distribution::Uniform).unwrap(),
            ParameterSpec::int("c", 1, 8, None, Distribution::Normal).unwrap(),
            ParameterSpec::discrete("d", vec![ParamValue::Int(32), ParamValue::Float(0.5)])
                .unwrap(),
            ParameterSpec::categorical("e", vec!["x".into(), "y".into()]).unwrap(),
            ParameterSpec::double("f", 2.0, 2.0, None, Distribution::Uniform).unwrap(),
        ];
        for spec in &specs {
            let dim = Dim::new(spec);
            for k in 0..spec.points().unwrap_or(0) {
                let v = spec.point(k).unwrap();
                let c = dim.encode(spec, &v).unwrap();
                assert_eq!(dim.decode(spec, c), v, "{spec:?}");
            }
        }
        let a = &specs[0];
        let c = Dim::new(a).encode(a, &ParamValue::Float(0.01)).unwrap();
        assert!((c - 0.01f64.ln()).abs() < 1e-15);
        assert_eq!(Dim::new(a).encode(a, &ParamValue::Float(0.5)), None);
        assert_eq!(Dim::new(&specs[5]), Dim::Fixed);
        assert_eq!(
            Dim::new(&specs[5]).decode(&specs[5], 7.0),
            ParamValue::Float(2.0)
        );
    }
}
