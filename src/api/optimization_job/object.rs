//! The OptimizationJob as a Kubernetes object, for the controller
//! (`ktune controller --optimization-jobs`): its spec kept as sent (it is
//! read by [`super::prepare`] with Trainer's rules, not deserialised into
//! a second type) and its status exactly as Trainer's API defines it —
//! conditions `Created`, `Complete`, `Failed` and the best trial's
//! `result`; ktune's trial history stays in its store and dashboard.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{API_VERSION, KIND};

/// The group of OptimizationJobs and TrainJobs.
pub const GROUP: &str = "trainer.kubeflow.org";
/// Their version.
pub const VERSION: &str = "v1alpha1";
/// The resource's plural.
pub const PLURAL: &str = "optimizationjobs";

/// An OptimizationJob as stored in the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationJob {
    /// `trainer.kubeflow.org/v1alpha1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `OptimizationJob`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec as sent (Trainer's schema; read by [`super::prepare`]).
    #[serde(default)]
    pub spec: Value,
    /// What the controller observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OptimizationJobStatus>,
}

impl OptimizationJob {
    /// The object as the document [`super::prepare`] reads.
    #[must_use]
    pub fn document(&self) -> Value {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": self.metadata,
            "spec": self.spec,
        })
    }

    /// Whether its status says it ended (`Complete` or `Failed` holds).
    #[must_use]
    pub fn finished(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"))
        })
    }
}

/// Trainer's `OptimizationJobStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationJobStatus {
    /// `Created`, `Complete`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OptimizationResult>,
}

/// Trainer's `OptimizationResult`: the best trial's TrainJob and values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationResult {
    /// The best trial's TrainJob.
    pub train_job_name: String,
    /// Its parameter values.
    #[serde(default)]
    pub parameters: Vec<ParameterValue>,
}

/// One parameter's value in a result.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterValue {
    /// The parameter.
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

impl Resource for OptimizationJob {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }

    fn group((): &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }

    fn version((): &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }

    fn api_version((): &()) -> Cow<'_, str> {
        Cow::Borrowed(API_VERSION)
    }

    fn plural((): &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The OptimizationJob CRD for clusters without Kubeflow Trainer's
/// (`ktune crds --optimization-job`): Trainer's schema for what ktune reads
/// and checks, the trial template's TrainJob spec kept as sent, Trainer's
/// CEL rules (the spec is immutable, `parallelTrials <= numTrials`, grid
/// only over categoricals), the status subresource and printer columns.
///
/// # Errors
/// Never in practice: the document is fixed; a mistake in it is a
/// [`serde_json::Error`].
pub fn crd() -> Result<
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    serde_json::Error,
> {
    serde_json::from_value(crd_document())
}

/// [`crd`] as JSON.
fn crd_document() -> Value {
    let (spec, status) = (spec_schema(), status_schema());
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": "OptimizationJobList",
                "plural": PLURAL,
                "singular": "optimizationjob",
                "categories": ["kubeflow", "all"]
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "State", "type": "string", "jsonPath": ".status.conditions[?(@.status==\"True\")].type"},
                    {"name": "Best TrainJob", "type": "string", "jsonPath": ".status.result.trainJobName"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status
                    }
                }}
            }]
        }
    })
}

/// The spec's schema: Trainer's fields ktune reads and checks, with its
/// CEL rules; the TrainJob template's spec is kept as sent.
fn spec_schema() -> Value {
    use serde_json::json;
    json!({
        "type": "object",
        "required": ["objectives", "searchAlgorithm", "parameters", "numTrials", "trainJobTemplate"],
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "spec is immutable"},
            {"rule": "!has(self.parallelTrials) || self.parallelTrials <= self.numTrials",
             "message": "parallelTrials must not exceed numTrials"},
            {"rule": "!has(self.searchAlgorithm.grid) || self.parameters.all(p, has(p.searchSpace.categorical))",
             "message": "grid search supports only categorical parameters"}
        ],
        "properties": {
            "objectives": {
                "type": "array", "minItems": 1, "maxItems": 1,
                "items": {
                    "type": "object", "required": ["metric"],
                    "properties": {
                        "metric": {"type": "string", "minLength": 1},
                        "direction": {"type": "string", "enum": ["Maximize", "Minimize"], "default": "Minimize"}
                    }
                }
            },
            "searchAlgorithm": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "has(self.random) != has(self.grid)", "message": "exactly one of random or grid must be set"}
                ],
                "properties": {
                    "random": {"type": "object", "properties": {"seed": {"type": "integer", "format": "int64"}}},
                    "grid": {"type": "object"}
                }
            },
            "parameters": parameters_schema(),
            "numTrials": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100},
            "parallelTrials": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100, "default": 1},
            "trainJobTemplate": {
                "type": "object", "required": ["spec"],
                "properties": {
                    "metadata": {
                        "type": "object",
                        "properties": {
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
                        }
                    },
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            }
        }
    })
}

/// The parameters' schema: names, and exactly one search space each
/// (numbers as Trainer's strings).
fn parameters_schema() -> Value {
    use serde_json::json;
    let number = json!({
        "type": "string",
        "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
    });
    let range = json!({
        "type": "object",
        "required": ["min", "max"],
        "properties": {
            "min": number,
            "max": number,
            "type": {"type": "string", "enum": ["Int", "Float"], "default": "Float"}
        }
    });
    json!({
        "type": "array", "minItems": 1, "maxItems": 100,
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object", "required": ["name", "searchSpace"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "searchSpace": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "[has(self.uniform), has(self.logUniform), has(self.categorical)].filter(x, x).size() == 1",
                         "message": "exactly one of uniform, logUniform or categorical must be set"}
                    ],
                    "properties": {
                        "uniform": range,
                        "logUniform": range,
                        "categorical": {
                            "type": "object", "required": ["choices"],
                            "properties": {
                                "choices": {
                                    "type": "array", "minItems": 1, "maxItems": 100,
                                    "x-kubernetes-list-type": "set",
                                    "items": {"type": "string", "maxLength": 64}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The status's schema: Trainer's conditions and result.
fn status_schema() -> Value {
    use serde_json::json;
    let condition = json!({
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
            "message": {"type": "string"}
        }
    });
    let status = json!({
        "type": "object",
        "properties": {
            "conditions": {
                "type": "array", "items": condition,
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]
            },
            "result": {
                "type": "object",
                "properties": {
                    "trainJobName": {"type": "string"},
                    "parameters": {
                        "type": "array",
                        "items": {
                            "type": "object", "required": ["name", "value"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
                        }
                    }
                }
            }
        }
    });
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_parses_and_keeps_trainers_rules() {
        let crd = crd().unwrap();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("optimizationjobs.trainer.kubeflow.org")
        );
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let schema = serde_json::to_value(&version.schema).unwrap();
        let rules = schema
            .pointer("/openAPIV3Schema/properties/spec/x-kubernetes-validations")
            .and_then(Value::as_array)
            .unwrap();
        assert!(rules.iter().any(|r| r["rule"] == "self == oldSelf"));
    }

    #[test]
    fn a_job_finishes_when_complete_or_failed_holds() {
        let condition = |type_: &str, status: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: String::new(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        };
        let with = |conditions| OptimizationJob {
            status: Some(OptimizationJobStatus {
                conditions,
                result: None,
            }),
            ..OptimizationJob::default()
        };
        assert!(!OptimizationJob::default().finished());
        assert!(!with(vec![condition("Created", "True")]).finished());
        assert!(
            with(vec![
                condition("Created", "True"),
                condition("Complete", "True")
            ])
            .finished()
        );
        assert!(with(vec![condition("Failed", "True")]).finished());
        assert!(!with(vec![condition("Failed", "False")]).finished());
    }
}
