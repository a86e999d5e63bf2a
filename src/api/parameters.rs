//! Parameters as numbers: Katib keeps bounds, steps and lists as strings;
//! this module parses them once, with a field-named problem for each thing
//! wrong, so validation and the conversion into a search space share one
//! reading of the YAML.
//!
//! Parsing here is about the text (numbers, integers, which fields a type
//! takes). Whether the numbers make a valid parameter (order, positive
//! steps, log bounds, repeated values) is the algorithm library's rule,
//! asked through [`ParsedParameter::to_spec`] and reported with the field
//! it concerns, so the rule exists once.

use ktune_algorithms::error::{AlgorithmError, ParameterProblem as Refusal};
use ktune_algorithms::space::{self, ParamValue};

use super::enums::{Distribution, ParameterType};
use super::experiment::ParameterSpec;

/// A parameter whose numbers parsed and whose ranges make sense.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedParameter {
    /// A real interval.
    Double {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Quantisation step.
        step: Option<f64>,
        /// Sampling distribution.
        distribution: Distribution,
    },
    /// An integer interval, inclusive.
    Int {
        /// Lower bound.
        min: i64,
        /// Upper bound.
        max: i64,
        /// Step (absent: 1).
        step: Option<i64>,
        /// Sampling distribution.
        distribution: Distribution,
    },
    /// An ordered list of numbers, with their original text.
    Discrete {
        /// The values as numbers.
        values: Vec<f64>,
        /// The values as written (handed to trials unchanged).
        texts: Vec<String>,
    },
    /// An unordered list of words.
    Categorical {
        /// The values.
        values: Vec<String>,
    },
}

/// A problem with one field of a parameter, relative to the parameter
/// (`feasibleSpace.min`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterProblem {
    /// The field, relative to the parameter.
    pub field: String,
    /// Why.
    pub message: String,
}

fn problem(field: &str, message: impl Into<String>) -> ParameterProblem {
    ParameterProblem {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn parse_f64(field: &str, text: &str) -> Result<f64, ParameterProblem> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(problem(
            field,
            format!("must be a finite number, got {text:?}"),
        )),
        Err(_) => Err(problem(field, format!("{text:?} is not a number"))),
    }
}

fn parse_i64(field: &str, text: &str) -> Result<i64, ParameterProblem> {
    let trimmed = text.trim();
    trimmed
        .parse::<i64>()
        .map_err(|_| match trimmed.parse::<f64>() {
            Ok(v) if v.is_finite() && v.fract() != 0.0 => problem(
                field,
                format!(
                    "{text:?} is not a whole number; int parameters need integer bounds and steps"
                ),
            ),
            Ok(v) if v.is_finite() && v.fract() == 0.0 => problem(
                field,
                format!("write {text:?} without a decimal point ({v:.0}); Katib refuses it"),
            ),
            _ => problem(field, format!("{text:?} is not an integer")),
        })
}

/// Parses one parameter, reporting every problem.
///
/// # Errors
/// Each problem with the field it concerns, relative to the parameter.
pub fn parse_parameter(
    parameter: &ParameterSpec,
) -> Result<ParsedParameter, Vec<ParameterProblem>> {
    let mut problems = Vec::new();
    let default_space = Default::default();
    let space = parameter.feasible_space.as_ref().unwrap_or(&default_space);
    let distribution = space.distribution.clone().unwrap_or(Distribution::Uniform);
    if let Distribution::Other(d) = &distribution {
        problems.push(problem(
            "feasibleSpace.distribution",
            format!(
                "{d:?} is not a distribution; expected one of {}",
                Distribution::KNOWN.join(", ")
            ),
        ));
    }
    let parsed = match &parameter.parameter_type {
        None => {
            problems.push(problem(
                "parameterType",
                "required: double, int, discrete or categorical",
            ));
            None
        }
        Some(ParameterType::Other(t)) => {
            problems.push(problem(
                "parameterType",
                format!(
                    "{t:?} is not a parameter type; expected one of {}",
                    ParameterType::KNOWN.join(", ")
                ),
            ));
            None
        }
        Some(ParameterType::Double) => {
            parse_range(space, &mut problems, parse_f64).map(|(min, max, step)| {
                ParsedParameter::Double {
                    min,
                    max,
                    step,
                    distribution: distribution.clone(),
                }
            })
        }
        Some(ParameterType::Int) => {
            parse_range(space, &mut problems, parse_i64).map(|(min, max, step)| {
                ParsedParameter::Int {
                    min,
                    max,
                    step,
                    distribution: distribution.clone(),
                }
            })
        }
        Some(kind @ (ParameterType::Discrete | ParameterType::Categorical)) => {
            list_shape(kind, space, &distribution, &mut problems);
            parse_list(kind, &space.list, &mut problems)
        }
    };
    if let Some(p) = &parsed {
        check_with_library(&parameter.name, p, &mut problems);
    }
    match parsed {
        Some(p) if problems.is_empty() => Ok(p),
        _ => Err(problems),
    }
}

/// The library's rules apply to whatever parsed, even beside problems of
/// shape, so that one reading reports both (not over a list whose items
/// did not parse: those are reported already).
fn check_with_library(name: &str, parsed: &ParsedParameter, problems: &mut Vec<ParameterProblem>) {
    if problems
        .iter()
        .any(|p| p.field.starts_with("feasibleSpace.list["))
    {
        return;
    }
    let name = if name.is_empty() { "parameter" } else { name };
    if let Err(refused) = parsed.to_spec(name) {
        problems.push(refusal_problem(&refused, parsed));
    }
}

impl ParsedParameter {
    /// The parameter as the algorithm library's search-space dimension.
    ///
    /// # Errors
    /// The library's [`AlgorithmError`] when the numbers do not make a
    /// parameter (`min > max`, a step that is not positive, a log
    /// distribution from zero, an empty list, a value listed twice …).
    pub fn to_spec(&self, name: &str) -> Result<space::ParameterSpec, AlgorithmError> {
        match self {
            Self::Double {
                min,
                max,
                step,
                distribution,
            } => space::ParameterSpec::double(
                name,
                *min,
                *max,
                *step,
                library_distribution(distribution),
            ),
            Self::Int {
                min,
                max,
                step,
                distribution,
            } => space::ParameterSpec::int(
                name,
                *min,
                *max,
                *step,
                library_distribution(distribution),
            ),
            Self::Discrete { texts, .. } => space::ParameterSpec::discrete(
                name,
                texts
                    .iter()
                    .map(|t| ParamValue::parse_number(t).unwrap_or(ParamValue::Text(t.clone())))
                    .collect(),
            ),
            Self::Categorical { values } => space::ParameterSpec::categorical(name, values.clone()),
        }
    }
}

/// The library's distribution of the same name (`Other` words are refused
/// by validation; they sample uniformly if they ever get here).
fn library_distribution(d: &Distribution) -> space::Distribution {
    space::Distribution::from_katib_name(d.as_str()).unwrap_or(space::Distribution::Uniform)
}

/// The library's refusal as a problem with the field it concerns (a value
/// listed twice: its second place in the list).
fn refusal_problem(refused: &AlgorithmError, parsed: &ParsedParameter) -> ParameterProblem {
    let AlgorithmError::InvalidParameter { problem: why, .. } = refused else {
        return problem("feasibleSpace.list", refused.to_string());
    };
    let field = match why {
        Refusal::NotFinite { field: "step", .. }
        | Refusal::StepNotPositive { .. }
        | Refusal::TooManyPoints => "feasibleSpace.step".to_owned(),
        Refusal::NotFinite { field: "min", .. }
        | Refusal::MinAboveMax { .. }
        | Refusal::LogNeedsPositiveMin { .. } => "feasibleSpace.min".to_owned(),
        Refusal::NotFinite { .. } => "feasibleSpace.max".to_owned(),
        Refusal::EmptyName => "name".to_owned(),
        Refusal::DuplicateValue { value } => repeated_at(parsed, value).map_or_else(
            || "feasibleSpace.list".to_owned(),
            |i| format!("feasibleSpace.list[{i}]"),
        ),
        Refusal::EmptyList => "feasibleSpace.list".to_owned(),
    };
    problem(&field, why.to_string())
}

/// Where a value the library found twice occurs the second time.
fn repeated_at(parsed: &ParsedParameter, value: &str) -> Option<usize> {
    let texts = match parsed {
        ParsedParameter::Discrete { texts, .. } => texts,
        ParsedParameter::Categorical { values } => values,
        _ => return None,
    };
    texts
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == value)
        .nth(1)
        .map(|(i, _)| i)
}

/// What a list parameter must not have: bounds, a step, a distribution.
fn list_shape(
    kind: &ParameterType,
    space: &super::experiment::FeasibleSpace,
    distribution: &Distribution,
    problems: &mut Vec<ParameterProblem>,
) {
    for (field, present) in [
        ("feasibleSpace.min", space.min.is_some()),
        ("feasibleSpace.max", space.max.is_some()),
        ("feasibleSpace.step", space.step.is_some()),
    ] {
        if present {
            problems.push(problem(
                field,
                format!("{kind} parameters take a list, not {}", &field[14..]),
            ));
        }
    }
    if !matches!(distribution, Distribution::Uniform | Distribution::Other(_)) {
        problems.push(problem(
            "feasibleSpace.distribution",
            format!("{kind} parameters are sampled from their list; {distribution} does not apply"),
        ));
    }
}

fn parse_list(
    kind: &ParameterType,
    list: &[String],
    problems: &mut Vec<ParameterProblem>,
) -> Option<ParsedParameter> {
    for (i, item) in list.iter().enumerate() {
        let field = format!("feasibleSpace.list[{i}]");
        if *kind == ParameterType::Discrete {
            if let Err(p) = parse_f64(&field, item) {
                problems.push(p);
            }
        } else if item.is_empty() {
            problems.push(problem(&field, "list values must not be empty"));
        }
    }
    Some(if *kind == ParameterType::Discrete {
        ParsedParameter::Discrete {
            values: list.iter().filter_map(|t| t.trim().parse().ok()).collect(),
            texts: list.to_vec(),
        }
    } else {
        ParsedParameter::Categorical {
            values: list.to_vec(),
        }
    })
}

/// Numbers that can be bounds: both `f64` and `i64`.
trait Bound: Copy + PartialOrd + std::fmt::Display {
    fn positive(self) -> bool;
    fn span_as_f64(min: Self, max: Self) -> f64;
    fn as_f64(self) -> f64;
}

impl Bound for f64 {
    fn positive(self) -> bool {
        self > 0.0
    }
    fn span_as_f64(min: Self, max: Self) -> f64 {
        max - min
    }
    fn as_f64(self) -> f64 {
        self
    }
}

impl Bound for i64 {
    fn positive(self) -> bool {
        self > 0
    }
    fn span_as_f64(min: Self, max: Self) -> f64 {
        (i128::from(max) - i128::from(min)) as f64
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

fn parse_range<T: Bound>(
    space: &super::experiment::FeasibleSpace,
    problems: &mut Vec<ParameterProblem>,
    parse: fn(&str, &str) -> Result<T, ParameterProblem>,
) -> Option<(T, T, Option<T>)> {
    if !space.list.is_empty() {
        problems.push(problem(
            "feasibleSpace.list",
            "int and double parameters take min and max, not a list",
        ));
    }
    let mut field = |name: &str, text: Option<&String>, required: bool| match text {
        None if required => {
            problems.push(problem(name, "required for int and double parameters"));
            None
        }
        None => None,
        Some(t) => parse(name, t).map_err(|p| problems.push(p)).ok(),
    };
    let min = field("feasibleSpace.min", space.min.as_ref(), true);
    let max = field("feasibleSpace.max", space.max.as_ref(), true);
    let step = field("feasibleSpace.step", space.step.as_ref(), false);
    let step_failed = space.step.is_some() && step.is_none();
    let (min, max) = (min?, max?);
    // The library allows a step wider than the range (one point); Katib's
    // users mean something else by it, so it is refused here.
    if let Some(step) = step
        && step.positive()
        && min < max
        && step.as_f64() > T::span_as_f64(min, max)
    {
        problems.push(problem(
            "feasibleSpace.step",
            format!("step {step} is larger than the range {min}..{max}"),
        ));
        return None;
    }
    (!step_failed).then_some((min, max, step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::experiment::FeasibleSpace;

    fn param(
        t: &str,
        min: Option<&str>,
        max: Option<&str>,
        step: Option<&str>,
        list: &[&str],
    ) -> ParameterSpec {
        ParameterSpec {
            name: "p".into(),
            parameter_type: Some(ParameterType::from_word(t)),
            feasible_space: Some(FeasibleSpace {
                min: min.map(Into::into),
                max: max.map(Into::into),
                step: step.map(Into::into),
                list: list.iter().map(|s| (*s).to_owned()).collect(),
                distribution: None,
            }),
        }
    }

    fn fields(r: Result<ParsedParameter, Vec<ParameterProblem>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn good_parameters_parse() {
        assert_eq!(
            parse_parameter(&param("int", Some("1"), Some("10"), Some("3"), &[])),
            Ok(ParsedParameter::Int {
                min: 1,
                max: 10,
                step: Some(3),
                distribution: Distribution::Uniform
            })
        );
        assert!(matches!(
            parse_parameter(&param("discrete", None, None, None, &["1", "2.5"])),
            Ok(ParsedParameter::Discrete { .. })
        ));
    }

    #[test]
    fn bad_numbers_are_named() {
        assert_eq!(
            fields(parse_parameter(&param(
                "double",
                Some("a"),
                Some("inf"),
                None,
                &[]
            ))),
            ["feasibleSpace.min", "feasibleSpace.max"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "int",
                Some("1.5"),
                Some("4"),
                None,
                &[]
            ))),
            ["feasibleSpace.min"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "double",
                Some("2"),
                Some("1"),
                None,
                &[]
            ))),
            ["feasibleSpace.min"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "double",
                Some("0"),
                Some("1"),
                Some("2"),
                &[]
            ))),
            ["feasibleSpace.step"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "double",
                Some("0"),
                Some("1"),
                Some("-1"),
                &[]
            ))),
            ["feasibleSpace.step"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "categorical",
                None,
                None,
                None,
                &[]
            ))),
            ["feasibleSpace.list"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "categorical",
                Some("1"),
                None,
                None,
                &["a", "a"]
            ))),
            ["feasibleSpace.min", "feasibleSpace.list[1]"]
        );
        assert_eq!(
            fields(parse_parameter(&param(
                "discrete",
                None,
                None,
                None,
                &["1", "x"]
            ))),
            ["feasibleSpace.list[1]"]
        );
        assert_eq!(
            fields(parse_parameter(&param("float", None, None, None, &[]))),
            ["parameterType"]
        );
    }

    #[test]
    fn log_distributions_need_positive_bounds() {
        let mut p = param("double", Some("0"), Some("1"), None, &[]);
        p.feasible_space.as_mut().unwrap().distribution = Some(Distribution::LogUniform);
        assert_eq!(fields(parse_parameter(&p)), ["feasibleSpace.min"]);
    }
}
