//! The experiment loop for local runs: ask the suggester for as many
//! configurations as there are free slots, store each trial before
//! launching it, run it as a local process, read its metrics while it runs,
//! apply the early-stopping rule, record the outcome, and decide completion.
//!
//! Crash safety: trials are inserted (deterministic names) before launch
//! and every write is idempotent, so `ktune run` killed at any moment and
//! started again relaunches the trials that were pending or running, keeps
//! every stored observation, and duplicates nothing.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ktune_algorithms::history::{Observation, TrialRecord, TrialState};
use ktune_algorithms::stopping::StopDecision;
use ktune_algorithms::suggest::SuggestRequest;

use super::decide::{Budget, Completion, Counts, completion, trials_to_start};
use crate::api::enums::{CollectorKind, FileFormat, MetricStrategyType};
use crate::api::load::ConfigMaps;
use crate::api::plan::{ExperimentPlan, PlanError};
use crate::api::template::{TemplateError, render, resolve_template};
use crate::api::{Experiment, PreparedExperiment};
use crate::metrics::filter::FilterError;
use crate::metrics::json::parse_json_line;
use crate::metrics::reduce::{objective_value, reduce};
use crate::metrics::text::TextParser;
use crate::metrics::{MetricLog, parse_number};
use crate::runner::local::{Exit, LaunchSpec, kill_orphan};
use crate::runner::replicas::{ReplicaSet, free_port, plan as replica_plan};
use crate::store::{
    ExperimentState, NewTrial, ObservationRow, SqlStore, StoreError, TrialOutcome, TrialRow,
};

/// Longest metrics line kept; longer lines are cut (a trial printing
/// megabytes without a newline must not exhaust memory).
const MAX_LINE: usize = 64 * 1024;

/// How a local run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where trial folders go (`<root>/<experiment>/<trial>/`).
    pub trials_root: PathBuf,
    /// The working directory of every trial process.
    pub working_dir: PathBuf,
    /// Wall-clock limit per trial.
    pub trial_timeout: Option<Duration>,
    /// Most bytes of output per trial.
    pub log_limit: Option<u64>,
    /// Time between SIGTERM and SIGKILL when stopping a trial.
    pub stop_grace: Duration,
    /// Seed for the suggester (its `random_state` setting overrides it).
    pub seed: u64,
    /// GPU ids to share out: each running trial gets one of them as
    /// `CUDA_VISIBLE_DEVICES`, and trials wait while all are busy. Empty:
    /// trials see whatever GPUs the machine has.
    pub gpus: Vec<String>,
}

/// Something the user may want to see, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// A trial's process started.
    Started {
        /// The trial.
        trial: String,
        /// Its parameters.
        parameters: Vec<(String, String)>,
    },
    /// A trial ended.
    Finished {
        /// The trial.
        trial: String,
        /// How it ended.
        state: TrialState,
        /// Its objective value.
        objective: Option<f64>,
        /// Why.
        reason: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The experiment's state.
    pub state: ExperimentState,
    /// Katib's condition reason (empty when interrupted).
    pub reason: String,
    /// Trials by state.
    pub counts: Counts,
    /// The best trial.
    pub best: Option<BestTrial>,
}

/// The best trial of a run.
#[derive(Debug, Clone)]
pub struct BestTrial {
    /// Its name.
    pub name: String,
    /// Its parameters.
    pub parameters: Vec<(String, String)>,
    /// Its objective value.
    pub objective: f64,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The experiment cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trial template could not be rendered.
    #[error("trial template: {0}")]
    Template(#[from] TemplateError),
    /// A metric filter is invalid.
    #[error("metrics filter: {0}")]
    Filter(#[from] FilterError),
    /// The algorithm failed.
    #[error("algorithm: {0}")]
    Algorithm(#[from] ktune_algorithms::AlgorithmError),
    /// The collector kind cannot run locally yet.
    #[error("metrics collector {0} is not supported by `ktune run` yet; use StdOut or File")]
    Collector(String),
    /// The primary container has no command.
    #[error("the trial template has no container {0:?} with a command to run locally")]
    NoCommand(String),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a trial's metrics are read from, and how.
#[derive(Debug)]
enum Source {
    Text {
        file: Option<PathBuf>,
        parser: TextParser,
    },
    Json {
        file: PathBuf,
    },
}

/// A running trial and what has been read of its metrics.
#[derive(Debug)]
struct Live {
    row: TrialRow,
    process: ReplicaSet,
    offset: u64,
    partial: Vec<u8>,
    logs: Vec<MetricLog>,
    steps: BTreeMap<String, i64>,
    /// The objective's reports so far, as the stopping rule reads them.
    series: Vec<Observation>,
    gpu: Option<String>,
}

/// Runs (or resumes) an experiment to completion, or until `shutdown`
/// resolves (running trials are then stopped and recorded as Killed, and
/// the experiment stays resumable).
///
/// # Errors
/// [`DriverError`] when the experiment cannot be planned or run.
#[allow(clippy::too_many_lines)]
pub async fn run(
    prepared: &PreparedExperiment,
    configmaps: &ConfigMaps,
    store: &SqlStore,
    options: &RunOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, DriverError> {
    let experiment = &prepared.experiment;
    let plan = ExperimentPlan::new(experiment, &prepared.report)?;
    let name = experiment.metadata.name.clone().unwrap_or_default();
    let namespace = experiment
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let template = experiment.spec.trial_template.clone().unwrap_or_default();
    let workload = resolve_template(&template, configmaps)?;
    let primary = template.primary_container_name.clone().unwrap_or_default();
    let metrics = metric_names(experiment);
    let strategy = objective_strategy(experiment);
    let source_of = collector(experiment, &metrics)?;
    let budget = Budget {
        parallel_trial_count: plan.parallel_trial_count,
        max_trial_count: plan.max_trial_count,
        max_failed_trial_count: plan.max_failed_trial_count,
    };
    let spec_json = serde_json::to_value(experiment).unwrap_or_default();
    let (record, _) = store.create_experiment(&name, &spec_json, now_ms()).await?;
    let experiment_id = record.id;
    let trials_dir = options.trials_root.join(&name);

    // Resume: whatever was pending or running when the last run died runs
    // again (a pending one may have been started just before the crash).
    let mut observations: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
    for row in store.trials(experiment_id).await? {
        if row.state.is_terminal() {
            let stored = store.observations(row.id).await?;
            observations.insert(
                row.name.clone(),
                objective_series(&stored, &plan.objective.metric),
            );
            continue;
        }
        kill_orphan(&trials_dir.join(&row.name), &row.name);
        if row.state == TrialState::Running {
            let outcome = TrialOutcome {
                state: TrialState::Pending,
                reason: "Restarted".into(),
                message: "ktune run was interrupted; the trial runs again".into(),
                objective: None,
                at: now_ms(),
            };
            store
                .transition(row.id, &[TrialState::Running], &outcome)
                .await?;
        }
    }
    if record.state != ExperimentState::Running {
        store
            .set_experiment_state(
                experiment_id,
                ExperimentState::Running,
                "ExperimentRunning",
                None,
            )
            .await?;
    }

    // The algorithm's state is a cache it can rebuild from history, so a
    // save lost to another writer costs only speed.
    let mut algorithm_state = record.algorithm_state.clone();
    let mut state_version = record.algorithm_state_version;
    let context = LaunchContext {
        experiment: &name,
        namespace: &namespace,
        workload: &workload,
        template: &template,
        primary: &primary,
        trials_dir: &trials_dir,
        options,
    };
    let mut rows: Vec<TrialRow> = Vec::new();
    let mut live: Vec<Live> = Vec::new();
    let mut exhausted = false;
    let mut done: Option<Completion> = None;
    // Whether a trial was added or changed state since the last decisions:
    // the store is read and the budget decided only then, not on every tick.
    let mut changed = true;
    tokio::pin!(shutdown);
    loop {
        if changed {
            changed = false;
            rows = store.trials(experiment_id).await?;
            let history = records(&plan, &rows, &observations, &live);
            if done.is_none() {
                done = completion(&budget, &plan.objective, &history, exhausted);
            }
            if let Some(reason) = done
                && live.is_empty()
            {
                let state = if reason.succeeded() {
                    ExperimentState::Succeeded
                } else {
                    ExperimentState::Failed
                };
                store
                    .set_experiment_state(experiment_id, state, reason.reason(), Some(now_ms()))
                    .await?;
                return Ok(summary(&plan, &history, &rows, state, reason.reason()));
            }
            let wanted = usize::try_from(trials_to_start(&budget, &history)).unwrap_or(0);
            if done.is_none() && !exhausted && wanted > 0 {
                let request = SuggestRequest {
                    space: &plan.space,
                    objective: &plan.objective,
                    history: &history,
                    count: wanted,
                    seed: options.seed,
                    state: algorithm_state.as_ref(),
                };
                let suggestions = plan.suggester.suggest(&request)?;
                exhausted = suggestions.exhausted;
                // Exhaustion ends the experiment once nothing runs: look again.
                changed |= exhausted;
                if let Some(new_state) = suggestions.state {
                    if store
                        .save_algorithm_state(experiment_id, state_version, &new_state)
                        .await?
                    {
                        state_version += 1;
                    }
                    algorithm_state = Some(new_state);
                }
                let new: Vec<NewTrial> = suggestions
                    .suggestions
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| NewTrial {
                        name: format!("{name}-{:04}", rows.len() + i + 1),
                        assignment: s.assignment.to_katib_strings(),
                        labels: s.labels,
                    })
                    .collect();
                if store.insert_trials(experiment_id, &new, now_ms()).await? > 0 {
                    rows = store.trials(experiment_id).await?;
                }
            }
            // Launch what is pending (new trials, and those of an interrupted run).
            if done.is_none() {
                for row in &rows {
                    if row.state != TrialState::Pending || live.iter().any(|l| l.row.id == row.id) {
                        continue;
                    }
                    let gpu = options
                        .gpus
                        .iter()
                        .find(|g| !live.iter().any(|l| l.gpu.as_ref() == Some(*g)))
                        .cloned();
                    if !options.gpus.is_empty() && gpu.is_none() {
                        break; // every GPU is busy: the trial waits, pending
                    }
                    match launch_trial(&context, store, row, gpu, on_event).await? {
                        Some(started) => live.push(started),
                        None => changed = true,
                    }
                }
            }
        }
        // Watch the running trials for a moment.
        tokio::select! {
            () = &mut shutdown => {
                for mut l in live.drain(..) {
                    l.process.stop(options.stop_grace).await;
                    let killed = TrialOutcome { state: TrialState::Killed, reason: "TrialKilled".into(), message: "stopped by the user".into(), objective: None, at: now_ms() };
                    store.transition(l.row.id, &[TrialState::Running], &killed).await?;
                    on_event(Event::Finished { trial: l.row.name.clone(), state: TrialState::Killed, objective: None, reason: "stopped by the user".into() });
                }
                let rows = store.trials(experiment_id).await?;
                let history = records(&plan, &rows, &observations, &live);
                return Ok(summary(&plan, &history, &rows, ExperimentState::Running, ""));
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let mut grew = Vec::with_capacity(live.len());
        for l in &mut live {
            grew.push(collect_metrics(l, store, &source_of, &metrics, &plan).await?);
        }
        // The history the stopping rule compares against: built at most once
        // a tick, and only when some trial reported new objective values.
        let peers = (plan.early_stopping.is_some() && grew.contains(&true))
            .then(|| records(&plan, &rows, &observations, &live));
        let mut still = Vec::with_capacity(live.len());
        for (mut l, grew) in std::mem::take(&mut live).into_iter().zip(grew) {
            let mut exit = l.process.poll(options.stop_grace).await;
            let mut stop_reason = None;
            if exit.is_none()
                && grew
                && let (Some(rule), Some(history)) = (&plan.early_stopping, &peers)
                && let Some(me) = history.iter().find(|t| t.name == l.row.name)
                && let StopDecision::Stop { reason } = rule.evaluate(me, history, &plan.objective)
            {
                l.process.stop(options.stop_grace).await;
                stop_reason = Some(reason);
                exit = Some(Exit::Stopped);
            }
            let Some(exit) = exit else {
                still.push(l);
                continue;
            };
            // Read what it wrote last.
            collect_metrics(&mut l, store, &source_of, &metrics, &plan).await?;
            let objective = objective_value(&reduce(&plan.objective.metric, &l.logs), &strategy);
            let (state, reason, message) = match (&exit, stop_reason) {
                (_, Some(why)) => (
                    TrialState::EarlyStopped,
                    "TrialEarlyStopped".to_owned(),
                    why,
                ),
                (Exit::Succeeded, None) if objective.is_some() => (
                    TrialState::Succeeded,
                    "TrialSucceeded".to_owned(),
                    String::new(),
                ),
                (Exit::Succeeded, None) => (
                    TrialState::MetricsUnavailable,
                    "MetricsUnavailable".to_owned(),
                    format!(
                        "the objective metric {:?} was never reported",
                        plan.objective.metric
                    ),
                ),
                (other, None) => (TrialState::Failed, "TrialFailed".to_owned(), other.reason()),
            };
            let outcome = TrialOutcome {
                state,
                reason: reason.clone(),
                message: message.clone(),
                objective,
                at: now_ms(),
            };
            store
                .transition(l.row.id, &[TrialState::Running], &outcome)
                .await?;
            observations.insert(l.row.name.clone(), std::mem::take(&mut l.series));
            changed = true;
            let shown = if message.is_empty() { reason } else { message };
            on_event(Event::Finished {
                trial: l.row.name.clone(),
                state,
                objective,
                reason: shown,
            });
        }
        live = still;
    }
}

/// What every trial launch of one experiment shares.
struct LaunchContext<'a> {
    experiment: &'a str,
    namespace: &'a str,
    workload: &'a serde_json::Value,
    template: &'a crate::api::experiment::TrialTemplate,
    primary: &'a str,
    trials_dir: &'a Path,
    options: &'a RunOptions,
}

/// Renders and starts one pending trial; `None` when it could not start
/// (it is then recorded as Failed).
async fn launch_trial(
    context: &LaunchContext<'_>,
    store: &SqlStore,
    row: &TrialRow,
    gpu: Option<String>,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Option<Live>, DriverError> {
    let values: BTreeMap<String, String> = row.assignment.iter().cloned().collect();
    let trial_parameters = context
        .template
        .trial_parameters
        .as_deref()
        .unwrap_or_default();
    let rendered = render(
        context.workload,
        trial_parameters,
        &values,
        &row.name,
        context.namespace,
    )?;
    let commands = replica_plan(&rendered, context.primary, free_port());
    if commands.is_empty() {
        return Err(DriverError::NoCommand(context.primary.to_owned()));
    }
    let trial_dir = context.trials_dir.join(&row.name);
    let mut env = Vec::new();
    if let Some(gpu) = &gpu {
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), gpu.clone()));
    }
    env.extend([
        ("KTUNE_EXPERIMENT".to_owned(), context.experiment.to_owned()),
        ("KTUNE_TRIAL_NAME".to_owned(), row.name.clone()),
        ("KATIB_TRIAL_NAME".to_owned(), row.name.clone()),
        (
            "KTUNE_TRIAL_DIR".to_owned(),
            trial_dir.display().to_string(),
        ),
        (
            "KTUNE_PARAMETERS".to_owned(),
            serde_json::to_string(&values).unwrap_or_default(),
        ),
    ]);
    let spec = LaunchSpec {
        argv: Vec::new(),
        env,
        trial_dir,
        working_dir: context.options.working_dir.clone(),
        timeout: context.options.trial_timeout,
        log_limit: context.options.log_limit,
    };
    let (outcome, live) = match ReplicaSet::launch(&spec, &commands).await {
        Ok(process) => {
            on_event(Event::Started {
                trial: row.name.clone(),
                parameters: row.assignment.clone(),
            });
            let outcome = TrialOutcome {
                state: TrialState::Running,
                reason: "TrialRunning".into(),
                message: String::new(),
                objective: None,
                at: now_ms(),
            };
            let live = Live {
                row: row.clone(),
                process,
                offset: 0,
                partial: Vec::new(),
                logs: Vec::new(),
                steps: BTreeMap::new(),
                series: Vec::new(),
                gpu,
            };
            (outcome, Some(live))
        }
        Err(e) => {
            on_event(Event::Finished {
                trial: row.name.clone(),
                state: TrialState::Failed,
                objective: None,
                reason: format!("could not start: {e}"),
            });
            let outcome = TrialOutcome {
                state: TrialState::Failed,
                reason: "LaunchFailed".into(),
                message: e.to_string(),
                objective: None,
                at: now_ms(),
            };
            (outcome, None)
        }
    };
    store
        .transition(row.id, &[TrialState::Pending], &outcome)
        .await?;
    Ok(live)
}

/// Reads a running trial's new metric reports and stores them; returns
/// whether the objective got new values.
async fn collect_metrics(
    l: &mut Live,
    store: &SqlStore,
    source: &Source,
    metrics: &[String],
    plan: &ExperimentPlan,
) -> Result<bool, DriverError> {
    let logs = read_metrics(l, source, metrics);
    if logs.is_empty() {
        return Ok(false);
    }
    let rows = to_rows(l, &logs);
    store.append_observations(l.row.id, &rows).await?;
    l.logs.extend(logs);
    let before = l.series.len();
    l.series
        .extend(objective_series(&rows, &plan.objective.metric));
    Ok(l.series.len() > before)
}

fn metric_names(experiment: &Experiment) -> Vec<String> {
    experiment
        .spec
        .objective
        .as_ref()
        .map(|o| {
            std::iter::once(o.objective_metric_name.clone())
                .chain(o.additional_metric_names.iter().cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn objective_strategy(experiment: &Experiment) -> MetricStrategyType {
    experiment
        .spec
        .objective
        .as_ref()
        .and_then(|o| {
            o.metric_strategies
                .iter()
                .find(|s| s.name == o.objective_metric_name)
        })
        .map_or(MetricStrategyType::Latest, |s| s.value.clone())
}

fn collector(experiment: &Experiment, metrics: &[String]) -> Result<Source, DriverError> {
    let spec = experiment
        .spec
        .metrics_collector_spec
        .clone()
        .unwrap_or_default();
    let kind = spec
        .collector
        .and_then(|c| c.kind)
        .unwrap_or(CollectorKind::StdOut);
    let source = spec.source.unwrap_or_default();
    let filters = source.filter.map(|f| f.metrics_format).unwrap_or_default();
    let path = source.file_system_path;
    match kind {
        CollectorKind::StdOut => Ok(Source::Text {
            file: None,
            parser: TextParser::new(metrics.iter().cloned(), &filters)?,
        }),
        CollectorKind::File => {
            let path = path.unwrap_or_default();
            let file = PathBuf::from(&path.path);
            if path.format == Some(FileFormat::Json) {
                Ok(Source::Json { file })
            } else {
                Ok(Source::Text {
                    file: Some(file),
                    parser: TextParser::new(metrics.iter().cloned(), &filters)?,
                })
            }
        }
        other => Err(DriverError::Collector(other.to_string())),
    }
}

/// New complete lines of the trial's metrics source since the last read.
fn read_new_lines(file: &Path, offset: &mut u64, partial: &mut Vec<u8>) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(file) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let Ok(n) = f.by_ref().take(4 * 1024 * 1024).read_to_end(&mut buf) else {
        return Vec::new();
    };
    *offset += n as u64;
    partial.extend_from_slice(&buf);
    let mut lines = Vec::new();
    while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = partial.drain(..=pos).collect();
        let cut = &line[..line.len().min(MAX_LINE)];
        lines.push(String::from_utf8_lossy(cut).trim_end().to_owned());
    }
    if partial.len() > MAX_LINE {
        partial.clear();
    }
    lines
}

fn read_metrics(l: &mut Live, source: &Source, metrics: &[String]) -> Vec<MetricLog> {
    match source {
        Source::Text { file, parser } => {
            let path = file
                .clone()
                .unwrap_or_else(|| l.process.stdout_path().to_owned());
            read_new_lines(&path, &mut l.offset, &mut l.partial)
                .iter()
                .flat_map(|line| parser.parse_line(line))
                .collect()
        }
        Source::Json { file } => read_new_lines(file, &mut l.offset, &mut l.partial)
            .iter()
            .flat_map(|line| parse_json_line(line, metrics))
            .collect(),
    }
}

/// Numbers each metric's reports 1, 2, 3 … as its steps.
fn to_rows(l: &mut Live, logs: &[MetricLog]) -> Vec<ObservationRow> {
    logs.iter()
        .map(|log| {
            let step = l.steps.entry(log.name.clone()).or_insert(0);
            *step += 1;
            ObservationRow {
                metric: log.name.clone(),
                step: *step,
                value: log.value.clone(),
                number: log.number(),
                time: log.time.map(|t| t.as_millisecond()),
            }
        })
        .collect()
}

fn objective_series(rows: &[ObservationRow], metric: &str) -> Vec<Observation> {
    rows.iter()
        .filter(|r| r.metric == metric)
        .map(|r| Observation {
            step: u64::try_from(r.step).unwrap_or(0),
            value: r
                .number
                .or_else(|| parse_number(&r.value))
                .unwrap_or(f64::NAN),
        })
        .collect()
}

/// The trials as the algorithms see them.
fn records(
    plan: &ExperimentPlan,
    rows: &[TrialRow],
    observations: &BTreeMap<String, Vec<Observation>>,
    live: &[Live],
) -> Vec<TrialRecord> {
    rows.iter()
        .filter_map(|row| {
            let assignment = plan
                .space
                .parse_assignment(row.assignment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .ok()?;
            let mut record = TrialRecord::new(row.name.clone(), assignment);
            record.labels = row.labels.clone();
            record.state = row.state;
            record.objective = row.objective;
            record.observations = match live.iter().find(|l| l.row.id == row.id) {
                Some(l) => {
                    record.state = TrialState::Running;
                    l.series.clone()
                }
                None => observations.get(&row.name).cloned().unwrap_or_default(),
            };
            Some(record)
        })
        .collect()
}

fn summary(
    plan: &ExperimentPlan,
    history: &[TrialRecord],
    rows: &[TrialRow],
    state: ExperimentState,
    reason: &str,
) -> RunSummary {
    let best = plan.objective.best_trial(history).and_then(|t| {
        let row = rows.iter().find(|r| r.name == t.name)?;
        Some(BestTrial {
            name: t.name.clone(),
            parameters: row.assignment.clone(),
            objective: t.finite_objective()?,
        })
    });
    RunSummary {
        state,
        reason: reason.to_owned(),
        counts: Counts::of(history),
        best,
    }
}
