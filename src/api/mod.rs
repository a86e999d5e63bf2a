//! The Experiment and Trial API: Katib v1beta1's types as custom resources
//! of `ktune.dev` or Katib's own `kubeflow.org` ([`group`]), loading from
//! YAML, Katib's defaulting, validation, trial templates and CRD generation.
//!
//! The flow for one file: [`load::read_documents`] → [`load::experiment_from_value`]
//! → [`defaults::apply_defaults`] → [`validate::validate`]; [`prepare`] does
//! all of it for one document.

pub mod condition;
pub mod crd;
pub mod defaults;
pub mod enums;
pub mod experiment;
pub mod group;
pub mod lenient;
pub mod load;
pub mod optimization_job;
pub mod parameters;
pub mod plan;
mod schema;
pub mod space;
pub mod template;
pub mod trial;
pub mod validate;

pub use experiment::{ExperimentSpec, ExperimentStatus};
pub use group::{ApiGroup, Experiment, Trial};
pub use trial::{TrialSpec, TrialStatus};

use load::{ConfigMaps, DocumentError, LoadedExperiment};
use validate::{Context, Issue, Report};

/// An experiment read from YAML with Katib's defaults applied, and what
/// validation said of it.
#[derive(Debug, Clone)]
pub struct PreparedExperiment {
    /// The experiment, defaulted.
    pub experiment: Experiment,
    /// Errors and warnings (unknown fields and defaulting notes are warnings).
    pub report: Report,
}

impl PreparedExperiment {
    /// The experiment's `metadata.name` (empty when unset: validation
    /// reports that as an error before anything runs).
    #[must_use]
    pub fn name(&self) -> &str {
        self.experiment.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Reads one Experiment document: typed parse, defaulting, validation.
/// A Kubeflow Trainer `OptimizationJob` is read as the Experiment it
/// means ([`optimization_job`]).
///
/// # Errors
/// [`DocumentError`] when the document is not an Experiment of an accepted
/// apiVersion or a field has the wrong type; validation problems are in
/// the returned report instead.
pub fn prepare(
    value: &serde_json::Value,
    context: Context<'_>,
) -> Result<PreparedExperiment, DocumentError> {
    if optimization_job::is_optimization_job(value) {
        return optimization_job::prepare(value, context);
    }
    let LoadedExperiment {
        mut experiment,
        unknown_fields,
    } = load::experiment_from_value(value)?;
    let notes = defaults::apply_defaults(&mut experiment.spec);
    let mut report = validate::validate(&experiment, context);
    report
        .warnings
        .extend(unknown_fields.into_iter().map(|path| Issue {
            path,
            message: "unknown field, ignored".to_owned(),
        }));
    report.warnings.extend(notes.into_iter().map(|n| Issue {
        path: n.path,
        message: n.message,
    }));
    Ok(PreparedExperiment { experiment, report })
}

/// An empty ConfigMap set, for callers with no ConfigMaps to offer.
#[must_use]
pub fn no_configmaps() -> &'static ConfigMaps {
    static EMPTY: std::sync::OnceLock<ConfigMaps> = std::sync::OnceLock::new();
    EMPTY.get_or_init(ConfigMaps::default)
}
