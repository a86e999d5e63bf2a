//! Early-stopping rules: should a running trial stop now?
//!
//! A rule is built once from its settings ([`build_early_stopping`]) and
//! asked about one trial at a time with the whole history. Like suggesters,
//! rules are pure: the decision depends only on the arguments, so the caller
//! may evaluate as often as it likes (after every report, or on a poll) and
//! after a restart. Terminal trials always get [`StopDecision::Continue`].

use crate::error::AlgorithmError;
use crate::history::{Objective, TrialRecord};
use crate::settings::{self, Settings};

pub mod asha;
pub mod median;

pub use asha::Asha;
pub use median::{Aggregate, MedianStop};

/// A rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopDecision {
    /// Let the trial run.
    Continue,
    /// Stop the trial.
    Stop {
        /// A sentence with the numbers that decided it (shown to the user).
        reason: String,
    },
}

impl StopDecision {
    /// Whether the verdict is to stop.
    #[must_use]
    pub fn is_stop(&self) -> bool {
        matches!(self, Self::Stop { .. })
    }
}

/// An early-stopping rule.
pub trait EarlyStoppingRule: Send + Sync + std::fmt::Debug {
    /// The rule's name as written in an Experiment.
    fn name(&self) -> &'static str;

    /// Whether `trial` should stop, given every trial in `history` (which may
    /// include `trial` itself; rules skip it by name).
    fn evaluate(
        &self,
        trial: &TrialRecord,
        history: &[TrialRecord],
        objective: &Objective,
    ) -> StopDecision;
}

/// Builds the rule `name` from already parsed settings.
///
/// # Errors
/// [`AlgorithmError::UnknownAlgorithm`] for a name that is not an
/// early-stopping rule.
pub fn build_early_stopping(
    name: &str,
    settings: &Settings,
) -> Result<Box<dyn EarlyStoppingRule>, AlgorithmError> {
    let spec = settings::early_stopping(name).ok_or_else(|| AlgorithmError::UnknownAlgorithm {
        name: name.to_owned(),
    })?;
    match spec.name {
        "medianstop" => Ok(Box::new(MedianStop::from_settings(settings))),
        "asha" => Ok(Box::new(Asha::from_settings(settings))),
        other => Err(AlgorithmError::NotImplemented {
            name: other.to_owned(),
        }),
    }
}

/// Formats a value for a reason sentence (shortest round-trip form).
pub(crate) fn num(v: f64) -> String {
    crate::space::ParamValue::Float(v).to_katib_string()
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::history::{Observation, TrialRecord, TrialState};
    use crate::space::Assignment;

    /// A trial with observations `(step i+1, values[i])`.
    pub fn trial(name: &str, state: TrialState, values: &[f64]) -> TrialRecord {
        let mut t = TrialRecord::new(name, Assignment::new());
        t.state = state;
        t.observations = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Observation {
                step: i as u64 + 1,
                value,
            })
            .collect();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_both_rules_and_refuses_others() {
        for name in ["medianstop", "asha"] {
            let spec = settings::early_stopping(name).unwrap();
            let s = spec.parse([]).unwrap();
            assert_eq!(build_early_stopping(name, &s).unwrap().name(), name);
        }
        assert!(matches!(
            build_early_stopping("random", &Settings::default()),
            Err(AlgorithmError::UnknownAlgorithm { .. })
        ));
    }
}
