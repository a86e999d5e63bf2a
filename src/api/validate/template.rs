//! Validation of `spec.trialTemplate` (katib-reference.md §7.6, in Katib's
//! order), plus checks Katib leaves to run time: that every parameter is
//! used by the template, and that the primary container exists.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;

use super::{Context, Report};
use crate::api::Experiment;
use crate::api::experiment::{TrialParameterSpec, TrialTemplate};
use crate::api::parameters::{ParsedParameter, parse_parameter};
use crate::api::template::{
    MetaReference, TemplateError, placeholder_names, render, resolve_template,
};

const PATH: &str = "spec.trialTemplate";

pub(super) fn validate_trial_template(
    experiment: &Experiment,
    context: Context<'_>,
    report: &mut Report,
) {
    let Some(template) = &experiment.spec.trial_template else {
        report.error(PATH, "a trial template is required");
        return;
    };
    if template
        .primary_container_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        report.error(
            format!("{PATH}.primaryContainerName"),
            "required: the container that trains",
        );
    }
    let workload = resolve(template, context, report);
    let kind = workload
        .as_ref()
        .and_then(|w| w.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = kind.as_str();
    for (field, value) in [
        ("successCondition", &template.success_condition),
        ("failureCondition", &template.failure_condition),
    ] {
        if value.as_deref().unwrap_or("").is_empty() {
            report.error(
                format!("{PATH}.{field}"),
                format!("required: {kind:?} workloads have no default (Job, TrainJob and the Kubeflow training jobs do)"),
            );
        }
    }
    let Some(trial_parameters) = &template.trial_parameters else {
        report.error(
            format!("{PATH}.trialParameters"),
            "required (may be an empty list)",
        );
        return;
    };
    let names = validate_trial_parameters(experiment, trial_parameters, workload.as_ref(), report);
    let Some(workload) = workload else {
        return;
    };
    validate_workload(&workload, &names, report);
    if let Some(container) = template
        .primary_container_name
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        check_primary_container(&workload, kind, container, report);
    }
    if kind == "Job" && workload.get("apiVersion").and_then(Value::as_str) == Some("batch/v1") {
        check_job(experiment, template, &workload, report);
    }
}

/// Each trialParameter: a unique name, a reference to a parameter or to
/// the trial's metadata; and every parameter referenced by one. Returns
/// the declared names (what the workload may use as placeholders).
fn validate_trial_parameters<'a>(
    experiment: &Experiment,
    trial_parameters: &'a [TrialParameterSpec],
    workload: Option<&Value>,
    report: &mut Report,
) -> BTreeSet<&'a str> {
    let parameters: BTreeMap<&str, &crate::api::experiment::ParameterSpec> = experiment
        .spec
        .parameters
        .iter()
        .flatten()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut names = BTreeSet::new();
    let mut references = BTreeSet::new();
    for (i, tp) in trial_parameters.iter().enumerate() {
        let path = format!("{PATH}.trialParameters[{i}]");
        if tp.name.is_empty() {
            report.error(format!("{path}.name"), "required");
        } else if tp.name.contains(['{', '}']) {
            report.error(format!("{path}.name"), "must not contain '{' or '}'");
        } else if !names.insert(tp.name.as_str()) {
            report.error(
                format!("{path}.name"),
                format!("{:?} is declared twice", tp.name),
            );
        }
        if tp.reference.is_empty() {
            report.error(
                format!("{path}.reference"),
                "required: a parameter name or ${trialSpec.X}",
            );
            continue;
        }
        if !references.insert(tp.reference.as_str()) {
            report.error(
                format!("{path}.reference"),
                format!("{:?} is referenced twice", tp.reference),
            );
        }
        match MetaReference::parse(&tp.reference) {
            Err(e) => report.error(format!("{path}.reference"), e.to_string()),
            Ok(Some(meta)) => {
                if let Some(w) = workload
                    && let Err(e @ TemplateError::MissingMetadata { .. }) = meta.resolve(w, "", "")
                {
                    report.error(format!("{path}.reference"), e.to_string());
                }
            }
            Ok(None)
                if !parameters.is_empty() && !parameters.contains_key(tp.reference.as_str()) =>
            {
                report.error(
                    format!("{path}.reference"),
                    format!("{:?} is not a parameter in spec.parameters", tp.reference),
                );
            }
            Ok(None) => {}
        }
    }
    for (i, p) in experiment.spec.parameters.iter().flatten().enumerate() {
        if !p.name.is_empty() && !references.contains(p.name.as_str()) {
            report.error(
                format!("spec.parameters[{i}]"),
                format!("{:?} is not referenced by any trialParameter, so no trial could receive its value", p.name),
            );
        }
    }
    names
}

fn resolve(template: &TrialTemplate, context: Context<'_>, report: &mut Report) -> Option<Value> {
    if let Some(source) = &template.config_map {
        let mut complete = true;
        for (field, value) in [
            ("configMapName", &source.config_map_name),
            ("configMapNamespace", &source.config_map_namespace),
            ("templatePath", &source.template_path),
        ] {
            if value.is_empty() {
                report.error(format!("{PATH}.configMap.{field}"), "required");
                complete = false;
            }
        }
        if !complete || template.trial_spec.is_some() {
            if template.trial_spec.is_some() {
                report.error(PATH, "give either trialSpec or configMap, not both");
            }
            return None;
        }
    }
    match resolve_template(template, context.configmaps) {
        Ok(value) => Some(value),
        Err(e @ TemplateError::ConfigMapMissing { .. }) => {
            let message = format!(
                "{e}; pass the ConfigMap's YAML next to the experiment to check the template"
            );
            if context.require_configmaps {
                report.error(format!("{PATH}.configMap"), message);
            } else {
                report.warn(format!("{PATH}.configMap"), message);
            }
            None
        }
        Err(TemplateError::NoSingleSource) => {
            report.error(PATH, "give the workload as trialSpec or configMap");
            None
        }
        Err(e) => {
            report.error(format!("{PATH}.configMap"), e.to_string());
            None
        }
    }
}

fn validate_workload(workload: &Value, declared: &BTreeSet<&str>, report: &mut Report) {
    let path = format!("{PATH}.trialSpec");
    let Value::Object(map) = workload else {
        report.error(path, "must be a Kubernetes object (a mapping)");
        return;
    };
    for field in ["apiVersion", "kind"] {
        if map
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            report.error(format!("{path}.{field}"), "required");
        }
    }
    for field in ["name", "namespace"] {
        if workload.pointer(&format!("/metadata/{field}")).is_some() {
            report.error(
                format!("{path}.metadata.{field}"),
                format!("must not be set: each trial's workload gets the trial's {field}"),
            );
        }
    }
    let used = placeholder_names(workload);
    for name in declared {
        if !used.contains(*name) {
            report.error(
                format!("{PATH}.trialParameters"),
                format!("{name:?} is declared but ${{trialParameters.{name}}} does not appear in the template"),
            );
        }
    }
    for name in &used {
        if !declared.contains(name.as_str()) {
            report.error(
                path.clone(),
                format!(
                    "${{trialParameters.{name}}} is used but no trialParameter declares {name:?}"
                ),
            );
        }
    }
}

/// Names of the containers in every pod template inside the workload.
fn container_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "containers"
                    && let Value::Array(items) = v
                {
                    out.extend(
                        items
                            .iter()
                            .filter_map(|c| c.get("name")?.as_str().map(str::to_owned)),
                    );
                }
                container_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| container_names(v, out)),
        _ => {}
    }
}

fn check_primary_container(workload: &Value, kind: &str, container: &str, report: &mut Report) {
    // Only kinds whose pod templates are in the workload itself: Argo,
    // Tekton and TrainJob name their containers at run time.
    let inline = ktune_kinds::of_workload(workload).is_some_and(|k| k.replicas.templates_inline());
    if !inline {
        return;
    }
    let mut names = BTreeSet::new();
    container_names(workload, &mut names);
    if !names.is_empty() && !names.contains(container) {
        report.error(
            format!("{PATH}.primaryContainerName"),
            format!(
                "no container named {container:?} in the {kind}; its containers are {}",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

/// Katib converts a rendered `batch/v1` Job into the typed Job and refuses
/// unknown fields (§7.5). We render it with sample values and do the same.
fn check_job(
    experiment: &Experiment,
    template: &TrialTemplate,
    workload: &Value,
    report: &mut Report,
) {
    let samples: BTreeMap<String, String> = experiment
        .spec
        .parameters
        .iter()
        .flatten()
        .map(|p| {
            let sample = match parse_parameter(p) {
                Ok(ParsedParameter::Double { min, .. }) => min.to_string(),
                Ok(ParsedParameter::Int { min, .. }) => min.to_string(),
                Ok(ParsedParameter::Discrete { texts, .. }) => {
                    texts.first().cloned().unwrap_or_default()
                }
                Ok(ParsedParameter::Categorical { values }) => {
                    values.first().cloned().unwrap_or_default()
                }
                Err(_) => "1".to_owned(),
            };
            (p.name.clone(), sample)
        })
        .collect();
    let name = format!(
        "{}-sample",
        experiment.metadata.name.as_deref().unwrap_or("experiment")
    );
    let namespace = experiment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    let trial_parameters = template.trial_parameters.as_deref().unwrap_or_default();
    let Ok(rendered) = render(workload, trial_parameters, &samples, &name, namespace) else {
        return; // the reference problems are already reported
    };
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(crate::api::load::field_path(&p));
    let de = serde_ignored::Deserializer::new(&rendered, &mut record);
    if let Err(e) = serde_path_to_error::deserialize::<_, Job>(de) {
        report.error(
            format!("{PATH}.trialSpec.{}", e.path()),
            format!("not valid in a batch/v1 Job: {}", e.inner()),
        );
    }
    for field in unknown {
        // Katib tolerates differences under resources (quantities it re-formats).
        if field.contains("resources.limits") || field.contains("resources.requests") {
            continue;
        }
        report.error(
            format!("{PATH}.trialSpec.{field}"),
            "not a field of a batch/v1 Job",
        );
    }
}
