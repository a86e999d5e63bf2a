//! The `Experiment` custom resource's spec and status: Katib v1beta1's, field
//! for field, served as group `ktune.dev` or `kubeflow.org` (see
//! [`super::group`]; `ExperimentCrd` is the shape its CRD is generated from).
//!
//! Field names and enum strings are Katib's exactly (see
//! `katib-reference.md` §2–§10), so a Katib Experiment YAML deserialises
//! unchanged and a ktune Experiment reads like a Katib one. Every spec field
//! is optional here even where Katib requires it: the validator, not serde,
//! reports missing fields, so a user sees every problem at once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::HTTPGetAction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::enums::{
    CollectorKind, Distribution, ExperimentConditionType, FileFormat, FileSystemKind,
    MetricStrategyType, ObjectiveType, ParameterType, ResumePolicy,
};
use super::lenient;

/// What to tune, how to search, and how to run one trial.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ktune.dev",
    version = "v1beta1",
    kind = "Experiment",
    root = "ExperimentCrd",
    plural = "experiments",
    singular = "experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "ktune",
    category = "kubeflow",
    category = "all",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[-1:].type","description":"The latest condition"}"#,
    printcolumn = r#"{"name":"Best","type":"number","jsonPath":".status.currentOptimalTrial.objectiveValue","description":"The best objective value so far"}"#,
    printcolumn = r#"{"name":"Best-Trial","type":"string","jsonPath":".status.currentOptimalTrial.bestTrialName","priority":1}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.trialsSucceeded"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.trialsRunning"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.trialsFailed"}"#,
    printcolumn = r#"{"name":"Max","type":"integer","jsonPath":".spec.maxTrialCount","priority":1}"#,
    printcolumn = r#"{"name":"Algorithm","type":"string","jsonPath":".spec.algorithm.algorithmName","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The hyperparameter search space (exclusive with `nasConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterSpec>>,
    /// What to optimise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// How to search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// When to stop poor trials early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<AlgorithmSpec>,
    /// How to run one trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_template: Option<TrialTemplate>,
    /// Most trials pending or running at once (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i32>,
    /// The experiment succeeds once this many trials have completed (default: unbounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i32>,
    /// The experiment fails once this many trials failed (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i32>,
    /// Where and how trial metrics are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector_spec: Option<MetricsCollectorSpec>,
    /// Neural-architecture search space (exclusive with `parameters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_config: Option<NasConfig>,
    /// Whether a completed experiment can be restarted (default `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<ResumePolicy>,
}

/// One hyperparameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// The name trial parameters refer to.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub name: String,
    /// `double`, `int`, `discrete` or `categorical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<ParameterType>,
    /// Its range or list of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feasible_space: Option<FeasibleSpace>,
}

/// The values a parameter may take. Numbers are strings, as in Katib.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeasibleSpace {
    /// Upper bound (double, int).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<String>,
    /// Lower bound (double, int).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub min: Option<String>,
    /// Values (discrete, categorical).
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub list: Vec<String>,
    /// Quantisation step (double, int).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<String>,
    /// `uniform` (default), `logUniform`, `normal` or `logNormal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// What to optimise.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSpec {
    /// `minimize` or `maximize`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ObjectiveType>,
    /// Stop (Succeeded) once the best value reaches this.
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub goal: Option<f64>,
    /// The metric to optimise.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub objective_metric_name: String,
    /// Further metrics to collect.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_metric_names: Vec<String>,
    /// How each metric's reports reduce to one value.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub metric_strategies: Vec<MetricStrategy>,
}

impl ObjectiveSpec {
    /// The objective metric, then the additional ones: every metric the
    /// collectors look for.
    #[must_use]
    pub fn metric_names(&self) -> Vec<String> {
        std::iter::once(&self.objective_metric_name)
            .chain(&self.additional_metric_names)
            .cloned()
            .collect()
    }

    /// How the objective metric's reports reduce to its value (Latest when
    /// no strategy names it).
    #[must_use]
    pub fn objective_strategy(&self) -> MetricStrategyType {
        self.metric_strategies
            .iter()
            .find(|s| s.name == self.objective_metric_name)
            .map_or(MetricStrategyType::Latest, |s| s.value.clone())
    }
}

/// How one metric's many reports reduce to one value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct MetricStrategy {
    /// The metric.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub name: String,
    /// `min`, `max` or `latest`.
    pub value: MetricStrategyType,
}

/// A search algorithm or early-stopping rule with its settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmSpec {
    /// Katib's algorithm name (`random`, `tpe`, `medianstop` …).
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub algorithm_name: String,
    /// Settings as name/value strings.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

/// One algorithm setting.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AlgorithmSetting {
    /// The setting's name.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub name: String,
    /// Its value, as text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub value: String,
}

/// How to run one trial.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    /// Keep the trial's workload after it completes.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub retain: bool,
    /// The workload, inline: any Kubernetes object, with `${trialParameters.x}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::preserve_object")]
    pub trial_spec: Option<serde_json::Value>,
    /// The workload, read from a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// Placeholders and what fills them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_parameters: Option<Vec<TrialParameterSpec>>,
    /// Labels that identify the pod whose metrics count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    /// The container that trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container_name: Option<String>,
    /// gjson path on the workload that means success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// gjson path on the workload that means failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
}

/// Where a trial template is stored in a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// The ConfigMap's name.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub config_map_name: String,
    /// The ConfigMap's namespace.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub config_map_namespace: String,
    /// The key whose value is the template.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub template_path: String,
}

/// A placeholder in the trial template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TrialParameterSpec {
    /// Used as `${trialParameters.<name>}`.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub name: String,
    /// For humans.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// A parameter name, or `${trialSpec.Name}`-style metadata.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub reference: String,
}

/// Where and how trial metrics are read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsCollectorSpec {
    /// Where metrics come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Which collector reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
}

/// Where metrics come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// A Prometheus endpoint on the trial's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HTTPGetAction>,
    /// A file or directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_path: Option<FileSystemPath>,
    /// Regexes that find metrics in text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
}

/// A metrics file or directory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct FileSystemPath {
    /// Absolute path.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub path: String,
    /// `File` or `Directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileSystemKind>,
    /// `TEXT` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
}

/// Regexes with two capture groups: metric name, then value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterSpec {
    /// Each regex's group 1 is the name and group 2 the value.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub metrics_format: Vec<String>,
}

/// Which collector reads the metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorSpec {
    /// `StdOut` (default), `File`, `TensorFlowEvent`, `PrometheusMetric`, `Custom` or `Push`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CollectorKind>,
    /// The user's collector container (`Custom` only): a core/v1 Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::preserve_object")]
    pub custom_collector: Option<serde_json::Value>,
}

/// Neural-architecture search space (ENAS, DARTS).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NasConfig {
    /// The network's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_config: Option<GraphConfig>,
    /// The operations to choose from.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operations: Vec<Operation>,
}

/// The network's shape in a NAS search.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphConfig {
    /// Number of layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<i32>,
    /// Input sizes.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub input_sizes: Vec<i32>,
    /// Output sizes.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub output_sizes: Vec<i32>,
}

/// One NAS operation and its parameters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The operation (`convolution`, `pooling` …).
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub operation_type: String,
    /// Its parameters.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parameters: Vec<ParameterSpec>,
}

/// What the controller (or `ktune run`) has observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// When the experiment started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When it was last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Created, Running, Restarting, Succeeded, Failed.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<ExperimentCondition>,
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<OptimalTrial>,
    /// Names of running trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub running_trial_list: Vec<String>,
    /// Names of pending trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pending_trial_list: Vec<String>,
    /// Names of failed trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub failed_trial_list: Vec<String>,
    /// Names of succeeded trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub succeeded_trial_list: Vec<String>,
    /// Names of killed trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub killed_trial_list: Vec<String>,
    /// Names of early-stopped trials.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub early_stopped_trial_list: Vec<String>,
    /// Names of trials whose objective never appeared.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub metrics_unavailable_trial_list: Vec<String>,
    /// All trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<i32>,
    /// Succeeded trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_succeeded: Option<i32>,
    /// Failed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_failed: Option<i32>,
    /// Killed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_killed: Option<i32>,
    /// Pending trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_pending: Option<i32>,
    /// Running trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_running: Option<i32>,
    /// Early-stopped trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_early_stopped: Option<i32>,
    /// Trials whose objective never appeared (Katib's name lacks the "s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_metrics_unavailable: Option<i32>,
}

/// One condition of an Experiment.
pub type ExperimentCondition = Condition<ExperimentConditionType>;

/// The best trial so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    /// Its name.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub best_trial_name: String,
    /// Its parameter values.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// ktune extension: its objective value after the metric strategy, so
    /// `kubectl get experiments` can show it (Katib has no such field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_value: Option<f64>,
}

/// A parameter's value in one trial.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ParameterAssignment {
    /// The parameter.
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

/// A trial's metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Observation {
    /// One entry per metric, the objective first.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub metrics: Vec<Metric>,
}

/// One metric's reduced values; `unavailable` when never reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Metric {
    /// The metric.
    pub name: String,
    /// Smallest reported value.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub min: String,
    /// Largest reported value.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub max: String,
    /// Last reported value.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub latest: String,
}
