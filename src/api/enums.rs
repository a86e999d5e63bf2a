//! Katib's enum-like strings (parameter types, distributions, collector
//! kinds …) as Rust enums that still accept, keep and re-serialise any other
//! word.
//!
//! Katib stores these as free strings and checks them in its webhook. If we
//! refused an unknown word during deserialisation, serde would stop at the
//! first one and the user would see one problem at a time; keeping it as
//! `Other(word)` lets validation report every problem at once, with its path.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! katib_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A word Katib's schema does not know; kept so validation can name it.
            Other(String),
        }

        impl $name {
            /// Every word this enum knows, in Katib's spelling.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The word as written in YAML.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(word) => word,
                }
            }

            /// Parses a word; unknown words become [`Self::Other`].
            #[must_use]
            pub fn from_word(word: &str) -> Self {
                match word {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }

            /// Whether this is one of the known words.
            #[must_use]
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = String::deserialize(deserializer)?;
                Ok(Self::from_word(&word))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": Self::KNOWN })
            }
        }
    };
}

katib_enum! {
    /// `objective.type`.
    ObjectiveType {
        /// Smaller is better.
        Minimize = "minimize",
        /// Larger is better.
        Maximize = "maximize",
    }
}

katib_enum! {
    /// How a trial's many reported values of one metric become one value.
    MetricStrategyType {
        /// The smallest reported value.
        Min = "min",
        /// The largest reported value.
        Max = "max",
        /// The last reported value.
        Latest = "latest",
    }
}

katib_enum! {
    /// `parameters[].parameterType`.
    ParameterType {
        /// A real number in [min, max].
        Double = "double",
        /// An integer in [min, max].
        Int = "int",
        /// One of an ordered list of numbers.
        Discrete = "discrete",
        /// One of an unordered list of words.
        Categorical = "categorical",
    }
}

katib_enum! {
    /// `feasibleSpace.distribution`.
    Distribution {
        /// Uniform in [min, max] (the default).
        Uniform = "uniform",
        /// Uniform in [ln min, ln max].
        LogUniform = "logUniform",
        /// Normal with mean (min+max)/2 and sigma (max-min)/6.
        Normal = "normal",
        /// Normal on the log scale.
        LogNormal = "logNormal",
    }
}

katib_enum! {
    /// `metricsCollectorSpec.collector.kind`.
    CollectorKind {
        /// Metrics printed on the primary container's standard output (the default).
        StdOut = "StdOut",
        /// Metrics written to a file (TEXT or JSON lines).
        File = "File",
        /// TensorBoard event files.
        TensorFlowEvent = "TensorFlowEvent",
        /// A Prometheus text endpoint on the trial.
        PrometheusMetric = "PrometheusMetric",
        /// A user-supplied collector container.
        Custom = "Custom",
        /// The trial reports its metrics itself (`report_metrics`).
        Push = "Push",
    }
}

katib_enum! {
    /// `fileSystemPath.kind`.
    FileSystemKind {
        /// A single file.
        File = "File",
        /// A directory.
        Directory = "Directory",
    }
}

katib_enum! {
    /// `fileSystemPath.format`.
    FileFormat {
        /// `name=value` text lines, parsed with the filter regexes.
        Text = "TEXT",
        /// One JSON object per line.
        Json = "JSON",
    }
}

katib_enum! {
    /// `spec.resumePolicy`.
    ResumePolicy {
        /// The experiment cannot be restarted once completed (the default).
        Never = "Never",
        /// The algorithm keeps running after completion so the experiment can be restarted.
        LongRunning = "LongRunning",
        /// Algorithm state is kept on a volume so the experiment can be restarted.
        FromVolume = "FromVolume",
    }
}

katib_enum! {
    /// Condition types of an Experiment.
    ExperimentConditionType {
        /// Accepted by the controller.
        Created = "Created",
        /// At least one trial exists and the experiment has not completed.
        Running = "Running",
        /// Being restarted after its budget was raised.
        Restarting = "Restarting",
        /// Goal, budget or search space reached.
        Succeeded = "Succeeded",
        /// Too many failed trials, or the algorithm failed.
        Failed = "Failed",
    }
}

katib_enum! {
    /// Condition types of a Trial.
    TrialConditionType {
        /// Accepted by the controller.
        Created = "Created",
        /// Its workload is running.
        Running = "Running",
        /// Its workload succeeded and the objective was observed.
        Succeeded = "Succeeded",
        /// Stopped by the user or the controller.
        Killed = "Killed",
        /// Its workload failed.
        Failed = "Failed",
        /// Its workload succeeded but the objective metric never appeared.
        MetricsUnavailable = "MetricsUnavailable",
        /// Stopped by the early-stopping rule.
        EarlyStopped = "EarlyStopped",
    }
}

katib_enum! {
    /// Comparison of an early-stopping rule.
    ComparisonType {
        /// Stop when the value equals the threshold.
        Equal = "equal",
        /// Stop when the value is less than the threshold.
        Less = "less",
        /// Stop when the value is greater than the threshold.
        Greater = "greater",
    }
}

/// Kubernetes condition status (`"True"`, `"False"`, `"Unknown"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_words_round_trip() {
        let known: ParameterType = serde_json::from_str("\"double\"").unwrap();
        assert_eq!(known, ParameterType::Double);
        let unknown: ParameterType = serde_json::from_str("\"float\"").unwrap();
        assert_eq!(unknown, ParameterType::Other("float".into()));
        assert!(!unknown.is_known());
        assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"float\"");
    }
}
