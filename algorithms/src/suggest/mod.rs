//! The suggester contract and the registry of search algorithms.
//!
//! A [`Suggester`] is built once per experiment from its settings
//! ([`build_suggester`]) and then asked, again and again, for new
//! configurations given the whole history. It holds only its configuration:
//! `suggest` takes `&self`, draws randomness only from the request's seed (see
//! [`crate::rng`]) and returns the same [`Suggestions`] for the same request,
//! bit for bit. Whatever an algorithm must remember lives either in the
//! history (the labels it attached to earlier suggestions) or in the
//! [`AlgorithmState`] it returns and the caller hands back.
//!
//! Unlike Katib, a suggester may return fewer suggestions than asked (a rung
//! still running) and says when it has nothing more to offer (`exhausted`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::AlgorithmError;
use crate::history::{Objective, TrialRecord};
use crate::settings::{self, Settings};
use crate::space::{Assignment, SearchSpace};

pub mod bayes;
pub mod cmaes;
pub mod darts;
pub mod enas;
pub mod grid;
pub mod hyperband;
pub mod pbt;
mod pyjson;
pub mod random;
pub mod sobol;
pub mod tpe;

#[cfg(test)]
pub(crate) mod conformance;

pub use grid::GridSuggester;
pub use hyperband::{HyperbandConfig, HyperbandSuggester};
pub use random::RandomSuggester;
pub use sobol::SobolSuggester;

/// An opaque, versioned blob an algorithm asks the caller to store and hand back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmState {
    /// The format version, so an algorithm can refuse or migrate old blobs.
    pub version: u32,
    /// The algorithm's data.
    pub data: serde_json::Value,
}

/// One call's input.
#[derive(Debug, Clone, Copy)]
pub struct SuggestRequest<'a> {
    /// The search space.
    pub space: &'a SearchSpace,
    /// The objective (metric name, direction, goal).
    pub objective: &'a Objective,
    /// Every trial so far, in creation order, including pending and running ones.
    pub history: &'a [TrialRecord],
    /// How many new configurations the caller wants (it may get fewer).
    pub count: usize,
    /// The experiment's seed; an algorithm's `random_state` setting overrides it.
    pub seed: u64,
    /// The state returned by the previous call, if the caller kept it.
    pub state: Option<&'a AlgorithmState>,
}

/// One configuration to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The parameter values.
    pub assignment: Assignment,
    /// Labels to store with the trial and hand back in [`TrialRecord::labels`].
    pub labels: BTreeMap<String, String>,
}

impl Suggestion {
    /// A suggestion without labels.
    #[must_use]
    pub fn new(assignment: Assignment) -> Self {
        Self {
            assignment,
            labels: BTreeMap::new(),
        }
    }
}

/// One call's output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Suggestions {
    /// Up to `count` new configurations (possibly none).
    pub suggestions: Vec<Suggestion>,
    /// State to store and hand back next time (`None`: nothing to keep).
    pub state: Option<AlgorithmState>,
    /// True when the algorithm will never suggest anything again for this
    /// space (grid fully visited, last Hyperband bracket issued and finished).
    pub exhausted: bool,
}

/// A search algorithm: a pure function from history to new configurations.
pub trait Suggester: Send + Sync + std::fmt::Debug {
    /// The Katib algorithm name.
    fn name(&self) -> &'static str;

    /// New configurations for the request.
    ///
    /// # Errors
    /// Algorithm-specific; the built-in algorithms fail only on a space that
    /// does not match the one they were built for.
    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError>;
}

/// The `random_state` setting as a seed, if given.
pub(crate) fn random_state(settings: &Settings) -> Option<u64> {
    settings
        .int("random_state")
        .and_then(|v| u64::try_from(v).ok())
}

/// Builds the suggester for `algorithm_name` from already parsed settings,
/// checking the constraints that involve the space.
///
/// # Errors
/// [`AlgorithmError::UnknownAlgorithm`] for a name not in Katib's catalog,
/// [`AlgorithmError::NotImplemented`] for catalog names ktune does not
/// implement yet, and the algorithm's own space checks (grid: a step on every
/// double; hyperband: `resource_name` names an int/double parameter; sobol:
/// at most 256 parameters).
pub fn build_suggester(
    algorithm_name: &str,
    settings: &Settings,
    space: &SearchSpace,
) -> Result<Box<dyn Suggester>, AlgorithmError> {
    let spec =
        settings::algorithm(algorithm_name).ok_or_else(|| AlgorithmError::UnknownAlgorithm {
            name: algorithm_name.to_owned(),
        })?;
    // A NAS space has no parameters for the others to draw (DARTS's
    // space is an ordinary one: its three fixed parameters).
    if space.nas_graph().is_some() && spec.name != "enas" {
        return Err(AlgorithmError::UnsupportedSpace {
            algorithm: spec.name,
            reason: "a NAS graph is searched by enas",
        });
    }
    match spec.name {
        "random" => Ok(Box::new(RandomSuggester::from_settings(settings))),
        "grid" => Ok(Box::new(GridSuggester::from_settings(settings, space)?)),
        "sobol" => Ok(Box::new(SobolSuggester::from_settings(settings, space)?)),
        "hyperband" => Ok(Box::new(HyperbandSuggester::new(
            HyperbandConfig::from_settings(settings, space)?,
        ))),
        name @ ("tpe" | "multivariate-tpe") => tpe::build(name, settings, space),
        name @ "cmaes" => cmaes::build(name, settings, space),
        name @ "bayesianoptimization" => bayes::build(name, settings, space),
        "darts" => Ok(Box::new(darts::DartsSuggester)),
        "enas" => enas::build(settings, space),
        "pbt" => Ok(Box::new(pbt::PbtSuggester::new(
            pbt::PbtConfig::from_settings(settings)?,
        ))),
        name => Err(AlgorithmError::NotImplemented {
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Distribution, ParameterSpec};

    fn space() -> SearchSpace {
        SearchSpace::new(vec![
            ParameterSpec::double("lr", 0.01, 0.1, None, Distribution::Uniform).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn names_outside_katibs_catalog_are_refused() {
        assert!(matches!(
            build_suggester("bogus", &Settings::default(), &space()),
            Err(AlgorithmError::UnknownAlgorithm { .. })
        ));
    }

    #[test]
    fn only_enas_searches_a_nas_space() {
        let nas = SearchSpace::nas(crate::suggest::enas::tests::graph(2, 3));
        for name in ["random", "grid", "tpe", "cmaes", "darts"] {
            assert!(
                matches!(
                    build_suggester(name, &Settings::default(), &nas),
                    Err(AlgorithmError::UnsupportedSpace { .. })
                ),
                "{name}"
            );
        }
        assert!(build_suggester("enas", &Settings::default(), &nas).is_ok());
    }

    #[test]
    fn grid_without_step_on_a_double_is_refused_with_the_parameter_name() {
        let err = build_suggester("grid", &Settings::default(), &space()).unwrap_err();
        assert_eq!(err, AlgorithmError::GridNeedsStep { name: "lr".into() });
    }

    #[test]
    fn built_suggesters_report_their_katib_name() {
        for name in [
            "random",
            "sobol",
            "tpe",
            "multivariate-tpe",
            "cmaes",
            "bayesianoptimization",
        ] {
            let settings = settings::algorithm(name)
                .unwrap()
                .parse(std::iter::empty())
                .unwrap();
            let s = build_suggester(name, &settings, &space()).unwrap();
            assert_eq!(s.name(), name);
        }
    }
}
