//! `spec.nasConfig` (neural architecture search): Katib's rules for its
//! operations (`pkg/suggestion/v1beta1/nas/common/validation.py`), each
//! refused at its field — except that DARTS's `skip_connection` needs no
//! parameter — and which algorithms may use it (`darts`, `enas`). ENAS
//! also needs the whole `graphConfig` (Katib's ENAS service refuses an
//! experiment without `numLayers`, `inputSizes` or `outputSizes`).

use super::Report;
use crate::api::enums::ParameterType;
use crate::api::experiment::{ExperimentSpec, NasConfig};

/// The NAS algorithms ktune runs.
const RUNS: &[&str] = &["darts", "enas"];

/// Validates `nas` for the spec's algorithm.
pub(super) fn validate_nas(spec: &ExperimentSpec, nas: &NasConfig, report: &mut Report) {
    let algorithm = spec
        .algorithm
        .as_ref()
        .map(|a| a.algorithm_name.as_str())
        .unwrap_or_default();
    match algorithm {
        name if RUNS.contains(&name) => {}
        other => report.error(
            "spec.nasConfig",
            format!(
                "a nasConfig is searched by a NAS algorithm (darts, enas), not {other:?}; \
                 use spec.parameters for hyperparameter search"
            ),
        ),
    }
    if algorithm == "enas" {
        validate_enas_graph(nas, report);
    }
    if nas.operations.is_empty() {
        report.error(
            "spec.nasConfig.operations",
            "at least one operation is required",
        );
    }
    for (i, operation) in nas.operations.iter().enumerate() {
        let path = format!("spec.nasConfig.operations[{i}]");
        if operation.operation_type.is_empty() {
            report.error(format!("{path}.operationType"), "required");
        }
        // DARTS's `skip_connection` has no filter size: Katib's service
        // expands it without parameters (its validator still asks for one,
        // which refuses Katib's own darts-gpu example; ktune does not).
        let skip = algorithm == "darts" && operation.operation_type == "skip_connection";
        if operation.parameters.is_empty() && !skip {
            report.error(
                format!("{path}.parameters"),
                "at least one parameter is required",
            );
        }
        for (j, parameter) in operation.parameters.iter().enumerate() {
            let path = format!("{path}.parameters[{j}]");
            if parameter.name.is_empty() {
                report.error(format!("{path}.name"), "required");
            }
            let space = parameter.feasible_space.clone().unwrap_or_default();
            match &parameter.parameter_type {
                None => report.error(format!("{path}.parameterType"), "required"),
                Some(ParameterType::Categorical | ParameterType::Discrete) => {
                    if space.list.is_empty() {
                        report.error(
                            format!("{path}.feasibleSpace.list"),
                            "required for a categorical or discrete parameter",
                        );
                    }
                }
                Some(kind @ (ParameterType::Int | ParameterType::Double)) => {
                    if space.min.is_none() && space.max.is_none() {
                        report.error(
                            format!("{path}.feasibleSpace"),
                            "min and max are required for an int or double parameter",
                        );
                    }
                    let step = space.step.as_deref().map(str::parse::<f64>);
                    if *kind == ParameterType::Double && !matches!(step, Some(Ok(s)) if s > 0.0) {
                        report.error(
                            format!("{path}.feasibleSpace.step"),
                            "a double parameter of an operation needs a step > 0",
                        );
                    }
                }
                Some(other) => report.error(
                    format!("{path}.parameterType"),
                    format!("{other:?} is not one of double, int, discrete, categorical"),
                ),
            }
        }
    }
}

/// ENAS's `graphConfig`: every field, each refused at its path.
fn validate_enas_graph(nas: &NasConfig, report: &mut Report) {
    let graph = nas.graph_config.clone().unwrap_or_default();
    let path = "spec.nasConfig.graphConfig";
    match graph.num_layers {
        None => report.error(format!("{path}.numLayers"), "required by enas"),
        Some(n) if n < 1 => report.error(
            format!("{path}.numLayers"),
            format!("must be at least 1, got {n}"),
        ),
        Some(_) => {}
    }
    if graph.input_sizes.is_empty() {
        report.error(format!("{path}.inputSizes"), "required by enas");
    }
    if graph.output_sizes.is_empty() {
        report.error(format!("{path}.outputSizes"), "required by enas");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::experiment::AlgorithmSpec;

    fn spec(algorithm: &str, nas: serde_json::Value) -> (ExperimentSpec, NasConfig) {
        let spec = ExperimentSpec {
            algorithm: Some(AlgorithmSpec {
                algorithm_name: algorithm.into(),
                ..AlgorithmSpec::default()
            }),
            ..ExperimentSpec::default()
        };
        (spec, serde_json::from_value(nas).unwrap())
    }

    fn paths(algorithm: &str, nas: serde_json::Value) -> Vec<String> {
        let (spec, nas) = spec(algorithm, nas);
        let mut report = Report::default();
        validate_nas(&spec, &nas, &mut report);
        report.errors.into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn katibs_operation_rules_are_refused_at_their_fields() {
        let good = serde_json::json!({"operations": [
            {"operationType": "max_pooling", "parameters": [
                {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}}]},
            {"operationType": "convolution", "parameters": [
                {"name": "f", "parameterType": "double", "feasibleSpace": {"min": "1", "max": "2", "step": "0.5"}}]}
        ]});
        assert!(paths("darts", good.clone()).is_empty());
        let skip = serde_json::json!({"operations": [{"operationType": "skip_connection"}]});
        assert!(paths("darts", skip).is_empty());
        assert_eq!(
            paths("enas", good.clone()),
            [
                "spec.nasConfig.graphConfig.numLayers",
                "spec.nasConfig.graphConfig.inputSizes",
                "spec.nasConfig.graphConfig.outputSizes",
            ]
        );
        assert_eq!(paths("random", good), ["spec.nasConfig"]);
        let bad = serde_json::json!({"operations": [
            {"parameters": []},
            {"operationType": "c", "parameters": [
                {"parameterType": "categorical"},
                {"name": "d", "parameterType": "double", "feasibleSpace": {"min": "1"}},
                {"name": "i", "parameterType": "int", "feasibleSpace": {}},
                {"name": "t"}
            ]}
        ]});
        assert_eq!(
            paths("darts", bad),
            [
                "spec.nasConfig.operations[0].operationType",
                "spec.nasConfig.operations[0].parameters",
                "spec.nasConfig.operations[1].parameters[0].name",
                "spec.nasConfig.operations[1].parameters[0].feasibleSpace.list",
                "spec.nasConfig.operations[1].parameters[1].feasibleSpace.step",
                "spec.nasConfig.operations[1].parameters[2].feasibleSpace",
                "spec.nasConfig.operations[1].parameters[3].parameterType",
            ]
        );
        assert_eq!(
            paths("darts", serde_json::json!({})),
            ["spec.nasConfig.operations"]
        );
    }

    #[test]
    fn enas_needs_the_whole_graph_config_and_parameters_on_every_operation() {
        let graph = |g: serde_json::Value| {
            serde_json::json!({"graphConfig": g, "operations": [
                {"operationType": "convolution", "parameters": [
                    {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}}]}
            ]})
        };
        let whole =
            serde_json::json!({"numLayers": 2, "inputSizes": [32, 32, 3], "outputSizes": [10]});
        assert!(paths("enas", graph(whole)).is_empty());
        assert_eq!(
            paths(
                "enas",
                graph(serde_json::json!({"numLayers": 0, "outputSizes": [10]}))
            ),
            [
                "spec.nasConfig.graphConfig.numLayers",
                "spec.nasConfig.graphConfig.inputSizes",
            ]
        );
        // Katib's ENAS validator asks every operation for parameters,
        // skip_connection included (only DARTS expands it without).
        let skip = serde_json::json!({
            "graphConfig": {"numLayers": 1, "inputSizes": [1], "outputSizes": [1]},
            "operations": [{"operationType": "skip_connection"}]});
        assert_eq!(
            paths("enas", skip),
            ["spec.nasConfig.operations[0].parameters"]
        );
    }
}
