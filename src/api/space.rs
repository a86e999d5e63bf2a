//! The seam between the API and the algorithm library: a validated
//! Experiment's `spec.parameters` as a `ktune_algorithms` search space
//! (and a DARTS experiment's `spec.nasConfig` as its three trial parameters).

use ktune_algorithms::error::AlgorithmError;
use ktune_algorithms::space::{ParameterSpec, SearchSpace};
use ktune_algorithms::suggest::darts::{self, DartsOperation};

use super::experiment::{ExperimentSpec, NasConfig};
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

/// The space of a DARTS experiment: its three trial parameters
/// (`algorithm-settings`, `search-space`, `num-layers`, in Katib's
/// formats), each a categorical with its one value.
///
/// # Errors
/// [`SpaceError::Refused`] when the library refuses them (it does not for
/// a validated experiment).
fn darts_space(spec: &ExperimentSpec, nas: &NasConfig) -> Result<SearchSpace, SpaceError> {
    let operations: Vec<DartsOperation> = nas
        .operations
        .iter()
        .map(|op| DartsOperation {
            operation_type: op.operation_type.clone(),
            filter_sizes: op
                .parameters
                .first()
                .and_then(|p| p.feasible_space.as_ref())
                .map(|s| s.list.clone())
                .unwrap_or_default(),
        })
        .collect();
    let layers = nas
        .graph_config
        .as_ref()
        .and_then(|g| g.num_layers)
        .unwrap_or_default();
    let settings: Vec<(&str, &str)> = spec
        .algorithm
        .iter()
        .flat_map(|a| &a.algorithm_settings)
        .map(|s| (s.name.as_str(), s.value.as_str()))
        .collect();
    let refused = |source| SpaceError::Refused {
        path: "spec.nasConfig".to_owned(),
        source,
    };
    let params = darts::trial_parameters(&operations, i64::from(layers), &settings)
        .into_iter()
        .map(|(name, value)| ParameterSpec::categorical(name, vec![value]).map_err(refused))
        .collect::<Result<Vec<_>, _>>()?;
    SearchSpace::new(params).map_err(refused)
}

/// Builds the search space of an experiment's parameters.
///
/// # Errors
/// [`SpaceError`] when a parameter does not parse or the library refuses it.
pub fn search_space(spec: &ExperimentSpec) -> Result<SearchSpace, SpaceError> {
    if spec.parameters.is_none()
        && let Some(nas) = &spec.nas_config
    {
        return darts_space(spec, nas);
    }
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
