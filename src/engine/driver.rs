//! `ktune run`'s loop: the [`Engine`] over the local runner (trials as
//! process groups under `<trials_root>/<experiment>/`) and the local
//! collectors, stepping whenever a trial process exits (SIGCHLD) and at
//! least every [`TICK`] to read metrics, until the experiment completes or
//! `shutdown` resolves.

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Engine, EngineError, EngineOptions, Event, RunSummary};
use crate::api::load::ConfigMaps;
use crate::api::{Experiment, PreparedExperiment};
use crate::metrics::collector::{CollectorError, LocalCollector};
use crate::runner::host::LocalRunner;
use crate::store::Store;

/// How often running trials' metrics are read when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

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

/// Why a local run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The engine stopped.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The metrics collector cannot be set up.
    #[error(transparent)]
    Collector(#[from] CollectorError),
}

/// Runs (or resumes) an experiment to completion, or until `shutdown`
/// resolves (running trials are then stopped and recorded as Killed, and
/// the experiment stays resumable).
///
/// # Errors
/// [`DriverError`] when the experiment cannot be planned or run.
// Every log line of the run names its experiment (a field of the span, in
// JSON logs). ERROR level so that the span is enabled whatever level
// `KTUNE_LOG` lets through (a span's level only gates the span).
#[tracing::instrument(level = "error", name = "experiment", skip_all, fields(experiment = %prepared.name()))]
pub async fn run<S: Store>(
    prepared: &PreparedExperiment,
    configmaps: &ConfigMaps,
    store: &S,
    options: &RunOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, DriverError> {
    let experiment = &prepared.experiment;
    let name = prepared.name();
    let runner = LocalRunner {
        trials_dir: options.trials_root.join(name),
        working_dir: options.working_dir.clone(),
        primary: experiment
            .spec
            .trial_template
            .as_ref()
            .and_then(|t| t.primary_container_name.clone())
            .unwrap_or_default(),
        timeout: options.trial_timeout,
        log_limit: options.log_limit,
        stop_grace: options.stop_grace,
    };
    let collector = LocalCollector::start(experiment, &metric_names(experiment)).await?;
    let images = container_images(experiment);
    if !images.is_empty() {
        tracing::warn!(
            "container images are ignored by `ktune run` ({}): each trial runs its container's command on this machine",
            images.join(", ")
        );
    }
    let engine_options = EngineOptions {
        seed: options.seed,
        gpus: options.gpus.clone(),
        store_key: None,
    };
    let mut engine = Engine::open(
        prepared,
        configmaps,
        store,
        &runner,
        &collector,
        engine_options,
    )
    .await?;
    // Woken as soon as a trial process exits, so a short trial costs no
    // polling delay; without the signal (never expected) the tick still works.
    let mut exits = signal(SignalKind::child()).ok();
    tokio::pin!(shutdown);
    loop {
        if let Some(summary) = engine.step(on_event).await? {
            return Ok(summary);
        }
        if engine.needs_step() {
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return Ok(engine.interrupt(on_event).await?),
            () = child_exited(exits.as_mut()) => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn child_exited(exits: Option<&mut Signal>) {
    match exits {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The distinct `image`s of the trial template's containers.
fn container_images(experiment: &Experiment) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(image)) = map.get("image")
                    && !found.contains(image)
                {
                    found.push(image.clone());
                }
                map.values().for_each(|v| walk(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Some(spec) = experiment
        .spec
        .trial_template
        .as_ref()
        .and_then(|t| t.trial_spec.as_ref())
    {
        walk(spec, &mut found);
    }
    found
}

/// The objective and additional metrics: what the collectors look for.
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
