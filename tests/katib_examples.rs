//! Every Experiment in Katib's own examples (`../shared/katib-examples`)
//! parses, defaults and validates — or is refused only for the reasons
//! listed in [`REFUSED`], in one place.

mod support;

use std::collections::BTreeMap;

use ktune::api::load::{ConfigMaps, Document, experiment_from_value, read_documents};
use ktune::api::prepare;
use ktune::api::validate::Context;

/// Examples ktune refuses, with the error each must carry and why.
const REFUSED: &[(&str, &str, &str)] = &[
    // Katib's own webhook refuses these three as well (katib-reference.md
    // §2.2: maxFailedTrialCount ≤ maxTrialCount; §7.6: every declared
    // trialParameter must appear in the template):
    (
        "hp-tuning/simple-pbt.yaml",
        "spec.maxFailedTrialCount",
        "upstream defect: maxFailedTrialCount 3 is more than maxTrialCount 2 \
         (tests/cli.rs suggests it with the counts mended)",
    ),
    (
        "tekton/pipeline-run.yaml",
        "spec.trialTemplate.trialParameters",
        "upstream defect: the template writes $(trialParameters.lr), not ${trialParameters.learningRate}",
    ),
    (
        "trial-template/trial-configmap-source.yaml",
        "spec.trialTemplate.trialParameters",
        "upstream defect: the ConfigMap template uses ${trialParameters.momentum}, which the experiment does not declare",
    ),
];

fn all_documents(dir: &std::path::Path) -> Vec<Document> {
    let mut docs = Vec::new();
    for file in support::experiment_files(dir) {
        docs.extend(read_documents(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
    }
    docs.extend(read_documents(&dir.join("_extra/trial-templates-configmap.yaml")).unwrap());
    docs
}

#[test]
fn every_katib_example_validates_or_is_refused_for_a_listed_reason() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let docs = all_documents(&dir);
    let configmaps = ConfigMaps::from_documents(&docs);
    let context = Context {
        configmaps: &configmaps,
        require_configmaps: true,
    };
    let refused: BTreeMap<&str, (&str, &str)> = REFUSED
        .iter()
        .map(|(file, path, why)| (*file, (*path, *why)))
        .collect();
    let mut seen = 0;
    let mut failures = Vec::new();
    for doc in docs.iter().filter(|d| d.kind() == Some("Experiment")) {
        seen += 1;
        let relative = doc
            .file
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let prepared = prepare(&doc.value, context).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let errors = &prepared.report.errors;
        match refused.get(relative.as_str()) {
            None if !errors.is_empty() => {
                failures.push(format!("{relative} should be valid: {errors:#?}"))
            }
            Some((path, why)) if !errors.iter().any(|e| e.path == *path) => {
                failures.push(format!(
                    "{relative} should be refused at {path} ({why}), got {errors:#?}"
                ));
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(seen >= 33, "expected Katib's 33 examples, found {seen}");
}

#[test]
fn parse_serialize_parse_is_the_identity_on_every_example() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    for doc in all_documents(&dir)
        .iter()
        .filter(|d| d.kind() == Some("Experiment"))
    {
        let first = experiment_from_value(&doc.value).unwrap().experiment;
        let yaml = serde_saphyr::to_string(&first).unwrap();
        let again = ktune::api::load::parse_yaml_documents(&yaml).unwrap();
        let second = experiment_from_value(&again[0]).unwrap();
        assert_eq!(first, second.experiment, "{}", doc.origin());
        assert!(
            second.unknown_fields.is_empty(),
            "{}: {:?}",
            doc.origin(),
            second.unknown_fields
        );
    }
}

#[test]
fn katib_examples_lose_no_field_when_read() {
    // Katib's CRDs keep unknown fields; ktune's types must know every field
    // Katib's examples use, or the user's YAML would silently lose them.
    let Some(dir) = support::katib_examples() else {
        return;
    };
    for doc in all_documents(&dir)
        .iter()
        .filter(|d| d.kind() == Some("Experiment"))
    {
        let loaded = experiment_from_value(&doc.value).unwrap();
        assert!(
            loaded.unknown_fields.is_empty(),
            "{}: {:?}",
            doc.origin(),
            loaded.unknown_fields
        );
    }
}

#[test]
fn ktune_convert_turns_every_valid_katib_example_into_a_valid_ktune_experiment() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let extra = dir.join("_extra/trial-templates-configmap.yaml");
    let scratch = std::env::temp_dir().join(format!("ktune-convert-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut converted = 0;
    for file in support::experiment_files(&dir) {
        let relative = file.strip_prefix(&dir).unwrap().display().to_string();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ktune"))
            .arg("convert")
            .arg(&file)
            .arg(&extra)
            .output()
            .unwrap();
        if REFUSED.iter().any(|(name, _, _)| *name == relative) {
            assert_eq!(out.status.code(), Some(1), "{relative} must be refused");
            assert!(out.stdout.is_empty(), "{relative}: nothing printed");
            continue;
        }
        assert!(
            out.status.success(),
            "{relative}: {}",
            support::describe(&out)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("apiVersion: ktune.dev/v1beta1"),
            "{relative}: {text}"
        );
        assert!(
            !text.contains("kubeflow.org/v1beta1\nkind: Experiment"),
            "{text}"
        );
        let path = scratch.join("converted.yaml");
        std::fs::write(&path, &text).unwrap();
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_ktune"))
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{relative} converted: {}",
            support::describe(&check)
        );
        converted += 1;
    }
    assert!(converted >= 20, "only {converted} examples converted");
    let _ = std::fs::remove_dir_all(&scratch);
}
