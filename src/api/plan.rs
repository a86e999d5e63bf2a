//! A validated Experiment turned into what the engine works with: the
//! search space, the objective, the suggester and the stopping rule, and
//! the trial budget as plain numbers.

use ktune_algorithms::AlgorithmError;
use ktune_algorithms::history::{Direction, Objective};
use ktune_algorithms::settings::{self, AlgorithmSpec as CatalogEntry};
use ktune_algorithms::space::SearchSpace;
use ktune_algorithms::stopping::{EarlyStoppingRule, build_early_stopping};
use ktune_algorithms::suggest::pbt;
use ktune_algorithms::suggest::{Suggester, build_suggester};

use super::Experiment;
use super::defaults::DEFAULT_PARALLEL_TRIAL_COUNT;
use super::enums::ObjectiveType;
use super::experiment::AlgorithmSpec;
use super::space::{SpaceError, search_space};
use super::validate::{Issue, Report, ValidationError};

/// Why an experiment cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Validation found errors.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The search space could not be built.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// The algorithm library refused the algorithm or stopping rule.
    #[error("{path}: {source}")]
    Algorithm {
        /// The field, e.g. `spec.algorithm`.
        path: &'static str,
        /// The library's reason.
        #[source]
        source: AlgorithmError,
    },
}

/// Everything needed to run an experiment's search, built once.
#[derive(Debug)]
pub struct ExperimentPlan {
    /// The search space.
    pub space: SearchSpace,
    /// The objective metric, its direction and goal.
    pub objective: Objective,
    /// Suggests configurations from the history.
    pub suggester: Box<dyn Suggester>,
    /// Decides whether a running trial should stop early.
    pub early_stopping: Option<Box<dyn EarlyStoppingRule>>,
    /// Most trials pending or running at once.
    pub parallel_trial_count: u32,
    /// Completed trials after which the experiment succeeds.
    pub max_trial_count: Option<u32>,
    /// Failed trials after which the experiment fails.
    pub max_failed_trial_count: Option<u32>,
    /// The path where each trial reads and writes its checkpoint, for an
    /// algorithm that hands checkpoints on (PBT's `suggestion_trial_dir`).
    pub checkpoint_dir: Option<String>,
}

fn parse_settings(
    spec: &AlgorithmSpec,
    lookup: fn(&str) -> Option<&'static CatalogEntry>,
) -> Option<(&'static str, settings::Settings)> {
    let entry = lookup(&spec.algorithm_name)?;
    let parsed = entry
        .parse(
            spec.algorithm_settings
                .iter()
                .map(|s| (s.name.as_str(), s.value.as_str())),
        )
        .ok()?;
    Some((entry.name, parsed))
}

fn count(value: Option<i32>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

impl ExperimentPlan {
    /// Plans a defaulted experiment whose validation `report` is given.
    ///
    /// # Errors
    /// [`PlanError`] when the report has errors, or the algorithm library
    /// refuses the space, the algorithm (including algorithms ktune does
    /// not implement yet) or the stopping rule.
    pub fn new(experiment: &Experiment, report: &Report) -> Result<Self, PlanError> {
        if !report.is_valid() {
            return Err(ValidationError(report.errors.clone()).into());
        }
        let spec = &experiment.spec;
        let invalid = |path: &str, message: &str| {
            PlanError::Invalid(ValidationError(vec![Issue {
                path: path.to_owned(),
                message: message.to_owned(),
            }]))
        };
        let space = search_space(spec)?;
        let objective_spec = spec
            .objective
            .as_ref()
            .ok_or_else(|| invalid("spec.objective", "required"))?;
        let direction = match objective_spec.type_ {
            Some(ObjectiveType::Maximize) => Direction::Maximize,
            _ => Direction::Minimize,
        };
        let mut objective = Objective::new(objective_spec.objective_metric_name.clone(), direction);
        objective.goal = objective_spec.goal;
        let algorithm = spec
            .algorithm
            .as_ref()
            .and_then(|a| parse_settings(a, settings::algorithm))
            .ok_or_else(|| invalid("spec.algorithm", "not a valid algorithm"))?;
        let checkpoint_dir = (algorithm.0 == "pbt")
            .then(|| algorithm.1.text(pbt::CHECKPOINT_SETTING).map(str::to_owned))
            .flatten();
        let suggester = build_suggester(algorithm.0, &algorithm.1, &space).map_err(|source| {
            PlanError::Algorithm {
                path: "spec.algorithm",
                source,
            }
        })?;
        let early_stopping = match &spec.early_stopping {
            None => None,
            Some(early) => {
                let (name, parsed) = parse_settings(early, settings::early_stopping)
                    .ok_or_else(|| invalid("spec.earlyStopping", "not a valid rule"))?;
                Some(build_early_stopping(name, &parsed).map_err(|source| {
                    PlanError::Algorithm {
                        path: "spec.earlyStopping",
                        source,
                    }
                })?)
            }
        };
        Ok(Self {
            space,
            objective,
            suggester,
            early_stopping,
            parallel_trial_count: count(spec.parallel_trial_count)
                .unwrap_or(DEFAULT_PARALLEL_TRIAL_COUNT.unsigned_abs())
                .max(1),
            max_trial_count: count(spec.max_trial_count),
            max_failed_trial_count: count(spec.max_failed_trial_count),
            checkpoint_dir,
        })
    }
}
