//! The Experiment reconciler and the per-experiment worker.
//!
//! Reconciling an Experiment makes sure one worker runs the shared
//! [`Engine`] for it — in-process suggesters, no suggestion deployment, no
//! gRPC timeout — and, through a finalizer, stops that worker when the
//! Experiment is deleted. The worker steps the engine over the cluster
//! runner ([`ClusterRunner`]: Trial objects, whose workloads the trial
//! reconciler creates) and the experiment's collector, and writes what
//! happens to the Experiment's and Trials' status and as Events.
//!
//! The worker does not poll the API: it reads its trials and their
//! workloads from the controller's watch caches, and steps when one of
//! them changes (see [`super::watch`]). While trials run it also steps
//! every tick, which reads their metrics from the collectors in-process
//! (log streams, pushes) at no API cost; otherwise it sleeps until a
//! change, or [`RESYNC`] at most.
//!
//! A controller restart at any moment is safe: the engine reopens the
//! experiment from the store, adopts the Trials already created (same
//! deterministic names), skips the log lines already stored, and creates
//! nothing twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use ktune_algorithms::history::TrialState;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use super::collect;
use super::health::{Backoff, transient};
use super::kinds::not_allowed;
use super::status::{self, apply_status, experiment_status, trial_status};
use super::watch::RESYNC;
use super::workload::{CheckpointVolumes, ClusterRunner};
use super::{Context, ControllerError};
use crate::api::enums::ExperimentConditionType;
use crate::api::experiment::Metric;
use crate::api::load::{ConfigMaps, Document};
use crate::api::template::resolve_template;
use crate::api::validate::Context as ValidationContext;
use crate::api::{Experiment, ExperimentStatus, PreparedExperiment, Trial, TrialStatus, prepare};
use crate::engine::{BestTrial, Engine, EngineError, Event, RunSummary};
use crate::metrics::MetricLog;
use crate::metrics::cluster::SidecarImage;
use crate::metrics::kinds::KindCollector;
use crate::metrics::reduce::reduce;
use crate::store::{ExperimentState, Store as _, TrialRow};

/// The finalizer that stops an experiment's worker before it goes.
pub const FINALIZER: &str = "ktune.dev/cleanup";

/// Reconciles one Experiment: its worker runs (and is woken).
///
/// # Errors
/// [`ControllerError`] when the API or the finalizer fails.
pub async fn reconcile(
    experiment: Arc<Experiment>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = experiment
        .namespace()
        .unwrap_or_else(|| "default".to_owned());
    let api = ctx.experiments(&namespace);
    let ctx = &ctx;
    super::reconcile_worker(&api, experiment, &ctx.workers, |experiment| async move {
        if ctx.group().is_katib() {
            store_defaults(ctx, &experiment).await?;
        }
        ensure_worker(ctx, experiment);
        Ok(())
    })
    .await
}

/// Writes Katib's defaults into the stored spec, as Katib's mutating
/// webhook would have (Katib's SDK reads some back: a double parameter's
/// `distribution`, the collector, `parallelTrialCount` …). Only what is
/// missing is added, by a merge patch; the spec's generation moves, but
/// the worker is keyed by the defaulted spec ([`spec_key`]), so it runs
/// on undisturbed.
///
/// # Errors
/// The API's.
async fn store_defaults(ctx: &Context, experiment: &Experiment) -> Result<(), ControllerError> {
    let stored = serde_json::to_value(&experiment.spec)?;
    let mut spec = experiment.spec.clone();
    crate::api::defaults::apply_defaults(&mut spec);
    let Some(patch) = additions(&stored, &serde_json::to_value(&spec)?) else {
        return Ok(());
    };
    let namespace = experiment
        .namespace()
        .unwrap_or_else(|| "default".to_owned());
    let patch = kube::api::Patch::Merge(json!({"spec": patch}));
    let params = kube::api::PatchParams::default();
    ctx.experiments(&namespace)
        .patch(&experiment.name_any(), &params, &patch)
        .await?;
    Ok(())
}

/// The JSON merge patch that adds to `from` what `to` has more or
/// differently (nothing is removed); `None` when there is nothing.
fn additions(from: &serde_json::Value, to: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let patch: serde_json::Map<String, Value> = b
                .iter()
                .filter_map(|(key, value)| {
                    let change = match a.get(key) {
                        Some(old) => additions(old, value)?,
                        None => value.clone(),
                    };
                    Some((key.clone(), change))
                })
                .collect();
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ => (from != to).then(|| to.clone()),
    }
}

/// What keys an experiment's worker: its spec with Katib's defaults (so
/// that writing the defaults does not restart it, while a user's change —
/// a raised budget — does).
fn spec_key(experiment: &Experiment) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut spec = experiment.spec.clone();
    crate::api::defaults::apply_defaults(&mut spec);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Whether the experiment's status says it finished.
fn finished(experiment: &Experiment) -> bool {
    experiment
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .is_some_and(|c| matches!(c.type_.to_string().as_str(), "Succeeded" | "Failed"))
}

/// Starts the experiment's worker unless it runs already for this spec
/// (a changed spec — a raised budget — restarts it; Katib's defaults
/// written into it do not); one that runs is woken.
fn ensure_worker(ctx: &Arc<Context>, experiment: Arc<Experiment>) {
    let key = (
        experiment.uid().unwrap_or_default(),
        spec_key(&experiment),
        finished(&experiment),
    );
    // Every log line of the worker (suggestions, trials, status) names its
    // experiment; ERROR level so the span is on whatever `KTUNE_LOG` says.
    let span = tracing::error_span!(
        "worker",
        namespace = %experiment.namespace().unwrap_or_default(),
        experiment = %experiment.name_any()
    );
    let worker_ctx = Arc::clone(ctx);
    ctx.workers.ensure(key, span, |wake| async move {
        let ctx = worker_ctx;
        let object = experiment.object_ref(&ctx.group());
        super::retry_worker(&ctx, ("worker", &object), || work(&ctx, &experiment, &wake)).await;
    });
}

/// Drives one experiment to completion: steps the engine whenever woken,
/// and writes what changed.
async fn work(
    ctx: &Arc<Context>,
    experiment: &Arc<Experiment>,
    wake: &Notify,
) -> Result<(), ControllerError> {
    let Some(setup) = Setup::new(ctx, experiment).await? else {
        return Ok(());
    };
    let mut engine = Engine::open(
        &setup.prepared,
        &setup.configmaps,
        ctx.store.as_ref(),
        &setup.runner,
        &setup.collector,
        super::engine_options(ctx, experiment.as_ref()),
    )
    .await?;
    setup.announce(ctx, experiment).await;
    let mut report = Report::new(ctx, experiment, &setup.metrics);
    let was_finished = finished(experiment);
    let mut wanted: Option<ExperimentStatus> = None;
    loop {
        let mut changed = false;
        let updates = &mut report.updates;
        let done = engine
            .step(&mut |e| {
                changed |= !matches!(e, Event::Reported { .. });
                updates.push(e);
            })
            .await?;
        ctx.ops
            .observe_suggestions(&setup.algorithm, &engine.take_suggest_seconds());
        let (state, reason) = done.as_ref().map_or((ExperimentState::Running, ""), |s| {
            (s.state, s.reason.as_str())
        });
        // Ended before, and running again: the budget was raised.
        report.restarted |= was_finished && done.is_none();
        let status = match wanted.take() {
            Some(status) if !changed && done.is_none() => status,
            _ => {
                let best = engine.best();
                report
                    .status(engine.trials(), best.as_ref(), state, reason)
                    .await?
            }
        };
        if let Some(summary) = done {
            report.write_last(engine.trials(), &status).await?;
            report.ended(&summary).await;
            return Ok(());
        }
        let written = report.write(engine.trials(), &status, false).await?;
        wanted = Some(status);
        // A change of a trial or its workload wakes the worker at once;
        // while trials run, their metrics are read every tick.
        let wait = if written && engine.running() == 0 && !engine.needs_step() {
            RESYNC
        } else {
            ctx.options.tick
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// What one experiment's worker runs with: the validated experiment, its
/// template's ConfigMaps, its runner and collector.
struct Setup {
    prepared: PreparedExperiment,
    configmaps: ConfigMaps,
    /// The objective metric first, then the additional ones.
    metrics: Vec<String>,
    algorithm: String,
    runner: ClusterRunner,
    collector: KindCollector,
}

impl Setup {
    /// The experiment's setup; `None` when it cannot run (it is then
    /// marked Failed, saying why).
    ///
    /// # Errors
    /// The API's, other than refusals.
    async fn new(
        ctx: &Arc<Context>,
        experiment: &Experiment,
    ) -> Result<Option<Self>, ControllerError> {
        let namespace = experiment
            .namespace()
            .unwrap_or_else(|| "default".to_owned());
        let configmaps = template_configmaps(ctx, experiment, &namespace).await?;
        let prepared = match validated(experiment, &configmaps)? {
            Ok(prepared) => prepared,
            Err(message) => {
                refuse(ctx, experiment, "ExperimentInvalid", &message).await?;
                return Ok(None);
            }
        };
        let spec = &prepared.experiment.spec;
        let template = spec.trial_template.clone().unwrap_or_default();
        let workload = resolve_template(&template, &configmaps).unwrap_or_default();
        if let Some(message) = not_allowed(&workload, &ctx.options.trial_resources) {
            refuse(ctx, experiment, "TrialResourceNotAllowed", &message).await?;
            return Ok(None);
        }
        let text = |key: &str| {
            workload
                .get(key)
                .and_then(|k| k.as_str())
                .unwrap_or_default()
        };
        let metrics = crate::metrics::metric_names(spec);
        let defaulted = Arc::new(prepared.experiment.clone());
        let runner = ClusterRunner::new(ctx.client.clone(), ctx.group(), defaulted)
            .with_caches(ctx.caches.clone())
            .with_checkpoints(CheckpointVolumes {
                image: SidecarImage {
                    image: ctx.options.collector_image.clone(),
                    command: ctx.options.collector_command.clone(),
                },
                storage_class: ctx.options.checkpoint_storage_class.clone(),
                claimed: Arc::default(),
            });
        let kind = (text("apiVersion"), text("kind"));
        let setup = collect::for_experiment(ctx, spec, (&namespace, kind), &template, runner);
        let (runner, collector) = match setup.await {
            Ok(pair) => pair,
            Err(refusal) => {
                refuse(ctx, experiment, refusal.reason, &refusal.message).await?;
                return Ok(None);
            }
        };
        let algorithm = spec
            .algorithm
            .as_ref()
            .map(|a| a.algorithm_name.clone())
            .unwrap_or_default();
        Ok(Some(Self {
            prepared,
            configmaps,
            metrics,
            algorithm,
            runner,
            collector,
        }))
    }

    /// Says that the experiment started (an Event too) or resumed.
    async fn announce(&self, ctx: &Context, experiment: &Experiment) {
        let fresh = experiment
            .status
            .as_ref()
            .is_none_or(|s| s.conditions.is_empty());
        if fresh {
            ctx.publish(
                &experiment.object_ref(&ctx.group()),
                "Created",
                "the search runs in the controller",
            )
            .await;
        }
        let spec = &self.prepared.experiment.spec;
        // The worker's span names the experiment.
        tracing::info!(
            algorithm = self.algorithm,
            max_trials = spec.max_trial_count.unwrap_or_default(),
            parallel = spec.parallel_trial_count.unwrap_or(1),
            "experiment {}",
            if fresh { "started" } else { "resumed" }
        );
    }
}

/// The experiment defaulted and validated, or why it cannot run.
///
/// # Errors
/// [`ControllerError::Json`] when the experiment cannot be serialised.
fn validated(
    experiment: &Experiment,
    configmaps: &ConfigMaps,
) -> Result<Result<PreparedExperiment, String>, ControllerError> {
    let value = serde_json::to_value(experiment)?;
    let context = ValidationContext {
        configmaps,
        require_configmaps: true,
    };
    Ok(match prepare(&value, context) {
        Ok(p) if p.report.is_valid() => Ok(p),
        Ok(p) => Err(p
            .report
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(ControllerError::Invalid(e.to_string()).to_string()),
    })
}

/// The ConfigMap a `trialTemplate.configMap` source names, as the
/// loader's ConfigMaps (none when the template is inline or the ConfigMap
/// cannot be read: validation then reports the missing template).
///
/// # Errors
/// A transient API error: the experiment must not be refused because the
/// API server was away.
async fn template_configmaps(
    ctx: &Context,
    experiment: &Experiment,
    namespace: &str,
) -> Result<ConfigMaps, ControllerError> {
    let Some(source) = experiment
        .spec
        .trial_template
        .as_ref()
        .and_then(|t| t.config_map.as_ref())
    else {
        return Ok(ConfigMaps::default());
    };
    let ns = if source.config_map_namespace.is_empty() {
        namespace
    } else {
        source.config_map_namespace.as_str()
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(&source.config_map_name).await {
        Ok(Some(map)) => {
            let mut value = serde_json::to_value(&map).unwrap_or_default();
            value["apiVersion"] = json!("v1");
            value["kind"] = json!("ConfigMap");
            let document = Document {
                file: std::path::PathBuf::from(format!(
                    "configmap/{ns}/{}",
                    source.config_map_name
                )),
                index: 0,
                value,
            };
            Ok(ConfigMaps::from_documents([&document]))
        }
        Ok(None) => Ok(ConfigMaps::default()),
        Err(e) if transient(&e) => Err(e.into()),
        Err(e) => {
            tracing::warn!("reading ConfigMap {ns}/{}: {e}", source.config_map_name);
            Ok(ConfigMaps::default())
        }
    }
}

/// Marks an experiment that cannot run Failed, saying why (also as a
/// Warning event).
async fn refuse(
    ctx: &Context,
    experiment: &Experiment,
    reason: &str,
    message: &str,
) -> Result<(), ControllerError> {
    let namespace = experiment
        .namespace()
        .unwrap_or_else(|| "default".to_owned());
    let experiments = ctx.experiments(&namespace);
    let status = status::stamped_experiment(
        status::refused_status(reason, message),
        None,
        &status::now(),
    );
    let experiment =
        apply_status(&experiments, ctx.group(), &experiment.name_any(), &status).await?;
    ctx.publish(&experiment.object_ref(&ctx.group()), "Invalid", message)
        .await;
    // The reconcile's span names the experiment.
    tracing::warn!(reason, "experiment refused: {message}");
    Ok(())
}

/// What one worker writes to the cluster: the experiment's status (when
/// it changed), its trials' statuses and their Events.
struct Report<'a> {
    ctx: &'a Context,
    experiments: Api<Experiment>,
    trials: Api<Trial>,
    namespace: String,
    name: String,
    reference: ObjectReference,
    metrics: &'a [String],
    /// The status last written, as built (without times) and as stamped.
    written: Option<(ExperimentStatus, ExperimentStatus)>,
    /// When it was written.
    written_at: Option<Instant>,
    /// The best trial's name and its reduced metrics.
    best: Option<(String, Vec<Metric>)>,
    updates: TrialUpdates,
    /// When the experiment started (its status's `startTime`).
    started: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// Whether it ended once and was resumed (a raised budget).
    restarted: bool,
}

impl<'a> Report<'a> {
    fn new(ctx: &'a Context, experiment: &Experiment, metrics: &'a [String]) -> Self {
        let namespace = experiment
            .namespace()
            .unwrap_or_else(|| "default".to_owned());
        Self {
            ctx,
            experiments: ctx.experiments(&namespace),
            trials: ctx.trials(&namespace),
            name: experiment.name_any(),
            reference: experiment.object_ref(&ctx.group()),
            namespace,
            metrics,
            written: None,
            written_at: None,
            best: None,
            updates: TrialUpdates::default(),
            started: experiment
                .status
                .as_ref()
                .and_then(|s| s.start_time.clone())
                .unwrap_or_else(status::now),
            restarted: experiment.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == ExperimentConditionType::Restarting)
            }),
        }
    }

    /// The experiment's status over `rows` (the best trial's metrics read
    /// from the store when the best trial changed), also shown as the
    /// trials-by-state metric.
    ///
    /// # Errors
    /// The store's.
    async fn status(
        &mut self,
        rows: &[TrialRow],
        best: Option<&BestTrial>,
        state: ExperimentState,
        reason: &str,
    ) -> Result<ExperimentStatus, ControllerError> {
        if best.map(|b| &b.name) != self.best.as_ref().map(|(name, _)| name) {
            self.best = match best {
                Some(b) => Some((
                    b.name.clone(),
                    reduced_metrics(self.ctx, rows, &b.name, self.metrics).await?,
                )),
                None => None,
            };
        }
        let metrics = self.best.as_ref().map(|(_, m)| m.as_slice());
        let counts: Vec<(&str, i64)> = rows
            .iter()
            .map(|t| (status::trial_condition(t.state).0, 1))
            .collect();
        self.ctx
            .ops
            .set_trials(&self.namespace, &self.name, &counts);
        let status = experiment_status(rows, best.zip(metrics), state, reason);
        Ok(if self.restarted {
            status::restarted(status)
        } else {
            status
        })
    }

    /// Writes the queued trial statuses, and the experiment's `status`
    /// unless it is written already — or, unless `now`, it was written
    /// less than a tick ago (one write per tick however many trials
    /// change); returns whether all is written (`false`: later, or the API
    /// server was away; the next call tries again).
    ///
    /// # Errors
    /// The API's, other than transient ones.
    async fn write(
        &mut self,
        rows: &[TrialRow],
        status: &ExperimentStatus,
        now: bool,
    ) -> Result<bool, ControllerError> {
        let flushed = self
            .updates
            .flush(self.ctx, &self.trials, rows, self.metrics)
            .await?;
        if self.written.as_ref().is_some_and(|(w, _)| w == status) {
            return Ok(flushed);
        }
        let tick = self.ctx.options.tick;
        if !now && self.written_at.is_some_and(|at| at.elapsed() < tick) {
            return Ok(false);
        }
        let previous = self.written.as_ref().map(|(_, stamped)| stamped);
        let mut stamped = status::stamped_experiment(status.clone(), previous, &status::now());
        stamped.start_time = Some(self.started.clone());
        match apply_status(&self.experiments, self.ctx.group(), &self.name, &stamped).await {
            Ok(_) => {
                self.written = Some((status.clone(), stamped));
                self.written_at = Some(Instant::now());
                Ok(flushed)
            }
            Err(e) if e.transient() => {
                tracing::debug!("writing the experiment's status: {e}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the last status: it must land, through an outage too.
    ///
    /// # Errors
    /// The API's, other than transient ones.
    async fn write_last(
        &mut self,
        rows: &[TrialRow],
        status: &ExperimentStatus,
    ) -> Result<(), ControllerError> {
        let mut backoff = Backoff::new(self.ctx.options.tick, Duration::from_secs(5));
        while !self.write(rows, status, true).await? {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        Ok(())
    }

    /// Says that the experiment ended, and how (an Event too).
    async fn ended(&self, summary: &RunSummary) {
        let best = summary.best.as_ref();
        let kind = if summary.state == ExperimentState::Succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
        self.ctx
            .publish(&self.reference, kind, &summary.reason)
            .await;
        tracing::info!(
            state = kind,
            reason = summary.reason,
            best = best.map(|b| b.name.as_str()),
            objective = best.map(|b| b.objective),
            "experiment ended"
        );
    }
}

/// How often at most a running trial's status shows its newest metrics
/// (Katib's SDK polls `status.observation` while trials run; writing at
/// every report would cost one request per report).
const OBSERVATION_EVERY: Duration = Duration::from_secs(2);

/// The trial status writes (and their Events) still to do, oldest first:
/// kept while the API server is away and written when it answers again,
/// so that no trial is left showing an outdated state. A trial's newer
/// status replaces its older one. Each status is completed, when written,
/// with the trial's stored times and metrics ([`status::with_record`]).
#[derive(Debug, Default)]
struct TrialUpdates {
    pending: Vec<TrialUpdate>,
    /// Running trials that reported since their status last showed it.
    reported: BTreeSet<String>,
    /// When each trial's status was last written.
    written: HashMap<String, Instant>,
}

/// One trial's status (stamped when it changed), and the Event's reason
/// and note (no Event for a status that only shows new metrics).
#[derive(Debug)]
struct TrialUpdate {
    trial: String,
    status: TrialStatus,
    event: Option<(&'static str, String)>,
}

impl TrialUpdates {
    /// Queues what an engine event changes of a trial.
    fn push(&mut self, event: Event) {
        let now = status::now();
        let update = match event {
            Event::Started { trial, .. } => TrialUpdate {
                trial,
                status: status::stamped_trial(trial_status(TrialState::Running, "", None), &now),
                event: Some(("Running", String::new())),
            },
            Event::Finished {
                trial,
                state,
                objective,
                reason,
            } => TrialUpdate {
                trial,
                status: status::stamped_trial(trial_status(state, &reason, objective), &now),
                event: Some((status::trial_condition(state).0, reason)),
            },
            Event::Reported { trial, .. } => {
                self.reported.insert(trial);
                return;
            }
            Event::Progress { .. } | Event::Resumed { .. } | Event::Interrupted { .. } => return,
        };
        self.reported.remove(&update.trial);
        self.pending.retain(|u| u.trial != update.trial);
        self.pending.push(update);
    }

    /// Queues the status of each running trial that reported and whose
    /// status was not written for [`OBSERVATION_EVERY`].
    fn show_reports(&mut self, rows: &[TrialRow]) {
        let now = status::now();
        let due: Vec<String> = self
            .reported
            .iter()
            .filter(|t| {
                self.written
                    .get(*t)
                    .is_none_or(|at| at.elapsed() >= OBSERVATION_EVERY)
            })
            .cloned()
            .collect();
        for trial in due {
            self.reported.remove(&trial);
            let running = rows
                .iter()
                .any(|r| r.name == trial && r.state == TrialState::Running);
            if running && !self.pending.iter().any(|u| u.trial == trial) {
                self.pending.push(TrialUpdate {
                    trial,
                    status: status::stamped_trial(
                        trial_status(TrialState::Running, "", None),
                        &now,
                    ),
                    event: None,
                });
            }
        }
    }

    /// Writes the queued statuses, each with its trial's stored times and
    /// metrics (`metrics`: the objective's first), recording each change
    /// as an Event on its trial (the patched object is the Event's
    /// reference: no extra read); returns whether all are written. A
    /// trial deleted meanwhile has nothing to update.
    ///
    /// # Errors
    /// The store's.
    async fn flush(
        &mut self,
        ctx: &Context,
        trials: &Api<Trial>,
        rows: &[TrialRow],
        metrics: &[String],
    ) -> Result<bool, ControllerError> {
        self.show_reports(rows);
        while let Some(update) = self.pending.first() {
            let row = rows.iter().find(|r| r.name == update.trial);
            let observed = reduced_metrics(ctx, rows, &update.trial, metrics).await?;
            let status = status::with_record(update.status.clone(), row, observed);
            match apply_status(trials, ctx.group(), &update.trial, &status).await {
                Ok(t) => {
                    if let Some((reason, note)) = &update.event {
                        ctx.publish(&t.object_ref(&ctx.group()), reason, note).await;
                    }
                }
                Err(e) if e.transient() => return Ok(false),
                Err(e) => tracing::debug!(trial = update.trial, "updating the trial's status: {e}"),
            }
            self.written.insert(update.trial.clone(), Instant::now());
            self.pending.remove(0);
        }
        Ok(true)
    }
}

/// A trial's metrics as Katib reports them (min, max, latest), from the
/// store.
async fn reduced_metrics(
    ctx: &Context,
    rows: &[TrialRow],
    trial: &str,
    metrics: &[String],
) -> Result<Vec<Metric>, ControllerError> {
    let Some(row) = rows.iter().find(|r| r.name == trial) else {
        return Ok(Vec::new());
    };
    let logs: Vec<MetricLog> = ctx
        .store
        .observations(row.id)
        .await
        .map_err(EngineError::from)?
        .into_iter()
        .map(|o| MetricLog {
            name: o.metric,
            value: o.value,
            time: o
                .time
                .and_then(|t| jiff::Timestamp::from_millisecond(t).ok()),
        })
        .collect();
    Ok(metrics.iter().map(|m| reduce(m, &logs)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiGroup;

    #[test]
    fn additions_add_what_is_missing_and_remove_nothing() {
        let from = json!({"a": 1, "b": {"c": 2, "keep": true}, "list": [1]});
        let to = json!({"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2], "e": "x"});
        assert_eq!(
            additions(&from, &to),
            Some(json!({"b": {"d": 3}, "list": [1, 2], "e": "x"}))
        );
        assert_eq!(additions(&to, &to), None);
    }

    /// Writing Katib's defaults does not move the worker's key; a raised
    /// budget does.
    #[test]
    fn the_worker_key_ignores_defaults_but_not_user_changes() {
        let katib: serde_json::Value = json!({"parameters": [{"name": "lr", "parameterType": "double",
            "feasibleSpace": {"min": "0.01", "max": "0.1"}}], "maxTrialCount": 4});
        let mut bare = Experiment::new(
            ApiGroup::Kubeflow,
            "e",
            serde_json::from_value(katib).unwrap(),
        );
        let mut defaulted = bare.clone();
        crate::api::defaults::apply_defaults(&mut defaulted.spec);
        assert_ne!(bare.spec, defaulted.spec);
        assert_eq!(spec_key(&bare), spec_key(&defaulted));
        bare.spec.max_trial_count = Some(8);
        assert_ne!(spec_key(&bare), spec_key(&defaulted));
    }
}
