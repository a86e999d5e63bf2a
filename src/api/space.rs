//! The seam between the API and the algorithm library: a validated
//! Experiment's `spec.parameters` as a `ktune_algorithms` search space.

use ktune_algorithms::error::AlgorithmError;
use ktune_algorithms::space::SearchSpace;

use super::experiment::ExperimentSpec;
use super::parameters::parse_parameter;

/// Why the search space could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// The experiment has no `spec.parameters` (NAS, or missing).
    #[error("the experiment has no spec.parameters")]
    NoParameters,
    /// A parameter did not parse; validation names the field.
    #[error("spec.parameters[{index}] is invalid")]
    Unparsed {
        /// Its index.
        index: usize,
    },
    /// The algorithm library refused a parameter or the space.
    #[error("{path}: {source}")]
    Refused {
        /// The field path.
        path: String,
        /// The library's reason.
        #[source]
        source: AlgorithmError,
    },
}

/// Builds the search space of an experiment's parameters.
///
/// # Errors
/// [`SpaceError`] when a parameter does not parse or the library refuses it.
pub fn search_space(spec: &ExperimentSpec) -> Result<SearchSpace, SpaceError> {
    let parameters = spec.parameters.as_ref().ok_or(SpaceError::NoParameters)?;
    let mut specs = Vec::with_capacity(parameters.len());
    for (index, p) in parameters.iter().enumerate() {
        let parsed = parse_parameter(p).map_err(|_| SpaceError::Unparsed { index })?;
        let built = parsed.to_spec(&p.name);
        specs.push(built.map_err(|source| SpaceError::Refused {
            path: format!("spec.parameters[{index}]"),
            source,
        })?);
    }
    SearchSpace::new(specs).map_err(|source| SpaceError::Refused {
        path: "spec.parameters".to_owned(),
        source,
    })
}
