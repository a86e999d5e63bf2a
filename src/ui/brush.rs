//! The parallel-coordinates selection ("brush") that filters the trial
//! table. The page's script turns dragged axis ranges into values and puts
//! them in the `brush` query parameter as JSON; the server filters the
//! table by it, so the selection also reaches every page of the table and
//! the exports, and a link with it can be shared.
//!
//! Format: `{"params":{"lr":[0.001,0.01],"optimizer":["adam"]},"objective":[0,0.5]}`
//! — per parameter an inclusive numeric range or a set of categories, and
//! optionally an inclusive range of the objective. A malformed value is
//! ignored (the table shows everything and says so) rather than failing
//! the page: it comes from a URL anyone can edit.

use serde::Deserialize;

use super::svg::num as short;
use crate::store::TrialRow;

/// What one axis keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AxisRange {
    /// Numbers from the first to the second, inclusive (either order).
    Numbers(f64, f64),
    /// These category values.
    Choices(Vec<String>),
}

impl AxisRange {
    fn keeps(&self, value: &str) -> bool {
        match self {
            Self::Numbers(a, b) => value
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v >= a.min(*b) && v <= a.max(*b)),
            Self::Choices(cs) => cs.iter().any(|c| c == value),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Numbers(a, b) => format!("{} – {}", short(a.min(*b)), short(a.max(*b))),
            Self::Choices(cs) => cs.join(" | "),
        }
    }
}

/// A parsed selection.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brush {
    /// Per parameter, in the order given.
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    /// The objective's range.
    #[serde(default)]
    objective: Option<(f64, f64)>,
    /// `params` parsed (filled by [`Brush::parse`]).
    #[serde(skip)]
    ranges: Vec<(String, AxisRange)>,
}

impl Brush {
    /// The selection in `text`, or `None` when it is empty or malformed.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let mut brush: Self = serde_json::from_str(text).ok()?;
        let params = std::mem::take(&mut brush.params);
        for (name, value) in params {
            let range: AxisRange = serde_json::from_value(value).ok()?;
            if let AxisRange::Numbers(a, b) = range
                && !(a.is_finite() && b.is_finite())
            {
                return None;
            }
            brush.ranges.push((name, range));
        }
        if brush
            .objective
            .is_some_and(|(a, b)| !(a.is_finite() && b.is_finite()))
        {
            return None;
        }
        (!brush.ranges.is_empty() || brush.objective.is_some()).then_some(brush)
    }

    /// Whether `trial` lies inside every range (a trial without the
    /// parameter, or without an objective when the objective is brushed,
    /// does not).
    #[must_use]
    pub fn keeps(&self, trial: &TrialRow) -> bool {
        let params_ok = self
            .ranges
            .iter()
            .all(|(name, range)| trial.parameter(name).is_some_and(|v| range.keeps(v)));
        let objective_ok = self.objective.is_none_or(|(a, b)| {
            trial
                .objective
                .is_some_and(|v| v >= a.min(b) && v <= a.max(b))
        });
        params_ok && objective_ok
    }

    /// For people: `lr 0.001 – 0.01, loss 0 – 0.5`.
    #[must_use]
    pub fn describe(&self, metric: &str) -> String {
        let mut parts: Vec<String> = self
            .ranges
            .iter()
            .map(|(name, range)| format!("{name} {}", range.text()))
            .collect();
        if let Some((a, b)) = self.objective {
            parts.push(format!(
                "{metric} {} – {}",
                short(a.min(b)),
                short(a.max(b))
            ));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_algorithms::history::TrialState;

    fn trial(lr: &str, opt: &str, objective: Option<f64>) -> TrialRow {
        TrialRow {
            assignment: vec![("lr".into(), lr.into()), ("opt".into(), opt.into())],
            objective,
            ..TrialRow::example(1, TrialState::Succeeded)
        }
    }

    #[test]
    fn numeric_ranges_are_inclusive_in_either_order() {
        let b = Brush::parse(r#"{"params":{"lr":[0.01,0.001]}}"#).unwrap();
        assert!(b.keeps(&trial("0.001", "sgd", None)));
        assert!(b.keeps(&trial("0.01", "sgd", None)));
        assert!(b.keeps(&trial("0.005", "sgd", None)));
        assert!(!b.keeps(&trial("0.02", "sgd", None)));
        assert!(!b.keeps(&trial("abc", "sgd", None)));
    }

    #[test]
    fn categories_objective_and_missing_parameters() {
        let b = Brush::parse(r#"{"params":{"opt":["adam"]},"objective":[0,0.5]}"#).unwrap();
        assert!(b.keeps(&trial("1", "adam", Some(0.2))));
        assert!(!b.keeps(&trial("1", "sgd", Some(0.2))));
        assert!(!b.keeps(&trial("1", "adam", Some(0.7))));
        assert!(!b.keeps(&trial("1", "adam", None)), "no objective: outside");
        let other = Brush::parse(r#"{"params":{"layers":[1,2]}}"#).unwrap();
        assert!(!other.keeps(&trial("1", "adam", Some(0.2))));
        assert_eq!(b.describe("loss"), "opt adam, loss 0 – 0.5");
    }

    #[test]
    fn malformed_or_empty_selections_are_ignored() {
        for text in [
            "",
            "not json",
            "{}",
            r#"{"params":{}}"#,
            r#"{"params":{"lr":"x"}}"#,
            r#"{"params":{"lr":[1]}}"#,
            r#"{"objective":[1,"a"]}"#,
            r#"{"other":1}"#,
            r#"{"params":{"lr":[1e999,2]}}"#,
        ] {
            assert_eq!(Brush::parse(text), None, "{text}");
        }
    }
}
