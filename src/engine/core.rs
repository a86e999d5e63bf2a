//! The [`Engine`]: one experiment being driven to completion. Each
//! [`Engine::step`] asks the suggester for as many configurations as there
//! are free slots, stores each trial before launching it, reads the running
//! trials' metrics, applies the early-stopping rule, records outcomes and
//! decides completion.
//!
//! It knows storage, trial execution and metric collection only through
//! the [`Store`], [`Runner`] and [`Collector`] traits, so `ktune run` (SQLite
//! or PostgreSQL, local processes, stdout/file/Prometheus/Push collectors)
//! and the Kubernetes controller drive the same loop, and the unit tests
//! drive it over in-memory fakes.
//!
//! Crash safety: trials are inserted under deterministic names before they
//! are launched, and every write is idempotent or conditional, so an engine
//! killed at any moment and opened again restarts the trials that were
//! pending or running, keeps every stored observation and duplicates
//! nothing.
//!
//! The engine's work is split by job, one module each: [`super::open`]
//! (storing or resuming the experiment), [`super::round`] (one step and
//! its decisions), [`super::suggest`] (new trials), [`super::launch`]
//! (starting them), [`super::watch`] (reading them while they run),
//! [`super::record`] (recording how they ended) and [`super::history`]
//! (the trials as the algorithms see them).

use std::collections::BTreeMap;

use ktune_algorithms::history::Observation;
use ktune_algorithms::suggest::AlgorithmState;

use super::decide::{Budget, Completion};
use super::events::BestTrial;
use super::live::Live;
use crate::api::enums::MetricStrategyType;
use crate::api::plan::{ExperimentPlan, PlanError};
use crate::api::template::{ResolvedTemplate, TemplateError};
use crate::metrics::collector::Collector;
use crate::runner::Runner;
use crate::store::{ExperimentState, Store, StoreError, TrialRow};

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

/// What the engine knows of its experiment, fixed once it is open.
#[derive(Debug)]
pub(super) struct Setup {
    /// The search: space, objective, suggester, stopping rule, budget.
    pub(super) plan: ExperimentPlan,
    /// The experiment's name (trials are named after it).
    pub(super) name: String,
    /// The trial template, ready to render.
    pub(super) template: ResolvedTemplate,
    /// How the objective metric's reports reduce to its value.
    pub(super) strategy: MetricStrategyType,
    /// The trial budget.
    pub(super) budget: Budget,
    /// The experiment's id in the store.
    pub(super) experiment_id: i64,
}

/// One experiment being driven to completion.
#[derive(Debug)]
pub struct Engine<'a, S: Store, R: Runner, C: Collector> {
    pub(super) store: &'a S,
    pub(super) runner: &'a R,
    pub(super) collector: &'a C,
    pub(super) options: EngineOptions,
    pub(super) setup: Setup,
    /// The trials as last read from the store (with the starts written since).
    pub(super) rows: Vec<TrialRow>,
    /// The trials running now.
    pub(super) live: Vec<Live<R::Trial, C::Trial>>,
    /// Objective reports of trials that ended.
    pub(super) finished: BTreeMap<String, Vec<Observation>>,
    pub(super) algorithm_state: Option<AlgorithmState>,
    pub(super) state_version: i64,
    /// The suggester said the search space is exhausted.
    pub(super) exhausted: bool,
    /// Why the experiment is complete, once it is (it still waits for its
    /// running trials).
    pub(super) done: Option<Completion>,
    /// Set when the experiment had finished before and its resumePolicy
    /// (Never) forbids running it again: every step reports that outcome.
    pub(super) closed: Option<(ExperimentState, String)>,
    /// Whether a trial was added or changed state since the last decisions:
    /// the store is read and the budget decided only then.
    pub(super) changed: bool,
    /// How long the algorithm's calls took since the last
    /// [`Engine::take_suggest_seconds`] (for the controller's /metrics).
    pub(super) suggest_seconds: Vec<f64>,
    /// What earlier runs left (trials done, trials to run again), told at
    /// the first step of a resumed experiment.
    pub(super) resumed: Option<(usize, usize)>,
    /// Trials this run's interruption sent back to Pending.
    pub(super) interrupted: usize,
}

/// Now, in Unix milliseconds (what the store records).
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// The experiment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.setup.name
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
}
