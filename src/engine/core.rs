//! The experiment engine: one [`Engine::step`] asks the suggester for as
//! many configurations as there are free slots, stores each trial before
//! launching it, reads the running trials' metrics, applies the
//! early-stopping rule, records outcomes and decides completion.
//!
//! It knows storage, trial execution and metric collection only through
//! the [`Store`], [`Runner`] and [`Collector`] traits, so `ktune run` (SQLite
//! or PostgreSQL, local processes, stdout/file/Prometheus/Push collectors)
//! and the Kubernetes controller drive the same loop.
//!
//! Crash safety: trials are inserted under deterministic names before they
//! are launched, and every write is idempotent or conditional, so an engine
//! killed at any moment and opened again restarts the trials that were
//! pending or running, keeps every stored observation and duplicates
//! nothing.

use std::collections::BTreeMap;

use ktune_algorithms::history::{Observation, TrialRecord, TrialState};
use ktune_algorithms::stopping::StopDecision;
use ktune_algorithms::suggest::{AlgorithmState, SuggestRequest};
use serde_json::Value;

use super::decide::{Budget, Completion, Counts, completion, trials_to_start};
use super::events::{BestTrial, Event, RunSummary};
use super::resume::{SpecChange, compare_specs};
use super::tail;
use crate::api::PreparedExperiment;
use crate::api::enums::{MetricStrategyType, ResumePolicy};
use crate::api::experiment::TrialTemplate;
use crate::api::load::ConfigMaps;
use crate::api::plan::{ExperimentPlan, PlanError};
use crate::api::template::{TemplateError, render, resolve_template};
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::reduce::{objective_value, reduce};
use crate::metrics::{MetricLog, parse_number};
use crate::runner::{Exit, LaunchRequest, Runner, TrialRun};
use crate::store::{
    ExperimentState, NewTrial, ObservationRow, Store, StoreError, TrialOutcome, TrialRow,
};

/// Why the engine could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The experiment cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trial template could not be rendered.
    #[error("trial template: {0}")]
    Template(#[from] TemplateError),
    /// The algorithm failed.
    #[error("algorithm: {0}")]
    Algorithm(#[from] ktune_algorithms::AlgorithmError),
    /// The experiment exists with a different search.
    #[error(
        "experiment {name:?} already exists with a different {}; Katib lets a resumed experiment change only its trial budget (maxTrialCount, parallelTrialCount, maxFailedTrialCount). Rename the experiment, or use another --db",
        fields.join(", ")
    )]
    SpecChanged {
        /// The experiment.
        name: String,
        /// The `spec` fields that differ.
        fields: Vec<String>,
    },
}

/// What the engine needs besides the experiment itself.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Seed for the suggester (its `random_state` setting overrides it).
    pub seed: u64,
    /// GPU ids to share out: each running trial gets one of them as
    /// `CUDA_VISIBLE_DEVICES`, and trials wait while all are busy. Empty:
    /// no GPU accounting.
    pub gpus: Vec<String>,
    /// The experiment's key in the store; its name when `None`. The
    /// controller keys by namespace, name and uid, so a deleted and
    /// re-created experiment starts afresh.
    pub store_key: Option<String>,
}

/// A running trial and what has been read of it.
#[derive(Debug)]
struct Live<T, M> {
    row: TrialRow,
    run: T,
    metrics: M,
    /// This attempt's reports, for the metric strategy.
    logs: Vec<MetricLog>,
    /// The last stored step per metric (a restarted trial continues after
    /// its earlier attempt's steps, so nothing stored is shadowed).
    steps: BTreeMap<String, i64>,
    /// This attempt's objective reports, as the stopping rule reads them.
    series: Vec<Observation>,
    /// Reports per metric to drop because they were stored before: an
    /// adopted trial's metrics source replays them.
    replayed: BTreeMap<String, i64>,
    /// How many of `series` the stopping rule has judged (`judge`).
    judged: usize,
    gpu: Option<String>,
    /// What is read but not yet stored.
    pending: Unstored,
}

/// What the engine knows of a running trial that the store does not yet
/// (it failed when written): kept with the trial and written in a later
/// round, so a store outage stops no trial and loses no report.
#[derive(Debug, Default)]
struct Unstored {
    /// Reports read but not stored.
    reports: Vec<ObservationRow>,
    /// Its metrics source was read to the end (it ended).
    drained: bool,
    /// How it ended (and why it was stopped early), until that is stored.
    ended: Option<(Exit, Option<String>)>,
    /// It was stopped because the run was interrupted: it goes back to
    /// Pending, to run again on resume.
    interrupted: bool,
}

/// One experiment being driven to completion.
#[derive(Debug)]
pub struct Engine<'a, S: Store, R: Runner, C: Collector> {
    store: &'a S,
    runner: &'a R,
    collector: &'a C,
    options: EngineOptions,
    plan: ExperimentPlan,
    name: String,
    namespace: String,
    template: TrialTemplate,
    workload: Value,
    strategy: MetricStrategyType,
    budget: Budget,
    experiment_id: i64,
    rows: Vec<TrialRow>,
    live: Vec<Live<R::Trial, C::Trial>>,
    /// Objective reports of trials that ended.
    finished: BTreeMap<String, Vec<Observation>>,
    algorithm_state: Option<AlgorithmState>,
    state_version: i64,
    exhausted: bool,
    done: Option<Completion>,
    /// Set when the experiment had finished before and its resumePolicy
    /// (Never) forbids running it again: every step reports that outcome.
    closed: Option<(ExperimentState, String)>,
    /// Whether a trial was added or changed state since the last decisions:
    /// the store is read and the budget decided only then.
    changed: bool,
    /// How long the algorithm's calls took since the last
    /// [`Engine::take_suggest_seconds`] (for the controller's /metrics).
    suggest_seconds: Vec<f64>,
    /// What earlier runs left (trials done, trials to run again), told at
    /// the first step of a resumed experiment.
    resumed: Option<(usize, usize)>,
    /// Trials this run's interruption sent back to Pending.
    interrupted: usize,
}

/// How many failed trials a run's summary quotes.
const FAILURES_SHOWN: usize = 3;

/// The stored message of a trial an interrupted run stopped.
const INTERRUPTED: &str = "the run was interrupted while the trial ran; it runs again, under the same name and folder, when the experiment is resumed";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<'a, S: Store, R: Runner, C: Collector> Engine<'a, S, R, C> {
    /// Opens an experiment: stores it if new, or resumes it — trials that
    /// were running when an earlier run died are stopped (what is left of
    /// them) and will run again; a finished experiment runs on only if its
    /// `resumePolicy` allows (LongRunning or FromVolume) and its budget was
    /// raised.
    ///
    /// # Errors
    /// [`EngineError`] when the experiment cannot be planned, changed its
    /// search since it was stored, or the store fails.
    pub async fn open(
        prepared: &PreparedExperiment,
        configmaps: &ConfigMaps,
        store: &'a S,
        runner: &'a R,
        collector: &'a C,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        let experiment = &prepared.experiment;
        let plan = ExperimentPlan::new(experiment, &prepared.report)?;
        let name = prepared.name().to_owned();
        let namespace = experiment
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let template = experiment.spec.trial_template.clone().unwrap_or_default();
        let workload = resolve_template(&template, configmaps)?;
        let strategy = objective_strategy(prepared);
        let budget = Budget {
            parallel_trial_count: plan.parallel_trial_count,
            max_trial_count: plan.max_trial_count,
            max_failed_trial_count: plan.max_failed_trial_count,
        };
        let spec = serde_json::to_value(experiment).unwrap_or_default();
        let key = options.store_key.clone().unwrap_or_else(|| name.clone());
        let (record, created) = store.create_experiment(&key, &spec, now_ms()).await?;
        if !created {
            match compare_specs(&record.spec, &spec) {
                SpecChange::Same => {}
                SpecChange::Allowed => store.set_experiment_spec(record.id, &spec).await?,
                SpecChange::Forbidden(fields) => {
                    return Err(EngineError::SpecChanged { name, fields });
                }
            }
        }
        let mut engine = Self {
            store,
            runner,
            collector,
            options,
            plan,
            name,
            namespace,
            template,
            workload,
            strategy,
            budget,
            experiment_id: record.id,
            rows: Vec::new(),
            live: Vec::new(),
            finished: BTreeMap::new(),
            algorithm_state: record.algorithm_state.clone(),
            state_version: record.algorithm_state_version,
            exhausted: false,
            done: None,
            closed: None,
            changed: true,
            suggest_seconds: Vec::new(),
            resumed: None,
            interrupted: 0,
        };
        let finished = matches!(
            record.state,
            ExperimentState::Succeeded | ExperimentState::Failed
        );
        let policy = experiment
            .spec
            .resume_policy
            .clone()
            .unwrap_or(ResumePolicy::Never);
        if finished && policy == ResumePolicy::Never {
            engine.closed = Some((record.state, record.reason.clone()));
            return Ok(engine);
        }
        let (done, rerun) = engine.resume_trials().await?;
        if !created && done + rerun > 0 {
            engine.resumed = Some((done, rerun));
        }
        if record.state != ExperimentState::Running {
            store
                .set_experiment_state(
                    record.id,
                    ExperimentState::Running,
                    "ExperimentRunning",
                    None,
                )
                .await?;
        }
        Ok(engine)
    }

    /// Loads the reports of ended trials, and sends the trials an earlier
    /// run left running back to Pending. Returns how many had ended and
    /// how many are to run (again).
    async fn resume_trials(&mut self) -> Result<(usize, usize), EngineError> {
        let (mut done, mut rerun) = (0, 0);
        for row in self.store.trials(self.experiment_id).await? {
            if row.state.is_terminal() {
                done += 1;
                let stored = self.store.observations(row.id).await?;
                self.finished.insert(
                    row.name.clone(),
                    objective_series(&stored, &self.plan.objective.metric),
                );
                continue;
            }
            rerun += 1;
            self.runner.reap(&row.name);
            if row.state == TrialState::Running {
                let outcome = TrialOutcome {
                    state: TrialState::Pending,
                    reason: "Restarted".into(),
                    message: "ktune was interrupted while the trial ran; it runs again".into(),
                    objective: None,
                    at: now_ms(),
                };
                self.store
                    .transition(row.id, &[TrialState::Running], &outcome)
                    .await?;
            }
        }
        Ok((done, rerun))
    }

    /// The experiment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether something changed that the next [`step`](Self::step) should
    /// act on at once, without waiting for trials.
    #[must_use]
    pub fn needs_step(&self) -> bool {
        self.changed && self.closed.is_none()
    }

    /// How many trials are running now.
    #[must_use]
    pub fn running(&self) -> usize {
        self.live.len()
    }

    /// One round: read the running trials, record those that ended or were
    /// stopped early, and — when anything changed — decide completion, ask
    /// for new trials and launch what is pending. Returns the summary once
    /// the experiment is complete and nothing runs any more.
    ///
    /// # Errors
    /// [`EngineError`] when the store or the algorithm fails.
    pub async fn step(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<RunSummary>, EngineError> {
        if let Some((state, reason)) = self.closed.clone() {
            return Ok(Some(self.summary_now(state, &reason).await?));
        }
        if let Some((done, rerun)) = self.resumed.take() {
            on_event(Event::Resumed {
                experiment: self.name.clone(),
                done,
                rerun,
            });
        }
        self.watch(on_event).await?;
        if !self.changed {
            return Ok(None);
        }
        self.changed = false;
        let decided = self.decide(on_event).await;
        // Decided nothing: the next step decides again.
        self.changed |= decided.is_err();
        decided
    }

    /// Stops every running trial and sends it back to Pending with its
    /// reports (one that had already ended is recorded as it ended): the
    /// experiment stays Running, so opening it again runs those trials
    /// again under their names and folders (a trainer that checkpoints
    /// into `KTUNE_TRIAL_DIR` continues), as after a crash, and they do
    /// not count toward the budget. The trials are stopped together (one
    /// grace period in all). Every trial is stopped even when the store
    /// fails; the first failure is returned, and the trials not recorded
    /// run again on resume all the same.
    ///
    /// # Errors
    /// [`EngineError`] when the store fails.
    pub async fn interrupt(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<RunSummary, EngineError> {
        let mut live = std::mem::take(&mut self.live);
        futures::future::join_all(live.iter_mut().filter(|l| l.pending.ended.is_none()).map(
            |l| async {
                l.run.stop().await;
                l.pending.ended = Some((Exit::Stopped, None));
                l.pending.interrupted = true;
            },
        ))
        .await;
        let mut failure = None;
        for mut l in live {
            if failure.is_none()
                && let Err(e) = self.record_end(&mut l, on_event).await
            {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let (state, reason) = self
            .closed
            .clone()
            .unwrap_or((ExperimentState::Running, String::new()));
        self.summary_now(state, &reason).await
    }

    /// Records a trial stopped by the run's interruption: its last reports
    /// are stored and it is Pending again, to run on resume.
    async fn requeue(
        &mut self,
        l: &mut Live<R::Trial, C::Trial>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let outcome = TrialOutcome {
            state: TrialState::Pending,
            reason: "Interrupted".into(),
            message: INTERRUPTED.into(),
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(l.row.id, &[TrialState::Running], &outcome)
            .await?;
        self.collector.detach(&l.row.name);
        self.interrupted += 1;
        on_event(Event::Interrupted {
            trial: l.row.name.clone(),
        });
        Ok(())
    }

    /// Stops every running trial and writes nothing: for a driver that
    /// lost the experiment to another (whose rows they are now), or that
    /// cannot reach the store (the trials run again on resume).
    pub async fn abandon(&mut self) {
        let mut live = std::mem::take(&mut self.live);
        // Together, as `interrupt` does: one grace period in all.
        futures::future::join_all(live.iter_mut().map(|l| l.run.stop())).await;
        for l in &live {
            self.collector.detach(&l.row.name);
        }
    }

    async fn summary_now(
        &mut self,
        state: ExperimentState,
        reason: &str,
    ) -> Result<RunSummary, EngineError> {
        self.rows = self.store.trials(self.experiment_id).await?;
        if self.finished.is_empty() {
            for row in self.rows.iter().filter(|r| r.state.is_terminal()) {
                let stored = self.store.observations(row.id).await?;
                self.finished.insert(
                    row.name.clone(),
                    objective_series(&stored, &self.plan.objective.metric),
                );
            }
        }
        let history = self.history();
        Ok(self.summary(&history, state, reason))
    }

    async fn decide(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<RunSummary>, EngineError> {
        self.rows = self.store.trials(self.experiment_id).await?;
        let history = self.history();
        on_event(Event::Progress {
            counts: Counts::of(&history),
        });
        if self.done.is_none() {
            self.done = completion(&self.budget, &self.plan.objective, &history, self.exhausted);
        }
        if let Some(reason) = self.done {
            if !self.live.is_empty() {
                return Ok(None);
            }
            let state = if reason.succeeded() {
                ExperimentState::Succeeded
            } else {
                ExperimentState::Failed
            };
            self.store
                .set_experiment_state(self.experiment_id, state, reason.reason(), Some(now_ms()))
                .await?;
            return Ok(Some(self.summary(&history, state, reason.reason())));
        }
        let wanted = usize::try_from(trials_to_start(&self.budget, &history)).unwrap_or(0);
        if !self.exhausted && wanted > 0 {
            self.suggest(&history, wanted).await?;
        }
        self.launch_pending(on_event).await
    }

    /// Asks the algorithm for `count` trials and stores them as Pending.
    async fn suggest(&mut self, history: &[TrialRecord], count: usize) -> Result<(), EngineError> {
        let request = SuggestRequest {
            space: &self.plan.space,
            objective: &self.plan.objective,
            history,
            count,
            seed: self.options.seed,
            state: self.algorithm_state.as_ref(),
        };
        let started = std::time::Instant::now();
        let suggestions = self.plan.suggester.suggest(&request);
        self.suggest_seconds.push(started.elapsed().as_secs_f64());
        let suggestions = suggestions?;
        self.exhausted = suggestions.exhausted;
        // Exhaustion ends the experiment once nothing runs: look again.
        self.changed |= suggestions.exhausted;
        if let Some(new_state) = suggestions.state {
            // The state is a cache the algorithm can rebuild from history,
            // so a save lost to another writer costs only speed.
            if self
                .store
                .save_algorithm_state(self.experiment_id, self.state_version, &new_state)
                .await?
            {
                self.state_version += 1;
            }
            self.algorithm_state = Some(new_state);
        }
        let first = self.rows.len();
        let new: Vec<NewTrial> = suggestions
            .suggestions
            .into_iter()
            .enumerate()
            .map(|(i, s)| NewTrial {
                name: format!("{}-{:04}", self.name, first + i + 1),
                assignment: s.assignment.to_katib_strings(),
                labels: s.labels,
            })
            .collect();
        if self
            .store
            .insert_trials(self.experiment_id, &new, now_ms())
            .await?
            > 0
        {
            self.rows = self.store.trials(self.experiment_id).await?;
        }
        Ok(())
    }

    /// Launches the pending trials (new ones, and those of an interrupted
    /// run) while slots and GPUs last.
    async fn launch_pending(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<RunSummary>, EngineError> {
        let pending: Vec<TrialRow> = self
            .rows
            .iter()
            .filter(|r| r.state == TrialState::Pending)
            .filter(|r| !self.live.iter().any(|l| l.row.id == r.id))
            .cloned()
            .collect();
        for row in pending {
            let gpu = self
                .options
                .gpus
                .iter()
                .find(|g| !self.live.iter().any(|l| l.gpu.as_ref() == Some(*g)))
                .cloned();
            if !self.options.gpus.is_empty() && gpu.is_none() {
                break; // every GPU is busy: the trial waits, pending
            }
            self.launch(row, gpu, on_event).await?;
        }
        Ok(None)
    }

    /// Renders and starts one pending trial; one that cannot start is
    /// recorded as Failed.
    async fn launch(
        &mut self,
        row: TrialRow,
        gpu: Option<String>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let values: BTreeMap<String, String> = row.assignment.iter().cloned().collect();
        let trial_parameters = self
            .template
            .trial_parameters
            .as_deref()
            .unwrap_or_default();
        // A trial whose template cannot be rendered (a value the template
        // cannot take) fails alone; the experiment goes on.
        let rendered = match render(
            &self.workload,
            trial_parameters,
            &values,
            &row.name,
            &self.namespace,
        ) {
            Ok(rendered) => rendered,
            Err(e) => {
                let message = format!("trial template: {e}");
                return self
                    .fail_to_start(row, "TemplateRenderFailed", message, on_event)
                    .await;
            }
        };
        let mut env = Vec::new();
        if let Some(gpu) = &gpu {
            env.push(("CUDA_VISIBLE_DEVICES".to_owned(), gpu.clone()));
        }
        env.extend([
            ("KTUNE_EXPERIMENT".to_owned(), self.name.clone()),
            ("KTUNE_TRIAL_NAME".to_owned(), row.name.clone()),
            ("KATIB_TRIAL_NAME".to_owned(), row.name.clone()),
            (
                "KTUNE_PARAMETERS".to_owned(),
                serde_json::to_string(&values).unwrap_or_default(),
            ),
        ]);
        env.extend(self.collector.prepare(&row.name));
        // A restarted trial's reports continue after those already stored.
        let mut steps = BTreeMap::new();
        let mut stored: BTreeMap<String, i64> = BTreeMap::new();
        let mut earlier: Vec<MetricLog> = Vec::new();
        if row.started_at.is_some() {
            for o in self.store.observations(row.id).await? {
                *stored.entry(o.metric.clone()).or_insert(0) += 1;
                earlier.push(MetricLog {
                    name: o.metric.clone(),
                    value: o.value.clone(),
                    time: o
                        .time
                        .and_then(|t| jiff::Timestamp::from_millisecond(t).ok()),
                });
                let last = steps.entry(o.metric).or_insert(0);
                *last = o.step.max(*last);
            }
        }
        let request = LaunchRequest {
            trial: &row.name,
            workload: &rendered,
            env,
        };
        match self.runner.launch(&request).await {
            Ok(run) => {
                on_event(Event::Started {
                    trial: row.name.clone(),
                    parameters: row.assignment.clone(),
                });
                let metrics = self.collector.attach(&row.name, &run);
                // An adopted trial (still running after a restart) ends
                // with all its reports counted, those stored before too;
                // a source that delivers them again (a log read from its
                // start) has that many of each metric skipped.
                let adopted = run.adopted();
                let replayed = if adopted && metrics.replays() {
                    stored
                } else {
                    BTreeMap::new()
                };
                let logs = if adopted { earlier } else { Vec::new() };
                let id = row.id;
                self.live.push(Live {
                    row,
                    run,
                    metrics,
                    logs,
                    steps,
                    series: Vec::new(),
                    replayed,
                    judged: 0,
                    gpu,
                    pending: Unstored::default(),
                });
                // What callers read between decisions (the controller's
                // status) must show it running now.
                self.store_running(id).await?;
                Ok(())
            }
            Err(e) => {
                self.collector.detach(&row.name);
                self.fail_to_start(row, "LaunchFailed", e.to_string(), on_event)
                    .await
            }
        }
    }

    /// Records a pending trial that could not be started as Failed.
    async fn fail_to_start(
        &mut self,
        row: TrialRow,
        reason: &str,
        message: String,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        on_event(Event::Finished {
            trial: row.name.clone(),
            state: TrialState::Failed,
            objective: None,
            reason: format!("could not start: {message}"),
        });
        let outcome = TrialOutcome {
            state: TrialState::Failed,
            reason: reason.into(),
            message,
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(row.id, &[TrialState::Pending], &outcome)
            .await?;
        self.changed = true;
        Ok(())
    }

    /// Reads the running trials' new reports, stops those the rule says
    /// to stop, and records the trials that ended.
    ///
    /// A store failure stops no trial and loses nothing: what could not be
    /// written stays with its trial (reports, how it ended) for a later
    /// round. Every trial is still read and polled; no more writes are
    /// tried this round, and the first failure is returned.
    async fn watch(&mut self, on_event: &mut (dyn FnMut(Event) + Send)) -> Result<(), EngineError> {
        let mut failure = self.record_launches().await.err();
        let mut grew = Vec::with_capacity(self.live.len());
        let mut live = std::mem::take(&mut self.live);
        for l in &mut live {
            grew.push(self.read_reports(l, false, on_event).await);
            if failure.is_none()
                && let Err(e) = self.store_reports(l).await
            {
                failure = Some(e);
            }
        }
        self.live = live;
        // The history the stopping rule compares against: built at most
        // once a round, and only when some trial reported new objective values.
        let peers =
            (self.plan.early_stopping.is_some() && grew.contains(&true)).then(|| self.history());
        let mut still = Vec::with_capacity(self.live.len());
        for (mut l, grew) in std::mem::take(&mut self.live).into_iter().zip(grew) {
            if l.pending.ended.is_none() {
                l.pending.ended = self.poll_end(&mut l, grew, peers.as_deref()).await;
            }
            if l.pending.ended.is_none() || failure.is_some() {
                still.push(l);
                continue;
            }
            if let Err(e) = self.record_end(&mut l, on_event).await {
                failure = Some(e);
                still.push(l);
            }
        }
        self.live.extend(still);
        failure.map_or(Ok(()), Err)
    }

    /// Whether a running trial ended, or is to be stopped now because the
    /// early-stopping rule says so (it is then stopped): how, and why.
    async fn poll_end(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
        grew: bool,
        peers: Option<&[TrialRecord]>,
    ) -> Option<(Exit, Option<String>)> {
        let exit = l.run.poll().await;
        if exit.is_none()
            && grew
            && let Some(history) = peers
            && let Some(reason) = self.judge(l, history)
        {
            l.run.stop().await;
            return Some((Exit::Stopped, Some(reason)));
        }
        exit.map(|e| (e, None))
    }

    /// Judges a trial's objective reports not judged yet one at a time, as
    /// Katib's collector does line by line: the first after which the
    /// stopping rule says stop gives the reason. Judging each report, not
    /// each batch that one poll happened to read, makes the decision
    /// independent of how often reports are read (every 100 ms from a local
    /// pipe, every controller tick from a pod's log) and of whether the
    /// trial ended between two polls: both backends decide alike.
    fn judge(&self, l: &mut Live<R::Trial, C::Trial>, history: &[TrialRecord]) -> Option<String> {
        let rule = self.plan.early_stopping.as_ref()?;
        let mut me = history.iter().find(|t| t.name == l.row.name)?.clone();
        me.state = TrialState::Running;
        me.observations = l.series.iter().take(l.judged).copied().collect();
        while let Some(next) = l.series.get(l.judged) {
            me.observations.push(*next);
            l.judged += 1;
            if let StopDecision::Stop { reason } = rule.evaluate(&me, history, &self.plan.objective)
            {
                return Some(reason);
            }
        }
        None
    }

    /// Stores Running for launched trials whose start could not be stored
    /// (the store failed just after the launch): their rows still say Pending.
    async fn record_launches(&mut self) -> Result<(), EngineError> {
        let unrecorded: Vec<i64> = self
            .live
            .iter()
            .map(|l| l.row.id)
            .filter(|id| {
                self.rows
                    .iter()
                    .any(|r| r.id == *id && r.state == TrialState::Pending)
            })
            .collect();
        for id in unrecorded {
            self.store_running(id).await?;
        }
        Ok(())
    }

    /// Stores that a launched trial runs, and shows it so in `rows`.
    async fn store_running(&mut self, id: i64) -> Result<(), EngineError> {
        let running = TrialOutcome {
            state: TrialState::Running,
            reason: "TrialRunning".into(),
            message: String::new(),
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(id, &[TrialState::Pending], &running)
            .await?;
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
            r.state = TrialState::Running;
            r.started_at.get_or_insert(running.at);
        }
        Ok(())
    }

    /// Reads a running trial's new reports (its last ones when `last`),
    /// numbers them and keeps them to be stored; returns whether the
    /// objective got new values.
    async fn read_reports(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
        last: bool,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> bool {
        if l.pending.drained {
            return false;
        }
        let mut logs = if last {
            l.pending.drained = true;
            l.metrics.finish().await
        } else {
            l.metrics.poll().await
        };
        if !l.replayed.is_empty() {
            logs.retain(|log| match l.replayed.get_mut(&log.name) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    false
                }
                _ => true,
            });
        }
        if logs.is_empty() {
            return false;
        }
        let rows: Vec<ObservationRow> = logs
            .iter()
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
            .collect();
        let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
        for log in &logs {
            latest.insert(&log.name, &log.value);
        }
        on_event(Event::Reported {
            trial: l.row.name.clone(),
            latest: latest
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        });
        l.logs.extend(logs);
        let before = l.series.len();
        l.series
            .extend(objective_series(&rows, &self.plan.objective.metric));
        l.pending.reports.extend(rows);
        l.series.len() > before
    }

    /// Stores a trial's reports not stored yet. Storing is idempotent (a
    /// (metric, step) stored before is kept), so a write that failed after
    /// the database committed it is simply written again.
    async fn store_reports(&self, l: &mut Live<R::Trial, C::Trial>) -> Result<(), EngineError> {
        if !l.pending.reports.is_empty() {
            self.store
                .append_observations(l.row.id, &l.pending.reports)
                .await?;
            l.pending.reports.clear();
        }
        Ok(())
    }

    /// Reads an ended trial's last reports and records how it ended. On a
    /// store failure the trial keeps what is left to write, for a retry.
    async fn record_end(
        &mut self,
        l: &mut Live<R::Trial, C::Trial>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let Some((exit, stop_reason)) = l.pending.ended.clone() else {
            return Ok(());
        };
        self.read_reports(l, true, on_event).await;
        // Reports read only with the end are judged too: had they come a
        // poll earlier, the rule would have stopped the trial.
        let stop_reason = match stop_reason {
            None if !l.pending.interrupted && self.plan.early_stopping.is_some() => {
                let reason = self.judge(l, &self.history());
                l.pending.ended = Some((exit.clone(), reason.clone()));
                reason
            }
            given => given,
        };
        self.store_reports(l).await?;
        if l.pending.interrupted {
            return self.requeue(l, on_event).await;
        }
        let objective = objective_value(
            &reduce(&self.plan.objective.metric, &l.logs),
            &self.strategy,
        );
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
                    self.plan.objective.metric
                ),
            ),
            (other, None) => (
                TrialState::Failed,
                "TrialFailed".to_owned(),
                tail::with_stderr(
                    &other.reason(),
                    &l.row.name,
                    &l.run.stderr().map(tail::last_lines).unwrap_or_default(),
                ),
            ),
        };
        let outcome = TrialOutcome {
            state,
            reason: reason.clone(),
            message: message.clone(),
            objective,
            at: now_ms(),
        };
        self.store
            .transition(l.row.id, &[TrialState::Running], &outcome)
            .await?;
        self.collector.detach(&l.row.name);
        self.finished
            .insert(l.row.name.clone(), std::mem::take(&mut l.series));
        self.changed = true;
        on_event(Event::Finished {
            trial: l.row.name.clone(),
            state,
            objective: outcome.objective,
            reason: if message.is_empty() { reason } else { message },
        });
        Ok(())
    }

    /// The trials as the algorithms see them.
    fn history(&self) -> Vec<TrialRecord> {
        self.rows
            .iter()
            .filter_map(|row| {
                let assignment = self
                    .plan
                    .space
                    .parse_assignment(row.assignment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .ok()?;
                let mut record = TrialRecord::new(row.name.clone(), assignment);
                record.labels = row.labels.clone();
                record.state = row.state;
                record.objective = row.objective;
                record.observations = match self.live.iter().find(|l| l.row.id == row.id) {
                    Some(l) => {
                        record.state = TrialState::Running;
                        l.series.clone()
                    }
                    None => self.finished.get(&row.name).cloned().unwrap_or_default(),
                };
                Some(record)
            })
            .collect()
    }

    /// How long each call of the algorithm took (seconds) since the last
    /// take: the controller's suggestion-latency histogram reads it.
    pub fn take_suggest_seconds(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.suggest_seconds)
    }

    /// The trials as last read from the store.
    #[must_use]
    pub fn trials(&self) -> &[TrialRow] {
        &self.rows
    }

    /// The best trial so far.
    #[must_use]
    pub fn best(&self) -> Option<BestTrial> {
        self.best_of(&self.history())
    }

    fn best_of(&self, history: &[TrialRecord]) -> Option<BestTrial> {
        self.plan.objective.best_trial(history).and_then(|t| {
            let row = self.rows.iter().find(|r| r.name == t.name)?;
            Some(BestTrial {
                name: t.name.clone(),
                parameters: row.assignment.clone(),
                objective: t.finite_objective()?,
            })
        })
    }

    fn summary(&self, history: &[TrialRecord], state: ExperimentState, reason: &str) -> RunSummary {
        let best = self.best_of(history);
        RunSummary {
            state,
            reason: reason.to_owned(),
            counts: Counts::of(history),
            best,
            closed: self.closed.is_some(),
            failures: self.failures(),
            interrupted: self.interrupted,
        }
    }

    /// The last few failed trials and their messages, for the summary.
    fn failures(&self) -> Vec<(String, String)> {
        let failed: Vec<&TrialRow> = self
            .rows
            .iter()
            .filter(|r| r.state == TrialState::Failed)
            .collect();
        failed[failed.len().saturating_sub(FAILURES_SHOWN)..]
            .iter()
            .map(|r| (r.name.clone(), r.message.clone()))
            .collect()
    }
}

fn objective_strategy(prepared: &PreparedExperiment) -> MetricStrategyType {
    prepared
        .experiment
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
