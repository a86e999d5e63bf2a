//! Parameter values and assignments, and how they are written as Katib strings.
//!
//! Katib hands every value to a trial as a string; this module owns that
//! rendering so that every suggester, the store and the trial template agree
//! on it bit for bit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One parameter's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A value of an `int` parameter (or an integral `discrete` item).
    Int(i64),
    /// A value of a `double` parameter (or a fractional `discrete` item).
    Float(f64),
    /// A value of a `categorical` parameter.
    Text(String),
}

impl ParamValue {
    /// The numeric value, if this is a number (`Int` widens, possibly losing
    /// precision beyond 2^53).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(v) => Some(*v as f64),
            Self::Float(v) => Some(*v),
            Self::Text(_) => None,
        }
    }

    /// Parses a Katib number string: an integer if it parses as `i64`,
    /// otherwise a finite `f64`; `None` for anything else.
    #[must_use]
    pub fn parse_number(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(v) = text.parse::<i64>() {
            return Some(Self::Int(v));
        }
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Self::Float)
    }

    /// Katib's string form: integers without decimals, floats in the
    /// shortest form that parses back to the same `f64` (always with a `.`
    /// or an exponent, e.g. `2.0`, `0.001`, `1e-7`), text as is.
    #[must_use]
    pub fn to_katib_string(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            // Rust's `Debug` for f64 is the shortest round-trip form and keeps a
            // `.0` on integral values, like Python's `repr`, so trial programs
            // that call `float()` or `strtod` read back exactly this number.
            Self::Float(v) => write!(f, "{v:?}"),
            Self::Text(v) => f.write_str(v),
        }
    }
}

/// An ordered list of `name → value`: one configuration to try.
///
/// Suggesters produce entries in the order of the search space's
/// parameters; lookups are by name, so assignments read back from a store in
/// any order work the same.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Assignment {
    entries: Vec<(String, ParamValue)>,
}

impl Assignment {
    /// An empty assignment.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name
    /// in place (so the order of first insertion is kept).
    pub fn set(&mut self, name: impl Into<String>, value: ParamValue) {
        let name = name.into();
        if let Some(slot) = self.entries.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.entries.push((name, value));
        }
    }

    /// The value of `name`, if set.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as Katib strings, in order.
    #[must_use]
    pub fn to_katib_strings(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(n, v)| (n.clone(), v.to_katib_string()))
            .collect()
    }
}

impl<S: Into<String>> FromIterator<(S, ParamValue)> for Assignment {
    fn from_iter<I: IntoIterator<Item = (S, ParamValue)>>(iter: I) -> Self {
        let mut a = Self::new();
        for (n, v) in iter {
            a.set(n, v);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_katib_strings() {
        assert_eq!(ParamValue::Int(-3).to_katib_string(), "-3");
        assert_eq!(ParamValue::Float(2.0).to_katib_string(), "2.0");
        assert_eq!(ParamValue::Float(0.001).to_katib_string(), "0.001");
        assert_eq!(ParamValue::Float(1e-7).to_katib_string(), "1e-7");
        assert_eq!(
            ParamValue::Float(0.1 + 0.2).to_katib_string(),
            "0.30000000000000004"
        );
        assert_eq!(ParamValue::Text("adam".into()).to_katib_string(), "adam");
    }

    #[test]
    fn numbers_parse_as_int_first() {
        assert_eq!(ParamValue::parse_number(" 4 "), Some(ParamValue::Int(4)));
        assert_eq!(
            ParamValue::parse_number("4.0"),
            Some(ParamValue::Float(4.0))
        );
        assert_eq!(ParamValue::parse_number("nan"), None);
        assert_eq!(ParamValue::parse_number("x"), None);
    }

    #[test]
    fn assignment_set_replaces_in_place() {
        let mut a = Assignment::new();
        a.set("a", ParamValue::Int(1));
        a.set("b", ParamValue::Int(2));
        a.set("a", ParamValue::Int(3));
        assert_eq!(
            a.to_katib_strings(),
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
    }

    proptest::proptest! {
        #[test]
        fn float_strings_round_trip(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let s = ParamValue::Float(v).to_katib_string();
            proptest::prop_assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
    }
}
