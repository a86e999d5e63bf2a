//! Property tests: whatever bytes or YAML a user hands us, loading,
//! defaulting and validating never panic; defaulting is idempotent.

mod support;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use ktune::api::load::{experiment_from_value, parse_yaml_documents};
use ktune::api::validate::Context;
use ktune::api::{defaults, no_configmaps, prepare};

fn context() -> Context<'static> {
    Context {
        configmaps: no_configmaps(),
        require_configmaps: false,
    }
}

/// Runs the whole pipeline on one value; returns nothing, must not panic.
fn pipeline(value: &Value) {
    if let Ok(prepared) = prepare(value, context()) {
        let _ = prepared.report.is_valid();
    }
}

/// Field names an Experiment uses, so generated documents reach deep code.
const WORDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "spec",
    "objective",
    "type",
    "goal",
    "objectiveMetricName",
    "additionalMetricNames",
    "metricStrategies",
    "value",
    "algorithm",
    "algorithmName",
    "algorithmSettings",
    "earlyStopping",
    "parameters",
    "parameterType",
    "feasibleSpace",
    "min",
    "max",
    "step",
    "list",
    "distribution",
    "trialTemplate",
    "trialSpec",
    "trialParameters",
    "reference",
    "primaryContainerName",
    "successCondition",
    "failureCondition",
    "configMap",
    "parallelTrialCount",
    "maxTrialCount",
    "maxFailedTrialCount",
    "metricsCollectorSpec",
    "collector",
    "source",
    "fileSystemPath",
    "path",
    "format",
    "filter",
    "metricsFormat",
    "httpGet",
    "port",
    "resumePolicy",
    "nasConfig",
    "containers",
    "command",
    "minimize",
    "maximize",
    "double",
    "int",
    "categorical",
    "discrete",
    "logUniform",
    "random",
    "grid",
    "hyperband",
    "medianstop",
    "resource_name",
    "r_l",
    "eta",
    "File",
    "JSON",
    "${trialParameters.x}",
    "x",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_owned),
        "[a-z${}.\\[\\]-]{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn with_header(spec: Value) -> Value {
    json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "p"}, "spec": spec})
}

/// A valid experiment to mutate.
fn base() -> Value {
    let yaml = include_str!("../examples/hyperband-medianstop.yaml");
    parse_yaml_documents(yaml).unwrap().remove(0)
}

/// Replaces the value at a random position of `doc` (chosen by `path`).
fn mutate(doc: &mut Value, path: &[usize], replacement: Value) {
    let mut node = doc;
    for (depth, &choice) in path.iter().enumerate() {
        let next = match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(choice % map.len()).unwrap().clone();
                map.get_mut(&key).unwrap()
            }
            Value::Array(items) if !items.is_empty() => {
                let len = items.len();
                &mut items[choice % len]
            }
            _ => break,
        };
        if depth + 1 == path.len() {
            *next = replacement;
            return;
        }
        node = next;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(docs) = parse_yaml_documents(&text) {
            docs.iter().for_each(pipeline);
        }
    }

    #[test]
    fn arbitrary_yaml_shaped_text_never_panics(lines in prop::collection::vec((0usize..4, word(), word()), 0..30)) {
        let text: String = lines
            .iter()
            .map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(*indent)))
            .collect();
        if let Ok(docs) = parse_yaml_documents(&text) {
            docs.iter().for_each(pipeline);
        }
    }

    #[test]
    fn arbitrary_specs_never_panic_the_validator(spec in json_value()) {
        pipeline(&with_header(spec));
    }

    #[test]
    fn mutated_valid_experiments_never_panic_and_defaulting_is_idempotent(
        path in prop::collection::vec(any::<usize>(), 1..8),
        replacement in json_value(),
    ) {
        let mut doc = base();
        mutate(&mut doc, &path, replacement);
        pipeline(&doc);
        if let Ok(loaded) = experiment_from_value(&doc) {
            let mut once = loaded.experiment.spec.clone();
            defaults::apply_defaults(&mut once);
            let mut twice = once.clone();
            defaults::apply_defaults(&mut twice);
            prop_assert_eq!(once, twice);
        }
    }
}

#[test]
fn the_mutation_base_is_valid() {
    let prepared = prepare(&base(), context()).unwrap();
    assert!(prepared.report.is_valid(), "{:?}", prepared.report);
}
