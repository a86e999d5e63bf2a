//! Katib's defaulting, exactly as its mutating webhook does it
//! (`experiment_defaults.go`; katib-reference.md §2.1). A trial template's
//! success and failure conditions and primary-pod labels come from the
//! trial-kind table (`ktune-kinds`), which also gives them to two
//! documented ktune extensions: the Training Operator's `PaddleJob` and
//! `JAXJob` get the same defaults as the other Kubeflow jobs, and an MPIJob
//! of `kubeflow.org/v2beta1` (mpi-operator) gets its launcher label as the
//! primary-pod label, because that operator labels the launcher
//! `job-role: launcher`, not `master`.
//!
//! Defaulting never fails and is idempotent: applying it twice gives the
//! same experiment as applying it once.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::enums::{
    CollectorKind, Distribution, FileFormat, FileSystemKind, MetricStrategyType, ObjectiveType,
    ResumePolicy,
};
use super::experiment::{
    CollectorSpec, ExperimentSpec, FeasibleSpace, FileSystemPath, MetricStrategy,
    MetricsCollectorSpec, SourceSpec, TrialTemplate,
};

/// Katib's default `parallelTrialCount`.
pub const DEFAULT_PARALLEL_TRIAL_COUNT: i32 = 3;
/// Where Katib's File collector looks by default.
pub const DEFAULT_METRICS_FILE: &str = "/var/log/katib/metrics.log";
/// Where Katib's TensorFlowEvent collector looks by default.
pub const DEFAULT_TF_EVENT_DIR: &str = "/var/log/katib/tfevent/";
/// Default Prometheus path.
pub const DEFAULT_PROMETHEUS_PATH: &str = "/metrics";
/// Default Prometheus port.
pub const DEFAULT_PROMETHEUS_PORT: i32 = 8080;

/// The port a PrometheusMetric collector scrapes for `source.httpGet.port`:
/// its number; Katib's default (8080) when unset — `0`, as an absent port
/// reads, or an empty or `"0"` string. `None` for a named port (ktune
/// resolves none) or a number out of range. Validation and both collector
/// backends ask this one rule.
#[must_use]
pub fn prometheus_port(port: &IntOrString) -> Option<u16> {
    let default = u16::try_from(DEFAULT_PROMETHEUS_PORT).ok();
    match port {
        IntOrString::Int(0) => default,
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(s) if matches!(s.trim(), "" | "0") => default,
        IntOrString::String(s) => s.trim().parse().ok().filter(|p| *p > 0),
    }
}

/// Something defaulting changed that the user may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultingNote {
    /// The field.
    pub path: String,
    /// What happened.
    pub message: String,
}

/// The success and failure conditions and primary-pod labels Katib assumes
/// for a workload kind (the trial-kind table's), or `None` for kinds it
/// has no defaults for. Like Katib, the kind decides; the apiVersion only
/// chooses among kinds of one name (the two MPIJobs).
#[must_use]
pub fn kind_defaults(
    api_version: &str,
    kind: &str,
) -> Option<(String, String, BTreeMap<String, String>)> {
    let entry = ktune_kinds::lookup(api_version, kind)?;
    let conditions = entry.conditions?;
    let labels = entry
        .primary_pod_labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Some((
        conditions.success_condition(),
        conditions.failure_condition(),
        labels,
    ))
}

/// Applies Katib's defaults in place and returns notes on anything that
/// rewrote what the user wrote (as opposed to filling a gap).
pub fn apply_defaults(spec: &mut ExperimentSpec) -> Vec<DefaultingNote> {
    let mut notes = Vec::new();
    spec.parallel_trial_count
        .get_or_insert(DEFAULT_PARALLEL_TRIAL_COUNT);
    // Katib's type comment claims LongRunning is the default; the constant
    // its webhook uses is Never. We follow the code.
    spec.resume_policy.get_or_insert(ResumePolicy::Never);
    default_metric_strategies(spec);
    if let Some(template) = spec.trial_template.as_mut() {
        default_trial_template(template);
    }
    default_collector(
        spec.metrics_collector_spec
            .get_or_insert_with(Default::default),
        &mut notes,
    );
    for parameter in spec.parameters.iter_mut().flatten() {
        parameter
            .feasible_space
            .get_or_insert_with(FeasibleSpace::default)
            .distribution
            .get_or_insert(Distribution::Uniform);
    }
    notes
}

fn default_metric_strategies(spec: &mut ExperimentSpec) {
    let Some(objective) = spec.objective.as_mut() else {
        return;
    };
    // Katib's code comment says additional metrics default to "latest"; its
    // code gives every metric min/max by the objective type. We follow the code.
    let strategy = match objective.type_ {
        Some(ObjectiveType::Minimize) => MetricStrategyType::Min,
        Some(ObjectiveType::Maximize) => MetricStrategyType::Max,
        _ => MetricStrategyType::Latest,
    };
    let names: Vec<String> = std::iter::once(&objective.objective_metric_name)
        .chain(&objective.additional_metric_names)
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    for name in names {
        if !objective.metric_strategies.iter().any(|s| s.name == name) {
            objective.metric_strategies.push(MetricStrategy {
                name,
                value: strategy.clone(),
            });
        }
    }
}

fn default_trial_template(template: &mut TrialTemplate) {
    // Katib defaults only inline templates, and compares only the kind.
    let Some(trial_spec) = template.trial_spec.as_ref() else {
        return;
    };
    let text = |key| trial_spec.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let Some((success, failure, labels)) = kind_defaults(text("apiVersion"), text("kind")) else {
        return;
    };
    if template
        .success_condition
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        template.success_condition = Some(success);
    }
    if template
        .failure_condition
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        template.failure_condition = Some(failure);
    }
    let empty = template
        .primary_pod_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty);
    if empty && !labels.is_empty() {
        template.primary_pod_labels = Some(labels);
    }
}

fn default_collector(spec: &mut MetricsCollectorSpec, notes: &mut Vec<DefaultingNote>) {
    let collector = spec.collector.get_or_insert_with(CollectorSpec::default);
    let kind = collector.kind.get_or_insert(CollectorKind::StdOut);
    // Katib renamed the `None` kind to `Push` in v0.18; old YAML still says None.
    if matches!(kind, CollectorKind::Other(word) if word == "None") {
        *kind = CollectorKind::Push;
        notes.push(DefaultingNote {
            path: "spec.metricsCollectorSpec.collector.kind".to_owned(),
            message: "collector kind `None` was renamed `Push` in Katib v0.18; using Push"
                .to_owned(),
        });
    }
    let kind = kind.clone();
    match kind {
        CollectorKind::PrometheusMetric => {
            let http = spec
                .source
                .get_or_insert_with(SourceSpec::default)
                .http_get
                .get_or_insert_with(Default::default);
            if http.path.as_deref().unwrap_or("").is_empty() {
                http.path = Some(DEFAULT_PROMETHEUS_PATH.to_owned());
            }
            if matches!(http.port, IntOrString::Int(0)) {
                http.port = IntOrString::Int(DEFAULT_PROMETHEUS_PORT);
            }
        }
        CollectorKind::File => {
            let path = file_system_path(spec);
            path.kind.get_or_insert(FileSystemKind::File);
            if path.path.is_empty() {
                DEFAULT_METRICS_FILE.clone_into(&mut path.path);
            }
            path.format.get_or_insert(FileFormat::Text);
        }
        CollectorKind::TensorFlowEvent => {
            let path = file_system_path(spec);
            path.kind.get_or_insert(FileSystemKind::Directory);
            if path.path.is_empty() {
                DEFAULT_TF_EVENT_DIR.clone_into(&mut path.path);
            }
        }
        _ => {}
    }
}

fn file_system_path(spec: &mut MetricsCollectorSpec) -> &mut FileSystemPath {
    spec.source
        .get_or_insert_with(SourceSpec::default)
        .file_system_path
        .get_or_insert_with(FileSystemPath::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::experiment::{ObjectiveSpec, ParameterSpec};

    const SUCCEEDED_CONDITION: &str =
        r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;
    const JOB_ROLE_LABEL: &str = "training.kubeflow.org/job-role";

    fn spec_with_template(trial_spec: serde_json::Value) -> ExperimentSpec {
        ExperimentSpec {
            objective: Some(ObjectiveSpec {
                type_: Some(ObjectiveType::Maximize),
                objective_metric_name: "acc".into(),
                additional_metric_names: vec!["loss".into()],
                metric_strategies: vec![MetricStrategy {
                    name: "loss".into(),
                    value: MetricStrategyType::Min,
                }],
                ..Default::default()
            }),
            parameters: Some(vec![ParameterSpec {
                name: "lr".into(),
                ..Default::default()
            }]),
            trial_template: Some(TrialTemplate {
                trial_spec: Some(trial_spec),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn katib_defaults_are_applied() {
        let mut spec = spec_with_template(
            serde_json::json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"}),
        );
        let notes = apply_defaults(&mut spec);
        assert!(notes.is_empty());
        assert_eq!(spec.parallel_trial_count, Some(3));
        assert_eq!(spec.resume_policy, Some(ResumePolicy::Never));
        let strategies = &spec.objective.as_ref().unwrap().metric_strategies;
        assert_eq!(strategies.len(), 2);
        assert_eq!(strategies[1].name, "acc");
        assert_eq!(strategies[1].value, MetricStrategyType::Max);
        assert_eq!(
            strategies[0].value,
            MetricStrategyType::Min,
            "explicit strategies are kept"
        );
        let t = spec.trial_template.as_ref().unwrap();
        assert_eq!(t.success_condition.as_deref(), Some(SUCCEEDED_CONDITION));
        assert_eq!(
            t.primary_pod_labels.as_ref().unwrap()[JOB_ROLE_LABEL],
            "master"
        );
        let collector = spec
            .metrics_collector_spec
            .as_ref()
            .unwrap()
            .collector
            .as_ref()
            .unwrap();
        assert_eq!(collector.kind, Some(CollectorKind::StdOut));
        let fs = spec.parameters.as_ref().unwrap()[0]
            .feasible_space
            .as_ref()
            .unwrap();
        assert_eq!(fs.distribution, Some(Distribution::Uniform));
    }

    #[test]
    fn defaulting_is_idempotent_and_keeps_user_values() {
        let mut spec =
            spec_with_template(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job"}));
        spec.parallel_trial_count = Some(7);
        apply_defaults(&mut spec);
        let once = spec.clone();
        apply_defaults(&mut spec);
        assert_eq!(spec, once);
        assert_eq!(spec.parallel_trial_count, Some(7));
        assert!(spec.trial_template.unwrap().primary_pod_labels.is_none());
    }

    #[test]
    fn unknown_kinds_get_no_conditions_and_mpi_v2_gets_the_launcher() {
        let mut spec = spec_with_template(
            serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}),
        );
        apply_defaults(&mut spec);
        assert_eq!(spec.trial_template.unwrap().success_condition, None);
        let mut spec = spec_with_template(
            serde_json::json!({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob"}),
        );
        apply_defaults(&mut spec);
        assert_eq!(
            spec.trial_template.unwrap().primary_pod_labels.unwrap()[JOB_ROLE_LABEL],
            "launcher"
        );
    }

    #[test]
    fn collector_none_becomes_push_and_file_gets_its_path() {
        let mut spec = ExperimentSpec {
            metrics_collector_spec: Some(MetricsCollectorSpec {
                collector: Some(CollectorSpec {
                    kind: Some(CollectorKind::Other("None".into())),
                    custom_collector: None,
                }),
                source: None,
            }),
            ..Default::default()
        };
        let notes = apply_defaults(&mut spec);
        assert_eq!(notes.len(), 1);
        let mc = spec.metrics_collector_spec.as_mut().unwrap();
        assert_eq!(
            mc.collector.as_ref().unwrap().kind,
            Some(CollectorKind::Push)
        );
        mc.collector.as_mut().unwrap().kind = Some(CollectorKind::File);
        apply_defaults(&mut spec);
        let fs = spec
            .metrics_collector_spec
            .unwrap()
            .source
            .unwrap()
            .file_system_path
            .unwrap();
        assert_eq!(fs.path, DEFAULT_METRICS_FILE);
        assert_eq!(fs.format, Some(FileFormat::Text));
    }
}
