//! Deserialisers that read YAML as Katib (Go) reads it: a number where
//! Katib's schema says string, and null where a field may be omitted.
//!
//! Go's JSON decoder reads `null` as "leave the zero value" for every field,
//! so `algorithmSettings:` with nothing after it is an empty list to Katib;
//! [`or_default`] gives every non-optional field that meaning here (optional
//! fields already read null as `None`).
//!
//! Katib keeps `feasibleSpace` bounds and setting values as strings and
//! users write `min: "0.01"`; a YAML file that writes `min: 0.01` would be
//! refused by Go's unmarshaller with a type error. We accept both and keep
//! the text, so `0.01` and `"0.01"` mean the same; validation then parses
//! the text and names the field if it is not a finite number.

use serde::Deserialize as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// A field's value, or its default when it is null (as Go reads null).
///
/// # Errors
/// When the value is neither null nor a `T`.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A string, or a number or boolean kept as its text; null is empty.
///
/// # Errors
/// When the value is a map or a list.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarText)
}

/// Like [`string`], for an optional field (null → `None`).
///
/// # Errors
/// When the value is a map or a list.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            string(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// A list whose items are strings or numbers (kept as text); null → empty.
///
/// # Errors
/// When the value is not a list, or an item is a map or a list.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings or numbers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            #[derive(serde::Deserialize)]
            struct Item(#[serde(deserialize_with = "string")] String);
            let mut out = Vec::new();
            while let Some(Item(text)) = seq.next_element()? {
                out.push(text);
            }
            Ok(out)
        }
    }
    d.deserialize_any(List)
}

/// An optional float written as a number or as a numeric string.
///
/// # Errors
/// When the value is text that is not a number, or a map or a list.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match opt_string(d)? {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a number, got {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "super::opt_string")]
        min: Option<String>,
        #[serde(default, deserialize_with = "super::string_list")]
        list: Vec<String>,
        #[serde(default, deserialize_with = "super::opt_f64")]
        goal: Option<f64>,
    }

    #[test]
    fn numbers_and_strings_mean_the_same() {
        let p: Probe =
            serde_json::from_str(r#"{"min": 0.5, "list": [1, "a", 2.5], "goal": "0.9"}"#).unwrap();
        assert_eq!(p.min.as_deref(), Some("0.5"));
        assert_eq!(p.list, ["1", "a", "2.5"]);
        assert_eq!(p.goal, Some(0.9));
        let p: Probe = serde_json::from_str(r#"{"min": null}"#).unwrap();
        assert_eq!(p.min, None);
        assert!(serde_json::from_str::<Probe>(r#"{"goal": "high"}"#).is_err());
        assert!(serde_json::from_str::<Probe>(r#"{"min": {"a": 1}}"#).is_err());
    }
}
