//! Kubeflow Trainer's `OptimizationJob` (`trainer.kubeflow.org/v1alpha1`)
//! as an input format: read with Trainer's own schema and rules
//! ([`read`]), then turned into the Experiment the engine already runs
//! ([`map`]) — one plan type, not a second engine ("inputs are formats, not
//! engines"). `ktune validate`, `suggest`, `run` and `convert` reach it
//! through [`crate::api::prepare`].
//!
//! Problems found after the mapping (ktune's own limits, an algorithm
//! chosen by annotation that refuses a setting …) are reported at the
//! job's field, not the Experiment's ([`job_path`]).
//!
//! In a cluster, [`object`] is the job as a Kubernetes object (its status
//! as Trainer defines it, and the CRD for clusters without Trainer's), and
//! `ktune controller --optimization-jobs` runs it
//! ([`crate::controller::optimization`]).

mod map;
mod object;
mod read;
#[cfg(test)]
mod tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

pub use map::to_experiment;
pub use object::{OptimizationJob, OptimizationJobStatus, OptimizationResult, ParameterValue, crd};
pub use read::{Job, is_api_number};

use super::load::DocumentError;
use super::validate::{Context, Issue, Report};
use super::{Experiment, PreparedExperiment, defaults, validate};

/// The kind this module reads.
pub const KIND: &str = "OptimizationJob";
/// The only apiVersion of an OptimizationJob.
pub const API_VERSION: &str = "trainer.kubeflow.org/v1alpha1";
/// The apiVersion of the TrainJobs its trials are.
pub const TRAINJOB_API_VERSION: &str = "trainer.kubeflow.org/v1alpha1";
/// What each parameter's environment variable is called before its name.
pub const ENV_PREFIX: &str = "KUBEFLOW_TRAINER_OPT_";
/// ktune extension: a ktune algorithm instead of `searchAlgorithm`.
pub const ALGORITHM_ANNOTATION: &str = "ktune.dev/algorithm";
/// ktune extension: that algorithm's settings, a JSON object.
pub const ALGORITHM_SETTINGS_ANNOTATION: &str = "ktune.dev/algorithm-settings";
/// ktune extension: an early-stopping rule.
pub const EARLY_STOPPING_ANNOTATION: &str = "ktune.dev/early-stopping";
/// ktune extension: that rule's settings, a JSON object.
pub const EARLY_STOPPING_SETTINGS_ANNOTATION: &str = "ktune.dev/early-stopping-settings";
/// The extension annotations, consumed by the mapping.
pub const EXTENSION_ANNOTATIONS: [&str; 4] = [
    ALGORITHM_ANNOTATION,
    ALGORITHM_SETTINGS_ANNOTATION,
    EARLY_STOPPING_ANNOTATION,
    EARLY_STOPPING_SETTINGS_ANNOTATION,
];

/// Whether a document is an OptimizationJob (by its kind: a wrong
/// apiVersion is then reported by [`load`]).
#[must_use]
pub fn is_optimization_job(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some(KIND)
}

/// An OptimizationJob read and mapped, before defaulting.
#[derive(Debug, Clone)]
pub struct LoadedJob {
    /// The job as read.
    pub job: Job,
    /// The Experiment it means.
    pub experiment: Experiment,
    /// Every violation of Trainer's schema and rules, and unknown fields
    /// (warnings).
    pub report: Report,
}

/// Reads an OptimizationJob document and maps it.
///
/// # Errors
/// [`DocumentError`] when the document is not a mapping, has another
/// apiVersion, or its `metadata` is not Kubernetes object metadata; every
/// other problem is in the returned report.
pub fn load(value: &Value) -> Result<LoadedJob, DocumentError> {
    let Value::Object(doc) = value else {
        return Err(DocumentError::NotAnObject);
    };
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION {
        return Err(DocumentError::Field {
            path: "apiVersion".to_owned(),
            message: format!("{api_version:?} is not supported for {KIND}: expected {API_VERSION}"),
        });
    }
    let metadata = match doc.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => serde_path_to_error::deserialize(m).map_err(|e| DocumentError::Field {
            path: match e.path().to_string() {
                p if p == "." => "metadata".to_owned(),
                p => format!("metadata.{p}"),
            },
            message: e.inner().to_string(),
        })?,
    };
    let mut reader = read::Reader::default();
    let job = read::read_job(doc, metadata, &mut reader);
    let experiment = to_experiment(&job);
    Ok(LoadedJob {
        job,
        experiment,
        report: reader.report,
    })
}

/// Reads, maps, defaults and validates an OptimizationJob: what
/// [`crate::api::prepare`] does for an Experiment. When the job breaks
/// Trainer's rules, only those are reported; otherwise the mapped
/// Experiment is validated as any other, its problems named by the job's
/// fields.
///
/// # Errors
/// As [`load`].
pub fn prepare(value: &Value, context: Context<'_>) -> Result<PreparedExperiment, DocumentError> {
    let LoadedJob {
        job,
        mut experiment,
        mut report,
    } = load(value)?;
    let notes = defaults::apply_defaults(&mut experiment.spec);
    if report.is_valid() {
        let checked = validate::validate(&experiment, context);
        let translate = |issue: Issue| Issue {
            path: job_path(&issue.path, &job),
            message: issue.message,
        };
        report
            .errors
            .extend(checked.errors.into_iter().map(translate));
        report
            .warnings
            .extend(checked.warnings.into_iter().map(translate));
        report.warnings.extend(notes.into_iter().map(|n| {
            translate(Issue {
                path: n.path,
                message: n.message,
            })
        }));
    }
    Ok(PreparedExperiment { experiment, report })
}

/// The job's field that an Experiment field came from, e.g.
/// `spec.parameters[1].feasibleSpace.min` →
/// `spec.parameters[1].searchSpace.logUniform.min`.
#[must_use]
pub fn job_path(path: &str, job: &Job) -> String {
    let annotation = |key: &str| read::annotation_path(key);
    if let Some(rest) = path.strip_prefix("spec.parameters[") {
        return parameter_path(rest, job);
    }
    let mapped = [
        ("spec.maxTrialCount", "spec.numTrials".to_owned()),
        ("spec.parallelTrialCount", "spec.parallelTrials".to_owned()),
        (
            "spec.objective.type",
            "spec.objectives[0].direction".to_owned(),
        ),
        ("spec.objective", "spec.objectives[0].metric".to_owned()),
        (
            "spec.metricsCollectorSpec",
            "spec.objectives[0].metric".to_owned(),
        ),
        (
            "spec.algorithm.algorithmSettings",
            if job.algorithm.is_some() {
                annotation(ALGORITHM_SETTINGS_ANNOTATION)
            } else {
                "spec.searchAlgorithm".to_owned()
            },
        ),
        (
            "spec.algorithm",
            if job.algorithm.is_some() {
                annotation(ALGORITHM_ANNOTATION)
            } else {
                "spec.searchAlgorithm".to_owned()
            },
        ),
        (
            "spec.earlyStopping.algorithmSettings",
            annotation(EARLY_STOPPING_SETTINGS_ANNOTATION),
        ),
        ("spec.earlyStopping", annotation(EARLY_STOPPING_ANNOTATION)),
    ];
    for (prefix, to) in mapped {
        if path == prefix
            || path.starts_with(&format!("{prefix}."))
            || path.starts_with(&format!("{prefix}["))
        {
            return to;
        }
    }
    if let Some(rest) = path.strip_prefix("spec.trialTemplate.trialSpec") {
        return if rest.starts_with(".spec") || rest.starts_with(".metadata") {
            format!("spec.trainJobTemplate{rest}")
        } else {
            "spec.trainJobTemplate".to_owned()
        };
    }
    if path.starts_with("spec.trialTemplate") {
        return "spec.trainJobTemplate".to_owned();
    }
    path.to_owned()
}

/// [`job_path`] of an Experiment path below `spec.parameters[` (`rest`
/// follows the bracket): the parameter's `searchSpace` field of its kind.
fn parameter_path(rest: &str, job: &Job) -> String {
    let (index, rest) = rest.split_once(']').unwrap_or((rest, ""));
    let space = index
        .parse::<usize>()
        .ok()
        .and_then(|i| job.parameters.get(i))
        .map(|p| match &p.space {
            read::Space::Range { log: true, .. } => "logUniform",
            read::Space::Range { log: false, .. } => "uniform",
            read::Space::Categorical(_) => "categorical",
        });
    let base = format!("spec.parameters[{index}]");
    let Some(space) = space else {
        return base;
    };
    match rest {
        ".name" => format!("{base}.name"),
        ".feasibleSpace.min" | ".feasibleSpace.max" => {
            format!(
                "{base}.searchSpace.{space}{}",
                &rest[".feasibleSpace".len()..]
            )
        }
        r if r.starts_with(".feasibleSpace.list") => {
            format!(
                "{base}.searchSpace.{space}.choices{}",
                &r[".feasibleSpace.list".len()..]
            )
        }
        _ => format!("{base}.searchSpace.{space}"),
    }
}
