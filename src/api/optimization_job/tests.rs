//! The loader against Trainer's rules: a valid job maps onto the expected
//! Experiment, each rule broken is refused at its field, and any valid
//! generated job becomes an Experiment that validates and plans.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{is_api_number, load, prepare};
use crate::api::no_configmaps;
use crate::api::plan::ExperimentPlan;
use crate::api::validate::{Context, Report};

fn context() -> Context<'static> {
    Context {
        configmaps: no_configmaps(),
        require_configmaps: false,
    }
}

fn base() -> Value {
    json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "OptimizationJob",
        "metadata": {"name": "job", "namespace": "team"},
        "spec": {
            "objectives": [{"metric": "accuracy", "direction": "Maximize"}],
            "searchAlgorithm": {"random": {"seed": 7}},
            "numTrials": 10,
            "parallelTrials": 2,
            "parameters": [
                {"name": "lr", "searchSpace": {"logUniform": {"min": "1e-4", "max": "0.1"}}},
                {"name": "layers", "searchSpace": {"uniform": {"min": "1", "max": "8", "type": "Int"}}},
                {"name": "optimizer", "searchSpace": {"categorical": {"choices": ["sgd", "adam"]}}}
            ],
            "trainJobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "runtimeRef": {"name": "torch-distributed"},
                    "trainer": {"command": ["python3", "train.py"],
                                "env": [{"name": "KEEP", "value": "1"}]}
                }
            }
        }
    })
}

fn report_of(doc: &Value) -> Report {
    prepare(doc, context()).unwrap().report
}

fn error_paths(doc: &Value) -> Vec<String> {
    report_of(doc).errors.into_iter().map(|i| i.path).collect()
}

#[test]
fn the_base_job_is_valid_and_maps_onto_the_expected_experiment() {
    let prepared = prepare(&base(), context()).unwrap();
    assert!(
        prepared.report.errors.is_empty() && prepared.report.warnings.is_empty(),
        "{:?}",
        prepared.report
    );
    let loaded = load(&base()).unwrap();
    let experiment = serde_json::to_value(&loaded.experiment).unwrap();
    assert_eq!(
        experiment,
        json!({
            "apiVersion": "ktune.dev/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "job", "namespace": "team"},
            "spec": {
                "parameters": [
                    {"name": "lr", "parameterType": "double",
                     "feasibleSpace": {"min": "1e-4", "max": "0.1", "distribution": "logUniform"}},
                    {"name": "layers", "parameterType": "int",
                     "feasibleSpace": {"min": "1", "max": "8", "distribution": "uniform"}},
                    {"name": "optimizer", "parameterType": "categorical",
                     "feasibleSpace": {"list": ["sgd", "adam"]}}
                ],
                "objective": {"type": "maximize", "objectiveMetricName": "accuracy",
                              "metricStrategies": [{"name": "accuracy", "value": "latest"}]},
                "algorithm": {"algorithmName": "random",
                              "algorithmSettings": [{"name": "random_state", "value": "7"}]},
                "trialTemplate": {
                    "trialSpec": {
                        "apiVersion": "trainer.kubeflow.org/v1alpha1",
                        "kind": "TrainJob",
                        "metadata": {"labels": {"team": "a"}},
                        "spec": {
                            "runtimeRef": {"name": "torch-distributed"},
                            "trainer": {"command": ["python3", "train.py"], "env": [
                                {"name": "KEEP", "value": "1"},
                                {"name": "KUBEFLOW_TRAINER_OPT_lr", "value": "${trialParameters.lr}"},
                                {"name": "KUBEFLOW_TRAINER_OPT_layers", "value": "${trialParameters.layers}"},
                                {"name": "KUBEFLOW_TRAINER_OPT_optimizer", "value": "${trialParameters.optimizer}"}
                            ]}
                        }
                    },
                    "trialParameters": [
                        {"name": "lr", "reference": "lr"},
                        {"name": "layers", "reference": "layers"},
                        {"name": "optimizer", "reference": "optimizer"}
                    ],
                    "primaryContainerName": "node"
                },
                "parallelTrialCount": 2,
                "maxTrialCount": 10,
                "metricsCollectorSpec": {"collector": {"kind": "Push"}}
            }
        })
    );
}

#[test]
fn each_trial_receives_its_values_in_the_trainers_environment() {
    let prepared = prepare(&base(), context()).unwrap();
    let template = prepared.experiment.spec.trial_template.as_ref().unwrap();
    let resolved =
        crate::api::template::ResolvedTemplate::new(template, "team", no_configmaps()).unwrap();
    let assignment = vec![
        ("lr".to_owned(), "0.01".to_owned()),
        ("layers".to_owned(), "3".to_owned()),
        ("optimizer".to_owned(), "adam".to_owned()),
    ];
    let rendered = resolved.render("job-0001", &assignment).unwrap();
    let plan = crate::runner::replicas::plan(&rendered, "node", 0);
    assert_eq!(plan.len(), 1, "{rendered}");
    let env = &plan[0].env;
    for (name, value) in [
        ("KEEP", "1"),
        ("KUBEFLOW_TRAINER_OPT_lr", "0.01"),
        ("KUBEFLOW_TRAINER_OPT_layers", "3"),
        ("KUBEFLOW_TRAINER_OPT_optimizer", "adam"),
    ] {
        assert!(
            env.iter().any(|(k, v)| k == name && v == value),
            "{name}={value} missing from {env:?}"
        );
    }
    assert_eq!(plan[0].argv, ["python3", "train.py"]);
}

/// `doc` with the JSON pointer `at` set to `value` (`None` removes it).
fn with(mut doc: Value, at: &str, value: Option<Value>) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let parent = doc.pointer_mut(parent).unwrap();
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(key.to_owned(), v);
        }
        (Value::Object(map), None) => {
            map.remove(key);
        }
        (Value::Array(items), Some(v)) => items[key.parse::<usize>().unwrap()] = v,
        (Value::Array(items), None) => {
            items.remove(key.parse::<usize>().unwrap());
        }
        (other, _) => panic!("{other}"),
    }
    doc
}

#[test]
fn every_rule_broken_is_refused_at_its_field() {
    let long = "x".repeat(65);
    let hundred_and_one: Vec<Value> = (0..101).map(|i| json!(format!("c{i}"))).collect();
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        ("/spec/objectives", Some(json!([])), "spec.objectives"),
        (
            "/spec/objectives",
            Some(json!([{"metric": "a"}, {"metric": "b"}])),
            "spec.objectives",
        ),
        ("/spec/objectives", None, "spec.objectives"),
        (
            "/spec/objectives/0/metric",
            None,
            "spec.objectives[0].metric",
        ),
        (
            "/spec/objectives/0/metric",
            Some(json!(long)),
            "spec.objectives[0].metric",
        ),
        (
            "/spec/objectives/0/direction",
            Some(json!("maximize")),
            "spec.objectives[0].direction",
        ),
        (
            "/spec/searchAlgorithm",
            Some(json!({"random": {}, "grid": {}})),
            "spec.searchAlgorithm",
        ),
        (
            "/spec/searchAlgorithm",
            Some(json!({})),
            "spec.searchAlgorithm",
        ),
        (
            "/spec/searchAlgorithm/random/seed",
            Some(json!("7")),
            "spec.searchAlgorithm.random.seed",
        ),
        (
            "/spec/searchAlgorithm",
            Some(json!({"grid": {}})),
            "spec.parameters[0].searchSpace.logUniform",
        ),
        ("/spec/parameters", Some(json!([])), "spec.parameters"),
        ("/spec/parameters", None, "spec.parameters"),
        (
            "/spec/parameters/0/name",
            Some(json!(long)),
            "spec.parameters[0].name",
        ),
        ("/spec/parameters/0/name", None, "spec.parameters[0].name"),
        (
            "/spec/parameters/1/name",
            Some(json!("lr")),
            "spec.parameters[1].name",
        ),
        (
            "/spec/parameters/0/searchSpace",
            None,
            "spec.parameters[0].searchSpace",
        ),
        (
            "/spec/parameters/0/searchSpace",
            Some(json!({})),
            "spec.parameters[0].searchSpace",
        ),
        (
            "/spec/parameters/0/searchSpace/uniform",
            Some(json!({"min": "1", "max": "2"})),
            "spec.parameters[0].searchSpace",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/min",
            Some(json!("0")),
            "spec.parameters[0].searchSpace.logUniform.min",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/min",
            Some(json!("-1")),
            "spec.parameters[0].searchSpace.logUniform.min",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/min",
            Some(json!("0.5")),
            "spec.parameters[0].searchSpace.logUniform.min",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/min",
            Some(json!("1.e3")),
            "spec.parameters[0].searchSpace.logUniform.min",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/min",
            Some(json!(0.001)),
            "spec.parameters[0].searchSpace.logUniform.min",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/max",
            None,
            "spec.parameters[0].searchSpace.logUniform.max",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/max",
            Some(json!("1e999")),
            "spec.parameters[0].searchSpace.logUniform.max",
        ),
        (
            "/spec/parameters/0/searchSpace/logUniform/max",
            Some(json!(format!("0.{}", "1".repeat(64)))),
            "spec.parameters[0].searchSpace.logUniform.max",
        ),
        (
            "/spec/parameters/1/searchSpace/uniform/type",
            Some(json!("Integer")),
            "spec.parameters[1].searchSpace.uniform.type",
        ),
        (
            "/spec/parameters/1/searchSpace/uniform/max",
            Some(json!("8.5")),
            "spec.parameters[1].searchSpace.uniform.max",
        ),
        (
            "/spec/parameters/2/searchSpace/categorical/choices",
            Some(json!([])),
            "spec.parameters[2].searchSpace.categorical.choices",
        ),
        (
            "/spec/parameters/2/searchSpace/categorical/choices",
            Some(Value::Array(hundred_and_one)),
            "spec.parameters[2].searchSpace.categorical.choices",
        ),
        (
            "/spec/parameters/2/searchSpace/categorical/choices",
            Some(json!(["a", "a"])),
            "spec.parameters[2].searchSpace.categorical.choices[1]",
        ),
        (
            "/spec/parameters/2/searchSpace/categorical/choices",
            Some(json!(["a", long])),
            "spec.parameters[2].searchSpace.categorical.choices[1]",
        ),
        (
            "/spec/parameters/2/searchSpace/categorical/choices",
            Some(json!(["a", 1])),
            "spec.parameters[2].searchSpace.categorical.choices[1]",
        ),
        ("/spec/numTrials", Some(json!(0)), "spec.numTrials"),
        ("/spec/numTrials", Some(json!(101)), "spec.numTrials"),
        ("/spec/numTrials", Some(json!("ten")), "spec.numTrials"),
        (
            "/spec/parallelTrials",
            Some(json!(0)),
            "spec.parallelTrials",
        ),
        (
            "/spec/parallelTrials",
            Some(json!(11)),
            "spec.parallelTrials",
        ),
        ("/spec/trainJobTemplate", None, "spec.trainJobTemplate"),
        (
            "/spec/trainJobTemplate/metadata/name",
            Some(json!("x")),
            "spec.trainJobTemplate.metadata.name",
        ),
        (
            "/spec/trainJobTemplate/metadata/namespace",
            Some(json!("x")),
            "spec.trainJobTemplate.metadata.namespace",
        ),
        (
            "/spec/trainJobTemplate/spec",
            None,
            "spec.trainJobTemplate.spec",
        ),
        (
            "/spec/trainJobTemplate/spec/runtimeRef",
            None,
            "spec.trainJobTemplate.spec.runtimeRef",
        ),
        (
            "/spec/trainJobTemplate/spec/runtimeRef/name",
            Some(json!("")),
            "spec.trainJobTemplate.spec.runtimeRef.name",
        ),
        (
            "/spec/trainJobTemplate/spec/trainer/env",
            Some(json!({"A": "1"})),
            "spec.trainJobTemplate.spec.trainer.env",
        ),
        ("/spec", None, "spec"),
    ];
    for (at, value, path) in cases {
        let doc = with(base(), at, value.clone());
        let paths = error_paths(&doc);
        assert!(
            paths.iter().any(|p| p == path),
            "{at} = {value:?}: expected an error at {path}, got {paths:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut doc = base();
    doc["spec"]["numTrials"] = json!(0);
    doc["spec"]["objectives"][0]["direction"] = json!("Up");
    doc["spec"]["parameters"][1]["searchSpace"]["uniform"]["min"] = json!("9");
    let paths = error_paths(&doc);
    for path in [
        "spec.numTrials",
        "spec.objectives[0].direction",
        "spec.parameters[1].searchSpace.uniform.min",
        "spec.parallelTrials",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path}: {paths:?}");
    }
}

#[test]
fn defaults_are_the_apis_random_search_one_trial_at_a_time() {
    let mut doc = base();
    let spec = doc["spec"].as_object_mut().unwrap();
    for key in ["searchAlgorithm", "numTrials", "parallelTrials"] {
        spec.remove(key);
    }
    doc["spec"]["objectives"][0]
        .as_object_mut()
        .unwrap()
        .remove("direction");
    let prepared = prepare(&doc, context()).unwrap();
    assert!(prepared.report.is_valid(), "{:?}", prepared.report);
    let spec = &prepared.experiment.spec;
    assert_eq!(spec.algorithm.as_ref().unwrap().algorithm_name, "random");
    assert!(
        spec.algorithm
            .as_ref()
            .unwrap()
            .algorithm_settings
            .is_empty()
    );
    assert_eq!(
        (spec.max_trial_count, spec.parallel_trial_count),
        (Some(1), Some(1))
    );
    assert_eq!(
        spec.objective.as_ref().unwrap().type_,
        Some(crate::api::enums::ObjectiveType::Minimize)
    );
}

#[test]
fn int_bounds_are_whole_numbers_however_written_and_negative_seeds_stay_valid() {
    let mut doc = base();
    doc["spec"]["parameters"][1]["searchSpace"]["uniform"]["max"] = json!("1.6e1");
    doc["spec"]["searchAlgorithm"]["random"]["seed"] = json!(-3);
    let prepared = prepare(&doc, context()).unwrap();
    assert!(prepared.report.is_valid(), "{:?}", prepared.report);
    let spec = &prepared.experiment.spec;
    let layers = &spec.parameters.as_ref().unwrap()[1];
    assert_eq!(
        layers.feasible_space.as_ref().unwrap().max.as_deref(),
        Some("16")
    );
    let seed = &spec.algorithm.as_ref().unwrap().algorithm_settings[0].value;
    assert_eq!(seed, &(-3_i64 & i64::MAX).to_string());
}

#[test]
fn grid_over_categoricals_maps_to_grid() {
    let mut doc = base();
    doc["spec"]["searchAlgorithm"] = json!({"grid": {}});
    doc["spec"]["parameters"] = json!([
        {"name": "optimizer", "searchSpace": {"categorical": {"choices": ["sgd", "adam"]}}},
        {"name": "batch", "searchSpace": {"categorical": {"choices": ["16", "32"]}}}
    ]);
    let prepared = prepare(&doc, context()).unwrap();
    assert!(prepared.report.is_valid(), "{:?}", prepared.report);
    let plan = ExperimentPlan::new(&prepared.experiment, &prepared.report).unwrap();
    assert_eq!(
        prepared
            .experiment
            .spec
            .algorithm
            .as_ref()
            .unwrap()
            .algorithm_name,
        "grid"
    );
    assert_eq!(plan.parallel_trial_count, 2);
}

#[test]
fn an_annotation_chooses_any_ktune_algorithm_and_early_stopping_rule() {
    let mut doc = base();
    doc["metadata"]["annotations"] = json!({
        "ktune.dev/algorithm": "tpe",
        "ktune.dev/algorithm-settings": "{\"n_startup_trials\": 3, \"random_state\": \"5\"}",
        "ktune.dev/early-stopping": "medianstop",
        "ktune.dev/early-stopping-settings": "{\"min_trials_required\": 2}",
        "other": "kept"
    });
    let prepared = prepare(&doc, context()).unwrap();
    assert!(prepared.report.is_valid(), "{:?}", prepared.report);
    let spec = &prepared.experiment.spec;
    let algorithm = spec.algorithm.as_ref().unwrap();
    assert_eq!(algorithm.algorithm_name, "tpe");
    let settings: Vec<(&str, &str)> = algorithm
        .algorithm_settings
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(settings, [("n_startup_trials", "3"), ("random_state", "5")]);
    assert_eq!(
        spec.early_stopping.as_ref().unwrap().algorithm_name,
        "medianstop"
    );
    let annotations = prepared.experiment.metadata.annotations.unwrap();
    assert_eq!(annotations.keys().collect::<Vec<_>>(), ["other"]);
}

#[test]
fn bad_annotations_are_refused_at_the_annotation() {
    for (annotations, path) in [
        (
            json!({"ktune.dev/algorithm": "no-such-algorithm"}),
            "metadata.annotations[ktune.dev/algorithm]",
        ),
        (
            json!({"ktune.dev/algorithm": "tpe", "ktune.dev/algorithm-settings": "{\"n_startup_trials\": \"many\"}"}),
            "metadata.annotations[ktune.dev/algorithm-settings]",
        ),
        (
            json!({"ktune.dev/algorithm": "tpe", "ktune.dev/algorithm-settings": "[1]"}),
            "metadata.annotations[ktune.dev/algorithm-settings]",
        ),
        (
            json!({"ktune.dev/algorithm-settings": "{}"}),
            "metadata.annotations[ktune.dev/algorithm-settings]",
        ),
        (
            json!({"ktune.dev/early-stopping": "medianstop", "ktune.dev/early-stopping-settings": "{\"bogus\": 1}"}),
            "metadata.annotations[ktune.dev/early-stopping-settings]",
        ),
    ] {
        let mut doc = base();
        doc["metadata"]["annotations"] = annotations.clone();
        let paths = error_paths(&doc);
        assert!(
            paths.iter().any(|p| p == path),
            "{annotations}: expected {path}, got {paths:?}"
        );
    }
}

#[test]
fn ktunes_own_limits_are_named_by_the_jobs_fields() {
    let mut doc = base();
    doc["metadata"]["name"] = json!("n".repeat(50));
    doc["spec"]["parameters"][2]["name"] = json!("a{b}");
    let paths = error_paths(&doc);
    for path in ["metadata.name", "spec.parameters[2].name"] {
        assert!(paths.iter().any(|p| p == path), "{path}: {paths:?}");
    }
    assert!(
        paths.iter().all(|p| !p.contains("feasibleSpace")
            && !p.contains("trialTemplate")
            && !p.contains("maxTrialCount")),
        "{paths:?}"
    );
}

#[test]
fn unknown_fields_are_warnings_and_a_wrong_api_version_an_error() {
    let mut doc = base();
    doc["spec"]["numTrial"] = json!(3);
    doc["spec"]["parameters"][0]["searchSpace"]["logUniform"]["step"] = json!("1");
    let report = report_of(&doc);
    assert!(report.is_valid(), "{report:?}");
    let warned: Vec<&str> = report.warnings.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        warned,
        [
            "spec.numTrial",
            "spec.parameters[0].searchSpace.logUniform.step"
        ]
    );
    doc["metadata"]["annotations"] = json!({"ktune.dev/algorithms": "tpe"});
    let warned: Vec<String> = report_of(&doc)
        .warnings
        .into_iter()
        .map(|i| i.path)
        .collect();
    assert!(
        warned.contains(&"metadata.annotations[ktune.dev/algorithms]".to_owned()),
        "{warned:?}"
    );
    doc["apiVersion"] = json!("trainer.kubeflow.org/v1");
    let err = prepare(&doc, context()).unwrap_err().to_string();
    assert!(err.starts_with("apiVersion:"), "{err}");
}

#[test]
fn the_apis_number_pattern_is_matched_exactly() {
    for good in [
        "0", "-0", "1", "10", "0.5", "-1.25", "1e3", "1E-3", "2.5e+10",
    ] {
        assert!(is_api_number(good), "{good}");
    }
    for bad in [
        "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.2", "0x10", " 1", "1 ", "inf", "NaN",
    ] {
        assert!(!is_api_number(bad), "{bad}");
    }
}

/// A valid number text in `[lo, hi)`, as the API writes numbers.
fn bounds(log: bool, int: bool) -> impl Strategy<Value = (String, String)> {
    let lo = if log { 1_i64 } else { -1000 };
    (lo..1000_i64, 1..1000_i64, 0..4_u32).prop_map(move |(min, width, scale)| {
        let max = min + width;
        if int {
            (min.to_string(), max.to_string())
        } else {
            let div = 10_f64.powi(i32::try_from(scale).unwrap_or(0));
            #[allow(clippy::cast_precision_loss)]
            let (a, b) = (min as f64 / div, max as f64 / div);
            (format!("{a}"), format!("{b}"))
        }
    })
}

fn search_space() -> impl Strategy<Value = Value> {
    prop_oneof![
        (any::<bool>(), any::<bool>())
            .prop_flat_map(|(log, int)| bounds(log, int).prop_map(move |b| (log, int, b)))
            .prop_map(|(log, int, (min, max))| {
                let kind = if log { "logUniform" } else { "uniform" };
                let number = if int { "Int" } else { "Float" };
                let mut space = serde_json::Map::new();
                space.insert(
                    kind.to_owned(),
                    json!({"min": min, "max": max, "type": number}),
                );
                Value::Object(space)
            }),
        proptest::collection::btree_set("[a-z0-9._-]{1,12}", 1..6)
            .prop_map(|choices| json!({"categorical": {"choices": choices}})),
    ]
}

fn job() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(search_space(), 1..6),
        1..=100_i32,
        1..=100_i32,
        any::<bool>(),
        proptest::option::of(any::<i64>()),
        any::<bool>(),
    )
        .prop_map(|(spaces, a, b, maximize, seed, grid)| {
            let grid = grid && spaces.iter().all(|s| s.get("categorical").is_some());
            let parameters: Vec<Value> = spaces
                .into_iter()
                .enumerate()
                .map(|(i, s)| json!({"name": format!("p{i}"), "searchSpace": s}))
                .collect();
            let search = if grid {
                json!({"grid": {}})
            } else {
                json!({"random": {"seed": seed}})
            };
            json!({
                "apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "OptimizationJob",
                "metadata": {"name": "gen"},
                "spec": {
                    "objectives": [{"metric": "m", "direction": if maximize { "Maximize" } else { "Minimize" }}],
                    "searchAlgorithm": search,
                    "numTrials": a.max(b),
                    "parallelTrials": a.min(b),
                    "parameters": parameters,
                    "trainJobTemplate": {"spec": {"runtimeRef": {"name": "r"},
                        "trainer": {"command": ["t"]}}}
                }
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_valid_job_becomes_an_experiment_that_validates_and_plans(doc in job()) {
        let prepared = prepare(&doc, context()).unwrap();
        prop_assert!(prepared.report.errors.is_empty(), "{:?}\n{doc}", prepared.report);
        prop_assert!(prepared.report.warnings.is_empty(), "{:?}\n{doc}", prepared.report);
        let plan = ExperimentPlan::new(&prepared.experiment, &prepared.report);
        prop_assert!(plan.is_ok(), "{:?}\n{doc}", plan.err());
        let spec = &prepared.experiment.spec;
        prop_assert_eq!(spec.max_trial_count, doc["spec"]["numTrials"].as_i64().and_then(|n| i32::try_from(n).ok()));
        prop_assert_eq!(spec.parameters.as_ref().map(Vec::len), doc["spec"]["parameters"].as_array().map(Vec::len));
        // The converted Experiment reads back as itself and validates again.
        let value = serde_json::to_value(&prepared.experiment).unwrap();
        let again = crate::api::prepare(&value, context()).unwrap();
        prop_assert!(again.report.errors.is_empty(), "{:?}", again.report);
        prop_assert_eq!(&again.experiment, &prepared.experiment);
    }
}
