//! An OptimizationJob as the Experiment the engine runs: the same search,
//! objective and budget, and a TrainJob trial template whose
//! `spec.trainer.env` receives each parameter as
//! `KUBEFLOW_TRAINER_OPT_<name>` through the ordinary trial-parameter
//! substitution, so the runners and the controller need nothing new.

use serde_json::{Map, Value, json};

use super::read::{Choice, Direction, Job, NumberType, Search, Space};
use super::{ENV_PREFIX, EXTENSION_ANNOTATIONS, TRAINJOB_API_VERSION};
use crate::api::enums::{
    CollectorKind, Distribution, MetricStrategyType, ObjectiveType, ParameterType,
};
use crate::api::experiment::{
    AlgorithmSetting, AlgorithmSpec, CollectorSpec, ExperimentSpec, FeasibleSpace, MetricStrategy,
    MetricsCollectorSpec, ObjectiveSpec, ParameterSpec, TrialParameterSpec, TrialTemplate,
};
use crate::api::{ApiGroup, Experiment};

/// The Experiment an OptimizationJob means (not yet defaulted).
#[must_use]
pub fn to_experiment(job: &Job) -> Experiment {
    let mut metadata = job.metadata.clone();
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.retain(|k, _| !EXTENSION_ANNOTATIONS.contains(&k.as_str()));
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
    let spec = ExperimentSpec {
        parameters: Some(job.parameters.iter().map(parameter).collect()),
        objective: Some(ObjectiveSpec {
            type_: Some(match job.direction {
                Direction::Maximize => ObjectiveType::Maximize,
                Direction::Minimize => ObjectiveType::Minimize,
            }),
            goal: None,
            objective_metric_name: job.metric.clone(),
            additional_metric_names: Vec::new(),
            // The API's objective is the latest value reported.
            metric_strategies: vec![MetricStrategy {
                name: job.metric.clone(),
                value: MetricStrategyType::Latest,
            }],
        }),
        algorithm: Some(
            job.algorithm
                .as_ref()
                .map_or_else(|| api_algorithm(&job.search), algorithm),
        ),
        early_stopping: job.early_stopping.as_ref().map(algorithm),
        trial_template: Some(TrialTemplate {
            trial_spec: Some(train_job(job)),
            trial_parameters: Some(
                job.parameters
                    .iter()
                    .map(|p| TrialParameterSpec {
                        name: p.name.clone(),
                        description: String::new(),
                        reference: p.name.clone(),
                    })
                    .collect(),
            ),
            // The trainer's container, as Trainer's runtimes name it.
            primary_container_name: ktune_kinds::lookup(TRAINJOB_API_VERSION, "TrainJob")
                .and_then(|k| k.container.default)
                .map(str::to_owned),
            ..TrialTemplate::default()
        }),
        parallel_trial_count: Some(job.parallel_trials),
        max_trial_count: Some(job.num_trials),
        max_failed_trial_count: None,
        // Trials report through Trainer's progress protocol
        // (`update_trainjob_status`), which ktune's push endpoint serves.
        metrics_collector_spec: Some(MetricsCollectorSpec {
            source: None,
            collector: Some(CollectorSpec {
                kind: Some(CollectorKind::Push),
                custom_collector: None,
            }),
        }),
        nas_config: None,
        resume_policy: None,
    };
    Experiment {
        api_version: ApiGroup::Ktune.api_version().to_owned(),
        kind: "Experiment".to_owned(),
        metadata,
        spec,
        status: None,
    }
}

fn parameter(p: &super::read::Parameter) -> ParameterSpec {
    let (parameter_type, feasible_space) = match &p.space {
        Space::Range {
            log,
            min,
            max,
            number,
        } => (
            match number {
                NumberType::Int => ParameterType::Int,
                NumberType::Float => ParameterType::Double,
            },
            FeasibleSpace {
                min: Some(min.clone()),
                max: Some(max.clone()),
                distribution: Some(if *log {
                    Distribution::LogUniform
                } else {
                    Distribution::Uniform
                }),
                ..FeasibleSpace::default()
            },
        ),
        Space::Categorical(choices) => (
            ParameterType::Categorical,
            FeasibleSpace {
                list: choices.clone(),
                ..FeasibleSpace::default()
            },
        ),
    };
    ParameterSpec {
        name: p.name.clone(),
        parameter_type: Some(parameter_type),
        feasible_space: Some(feasible_space),
    }
}

/// `random` (its seed as `random_state`) or `grid`.
fn api_algorithm(search: &Search) -> AlgorithmSpec {
    match search {
        Search::Grid => AlgorithmSpec {
            algorithm_name: "grid".to_owned(),
            algorithm_settings: Vec::new(),
        },
        Search::Random { seed } => AlgorithmSpec {
            algorithm_name: "random".to_owned(),
            algorithm_settings: seed
                .map(|s| AlgorithmSetting {
                    name: "random_state".to_owned(),
                    // ktune's seeds are at least 0: a negative seed loses
                    // its sign bit, staying deterministic.
                    value: (s & i64::MAX).to_string(),
                })
                .into_iter()
                .collect(),
        },
    }
}

fn algorithm(choice: &Choice) -> AlgorithmSpec {
    AlgorithmSpec {
        algorithm_name: choice.name.clone(),
        algorithm_settings: choice
            .settings
            .iter()
            .map(|(name, value)| AlgorithmSetting {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The trial workload: a TrainJob of the template, with
/// `KUBEFLOW_TRAINER_OPT_<name>=${trialParameters.<name>}` appended to
/// `spec.trainer.env` for each parameter.
fn train_job(job: &Job) -> Value {
    let mut spec = job.template_spec.clone();
    let trainer = spec
        .entry("trainer")
        .and_modify(|t| {
            if !t.is_object() {
                *t = json!({});
            }
        })
        .or_insert_with(|| json!({}));
    if let Some(trainer) = trainer.as_object_mut() {
        let env = trainer
            .entry("env")
            .and_modify(|e| {
                if !e.is_array() {
                    *e = json!([]);
                }
            })
            .or_insert_with(|| json!([]));
        if let Some(env) = env.as_array_mut() {
            env.extend(job.parameters.iter().map(|p| {
                json!({"name": format!("{ENV_PREFIX}{}", p.name),
                       "value": format!("${{trialParameters.{}}}", p.name)})
            }));
        }
    }
    let mut workload = Map::new();
    workload.insert("apiVersion".to_owned(), TRAINJOB_API_VERSION.into());
    workload.insert("kind".to_owned(), "TrainJob".into());
    if !job.template_metadata.is_empty() {
        workload.insert(
            "metadata".to_owned(),
            Value::Object(job.template_metadata.clone()),
        );
    }
    workload.insert("spec".to_owned(), Value::Object(spec));
    Value::Object(workload)
}
