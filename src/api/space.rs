//! The seam between the API and the algorithm library: a validated
//! Experiment's `spec.parameters` as a `ktune_algorithms` search space
//! (and a `spec.nasConfig`: for DARTS as its three trial parameters, for
//! ENAS as a NAS space the algorithm searches).

use ktune_algorithms::error::AlgorithmError;
use ktune_algorithms::space::nas::{NasGraph, NasOperation, NasParameter, NasValues};
use ktune_algorithms::space::{ParameterSpec, SearchSpace};
use ktune_algorithms::suggest::darts::{self, DartsOperation};

use super::enums::ParameterType;
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

/// One operation parameter's values as ENAS expands them (Katib's
/// `Operation.py`): a list stays a list of strings; an int range's step
/// defaults to 1; a double range needs its step (validation requires it).
fn enas_values(
    parameter: &super::experiment::ParameterSpec,
    path: &str,
) -> Result<NasValues, SpaceError> {
    let refused = |field: &str, problem: &str| SpaceError::Refused {
        path: format!("{path}.{field}"),
        source: AlgorithmError::InvalidNasGraph {
            reason: format!("parameter `{}`: {problem}", parameter.name),
        },
    };
    let space = parameter.feasible_space.clone().unwrap_or_default();
    let number = |field: &str, text: Option<&str>| -> Result<f64, SpaceError> {
        text.and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| refused(&format!("feasibleSpace.{field}"), "needs a number"))
    };
    match parameter.parameter_type {
        Some(ParameterType::Int) => {
            let int = |field: &str, text: Option<&str>| -> Result<i64, SpaceError> {
                text.and_then(|t| t.trim().parse::<i64>().ok())
                    .ok_or_else(|| refused(&format!("feasibleSpace.{field}"), "needs an integer"))
            };
            let step = match space.step.as_deref() {
                None => 1,
                step => int("step", step)?,
            };
            if step <= 0 {
                return Err(refused("feasibleSpace.step", "the step must be > 0"));
            }
            Ok(NasValues::Int {
                min: int("min", space.min.as_deref())?,
                max: int("max", space.max.as_deref())?,
                step,
            })
        }
        Some(ParameterType::Double) => Ok(NasValues::Double {
            min: number("min", space.min.as_deref())?,
            max: number("max", space.max.as_deref())?,
            step: number("step", space.step.as_deref())?,
        }),
        _ => Ok(NasValues::List(space.list)),
    }
}

/// The space of an ENAS experiment: its `nasConfig` as a NAS graph.
///
/// # Errors
/// [`SpaceError::Refused`] at the field for a range that does not parse,
/// and at `spec.nasConfig` for a graph the library refuses (no layers, an
/// empty range, too many operation combinations).
fn enas_space(nas: &NasConfig) -> Result<SearchSpace, SpaceError> {
    let graph = nas.graph_config.clone().unwrap_or_default();
    let mut operations = Vec::with_capacity(nas.operations.len());
    for (i, op) in nas.operations.iter().enumerate() {
        let mut parameters = Vec::with_capacity(op.parameters.len());
        for (j, p) in op.parameters.iter().enumerate() {
            let path = format!("spec.nasConfig.operations[{i}].parameters[{j}]");
            parameters.push(NasParameter {
                name: p.name.clone(),
                values: enas_values(p, &path)?,
            });
        }
        operations.push(NasOperation {
            operation_type: op.operation_type.clone(),
            parameters,
        });
    }
    let layers = graph
        .num_layers
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_default();
    let sizes = |v: &[i32]| v.iter().map(|&s| i64::from(s)).collect();
    NasGraph::new(
        layers,
        sizes(&graph.input_sizes),
        sizes(&graph.output_sizes),
        operations,
    )
    .map(SearchSpace::nas)
    .map_err(|source| SpaceError::Refused {
        path: "spec.nasConfig".to_owned(),
        source,
    })
}

/// Builds the search space of an experiment's parameters.
///
/// # Errors
/// [`SpaceError`] when a parameter does not parse or the library refuses it.
pub fn search_space(spec: &ExperimentSpec) -> Result<SearchSpace, SpaceError> {
    if spec.parameters.is_none()
        && let Some(nas) = &spec.nas_config
    {
        let enas = spec
            .algorithm
            .as_ref()
            .is_some_and(|a| a.algorithm_name == "enas");
        return if enas {
            enas_space(nas)
        } else {
            darts_space(spec, nas)
        };
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
