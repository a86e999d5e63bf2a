//! The `Trial` custom resource's spec and status: one configuration of an
//! Experiment, run as one workload. Katib v1beta1's fields, served as group
//! `ktune.dev` or `kubeflow.org` (see [`super::group`]; `TrialCrd` is the
//! shape its CRD is generated from).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::enums::{ComparisonType, TrialConditionType};
use super::experiment::{MetricsCollectorSpec, ObjectiveSpec, Observation, ParameterAssignment};

/// One trial: the parameter values and the rendered workload that runs them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ktune.dev",
    version = "v1beta1",
    kind = "Trial",
    root = "TrialCrd",
    plural = "trials",
    singular = "trial",
    namespaced,
    status = "TrialStatus",
    category = "ktune",
    category = "kubeflow",
    category = "all",
    printcolumn = r#"{"name":"Experiment","type":"string","jsonPath":".metadata.labels.katib\\.kubeflow\\.org/experiment"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.conditions[-1:].type","description":"The latest condition"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name":"Objective","type":"number","jsonPath":".status.objectiveValue","description":"The objective value after the metric strategy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrialSpec {
    /// The experiment's objective, strategies defaulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// This trial's parameter values.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Rules that stop this trial early.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub early_stopping_rules: Vec<EarlyStoppingRule>,
    /// The rendered workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::preserve_object")]
    pub run_spec: Option<serde_json::Value>,
    /// Keep the workload after the trial completes.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub retain_run: bool,
    /// How metrics are collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector: Option<MetricsCollectorSpec>,
    /// Labels of the pod whose metrics count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    /// The container that trains.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub primary_container_name: String,
    /// gjson path on the workload that means success.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub success_condition: String,
    /// gjson path on the workload that means failure.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub failure_condition: String,
    /// Labels from the suggestion (e.g. a Hyperband bracket).
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A threshold rule that stops a trial (Katib's medianstop emits these).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStoppingRule {
    /// The metric.
    pub name: String,
    /// The threshold, as text.
    pub value: String,
    /// `equal`, `less` or `greater`.
    pub comparison: ComparisonType,
    /// The report count at which the rule is checked.
    #[serde(default, deserialize_with = "crate::api::lenient::or_default")]
    pub start_step: i32,
}

/// What the controller (or `ktune run`) has observed of a trial.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When it was last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Created, Running, Succeeded, Killed, Failed, MetricsUnavailable, EarlyStopped.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<TrialCondition>,
    /// Its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// ktune extension: the objective after the metric strategy (for `kubectl get trials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_value: Option<f64>,
}

/// One condition of a Trial.
pub type TrialCondition = Condition<TrialConditionType>;
