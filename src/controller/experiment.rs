//! The Experiment reconciler and the per-experiment worker.
//!
//! Reconciling an Experiment makes sure one worker runs the shared
//! [`Engine`] for it — in-process suggesters, no suggestion deployment, no
//! gRPC timeout — and, through a finalizer, stops that worker when the
//! Experiment is deleted. The worker steps the engine over the cluster
//! runner ([`ClusterRunner`]: Trial objects, whose workloads the trial
//! reconciler creates) and the pod-log collector, and writes what happens
//! to the Experiment's and Trials' status and as Events.
//!
//! A controller restart at any moment is safe: the engine reopens the
//! experiment from the store, adopts the Trials already created (same
//! deterministic names), skips the log lines already stored, and creates
//! nothing twice.

use std::sync::Arc;
use std::time::Duration;

use ktune_algorithms::history::TrialState;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument as _;

use super::collect;
use super::health::{Backoff, transient};
use super::kinds::not_allowed;
use super::status::{experiment_status, trial_status};
use super::workload::ClusterRunner;
use super::{Context, ControllerError, Worker};
use crate::api::experiment::Metric;
use crate::api::load::{ConfigMaps, Document};
use crate::api::template::resolve_template;
use crate::api::validate::Context as ValidationContext;
use crate::api::{Experiment, Trial, prepare};
use crate::engine::{Engine, EngineError, EngineOptions, Event};
use crate::metrics::MetricLog;
use crate::metrics::reduce::reduce;
use crate::store::TrialRow;
use crate::store::{ExperimentState, Store as _};
use k8s_openapi::api::core::v1::ConfigMap;

/// The finalizer that stops an experiment's worker before it goes.
pub const FINALIZER: &str = "ktune.dev/cleanup";

/// Reconciles one Experiment.
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
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, experiment, |event| async {
        match event {
            Finalizer::Apply(experiment) => {
                ensure_worker(&ctx, experiment);
                Ok(Action::requeue(Duration::from_secs(60)))
            }
            Finalizer::Cleanup(experiment) => {
                ctx.stop_worker(&experiment.uid().unwrap_or_default());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(Box::new(e)))
}

/// Whether the experiment's status says it finished.
fn finished(experiment: &Experiment) -> bool {
    experiment
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .is_some_and(|c| matches!(c.type_.to_string().as_str(), "Succeeded" | "Failed"))
}

/// Starts the experiment's worker unless it runs already for this
/// generation (a changed spec — a raised budget — restarts it).
fn ensure_worker(ctx: &Arc<Context>, experiment: Arc<Experiment>) {
    let uid = experiment.uid().unwrap_or_default();
    let generation = experiment.meta().generation.unwrap_or(0);
    let Ok(mut workers) = ctx.workers.lock() else {
        return;
    };
    if let Some(worker) = workers.get(&uid)
        && worker.generation == generation
        && (!worker.task.is_finished() || finished(&experiment))
    {
        return;
    }
    if let Some(old) = workers.remove(&uid) {
        old.task.abort();
    }
    // Every log line of the worker (suggestions, trials, status) names its
    // experiment; ERROR level so the span is on whatever `KTUNE_LOG` says.
    let span = tracing::error_span!(
        "worker",
        namespace = %experiment.namespace().unwrap_or_default(),
        experiment = %experiment.name_any()
    );
    let task = tokio::spawn(run_worker(Arc::clone(ctx), experiment).instrument(span));
    workers.insert(uid, Worker { generation, task });
}

/// Runs [`work`] until the experiment ends; after an error that may pass
/// (the API server away) it starts again, later each time — the engine
/// reopens the experiment from the store and adopts its running trials.
async fn run_worker(ctx: Arc<Context>, experiment: Arc<Experiment>) {
    let name = experiment.name_any();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        match work(&ctx, &experiment).await {
            Ok(()) => return,
            Err(e) if e.transient() => {
                tracing::debug!(experiment = name, "experiment worker interrupted: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(experiment = name, "experiment worker stopped: {e}");
                ctx.publish(&experiment.object_ref(&()), "Error", &e.to_string())
                    .await;
                return;
            }
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
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

/// Drives one experiment to completion.
async fn work(ctx: &Arc<Context>, experiment: &Arc<Experiment>) -> Result<(), ControllerError> {
    let namespace = experiment
        .namespace()
        .unwrap_or_else(|| "default".to_owned());
    let name = experiment.name_any();
    let experiments: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
    let trials: Api<Trial> = Api::namespaced(ctx.client.clone(), &namespace);
    let reference = experiment.object_ref(&());
    let value = serde_json::to_value(experiment.as_ref())?;
    let configmaps = template_configmaps(ctx, experiment, &namespace).await?;
    let prepared = prepare(
        &value,
        ValidationContext {
            configmaps: &configmaps,
            require_configmaps: true,
        },
    )
    .map_err(|e| ControllerError::Invalid(e.to_string()));
    let prepared = match prepared {
        Ok(p) if p.report.is_valid() => p,
        other => {
            let message = match other {
                Ok(p) => p
                    .report
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => e.to_string(),
            };
            refuse(ctx, &experiments, &name, "ExperimentInvalid", &message).await?;
            return Ok(());
        }
    };
    let spec = &prepared.experiment.spec;
    let template = spec.trial_template.clone().unwrap_or_default();
    let workload = resolve_template(&template, &configmaps).unwrap_or_default();
    if let Some(message) = not_allowed(&workload, &ctx.options.trial_resources) {
        refuse(
            ctx,
            &experiments,
            &name,
            "TrialResourceNotAllowed",
            &message,
        )
        .await?;
        return Ok(());
    }
    let text = |key: &str| {
        workload
            .get(key)
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let metrics = crate::metrics::metric_names(spec);
    let runner = ClusterRunner::new(ctx.client.clone(), Arc::new(prepared.experiment.clone()));
    let setup = collect::for_experiment(
        ctx,
        spec,
        (&namespace, (&api_version, &kind)),
        &template,
        runner,
    )
    .await;
    let (runner, collector) = match setup {
        Ok(pair) => pair,
        Err(refusal) => {
            refuse(ctx, &experiments, &name, refusal.reason, &refusal.message).await?;
            return Ok(());
        }
    };
    let options = EngineOptions {
        seed: ctx.options.seed,
        gpus: Vec::new(),
        store_key: Some(format!(
            "{namespace}/{name}/{}",
            experiment.uid().unwrap_or_default()
        )),
    };
    let mut engine = Engine::open(
        &prepared,
        &configmaps,
        ctx.store.as_ref(),
        &runner,
        &collector,
        options,
    )
    .await?;
    let fresh = experiment
        .status
        .as_ref()
        .is_none_or(|s| s.conditions.is_empty());
    if fresh {
        ctx.publish(&reference, "Created", "the search runs in the controller")
            .await;
    }
    let algorithm = spec
        .algorithm
        .as_ref()
        .map(|a| a.algorithm_name.clone())
        .unwrap_or_default();
    // The worker's span names the experiment.
    tracing::info!(
        algorithm,
        max_trials = spec.max_trial_count.unwrap_or_default(),
        parallel = spec.parallel_trial_count.unwrap_or(1),
        "experiment {}",
        if fresh { "started" } else { "resumed" }
    );
    let mut last_status = serde_json::Value::Null;
    let mut best_metrics: Option<(String, Vec<Metric>)> = None;
    let mut updates = TrialUpdates::default();
    loop {
        let done = engine.step(&mut |e| updates.push(e)).await?;
        ctx.ops
            .observe_suggestions(&algorithm, &engine.take_suggest_seconds());
        let (state, reason) = match &done {
            Some(summary) => (summary.state, summary.reason.clone()),
            None => (ExperimentState::Running, String::new()),
        };
        let best = engine.best();
        if best.as_ref().map(|b| &b.name) != best_metrics.as_ref().map(|(name, _)| name) {
            best_metrics = match &best {
                Some(b) => Some((
                    b.name.clone(),
                    reduced_metrics(ctx, engine.trials(), &b.name, &metrics).await?,
                )),
                None => None,
            };
        }
        let status = experiment_status(
            engine.trials(),
            best.as_ref()
                .zip(best_metrics.as_ref().map(|(_, m)| m.as_slice())),
            state,
            &reason,
            "",
        );
        if status != last_status {
            let counts: Vec<(&str, i64)> = engine
                .trials()
                .iter()
                .map(|t| (super::status::trial_condition(t.state).0, 1))
                .collect();
            ctx.ops.set_trials(&namespace, &name, &counts);
        }
        if done.is_none() {
            updates.flush(ctx, &trials).await;
            write_status(&experiments, &name, &mut last_status, &status).await?;
            tokio::time::sleep(ctx.options.tick).await;
            continue;
        }
        // The last writes must land, through an outage too.
        let mut backoff = Backoff::new(ctx.options.tick, Duration::from_secs(5));
        while !(updates.flush(ctx, &trials).await
            && write_status(&experiments, &name, &mut last_status, &status).await?)
        {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        let kind = if state == ExperimentState::Succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
        ctx.publish(&reference, kind, &reason).await;
        tracing::info!(
            state = kind,
            reason,
            best = best.as_ref().map(|b| b.name.as_str()),
            objective = best.as_ref().map(|b| b.objective),
            "experiment ended"
        );
        return Ok(());
    }
}

/// Writes the experiment's status when it changed (timestamps aside);
/// returns whether it is written, `false` when the API server was away
/// (the next call tries again).
///
/// # Errors
/// The API's, other than transient ones.
async fn write_status(
    experiments: &Api<Experiment>,
    name: &str,
    last: &mut serde_json::Value,
    status: &serde_json::Value,
) -> Result<bool, ControllerError> {
    if status == last {
        return Ok(true);
    }
    let mut stamped = status.clone();
    stamp_times(&mut stamped, &now());
    match patch_status(experiments, name, stamped).await {
        Ok(_) => {
            status.clone_into(last);
            Ok(true)
        }
        Err(e) if e.transient() => {
            tracing::debug!("writing the experiment's status: {e}");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The trial status writes (and their Events) still to do, oldest first:
/// kept while the API server is away and written when it answers again,
/// so that no trial is left showing an outdated state. A trial's newer
/// status replaces its older one.
#[derive(Debug, Default)]
struct TrialUpdates {
    pending: Vec<TrialUpdate>,
}

/// One trial's status, and the Event's reason and note.
#[derive(Debug)]
struct TrialUpdate {
    trial: String,
    status: serde_json::Value,
    reason: &'static str,
    note: String,
}

impl TrialUpdates {
    /// Queues what an engine event changes of a trial.
    fn push(&mut self, event: Event) {
        let update = match event {
            Event::Started { trial, .. } => TrialUpdate {
                trial,
                status: trial_status(TrialState::Running, "", None, &now()),
                reason: "Running",
                note: String::new(),
            },
            Event::Finished {
                trial,
                state,
                objective,
                reason,
            } => TrialUpdate {
                trial,
                status: trial_status(state, &reason, objective, &now()),
                reason: super::status::trial_condition(state).0,
                note: reason,
            },
            Event::Progress { .. }
            | Event::Reported { .. }
            | Event::Resumed { .. }
            | Event::Interrupted { .. } => return,
        };
        self.pending.retain(|u| u.trial != update.trial);
        self.pending.push(update);
    }

    /// Writes the queued statuses, recording each change as an Event on
    /// its trial (the patched object is the Event's reference: no extra
    /// read); returns whether all are written. A trial deleted meanwhile
    /// has nothing to update.
    async fn flush(&mut self, ctx: &Context, trials: &Api<Trial>) -> bool {
        while let Some(update) = self.pending.first() {
            match patch_status(trials, &update.trial, update.status.clone()).await {
                Ok(t) => {
                    ctx.publish(&t.object_ref(&()), update.reason, &update.note)
                        .await;
                }
                Err(e) if e.transient() => return false,
                Err(e) => tracing::debug!(trial = update.trial, "updating the trial's status: {e}"),
            }
            self.pending.remove(0);
        }
        true
    }
}

/// Marks an experiment that cannot run Failed, saying why (also as a
/// Warning event).
async fn refuse(
    ctx: &Context,
    experiments: &Api<Experiment>,
    name: &str,
    reason: &str,
    message: &str,
) -> Result<(), ControllerError> {
    let status = json!({"conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated", "lastTransitionTime": now()},
        {"type": "Failed", "status": "True", "reason": reason, "message": message, "lastTransitionTime": now()},
    ]});
    let experiment = patch_status(experiments, name, status).await?;
    ctx.publish(&experiment.object_ref(&()), "Invalid", message)
        .await;
    // The reconcile's span names the experiment.
    tracing::warn!(reason, "experiment refused: {message}");
    Ok(())
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

/// Fills the empty timestamps of a status built without a clock.
fn stamp_times(status: &mut serde_json::Value, now: &str) {
    if let Some(conditions) = status
        .get_mut("conditions")
        .and_then(serde_json::Value::as_array_mut)
    {
        for c in conditions {
            c["lastUpdateTime"] = json!(now);
            c["lastTransitionTime"] = json!(now);
        }
    }
    for key in ["lastReconcileTime", "completionTime"] {
        if status.get(key).is_some() {
            status[key] = json!(now);
        }
    }
}

/// Merges `status` into the object's status subresource; returns the object.
async fn patch_status<K>(
    api: &Api<K>,
    name: &str,
    status: serde_json::Value,
) -> Result<K, ControllerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?)
}
