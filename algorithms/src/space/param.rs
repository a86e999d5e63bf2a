//! One parameter of a search space: its domain, validated once at construction.
//!
//! Katib's four parameter types map to [`Domain`]; every constructor checks
//! what Katib's services would otherwise trip over at run time (NaN bounds,
//! `min > max`, log scale with `min <= 0`, empty or repeated lists, a step of
//! zero) and returns [`AlgorithmError::InvalidParameter`] instead of panicking.
//!
//! Quantised domains (`int`, `double` with `step`, `discrete`,
//! `categorical`) are a finite list of *points* addressed by an index
//! `0..points`; the grid, the unit-cube encoding and the samplers all go
//! through that index so they agree on what a valid value is.

use serde::{Deserialize, Serialize};

use super::value::ParamValue;
use crate::error::{AlgorithmError, ParameterProblem};

/// The most points a quantised parameter may have. Beyond 2^48 the bin
/// encoding `(k + 0.5) / n` no longer round-trips every index exactly in
/// `f64`, and no tuning run visits that many points anyway.
pub const MAX_POINTS: u64 = 1 << 48;

/// How values are spread over a numeric range (Katib's `distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Distribution {
    /// Uniform over `[min, max]` (Katib's default).
    #[default]
    Uniform,
    /// Uniform in `ln` space over `[ln min, ln max]`; needs `min > 0`.
    LogUniform,
    /// Normal with mean `(min+max)/2` and sigma `(max-min)/6`, truncated to `[min, max]`.
    Normal,
    /// Normal in `ln` space with mean and sigma computed the same way on
    /// `ln min`, `ln max`, truncated to `[min, max]`; needs `min > 0`.
    LogNormal,
}

impl Distribution {
    /// The Katib spelling (`uniform`, `logUniform`, `normal`, `logNormal`).
    #[must_use]
    pub fn katib_name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::LogUniform => "logUniform",
            Self::Normal => "normal",
            Self::LogNormal => "logNormal",
        }
    }

    /// Parses a Katib spelling; `None` for anything else.
    #[must_use]
    pub fn from_katib_name(name: &str) -> Option<Self> {
        [
            Self::Uniform,
            Self::LogUniform,
            Self::Normal,
            Self::LogNormal,
        ]
        .into_iter()
        .find(|d| d.katib_name() == name)
    }

    /// Whether the distribution lives in `ln` space.
    #[must_use]
    pub fn is_log(self) -> bool {
        matches!(self, Self::LogUniform | Self::LogNormal)
    }
}

/// The set of values a parameter can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Katib `double`: the real interval `[min, max]`, or with `step` the points
    /// `min + k*step <= max` (the last one clipped to `max` when it overshoots
    /// by float noise).
    Double {
        /// Lower bound, inclusive.
        min: f64,
        /// Upper bound, inclusive.
        max: f64,
        /// Optional quantisation step.
        step: Option<f64>,
        /// How random samplers spread values.
        distribution: Distribution,
    },
    /// Katib `int`: the integers `min + k*step <= max`.
    Int {
        /// Lower bound, inclusive.
        min: i64,
        /// Upper bound, inclusive.
        max: i64,
        /// Step (1 unless given).
        step: i64,
        /// How random samplers spread values.
        distribution: Distribution,
    },
    /// Katib `discrete`: numbers, kept sorted ascending.
    Discrete {
        /// The values (`Int` or `Float`), ascending.
        values: Vec<ParamValue>,
    },
    /// Katib `categorical`: strings in the order given (no order is implied).
    Categorical {
        /// The values.
        values: Vec<String>,
    },
}

/// A named, validated parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSpec {
    name: String,
    domain: Domain,
    /// `Some(n)` for quantised domains, `None` for a continuous double.
    points: Option<u64>,
}

fn invalid(name: &str, problem: ParameterProblem) -> AlgorithmError {
    AlgorithmError::InvalidParameter {
        name: name.to_owned(),
        problem,
    }
}

fn check_name(name: &str) -> Result<(), AlgorithmError> {
    if name.is_empty() {
        return Err(invalid(name, ParameterProblem::EmptyName));
    }
    Ok(())
}

fn check_order<T: PartialOrd + ToString>(name: &str, min: T, max: T) -> Result<(), AlgorithmError> {
    if min > max {
        return Err(invalid(
            name,
            ParameterProblem::MinAboveMax {
                min: min.to_string(),
                max: max.to_string(),
            },
        ));
    }
    Ok(())
}

fn check_log<T: ToString>(
    name: &str,
    distribution: Distribution,
    min_positive: bool,
    min: T,
) -> Result<(), AlgorithmError> {
    if distribution.is_log() && !min_positive {
        return Err(invalid(
            name,
            ParameterProblem::LogNeedsPositiveMin {
                distribution: distribution.katib_name(),
                min: min.to_string(),
            },
        ));
    }
    Ok(())
}

/// Removes float noise such as `0.30000000000000004` from `min + k*step`,
/// but only when the cleaned number is within a millionth of a step, so two
/// distinct grid points never merge.
fn tidy(x: f64, step: f64) -> f64 {
    match format!("{x:.14e}").parse::<f64>() {
        Ok(r) if (r - x).abs() <= step * 1e-6 && (r - x).abs() <= x.abs() * 4e-15 => r,
        _ => x,
    }
}

impl ParameterSpec {
    /// A Katib `double` parameter on `[min, max]`, optionally quantised by `step`.
    ///
    /// `min == max` is allowed (a constant parameter, one point).
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidParameter`] when a bound or the step is not
    /// finite, `min > max`, `max - min` overflows, the step is not positive or
    /// gives more than [`MAX_POINTS`] points, or a log distribution has `min <= 0`.
    pub fn double(
        name: impl Into<String>,
        min: f64,
        max: f64,
        step: Option<f64>,
        distribution: Distribution,
    ) -> Result<Self, AlgorithmError> {
        let name = name.into();
        check_name(&name)?;
        for (field, value) in [("min", min), ("max", max)]
            .into_iter()
            .chain(step.map(|s| ("step", s)))
        {
            if !value.is_finite() {
                return Err(invalid(&name, ParameterProblem::NotFinite { field, value }));
            }
        }
        check_order(&name, min, max)?;
        if !(max - min).is_finite() {
            return Err(invalid(
                &name,
                ParameterProblem::NotFinite {
                    field: "max - min",
                    value: max - min,
                },
            ));
        }
        check_log(&name, distribution, min > 0.0, min)?;
        let points = match step {
            None => None,
            Some(step) if step <= 0.0 => {
                return Err(invalid(
                    &name,
                    ParameterProblem::StepNotPositive {
                        step: step.to_string(),
                    },
                ));
            }
            Some(step) => Some(
                double_points(min, max, step)
                    .ok_or_else(|| invalid(&name, ParameterProblem::TooManyPoints))?,
            ),
        };
        Ok(Self {
            name,
            domain: Domain::Double {
                min,
                max,
                step,
                distribution,
            },
            points,
        })
    }

    /// A Katib `int` parameter on `[min, max]` with `step` (default 1).
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidParameter`] when `min > max`, the step is not
    /// positive, the range has more than [`MAX_POINTS`] points, or a log
    /// distribution has `min <= 0`.
    pub fn int(
        name: impl Into<String>,
        min: i64,
        max: i64,
        step: Option<i64>,
        distribution: Distribution,
    ) -> Result<Self, AlgorithmError> {
        let name = name.into();
        check_name(&name)?;
        check_order(&name, min, max)?;
        let step = step.unwrap_or(1);
        if step <= 0 {
            return Err(invalid(
                &name,
                ParameterProblem::StepNotPositive {
                    step: step.to_string(),
                },
            ));
        }
        check_log(&name, distribution, min > 0, min)?;
        let count = (i128::from(max) - i128::from(min)) / i128::from(step) + 1;
        let points = u64::try_from(count)
            .ok()
            .filter(|&n| n <= MAX_POINTS)
            .ok_or_else(|| invalid(&name, ParameterProblem::TooManyPoints))?;
        Ok(Self {
            name,
            domain: Domain::Int {
                min,
                max,
                step,
                distribution,
            },
            points: Some(points),
        })
    }

    /// A Katib `discrete` parameter: a list of numbers (`Int` or `Float`),
    /// stored sorted ascending so that neighbouring indices are neighbouring
    /// values (what the unit-cube encoding and model-based searches want).
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidParameter`] when the list is empty, holds a
    /// `Text` or non-finite value, or repeats a number (`1` and `1.0` are the same).
    pub fn discrete(
        name: impl Into<String>,
        values: Vec<ParamValue>,
    ) -> Result<Self, AlgorithmError> {
        let name = name.into();
        check_name(&name)?;
        if values.is_empty() {
            return Err(invalid(&name, ParameterProblem::EmptyList));
        }
        let mut keyed = Vec::with_capacity(values.len());
        for v in values {
            match v {
                ParamValue::Int(i) => keyed.push((v.as_f64().unwrap_or(0.0), i, v)),
                ParamValue::Float(f) if f.is_finite() => keyed.push((f, 0, v)),
                ParamValue::Float(f) => {
                    return Err(invalid(
                        &name,
                        ParameterProblem::NotFinite {
                            field: "list",
                            value: f,
                        },
                    ));
                }
                ParamValue::Text(t) => {
                    return Err(AlgorithmError::InvalidValue {
                        name,
                        value: t,
                        expected: "a number (discrete lists hold numbers)",
                    });
                }
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for pair in keyed.windows(2) {
            if let [a, b] = pair
                && numbers_equal(&a.2, &b.2)
            {
                return Err(invalid(
                    &name,
                    ParameterProblem::DuplicateValue {
                        value: b.2.to_katib_string(),
                    },
                ));
            }
        }
        let values: Vec<ParamValue> = keyed.into_iter().map(|k| k.2).collect();
        let points = Some(values.len() as u64);
        Ok(Self {
            name,
            domain: Domain::Discrete { values },
            points,
        })
    }

    /// A Katib `categorical` parameter: a list of distinct strings.
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidParameter`] when the list is empty or repeats a string.
    pub fn categorical(
        name: impl Into<String>,
        values: Vec<String>,
    ) -> Result<Self, AlgorithmError> {
        let name = name.into();
        check_name(&name)?;
        if values.is_empty() {
            return Err(invalid(&name, ParameterProblem::EmptyList));
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &values {
            if !seen.insert(v.as_str()) {
                return Err(invalid(
                    &name,
                    ParameterProblem::DuplicateValue { value: v.clone() },
                ));
            }
        }
        let points = Some(values.len() as u64);
        Ok(Self {
            name,
            domain: Domain::Categorical { values },
            points,
        })
    }

    /// The parameter's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter's domain.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The number of points of a quantised domain; `None` for a continuous double.
    #[must_use]
    pub fn points(&self) -> Option<u64> {
        self.points
    }

    /// Whether the parameter is `int` or `double`.
    #[must_use]
    pub fn is_numeric_range(&self) -> bool {
        matches!(self.domain, Domain::Int { .. } | Domain::Double { .. })
    }

    /// The distribution of an `int`/`double` (uniform for lists).
    #[must_use]
    pub fn distribution(&self) -> Distribution {
        match self.domain {
            Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => distribution,
            Domain::Discrete { .. } | Domain::Categorical { .. } => Distribution::Uniform,
        }
    }

    /// The point at index `k` of a quantised domain (`None` when continuous
    /// or out of range). Computed as `min + k*step`, never by accumulation.
    #[must_use]
    pub fn point(&self, k: u64) -> Option<ParamValue> {
        if k >= self.points? {
            return None;
        }
        match &self.domain {
            Domain::Double { min, max, step, .. } => {
                let step = (*step)?;
                let x = tidy(min + k as f64 * step, step).clamp(*min, *max);
                Some(ParamValue::Float(x))
            }
            Domain::Int { min, step, .. } => {
                let v = i128::from(*min) + i128::from(k) * i128::from(*step);
                i64::try_from(v).ok().map(ParamValue::Int)
            }
            Domain::Discrete { values } => values.get(usize::try_from(k).ok()?).cloned(),
            Domain::Categorical { values } => values
                .get(usize::try_from(k).ok()?)
                .map(|s| ParamValue::Text(s.clone())),
        }
    }

    /// The index of `value` among the points of a quantised domain; `None`
    /// when the domain is continuous or the value is not one of its points.
    /// Numbers match across `Int`/`Float` (`3.0` is the int point `3`).
    #[must_use]
    pub fn index_of(&self, value: &ParamValue) -> Option<u64> {
        let n = self.points?;
        match &self.domain {
            Domain::Double { min, step, .. } => {
                let step = (*step)?;
                let x = value.as_f64()?;
                let k = ((x - min) / step).round();
                if !(0.0..=MAX_POINTS as f64).contains(&k) {
                    return None;
                }
                let k = k as u64;
                let p = self.point(k)?.as_f64()?;
                // Values read back from another tool may differ from ours by
                // float noise; a billionth of a step is still the same point.
                ((p - x).abs() <= step * 1e-9)
                    .then_some(k)
                    .filter(|&k| k < n)
            }
            Domain::Int { min, max, step, .. } => {
                let i = match value {
                    ParamValue::Int(i) => *i,
                    ParamValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => *f as i64,
                    _ => return None,
                };
                if i < *min
                    || i > *max
                    || (i128::from(i) - i128::from(*min)) % i128::from(*step) != 0
                {
                    return None;
                }
                u64::try_from((i128::from(i) - i128::from(*min)) / i128::from(*step)).ok()
            }
            Domain::Discrete { values } => values
                .iter()
                .position(|v| numbers_equal(v, value))
                .map(|i| i as u64),
            Domain::Categorical { values } => {
                let text = match value {
                    ParamValue::Text(t) => t.clone(),
                    other => other.to_katib_string(),
                };
                values.iter().position(|v| *v == text).map(|i| i as u64)
            }
        }
    }

    /// Whether `value` is a valid value of this parameter.
    #[must_use]
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (&self.domain, self.points) {
            (Domain::Double { min, max, .. }, None) => {
                value.as_f64().is_some_and(|x| *min <= x && x <= *max)
            }
            _ => self.index_of(value).is_some(),
        }
    }

    /// Parses a Katib assignment string into this parameter's value type.
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidValue`] when the text is not a value of this
    /// parameter's type (range is not checked here; see [`Self::contains`]).
    pub fn parse_value(&self, text: &str) -> Result<ParamValue, AlgorithmError> {
        let bad = |expected| AlgorithmError::InvalidValue {
            name: self.name.clone(),
            value: text.to_owned(),
            expected,
        };
        match &self.domain {
            Domain::Double { .. } => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(ParamValue::Float)
                .ok_or_else(|| bad("a finite number")),
            Domain::Int { .. } => match ParamValue::parse_number(text) {
                Some(ParamValue::Int(i)) => Ok(ParamValue::Int(i)),
                Some(ParamValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                    let i = f as i64;
                    Ok(ParamValue::Int(i))
                }
                _ => Err(bad("an integer")),
            },
            Domain::Discrete { .. } => ParamValue::parse_number(text)
                .and_then(|v| self.index_of(&v))
                .and_then(|k| self.point(k))
                .ok_or_else(|| bad("one of the discrete values")),
            Domain::Categorical { .. } => Ok(ParamValue::Text(text.to_owned())),
        }
    }
}

/// Numeric equality across `Int`/`Float`; exact between two `Int`s.
fn numbers_equal(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Int(x), ParamValue::Int(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// The number of points `min + k*step <= max` of a stepped double; a last
/// point that overshoots `max` by less than a billionth of a step (float
/// noise, as in `0 + 3*0.1`) still counts and is clipped to `max`.
fn double_points(min: f64, max: f64, step: f64) -> Option<u64> {
    let q = (max - min) / step;
    if !q.is_finite() || q >= (MAX_POINTS - 1) as f64 {
        return None;
    }
    let tolerance = step * 1e-9;
    let fits = |k: f64| min + k * step <= max + tolerance;
    let mut k = q.floor();
    if fits(k + 1.0) {
        k += 1.0;
    }
    while k > 0.0 && !fits(k) {
        k -= 1.0;
    }
    Some(k as u64 + 1)
}
