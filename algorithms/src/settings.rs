//! Katib's algorithm and early-stopping names with their typed settings.
//!
//! Katib passes settings as `{name, value}` pairs of strings and leaves their
//! checking to each algorithm service, which fails the experiment long after
//! it was accepted (or, for CMA-ES, stalls it). This module is the one place
//! that knows every algorithm name Katib accepts and the type, range and
//! default of each of its settings, so that an experiment is refused up front
//! with every problem named — whether or not the algorithm's implementation
//! has landed yet.
//!
//! It owns parsing and range checks only; what a setting *means* belongs to
//! the algorithm that reads it from [`Settings`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The type and allowed range of one setting value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingKind {
    /// An integer written in decimal (`"10"`; `"10.0"` is refused, as Python's `int()` does).
    Int {
        /// Smallest allowed value, inclusive.
        min: Option<i64>,
        /// Largest allowed value, inclusive.
        max: Option<i64>,
    },
    /// A finite floating-point number.
    Float {
        /// Lower bound.
        min: Option<Bound>,
        /// Upper bound.
        max: Option<Bound>,
        /// Whether the literal `None` is accepted (Katib's ENAS settings allow it).
        allow_none: bool,
    },
    /// One of a fixed list of words, compared exactly.
    Choice(&'static [&'static str]),
    /// Any non-empty text.
    Text,
}

/// One end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The bound's value.
    pub value: f64,
    /// Whether the value itself is allowed.
    pub inclusive: bool,
}

const fn incl(value: f64) -> Option<Bound> {
    Some(Bound {
        value,
        inclusive: true,
    })
}

const fn excl(value: f64) -> Option<Bound> {
    Some(Bound {
        value,
        inclusive: false,
    })
}

/// The description of one setting an algorithm accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettingSpec {
    /// The canonical name, as Katib spells it.
    pub name: &'static str,
    /// Other accepted spellings (Katib's services disagree, e.g. `n_EI_candidates`).
    pub aliases: &'static [&'static str],
    /// Type and range.
    pub kind: SettingKind,
    /// Whether the experiment is invalid without it.
    pub required: bool,
    /// The value used when the setting is absent, written as a user would write it.
    pub default: Option<&'static str>,
}

/// Whether ktune can run an algorithm today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// ktune implements it (or will: validation does not depend on the implementation).
    Supported,
    /// Refused by validation with this reason.
    NotYet(&'static str),
}

/// An algorithm (or early-stopping rule) name with every setting it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlgorithmSpec {
    /// The `algorithmName` as written in an Experiment.
    pub name: &'static str,
    /// Whether validation accepts it.
    pub support: Support,
    /// The settings it accepts; any other name is refused.
    pub settings: &'static [SettingSpec],
}

const RANDOM_STATE: SettingSpec = SettingSpec {
    name: "random_state",
    aliases: &[],
    kind: SettingKind::Int {
        min: Some(0),
        max: None,
    },
    required: false,
    default: None,
};

const fn int(name: &'static str, min: i64, default: Option<&'static str>) -> SettingSpec {
    SettingSpec {
        name,
        aliases: &[],
        kind: SettingKind::Int {
            min: Some(min),
            max: None,
        },
        required: false,
        default,
    }
}

const fn float(
    name: &'static str,
    min: Option<Bound>,
    max: Option<Bound>,
    default: Option<&'static str>,
) -> SettingSpec {
    SettingSpec {
        name,
        aliases: &[],
        kind: SettingKind::Float {
            min,
            max,
            allow_none: false,
        },
        required: false,
        default,
    }
}

const fn required(mut spec: SettingSpec) -> SettingSpec {
    spec.required = true;
    spec
}

const TPE_SETTINGS: &[SettingSpec] = &[
    float("gamma", excl(0.0), excl(1.0), Some("0.1")),
    float("prior_weight", excl(0.0), None, Some("1.0")),
    SettingSpec {
        aliases: &["n_EI_candidates"],
        ..int("n_ei_candidates", 1, Some("24"))
    },
    int("n_startup_trials", 0, Some("10")),
    RANDOM_STATE,
];

/// Every search algorithm Katib v1beta1 knows, with its settings.
pub const ALGORITHMS: &[AlgorithmSpec] = &[
    AlgorithmSpec {
        name: "random",
        support: Support::Supported,
        settings: &[RANDOM_STATE],
    },
    AlgorithmSpec {
        name: "grid",
        support: Support::Supported,
        settings: &[RANDOM_STATE],
    },
    AlgorithmSpec {
        // Katib's goptuna service takes no settings; the seed scrambles the sequence.
        name: "sobol",
        support: Support::Supported,
        settings: &[RANDOM_STATE],
    },
    AlgorithmSpec {
        name: "tpe",
        support: Support::Supported,
        settings: TPE_SETTINGS,
    },
    AlgorithmSpec {
        name: "multivariate-tpe",
        support: Support::Supported,
        settings: TPE_SETTINGS,
    },
    AlgorithmSpec {
        name: "cmaes",
        support: Support::Supported,
        settings: &[
            RANDOM_STATE,
            float("sigma", excl(0.0), None, None),
            SettingSpec {
                name: "restart_strategy",
                aliases: &[],
                kind: SettingKind::Choice(&["none", "ipop", "bipop"]),
                required: false,
                default: Some("none"),
            },
        ],
    },
    AlgorithmSpec {
        name: "bayesianoptimization",
        support: Support::Supported,
        settings: &[
            SettingSpec {
                name: "base_estimator",
                aliases: &[],
                kind: SettingKind::Choice(&["GP", "RF", "ET", "GBRT"]),
                required: false,
                default: Some("GP"),
            },
            int("n_initial_points", 0, Some("10")),
            SettingSpec {
                name: "acq_func",
                aliases: &[],
                kind: SettingKind::Choice(&["gp_hedge", "LCB", "EI", "PI", "EIps", "PIps"]),
                required: false,
                default: Some("gp_hedge"),
            },
            SettingSpec {
                name: "acq_optimizer",
                aliases: &[],
                kind: SettingKind::Choice(&["auto", "sampling", "lbfgs"]),
                required: false,
                default: Some("auto"),
            },
            RANDOM_STATE,
        ],
    },
    AlgorithmSpec {
        name: "hyperband",
        support: Support::Supported,
        settings: &[
            SettingSpec {
                name: "resource_name",
                aliases: &[],
                kind: SettingKind::Text,
                required: true,
                default: None,
            },
            required(float("r_l", excl(0.0), None, None)),
            // Katib silently replaces eta <= 0 with 3 and divides by ln(eta) = 0 for
            // eta = 1; we refuse both instead.
            float("eta", excl(1.0), None, Some("3")),
            RANDOM_STATE,
        ],
    },
    AlgorithmSpec {
        name: "pbt",
        support: Support::Supported,
        settings: &[
            required(int("n_population", 5, None)),
            required(float("truncation_threshold", incl(0.0), incl(1.0), None)),
            SettingSpec {
                name: "suggestion_trial_dir",
                aliases: &[],
                kind: SettingKind::Text,
                required: true,
                default: None,
            },
            float("resample_probability", incl(0.0), incl(1.0), None),
            RANDOM_STATE,
        ],
    },
    AlgorithmSpec {
        // Katib's `AlgorithmSettings.py`: names, defaults, ranges and the
        // four settings that may be `None` (that term is then left out).
        name: "enas",
        support: Support::Supported,
        settings: &[
            SettingSpec {
                // Katib has no upper bound; ktune's keeps the controller's
                // weights (8·H² floats, three copies) within memory.
                kind: SettingKind::Int {
                    min: Some(1),
                    max: Some(1024),
                },
                ..int("controller_hidden_size", 1, Some("64"))
            },
            float_or_none("controller_temperature", excl(0.0), None, "5.0"),
            float_or_none("controller_tanh_const", excl(0.0), None, "2.25"),
            float_or_none("controller_entropy_weight", excl(0.0), None, "1e-5"),
            float(
                "controller_baseline_decay",
                excl(0.0),
                incl(1.0),
                Some("0.999"),
            ),
            float(
                "controller_learning_rate",
                excl(0.0),
                incl(1.0),
                Some("5e-5"),
            ),
            float("controller_skip_target", excl(0.0), incl(1.0), Some("0.4")),
            float_or_none("controller_skip_weight", excl(0.0), None, "0.8"),
            int("controller_train_steps", 1, Some("50")),
            int("controller_log_every_steps", 1, Some("10")),
        ],
    },
    AlgorithmSpec {
        name: "darts",
        support: Support::Supported,
        settings: &[
            float("num_epochs", excl(0.0), None, Some("50")),
            float("w_lr", incl(0.0), None, Some("0.025")),
            float("w_lr_min", incl(0.0), None, Some("0.001")),
            float("w_momentum", incl(0.0), None, Some("0.9")),
            float("w_weight_decay", incl(0.0), None, Some("3e-4")),
            float("w_grad_clip", incl(0.0), None, Some("5.0")),
            float("alpha_lr", incl(0.0), None, Some("3e-4")),
            float("alpha_weight_decay", incl(0.0), None, Some("1e-3")),
            float_or_none("batch_size", incl(1.0), None, "128"),
            int("num_workers", 0, Some("4")),
            int("init_channels", 1, Some("16")),
            int("print_step", 1, Some("50")),
            int("num_nodes", 1, Some("4")),
            int("stem_multiplier", 1, Some("3")),
        ],
    },
];

const fn float_or_none(
    name: &'static str,
    min: Option<Bound>,
    max: Option<Bound>,
    default: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        aliases: &[],
        kind: SettingKind::Float {
            min,
            max,
            allow_none: true,
        },
        required: false,
        default: Some(default),
    }
}

/// Every early-stopping rule, with its settings.
pub const EARLY_STOPPING: &[AlgorithmSpec] = &[
    AlgorithmSpec {
        name: "medianstop",
        support: Support::Supported,
        settings: &[
            int("min_trials_required", 1, Some("3")),
            int("start_step", 1, Some("4")),
            // ktune extension: Katib compares against the mean of per-trial means
            // ("mean", the default); "median" uses the true median instead.
            SettingSpec {
                name: "aggregate",
                aliases: &[],
                kind: SettingKind::Choice(&["mean", "median"]),
                required: false,
                default: Some("mean"),
            },
        ],
    },
    AlgorithmSpec {
        // Asynchronous successive halving (Li et al. 2020), not in Katib (its issue #1582).
        name: "asha",
        support: Support::Supported,
        settings: &[
            float("reduction_factor", excl(1.0), None, Some("3")),
            int("grace_period", 1, Some("1")),
            int("max_t", 1, None),
            // The metric whose reported value is the trial's step (e.g. `epoch`);
            // absent: the n-th report of the objective metric is step n.
            SettingSpec {
                name: "step_metric",
                aliases: &[],
                kind: SettingKind::Text,
                required: false,
                default: None,
            },
        ],
    },
];

/// Looks up a search algorithm by its exact Katib name.
#[must_use]
pub fn algorithm(name: &str) -> Option<&'static AlgorithmSpec> {
    ALGORITHMS.iter().find(|a| a.name == name)
}

/// Looks up an early-stopping rule by its exact name.
#[must_use]
pub fn early_stopping(name: &str) -> Option<&'static AlgorithmSpec> {
    EARLY_STOPPING.iter().find(|a| a.name == name)
}

/// A parsed setting value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// An integer setting.
    Int(i64),
    /// A float setting.
    Float(f64),
    /// A choice or text setting.
    Text(String),
    /// The literal `None` where a float setting allows it.
    None,
}

/// The settings of one algorithm after parsing: every given value and every default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Settings {
    values: BTreeMap<String, SettingValue>,
}

impl Settings {
    /// The value of a setting (given or defaulted), by canonical name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&SettingValue> {
        self.values.get(name)
    }

    /// An integer setting's value.
    #[must_use]
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(SettingValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// A float setting's value (integers widen).
    #[must_use]
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(SettingValue::Float(v)) => Some(*v),
            Some(SettingValue::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }

    /// A text or choice setting's value.
    #[must_use]
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(SettingValue::Text(v)) => Some(v),
            _ => None,
        }
    }

    /// All values by canonical name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SettingValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Why one setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    /// The name is not a setting of this algorithm.
    #[error("unknown setting `{name}` for {algorithm}; known settings: {known}")]
    Unknown {
        /// The algorithm.
        algorithm: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, comma-separated.
        known: String,
    },
    /// The same setting was given twice (possibly through an alias).
    #[error("setting `{name}` is given more than once")]
    Duplicate {
        /// The canonical name.
        name: &'static str,
    },
    /// A required setting is missing.
    #[error("{algorithm} requires the setting `{name}`")]
    Missing {
        /// The algorithm.
        algorithm: &'static str,
        /// The missing setting.
        name: &'static str,
    },
    /// The value does not have the setting's type.
    #[error("setting `{name}` must be {expected}, got {value:?}")]
    BadType {
        /// The canonical name.
        name: &'static str,
        /// What was expected ("an integer", "a number", …).
        expected: &'static str,
        /// The value given.
        value: String,
    },
    /// The value is outside the setting's range.
    #[error("setting `{name}` must be {range}, got {value}")]
    OutOfRange {
        /// The canonical name.
        name: &'static str,
        /// The allowed range, in words.
        range: String,
        /// The value given.
        value: String,
    },
    /// The value is not one of the allowed words.
    #[error("setting `{name}` must be one of {choices}, got {value:?}")]
    NotAChoice {
        /// The canonical name.
        name: &'static str,
        /// The allowed words, comma-separated.
        choices: String,
        /// The value given.
        value: String,
    },
}

/// A refused setting with its position in the given list (for field paths).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedSettingError {
    /// Index in the `algorithmSettings` list, or `None` for a missing required setting.
    pub index: Option<usize>,
    /// What is wrong.
    pub error: SettingError,
}

impl fmt::Display for IndexedSettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl AlgorithmSpec {
    fn setting(&self, name: &str) -> Option<&'static SettingSpec> {
        self.settings
            .iter()
            .find(|s| s.name == name || s.aliases.contains(&name))
    }

    /// Parses and range-checks `given` (name, value) pairs, adds the defaults,
    /// and reports every problem at once.
    ///
    /// # Errors
    /// One entry per refused setting: unknown names, duplicates, missing
    /// required settings, values of the wrong type or outside the range.
    pub fn parse<'a>(
        &'static self,
        given: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Settings, Vec<IndexedSettingError>> {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for (index, (name, raw)) in given.into_iter().enumerate() {
            let at = |error| IndexedSettingError {
                index: Some(index),
                error,
            };
            let Some(spec) = self.setting(name) else {
                errors.push(at(SettingError::Unknown {
                    algorithm: self.name,
                    name: name.to_owned(),
                    known: self.known_names(),
                }));
                continue;
            };
            if values.contains_key(spec.name) {
                errors.push(at(SettingError::Duplicate { name: spec.name }));
                continue;
            }
            match parse_value(spec, raw) {
                Ok(value) => {
                    values.insert(spec.name.to_owned(), value);
                }
                Err(error) => {
                    // Remember the name so a later duplicate is still reported once.
                    values.insert(spec.name.to_owned(), SettingValue::None);
                    errors.push(at(error));
                }
            }
        }
        for spec in self.settings {
            if values.contains_key(spec.name) {
                continue;
            }
            if spec.required {
                errors.push(IndexedSettingError {
                    index: None,
                    error: SettingError::Missing {
                        algorithm: self.name,
                        name: spec.name,
                    },
                });
            } else if let Some(default) = spec.default
                && let Ok(value) = parse_value(spec, default)
            {
                values.insert(spec.name.to_owned(), value);
            }
        }
        if errors.is_empty() {
            Ok(Settings { values })
        } else {
            Err(errors)
        }
    }

    fn known_names(&self) -> String {
        if self.settings.is_empty() {
            return "(none)".to_owned();
        }
        self.settings
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn parse_value(spec: &SettingSpec, raw: &str) -> Result<SettingValue, SettingError> {
    let text = raw.trim();
    let bad_type = |expected| SettingError::BadType {
        name: spec.name,
        expected,
        value: raw.to_owned(),
    };
    match spec.kind {
        SettingKind::Int { min, max } => {
            let value: i64 = text.parse().map_err(|_| bad_type("an integer"))?;
            if min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m) {
                return Err(SettingError::OutOfRange {
                    name: spec.name,
                    range: int_range(min, max),
                    value: value.to_string(),
                });
            }
            Ok(SettingValue::Int(value))
        }
        SettingKind::Float {
            min,
            max,
            allow_none,
        } => {
            if allow_none && text == "None" {
                return Ok(SettingValue::None);
            }
            let value: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| bad_type("a finite number"))?;
            let below = min.is_some_and(|b| value < b.value || (!b.inclusive && value == b.value));
            let above = max.is_some_and(|b| value > b.value || (!b.inclusive && value == b.value));
            if below || above {
                return Err(SettingError::OutOfRange {
                    name: spec.name,
                    range: float_range(min, max),
                    value: text.to_owned(),
                });
            }
            Ok(SettingValue::Float(value))
        }
        SettingKind::Choice(choices) => {
            if choices.contains(&text) {
                Ok(SettingValue::Text(text.to_owned()))
            } else {
                Err(SettingError::NotAChoice {
                    name: spec.name,
                    choices: choices.join(", "),
                    value: raw.to_owned(),
                })
            }
        }
        SettingKind::Text => {
            if text.is_empty() {
                Err(bad_type("a non-empty text"))
            } else {
                Ok(SettingValue::Text(text.to_owned()))
            }
        }
    }
}

fn int_range(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "an integer".to_owned(),
    }
}

fn float_range(min: Option<Bound>, max: Option<Bound>) -> String {
    let lo = min.map(|b| format!("{} {}", if b.inclusive { "≥" } else { ">" }, b.value));
    let hi = max.map(|b| format!("{} {}", if b.inclusive { "≤" } else { "<" }, b.value));
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo} and {hi}"),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => "a number".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        algorithm: &str,
        given: &[(&str, &str)],
    ) -> Result<Settings, Vec<IndexedSettingError>> {
        let spec = self::algorithm(algorithm)
            .or_else(|| early_stopping(algorithm))
            .unwrap();
        spec.parse(given.iter().copied())
    }

    #[test]
    fn defaults_are_filled_in() {
        let s = parse("medianstop", &[]).unwrap();
        assert_eq!(s.int("min_trials_required"), Some(3));
        assert_eq!(s.int("start_step"), Some(4));
        assert_eq!(s.text("aggregate"), Some("mean"));
    }

    #[test]
    fn every_default_parses_against_its_own_spec() {
        for a in ALGORITHMS.iter().chain(EARLY_STOPPING) {
            for s in a.settings {
                if let Some(d) = s.default {
                    assert!(
                        parse_value(s, d).is_ok(),
                        "{}.{} default {d}",
                        a.name,
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn aliases_map_to_the_canonical_name() {
        let s = parse("tpe", &[("n_EI_candidates", "48")]).unwrap();
        assert_eq!(s.int("n_ei_candidates"), Some(48));
        let e = parse(
            "tpe",
            &[("n_EI_candidates", "48"), ("n_ei_candidates", "2")],
        )
        .unwrap_err();
        assert_eq!(e[0].index, Some(1));
        assert!(matches!(e[0].error, SettingError::Duplicate { .. }));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = parse("hyperband", &[("eta", "1"), ("bogus", "x"), ("r_l", "ten")]).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|e| matches!(
            e.error,
            SettingError::Missing {
                name: "resource_name",
                ..
            }
        )));
        assert!(
            e.iter()
                .any(|e| matches!(e.error, SettingError::OutOfRange { name: "eta", .. }))
        );
        assert!(
            e.iter()
                .any(|e| matches!(e.error, SettingError::Unknown { .. }))
        );
        assert!(
            e.iter()
                .any(|e| matches!(e.error, SettingError::BadType { name: "r_l", .. }))
        );
    }

    #[test]
    fn integers_refuse_fractions_and_floats_refuse_non_finite() {
        assert!(parse("random", &[("random_state", "1.5")]).is_err());
        assert!(parse("random", &[("random_state", "-1")]).is_err());
        assert!(parse("cmaes", &[("sigma", "NaN")]).is_err());
        assert!(parse("cmaes", &[("sigma", "inf")]).is_err());
        assert!(parse("cmaes", &[("restart_strategy", "IPOP")]).is_err());
        assert!(parse("cmaes", &[("restart_strategy", "bipop"), ("sigma", "0.3")]).is_ok());
    }

    #[test]
    fn none_is_accepted_only_where_katib_accepts_it() {
        assert_eq!(
            parse("enas", &[("controller_temperature", "None")])
                .unwrap()
                .get("controller_temperature"),
            Some(&SettingValue::None)
        );
        assert!(parse("enas", &[("controller_hidden_size", "None")]).is_err());
    }

    /// Katib's `AlgorithmSettings.py` ranges: floats in (min, max], ints
    /// from their minimum; every refusal names the setting.
    #[test]
    fn enas_settings_have_katibs_ranges() {
        let ok = [
            ("controller_baseline_decay", "1.0"),
            ("controller_learning_rate", "1"),
            ("controller_skip_target", "1"),
            ("controller_entropy_weight", "None"),
            ("controller_skip_weight", "None"),
            ("controller_tanh_const", "None"),
            ("controller_train_steps", "1"),
            ("controller_hidden_size", "1"),
        ];
        let s = parse("enas", &ok).unwrap();
        assert_eq!(s.float("controller_baseline_decay"), Some(1.0));
        assert_eq!(s.get("controller_skip_weight"), Some(&SettingValue::None));
        assert_eq!(s.float("controller_temperature"), Some(5.0));
        assert_eq!(s.int("controller_log_every_steps"), Some(10));
        for (name, value) in [
            ("controller_baseline_decay", "0"),
            ("controller_baseline_decay", "None"),
            ("controller_learning_rate", "1.5"),
            ("controller_skip_target", "0"),
            ("controller_temperature", "0"),
            ("controller_entropy_weight", "-1e-5"),
            ("controller_train_steps", "0"),
            ("controller_hidden_size", "1025"),
        ] {
            let e = parse("enas", &[(name, value)]).unwrap_err();
            assert!(
                e[0].error.to_string().contains(name),
                "{name}={value}: {e:?}"
            );
        }
    }
}
