//! Validation of a defaulted Experiment: everything Katib's webhook refuses,
//! plus what Katib lets through and then fails on later (bad numbers, bad
//! algorithm settings, dangling template references …). Every problem is
//! reported at once, each with the field's path and the reason.

mod collector;
mod nas;
mod parameters;
mod template;

use std::collections::BTreeSet;
use std::fmt;

use ktune_algorithms::AlgorithmError;
use ktune_algorithms::settings::{self, AlgorithmSpec as CatalogEntry, Support};

use super::Experiment;
use super::enums::{MetricStrategyType, ObjectiveType};
use super::experiment::{AlgorithmSpec, ExperimentSpec};
use super::load::ConfigMaps;

/// Longest experiment name Katib accepts: `<exp>-<algo>-<ns>` and
/// `<exp>-<8 chars>` must fit Kubernetes' name limits.
pub const MAX_NAME_LEN: usize = 40;

/// One problem, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    /// The field's path, e.g. `spec.parameters[0].feasibleSpace.min`.
    pub path: String,
    /// Why it is a problem.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything validation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems that make the experiment invalid.
    pub errors: Vec<Issue>,
    /// Things worth knowing that do not.
    pub warnings: Vec<Issue>,
}

impl Report {
    /// Whether no error was found.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The validation errors of an experiment, as one error value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid experiment:\n{}", .0.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
pub struct ValidationError(pub Vec<Issue>);

/// What validation may consult besides the experiment.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// ConfigMaps given alongside the experiment, for `trialTemplate.configMap`.
    pub configmaps: &'a ConfigMaps,
    /// Whether a ConfigMap template that cannot be found is an error (when
    /// the experiment is about to run) or a warning (the cluster may have it).
    pub require_configmaps: bool,
}

/// Validates a defaulted experiment.
#[must_use]
pub fn validate(experiment: &Experiment, context: Context<'_>) -> Report {
    let mut report = Report::default();
    validate_metadata(experiment, &mut report);
    let spec = &experiment.spec;
    validate_counts(spec, &mut report);
    validate_objective(spec, &mut report);
    validate_search_space_source(spec, &mut report);
    parameters::validate_parameters(spec, &mut report);
    validate_algorithm(spec, &mut report);
    validate_early_stopping(spec, &mut report);
    if let Some(policy) = &spec.resume_policy
        && !policy.is_known()
    {
        report.error(
            "spec.resumePolicy",
            format!(
                "unknown resume policy {policy:?}; expected one of {}",
                policy_list()
            ),
        );
    }
    template::validate_trial_template(experiment, context, &mut report);
    collector::validate_collector(spec, &mut report);
    validate_checkpoint_dir(spec, &mut report);
    if report.is_valid() {
        check_with_algorithm_library(spec, &mut report);
    }
    report
}

/// PBT's `suggestion_trial_dir` is where a volume is mounted in a cluster
/// and a path rewritten in the trial's command locally: an absolute
/// folder, not the root.
fn validate_checkpoint_dir(spec: &ExperimentSpec, report: &mut Report) {
    let Some(algorithm) = spec
        .algorithm
        .as_ref()
        .filter(|a| a.algorithm_name == "pbt")
    else {
        return;
    };
    for (i, setting) in algorithm.algorithm_settings.iter().enumerate() {
        let path = setting.value.trim_end_matches('/');
        if setting.name == ktune_algorithms::suggest::pbt::CHECKPOINT_SETTING
            && (!setting.value.starts_with('/') || path.is_empty())
        {
            report.error(
                format!("spec.algorithm.algorithmSettings[{i}].value"),
                format!(
                    "suggestion_trial_dir must be an absolute folder other than / \
                     (each trial's checkpoint folder is mounted there), not {:?}",
                    setting.value
                ),
            );
        }
    }
}

/// Builds the search space, the suggester and the stopping rule the way a
/// run will, so whatever the algorithm library refuses (a grid too large
/// to encode, a Hyperband with absurd brackets …) is refused now.
fn check_with_algorithm_library(spec: &ExperimentSpec, report: &mut Report) {
    let space = match super::space::search_space(spec) {
        Ok(space) => space,
        Err(super::space::SpaceError::Refused { path, source }) => {
            report.error(path, source.to_string());
            return;
        }
        Err(_) => return, // already reported by the field checks
    };
    if let Some(algorithm) = &spec.algorithm
        && let Some(entry) = settings::algorithm(&algorithm.algorithm_name)
        && let Ok(parsed) = entry.parse(
            algorithm
                .algorithm_settings
                .iter()
                .map(|s| (s.name.as_str(), s.value.as_str())),
        )
    {
        match ktune_algorithms::suggest::build_suggester(entry.name, &parsed, &space) {
            Ok(_) | Err(AlgorithmError::NotImplemented { .. }) => {}
            Err(e) => report.error(refused_field(spec, algorithm, &e), e.to_string()),
        }
    }
    if let Some(early) = &spec.early_stopping
        && let Some(entry) = settings::early_stopping(&early.algorithm_name)
        && let Ok(parsed) = entry.parse(
            early
                .algorithm_settings
                .iter()
                .map(|s| (s.name.as_str(), s.value.as_str())),
        )
        && let Err(e) = ktune_algorithms::stopping::build_early_stopping(entry.name, &parsed)
    {
        report.error("spec.earlyStopping", e.to_string());
    }
}

/// The field an algorithm's refusal of the space concerns.
fn refused_field(spec: &ExperimentSpec, algorithm: &AlgorithmSpec, e: &AlgorithmError) -> String {
    match e {
        AlgorithmError::GridNeedsStep { name } => spec
            .parameters
            .iter()
            .flatten()
            .position(|p| p.name == *name)
            .map_or_else(
                || "spec.parameters".to_owned(),
                |i| format!("spec.parameters[{i}].feasibleSpace.step"),
            ),
        AlgorithmError::ResourceParameterMissing { .. }
        | AlgorithmError::ResourceParameterNotNumeric { .. } => algorithm
            .algorithm_settings
            .iter()
            .position(|s| s.name == "resource_name")
            .map_or_else(
                || "spec.algorithm.algorithmSettings".to_owned(),
                |i| format!("spec.algorithm.algorithmSettings[{i}].value"),
            ),
        AlgorithmError::UnsupportedSpace { .. } | AlgorithmError::TooManyDimensions { .. } => {
            "spec.algorithm.algorithmName".to_owned()
        }
        _ => "spec.algorithm".to_owned(),
    }
}

fn policy_list() -> String {
    super::enums::ResumePolicy::KNOWN.join(", ")
}

fn validate_metadata(experiment: &Experiment, report: &mut Report) {
    let name = experiment.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        report.error("metadata.name", "an experiment needs a name");
    } else {
        if !is_dns_label(name) {
            report.error(
                "metadata.name",
                format!("{name:?} must start with a lowercase letter and contain only lowercase letters, digits and '-', not ending in '-'"),
            );
        }
        if name.len() > MAX_NAME_LEN {
            report.error(
                "metadata.name",
                format!("{name:?} is {} characters long; at most {MAX_NAME_LEN} are allowed (trial and workload names are derived from it)", name.len()),
            );
        }
    }
    if let Some(ns) = experiment.metadata.namespace.as_deref()
        && (ns.is_empty() || ns.len() > 63 || !is_dns_label(ns))
    {
        report.error(
            "metadata.namespace",
            format!("{ns:?} is not a valid namespace name"),
        );
    }
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$` — Katib's name check, anchored at both ends.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let starts = bytes.first().is_some_and(u8::is_ascii_lowercase);
    let ends = bytes
        .last()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    starts
        && ends
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn validate_counts(spec: &ExperimentSpec, report: &mut Report) {
    if let Some(n) = spec.parallel_trial_count
        && n <= 0
    {
        report.error(
            "spec.parallelTrialCount",
            format!("must be at least 1, got {n}"),
        );
    }
    if let Some(n) = spec.max_trial_count
        && n <= 0
    {
        report.error("spec.maxTrialCount", format!("must be at least 1, got {n}"));
    }
    if let Some(n) = spec.max_failed_trial_count
        && n < 0
    {
        report.error(
            "spec.maxFailedTrialCount",
            format!("must not be negative, got {n}"),
        );
    }
    if let Some(max) = spec.max_trial_count {
        if let Some(failed) = spec.max_failed_trial_count
            && failed > max
        {
            report.error(
                "spec.maxFailedTrialCount",
                format!("{failed} is more than maxTrialCount ({max})"),
            );
        }
        if let Some(parallel) = spec.parallel_trial_count
            && parallel > max
        {
            report.error(
                "spec.parallelTrialCount",
                format!("{parallel} is more than maxTrialCount ({max})"),
            );
        }
    }
}

fn validate_objective(spec: &ExperimentSpec, report: &mut Report) {
    let Some(objective) = &spec.objective else {
        report.error("spec.objective", "an objective is required");
        return;
    };
    match &objective.type_ {
        None => report.error("spec.objective.type", "required: minimize or maximize"),
        Some(ObjectiveType::Other(t)) => report.error(
            "spec.objective.type",
            format!("{t:?} is not an objective type; expected minimize or maximize"),
        ),
        Some(_) => {}
    }
    if let Some(goal) = objective.goal
        && !goal.is_finite()
    {
        report.error(
            "spec.objective.goal",
            format!("must be a finite number, got {goal}"),
        );
    }
    let objective_name = objective.objective_metric_name.as_str();
    if objective_name.trim().is_empty() {
        report.error("spec.objective.objectiveMetricName", "required");
    }
    let mut seen = BTreeSet::new();
    for (i, name) in objective.additional_metric_names.iter().enumerate() {
        let path = format!("spec.objective.additionalMetricNames[{i}]");
        if name.trim().is_empty() {
            report.error(path, "metric names must not be empty");
        } else if name == objective_name {
            report.error(
                path,
                format!("{name:?} is the objective metric; list it only once"),
            );
        } else if !seen.insert(name) {
            report.error(path, format!("{name:?} is listed twice"));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, strategy) in objective.metric_strategies.iter().enumerate() {
        let path = format!("spec.objective.metricStrategies[{i}]");
        if let MetricStrategyType::Other(v) = &strategy.value {
            report.error(
                format!("{path}.value"),
                format!(
                    "{v:?} is not a metric strategy; expected one of {}",
                    MetricStrategyType::KNOWN.join(", ")
                ),
            );
        }
        if strategy.name.is_empty() {
            report.error(format!("{path}.name"), "required");
        } else if !seen.insert(&strategy.name) {
            report.error(
                format!("{path}.name"),
                format!("{:?} has two strategies", strategy.name),
            );
        } else if strategy.name != objective_name
            && !objective.additional_metric_names.contains(&strategy.name)
        {
            report.warn(
                format!("{path}.name"),
                format!(
                    "{:?} is not a collected metric; this strategy has no effect",
                    strategy.name
                ),
            );
        }
    }
}

fn validate_search_space_source(spec: &ExperimentSpec, report: &mut Report) {
    match (&spec.parameters, &spec.nas_config) {
        (None, None) => report.error(
            "spec.parameters",
            "a search space is required: give spec.parameters",
        ),
        (Some(_), Some(_)) => report.error(
            "spec.nasConfig",
            "give either spec.parameters or spec.nasConfig, not both",
        ),
        (None, Some(nas)) => nas::validate_nas(spec, nas, report),
        (Some(p), None) if p.is_empty() => {
            report.error("spec.parameters", "at least one parameter is required");
        }
        (Some(_), None) => {}
    }
}

/// Why `name` is not an algorithm: the nearest name that works, then every
/// name that works (names ktune knows but cannot run yet are not offered).
fn unknown_algorithm(name: &str, known: &[CatalogEntry]) -> String {
    let usable: Vec<&str> = known
        .iter()
        .filter(|a| matches!(a.support, Support::Supported))
        .map(|a| a.name)
        .collect();
    let nearest = usable
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min();
    let hint = nearest.map_or_else(String::new, |(_, n)| format!("did you mean {n:?}? "));
    format!(
        "unknown algorithm {name:?}; {hint}expected one of {}",
        usable.join(", ")
    )
}

/// Parses an algorithm's settings against the catalog, reporting each bad
/// setting at its index. Returns the catalog entry and parsed settings.
fn check_settings(
    path: &str,
    spec: &AlgorithmSpec,
    lookup: fn(&str) -> Option<&'static CatalogEntry>,
    known: &[CatalogEntry],
    report: &mut Report,
) -> Option<(&'static CatalogEntry, settings::Settings)> {
    let name = spec.algorithm_name.as_str();
    if name.is_empty() {
        report.error(format!("{path}.algorithmName"), "required");
        return None;
    }
    let Some(entry) = lookup(name) else {
        report.error(
            format!("{path}.algorithmName"),
            unknown_algorithm(name, known),
        );
        return None;
    };
    if let Support::NotYet(reason) = entry.support {
        report.error(format!("{path}.algorithmName"), format!("{name}: {reason}"));
    }
    let given = spec
        .algorithm_settings
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_str()));
    match entry.parse(given) {
        Ok(parsed) => Some((entry, parsed)),
        Err(problems) => {
            for problem in problems {
                let at = match problem.index {
                    Some(i) => format!("{path}.algorithmSettings[{i}]"),
                    None => format!("{path}.algorithmSettings"),
                };
                report.error(at, problem.to_string());
            }
            None
        }
    }
}

/// The algorithm's name and settings. What it needs of the space (grid:
/// steps; hyperband: its resource parameter; cmaes: a number to search) is
/// the library's rule, asked by [`check_with_algorithm_library`].
fn validate_algorithm(spec: &ExperimentSpec, report: &mut Report) {
    let Some(algorithm) = &spec.algorithm else {
        report.error("spec.algorithm", "an algorithm is required");
        return;
    };
    check_settings(
        "spec.algorithm",
        algorithm,
        settings::algorithm,
        settings::ALGORITHMS,
        report,
    );
}

fn validate_early_stopping(spec: &ExperimentSpec, report: &mut Report) {
    let Some(early) = &spec.early_stopping else {
        return;
    };
    let Some((entry, parsed)) = check_settings(
        "spec.earlyStopping",
        early,
        settings::early_stopping,
        settings::EARLY_STOPPING,
        report,
    ) else {
        return;
    };
    if entry.name == "asha"
        && let Some(step_metric) = parsed.text("step_metric")
    {
        let additional = spec
            .objective
            .as_ref()
            .map(|o| o.additional_metric_names.as_slice())
            .unwrap_or_default();
        if !additional.iter().any(|m| m == step_metric) {
            let i = early
                .algorithm_settings
                .iter()
                .position(|s| s.name == "step_metric")
                .unwrap_or_default();
            report.error(
                format!("spec.earlyStopping.algorithmSettings[{i}].value"),
                format!("step_metric {step_metric:?} must be listed in spec.objective.additionalMetricNames so it is collected"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
