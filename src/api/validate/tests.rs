//! One test per kind of invalid experiment: each mutation of a valid base
//! experiment must be refused at the expected field path.

use serde_json::{Value, json};

use crate::api::load::ConfigMaps;
use crate::api::validate::Context;
use crate::api::{no_configmaps, prepare};

fn base() -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "base", "namespace": "kubeflow"},
        "spec": {
            "objective": {"type": "minimize", "goal": 0.001, "objectiveMetricName": "loss",
                          "additionalMetricNames": ["accuracy"]},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 3, "maxTrialCount": 12, "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [
                    {"name": "learningRate", "reference": "lr"},
                    {"name": "numLayers", "reference": "layers"},
                    {"name": "optimizer", "reference": "optimizer"}
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "training-container", "image": "python:3.11",
                            "command": ["python3", "train.py",
                                "--lr=${trialParameters.learningRate}",
                                "--layers=${trialParameters.numLayers}",
                                "--optimizer=${trialParameters.optimizer}"]}]}}}
                }
            }
        }
    })
}

fn errors_of(doc: &Value) -> Vec<String> {
    let context = Context {
        configmaps: no_configmaps(),
        require_configmaps: false,
    };
    let prepared = prepare(doc, context).unwrap();
    prepared
        .report
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Applies `edit` to the base and asserts an error at `path` whose message contains `needle`.
fn refused(edit: impl FnOnce(&mut Value), path: &str, needle: &str) {
    let mut doc = base();
    edit(&mut doc);
    let errors = errors_of(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(needle)),
        "expected an error at {path} containing {needle:?}, got {errors:#?}"
    );
}

fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut Value {
    doc.pointer_mut(pointer).unwrap()
}

#[test]
fn the_base_experiment_is_valid() {
    assert_eq!(errors_of(&base()), Vec::<String>::new());
}

#[test]
fn bad_names_are_refused() {
    refused(
        |d| *at(d, "/metadata/name") = json!("Bad_Name"),
        "metadata.name",
        "lowercase",
    );
    refused(
        |d| *at(d, "/metadata/name") = json!("a".repeat(41)),
        "metadata.name",
        "at most 40",
    );
}

#[test]
fn bad_counts_are_refused() {
    refused(
        |d| *at(d, "/spec/parallelTrialCount") = json!(0),
        "spec.parallelTrialCount",
        "at least 1",
    );
    refused(
        |d| *at(d, "/spec/maxTrialCount") = json!(-1),
        "spec.maxTrialCount",
        "at least 1",
    );
    refused(
        |d| *at(d, "/spec/maxFailedTrialCount") = json!(-2),
        "spec.maxFailedTrialCount",
        "negative",
    );
    refused(
        |d| *at(d, "/spec/parallelTrialCount") = json!(20),
        "spec.parallelTrialCount",
        "more than maxTrialCount",
    );
    refused(
        |d| *at(d, "/spec/maxFailedTrialCount") = json!(13),
        "spec.maxFailedTrialCount",
        "more than maxTrialCount",
    );
}

#[test]
fn bad_objectives_are_refused() {
    refused(
        |d| *at(d, "/spec/objective/type") = json!("minimise"),
        "spec.objective.type",
        "minimize or maximize",
    );
    refused(
        |d| *at(d, "/spec/objective/objectiveMetricName") = json!(""),
        "spec.objective.objectiveMetricName",
        "required",
    );
    refused(
        |d| *at(d, "/spec/objective/additionalMetricNames") = json!(["loss"]),
        "spec.objective.additionalMetricNames[0]",
        "objective metric",
    );
    refused(
        |d| {
            at(d, "/spec/objective")["metricStrategies"] =
                json!([{"name": "loss", "value": "average"}])
        },
        "spec.objective.metricStrategies[0].value",
        "not a metric strategy",
    );
    refused(
        |d| *at(d, "/spec/objective/goal") = json!("NaN"),
        "spec.objective.goal",
        "finite",
    );
}

#[test]
fn bad_parameters_are_refused() {
    refused(
        |d| *at(d, "/spec/parameters/0/feasibleSpace/min") = json!("0.9"),
        "spec.parameters[0].feasibleSpace.min",
        "greater than max",
    );
    refused(
        |d| *at(d, "/spec/parameters/0/feasibleSpace/max") = json!("lots"),
        "spec.parameters[0].feasibleSpace.max",
        "not a number",
    );
    refused(
        |d| *at(d, "/spec/parameters/0/feasibleSpace/max") = json!("inf"),
        "spec.parameters[0].feasibleSpace.max",
        "finite",
    );
    refused(
        |d| *at(d, "/spec/parameters/1/feasibleSpace/min") = json!("1.5"),
        "spec.parameters[1].feasibleSpace.min",
        "whole number",
    );
    refused(
        |d| at(d, "/spec/parameters/1/feasibleSpace")["step"] = json!("10"),
        "spec.parameters[1].feasibleSpace.step",
        "larger than the range",
    );
    refused(
        |d| *at(d, "/spec/parameters/2/feasibleSpace/list") = json!([]),
        "spec.parameters[2].feasibleSpace.list",
        "list of values is empty",
    );
    refused(
        |d| *at(d, "/spec/parameters/2/name") = json!("lr"),
        "spec.parameters[2].name",
        "already the name",
    );
    refused(
        |d| {
            *at(d, "/spec/parameters/0/feasibleSpace/min") = json!("0");
            at(d, "/spec/parameters/0/feasibleSpace")["distribution"] = json!("logUniform");
        },
        "spec.parameters[0].feasibleSpace.min",
        "needs min > 0",
    );
    refused(
        |d| *at(d, "/spec/parameters/0/parameterType") = json!("float"),
        "spec.parameters[0].parameterType",
        "not a parameter type",
    );
}

#[test]
fn bad_template_references_are_refused() {
    refused(
        |d| *at(d, "/spec/trialTemplate/trialParameters/0/reference") = json!("learning_rate"),
        "spec.trialTemplate.trialParameters[0].reference",
        "not a parameter",
    );
    refused(
        |d| {
            at(
                d,
                "/spec/trialTemplate/trialSpec/spec/template/spec/containers/0/command",
            )
            .as_array_mut()
            .unwrap()
            .push(json!("${trialParameters.batch}"))
        },
        "spec.trialTemplate.trialSpec",
        "no trialParameter declares \"batch\"",
    );
    refused(
        |d| {
            at(d, "/spec/trialTemplate/trialParameters")
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "x", "reference": "${trialSpec.Bogus}"}))
        },
        "spec.trialTemplate.trialParameters[3].reference",
        "unknown meta reference",
    );
    refused(
        |d| *at(d, "/spec/trialTemplate/primaryContainerName") = json!("trainer"),
        "spec.trialTemplate.primaryContainerName",
        "no container named",
    );
    refused(
        |d| at(d, "/spec/trialTemplate/trialSpec")["metadata"] = json!({"name": "fixed"}),
        "spec.trialTemplate.trialSpec.metadata.name",
        "must not be set",
    );
    refused(
        |d| at(d, "/spec/trialTemplate/trialSpec/spec")["parallelizm"] = json!(1),
        "spec.trialTemplate.trialSpec.spec.parallelizm",
        "not a field",
    );
    refused(
        |d| *at(d, "/spec/trialTemplate/trialSpec/kind") = json!("Workflow"),
        "spec.trialTemplate.successCondition",
        "no default",
    );
}

#[test]
fn bad_algorithms_and_settings_are_refused() {
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("evolution"),
        "spec.algorithm.algorithmName",
        "unknown algorithm",
    );
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("randm"),
        "spec.algorithm.algorithmName",
        "did you mean \"random\"?",
    );
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("Bayesian-Optimisation"),
        "spec.algorithm.algorithmName",
        "expected one of random, grid",
    );
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("enas"),
        "spec.algorithm.algorithmName",
        "enas searches a nasConfig",
    );
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("pbt"),
        "spec.algorithm.algorithmSettings",
        "pbt requires the setting `suggestion_trial_dir`",
    );
    refused(
        |d| {
            at(d, "/spec/algorithm")["algorithmName"] = json!("pbt");
            at(d, "/spec/algorithm")["algorithmSettings"] = json!([
                {"name": "n_population", "value": "5"},
                {"name": "truncation_threshold", "value": "0.2"},
                {"name": "suggestion_trial_dir", "value": "checkpoints"},
            ]);
        },
        "spec.algorithm.algorithmSettings[2].value",
        "suggestion_trial_dir must be an absolute folder",
    );
    refused(
        |d| {
            at(d, "/spec/algorithm")["algorithmSettings"] =
                json!([{"name": "random_state", "value": "-3"}])
        },
        "spec.algorithm.algorithmSettings[0]",
        "at least 0",
    );
    refused(
        |d| *at(d, "/spec/algorithm") = json!({"algorithmName": "cmaes", "algorithmSettings": [{"name": "restart_strategy", "value": "IPOP"}]}),
        "spec.algorithm.algorithmSettings[0]",
        "one of none, ipop, bipop",
    );
    refused(
        |d| *at(d, "/spec/algorithm/algorithmName") = json!("grid"),
        "spec.parameters[0].feasibleSpace.step",
        "grid needs a step",
    );
    refused(
        |d| *at(d, "/spec/algorithm") = json!({"algorithmName": "hyperband", "algorithmSettings": [{"name": "resource_name", "value": "epochs"}, {"name": "r_l", "value": "9"}]}),
        "spec.algorithm.algorithmSettings[0].value",
        "does not name a parameter",
    );
    refused(
        |d| *at(d, "/spec/algorithm") = json!({"algorithmName": "hyperband", "algorithmSettings": [{"name": "resource_name", "value": "layers"}]}),
        "spec.algorithm.algorithmSettings",
        "requires the setting `r_l`",
    );
    refused(
        |d| at(d, "/spec")["earlyStopping"] = json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "0"}]}),
        "spec.earlyStopping.algorithmSettings[0]",
        "at least 1",
    );
    refused(
        |d| at(d, "/spec")["earlyStopping"] = json!({"algorithmName": "hyperstop"}),
        "spec.earlyStopping.algorithmName",
        "unknown algorithm",
    );
    refused(
        |d| at(d, "/spec")["earlyStopping"] = json!({"algorithmName": "asha", "algorithmSettings": [{"name": "step_metric", "value": "epoch"}]}),
        "spec.earlyStopping.algorithmSettings[0].value",
        "additionalMetricNames",
    );
}

#[test]
fn bad_collectors_and_policies_are_refused() {
    refused(
        |d| at(d, "/spec")["resumePolicy"] = json!("Sometimes"),
        "spec.resumePolicy",
        "unknown resume policy",
    );
    refused(
        |d| at(d, "/spec")["metricsCollectorSpec"] = json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "rel/metrics.log", "kind": "File"}}}),
        "spec.metricsCollectorSpec.source.fileSystemPath.path",
        "absolute",
    );
    refused(
        |d| {
            at(d, "/spec")["metricsCollectorSpec"] =
                json!({"source": {"filter": {"metricsFormat": ["(only-one)"]}}})
        },
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
        "two capture groups",
    );
    refused(
        |d| at(d, "/spec")["metricsCollectorSpec"] = json!({"collector": {"kind": "Sidecar"}}),
        "spec.metricsCollectorSpec.collector.kind",
        "unknown collector kind",
    );
    refused(
        |d| at(d, "/spec")["metricsCollectorSpec"] = json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m.json", "kind": "File", "format": "JSON"}, "filter": {"metricsFormat": ["(a)(b)"]}}}),
        "spec.metricsCollectorSpec.source.filter",
        "JSON",
    );
    refused(
        |d| at(d, "/spec")["metricsCollectorSpec"] = json!({"collector": {"kind": "Custom"}}),
        "spec.metricsCollectorSpec.collector.customCollector",
        "required",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut doc = base();
    *at(&mut doc, "/spec/parallelTrialCount") = json!(0);
    *at(&mut doc, "/spec/objective/type") = json!("up");
    *at(&mut doc, "/spec/parameters/0/feasibleSpace/min") = json!("x");
    *at(&mut doc, "/spec/algorithm/algorithmName") = json!("nope");
    assert_eq!(errors_of(&doc).len(), 4, "{:#?}", errors_of(&doc));
}

#[test]
fn a_parameter_no_trial_can_receive_is_refused() {
    refused(
        |d| {
            at(d, "/spec/parameters").as_array_mut().unwrap().push(json!({"name": "unused", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}))
        },
        "spec.parameters[3]",
        "not referenced by any trialParameter",
    );
}

#[test]
fn configmap_templates_are_checked_when_given_and_required_when_running() {
    let mut doc = base();
    let template = at(&mut doc, "/spec/trialTemplate").as_object_mut().unwrap();
    let trial_spec = template.remove("trialSpec").unwrap();
    template.insert("configMap".into(), json!({"configMapName": "templates", "configMapNamespace": "kubeflow", "templatePath": "job.yaml"}));
    template.insert(
        "successCondition".into(),
        json!("status.conditions.#(type==\"Complete\")#|#(status==\"True\")#"),
    );
    template.insert(
        "failureCondition".into(),
        json!("status.conditions.#(type==\"Failed\")#|#(status==\"True\")#"),
    );
    let missing = Context {
        configmaps: no_configmaps(),
        require_configmaps: true,
    };
    let report = prepare(&doc, missing).unwrap().report;
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.path == "spec.trialTemplate.configMap"),
        "{report:?}"
    );
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "templates", "namespace": "kubeflow"},
        "data": {"job.yaml": serde_saphyr::to_string(&trial_spec).unwrap()}});
    let docs = [crate::api::load::Document {
        file: "cm.yaml".into(),
        index: 0,
        value: cm,
    }];
    let configmaps = ConfigMaps::from_documents(&docs);
    let report = prepare(
        &doc,
        Context {
            configmaps: &configmaps,
            require_configmaps: true,
        },
    )
    .unwrap()
    .report;
    assert!(report.is_valid(), "{report:?}");
}

/// The base turned into an ENAS experiment over `operations`.
fn enas(doc: &mut Value, operations: Value) {
    let spec = doc["spec"].as_object_mut().unwrap();
    spec.remove("parameters");
    spec.insert("algorithm".into(), json!({"algorithmName": "enas"}));
    spec.insert(
        "nasConfig".into(),
        json!({"graphConfig": {"numLayers": 2, "inputSizes": [32, 32, 3], "outputSizes": [10]},
               "operations": operations}),
    );
    spec["trialTemplate"]["trialParameters"] = json!([
        {"name": "architecture", "reference": "architecture"},
        {"name": "config", "reference": "nn_config"}]);
    spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] =
        json!([
            "python3",
            "RunTrial.py",
            "--architecture=${trialParameters.architecture}",
            "--nn_config=${trialParameters.config}"
        ]);
}

#[test]
fn enas_experiments_are_valid_or_refused_at_the_field() {
    let conv = json!([{"operationType": "convolution", "parameters": [
        {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}},
        {"name": "stride", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}]}]);
    let mut doc = base();
    enas(&mut doc, conv.clone());
    assert_eq!(errors_of(&doc), Vec::<String>::new());
    refused(
        |d| {
            enas(d, conv.clone());
            at(d, "/spec/nasConfig/graphConfig")
                .as_object_mut()
                .unwrap()
                .remove("numLayers");
        },
        "spec.nasConfig.graphConfig.numLayers",
        "required by enas",
    );
    refused(
        |d| {
            enas(d, conv.clone());
            *at(d, "/spec/nasConfig/graphConfig/outputSizes") = json!([]);
        },
        "spec.nasConfig.graphConfig.outputSizes",
        "required by enas",
    );
    // An int range without its max: Katib's service fails on it later.
    refused(
        |d| {
            enas(
                d,
                json!([{"operationType": "reduction", "parameters": [
                {"name": "pool_size", "parameterType": "int", "feasibleSpace": {"min": "2"}}]}]),
            )
        },
        "spec.nasConfig.operations[0].parameters[0].feasibleSpace.max",
        "needs an integer",
    );
    refused(
        |d| {
            enas(d, conv.clone());
            at(d, "/spec/algorithm")["algorithmSettings"] =
                json!([{"name": "controller_baseline_decay", "value": "1.5"}]);
        },
        "spec.algorithm.algorithmSettings[0]",
        "controller_baseline_decay",
    );
    // Too many combinations for the controller.
    let wide: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    refused(
        |d| {
            enas(
                d,
                json!([{"operationType": "c", "parameters": [
                {"name": "a", "parameterType": "categorical", "feasibleSpace": {"list": wide}},
                {"name": "b", "parameterType": "categorical", "feasibleSpace": {"list": wide}}]}]),
            )
        },
        "spec.nasConfig",
        "40000 combinations",
    );
}
