//! The unit-cube view of a space: one coordinate in `[0, 1]` per parameter.
//!
//! Model-based and quasi-random searches (Sobol, later GP, CMA-ES, TPE) work
//! in `[0, 1]^d`; this module owns the only mapping between that cube and
//! parameter values, so every algorithm agrees on it.
//!
//! * continuous `double`: linear in the value, or in `ln` value for the log
//!   distributions (the prior's *shape* — normal vs uniform — is not part of
//!   the encoding, only its scale);
//! * quantised with a linear scale (`int`, stepped `double`, `discrete`,
//!   `categorical`): `n` equal bins, point `k` encodes as the bin centre
//!   `(k + 0.5) / n`, so a uniform coordinate picks every point equally often;
//! * quantised with a log distribution: the log-scale position of the point;
//!   decoding rounds to the nearest point.
//!
//! Round trip: `decode(encode(v)) == v` exactly for every point of a
//! quantised parameter, and for every continuous value that `decode` (and so
//! every sampler here) can produce. An arbitrary float from outside — say a
//! hand-written history entry between two representable codes — decodes to a
//! neighbour within a few ulps of the range width: `[min, max]` can hold more
//! doubles than `[0, 1]` (think `[-1, 1]` around `1e-300`), so no
//! one-`f64`-per-parameter encoding can be exact for all of them.

use super::{Assignment, Domain, ParamValue, ParameterSpec, SearchSpace};

impl ParameterSpec {
    /// The coordinate of `value` in `[0, 1]`; `None` when the value is not in
    /// the domain.
    #[must_use]
    pub fn encode(&self, value: &ParamValue) -> Option<f64> {
        match (self.domain(), self.points()) {
            (Domain::Double { min, max, .. }, None) => {
                let x = value.as_f64()?;
                if !(*min <= x && x <= *max) {
                    return None;
                }
                Some(self.encode_continuous(x))
            }
            (_, Some(n)) => {
                let k = self.index_of(value)?;
                if let Some(u) = self.log_code_of_index(k) {
                    return Some(u);
                }
                Some((k as f64 + 0.5) / n as f64)
            }
            // A continuous domain other than double does not exist.
            (_, None) => None,
        }
    }

    /// The value at coordinate `u`; `u` is clamped to `[0, 1]` and NaN reads as 0.
    #[must_use]
    pub fn decode(&self, u: f64) -> ParamValue {
        let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
        match (self.domain(), self.points()) {
            (_, Some(n)) => {
                let k = self.index_at(u, n);
                self.point(k).unwrap_or(ParamValue::Float(f64::NAN))
            }
            (_, None) => ParamValue::Float(self.decode_continuous(u)),
        }
    }

    /// The index a coordinate decodes to.
    pub(crate) fn index_at(&self, u: f64, n: u64) -> u64 {
        if self.distribution().is_log() && n > 1 {
            return self.nearest_index(self.log_value(u));
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let k = (u * n as f64).floor() as u64;
        k.min(n - 1)
    }

    /// For a quantised `int`/`double`: the index of the point nearest to `x`.
    pub(crate) fn nearest_index(&self, x: f64) -> u64 {
        let n = self.points().unwrap_or(1);
        let (min, step) = match self.domain() {
            Domain::Double {
                min,
                step: Some(step),
                ..
            } => (*min, *step),
            Domain::Int { min, step, .. } => (*min as f64, *step as f64),
            _ => return 0,
        };
        let k = ((x - min) / step).round();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let k = k.clamp(0.0, (n - 1) as f64) as u64;
        k
    }

    /// `(low, high)` in value space of the numeric range: for quantised
    /// parameters the first and last point, else `min`, `max`.
    pub(crate) fn numeric_range(&self) -> Option<(f64, f64)> {
        match self.domain() {
            Domain::Double { min, max, .. } => {
                let high = match self.points() {
                    Some(n) => self.point(n - 1)?.as_f64()?,
                    None => *max,
                };
                Some((*min, high))
            }
            Domain::Int { .. } => {
                let n = self.points()?;
                Some((self.point(0)?.as_f64()?, self.point(n - 1)?.as_f64()?))
            }
            Domain::Discrete { .. } | Domain::Categorical { .. } => None,
        }
    }

    /// The value at log-scale coordinate `u` (endpoints exact).
    pub(crate) fn log_value(&self, u: f64) -> f64 {
        self.scaled_value(u, true)
    }

    /// The value at coordinate `u` on a linear or log scale; the endpoints
    /// are returned exactly because `exp(ln(x))` need not be `x`.
    fn scaled_value(&self, u: f64, log: bool) -> f64 {
        let Some((low, high)) = self.numeric_range() else {
            return f64::NAN;
        };
        if u <= 0.0 || low == high {
            return low;
        }
        if u >= 1.0 {
            return high;
        }
        let x = if log {
            let (a, b) = (low.ln(), high.ln());
            (a + u * (b - a)).exp()
        } else {
            low + u * (high - low)
        };
        x.clamp(low, high)
    }

    fn decode_continuous(&self, u: f64) -> f64 {
        self.scaled_value(u, self.distribution().is_log())
    }

    fn encode_continuous(&self, x: f64) -> f64 {
        let Some((low, high)) = self.numeric_range() else {
            return 0.5;
        };
        if low == high {
            return 0.5;
        }
        let guess = if self.distribution().is_log() {
            (x.ln() - low.ln()) / (high.ln() - low.ln())
        } else {
            (x - low) / (high - low)
        };
        let guess = if guess.is_nan() {
            0.5
        } else {
            guess.clamp(0.0, 1.0)
        };
        // Floating-point division and multiplication need not invert each
        // other; search the neighbouring codes for one that decodes to x.
        let (mut up, mut down) = (guess, guess);
        for _ in 0..8 {
            if self.decode_continuous(up) == x {
                return up;
            }
            if self.decode_continuous(down) == x {
                return down;
            }
            up = up.next_up().min(1.0);
            down = down.next_down().max(0.0);
        }
        guess
    }

    /// The log-scale code of point `k` for log-distributed quantised ranges.
    fn log_code_of_index(&self, k: u64) -> Option<f64> {
        if !self.distribution().is_log() {
            return None;
        }
        let (low, high) = self.numeric_range()?;
        let x = self.point(k)?.as_f64()?;
        if low == high {
            return Some(0.5);
        }
        Some(((x.ln() - low.ln()) / (high.ln() - low.ln())).clamp(0.0, 1.0))
    }
}

impl SearchSpace {
    /// The unit-cube coordinates of `assignment`, one per parameter in
    /// space order; `None` if a parameter is missing or out of its domain.
    #[must_use]
    pub fn encode(&self, assignment: &Assignment) -> Option<Vec<f64>> {
        self.params()
            .iter()
            .map(|p| p.encode(assignment.get(p.name())?))
            .collect()
    }

    /// The assignment at unit-cube point `u` (missing coordinates read as 0.5,
    /// extra ones are ignored).
    #[must_use]
    pub fn decode(&self, u: &[f64]) -> Assignment {
        self.params()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name(), p.decode(u.get(i).copied().unwrap_or(0.5))))
            .collect()
    }
}
