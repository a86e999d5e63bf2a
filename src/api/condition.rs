//! Status conditions, shared by Experiments and Trials (Katib's
//! `ExperimentCondition` and `TrialCondition` have the same fields).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::enums::ConditionStatus;

/// One condition: its type (an Experiment or Trial condition type), whether
/// it holds, why, and when it changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition<T> {
    /// The condition.
    #[serde(rename = "type")]
    pub type_: T,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// Machine-readable reason (`ExperimentGoalReached`, `TrialSucceeded` …).
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// For humans.
    #[serde(
        default,
        deserialize_with = "crate::api::lenient::or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// When it was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When its status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
