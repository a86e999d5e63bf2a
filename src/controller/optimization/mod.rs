//! Kubeflow Trainer's `OptimizationJob`s in the controller
//! (`ktune controller --optimization-jobs`; off by default, so it never
//! fights Trainer's own controller once that ships).
//!
//! A job is read with Trainer's rules and mapped to the Experiment the
//! engine runs ([`crate::api::optimization_job`]): the same engine, store
//! and algorithms as every other experiment, with
//! - [`runner`]: trials as TrainJobs named `<job>-trial-<suffix>`, owned by
//!   the job (no Trial objects);
//! - [`metrics`]: metrics from `TrainJob.status.trainerStatus.metrics`
//!   (Trainer's progress protocol), the latest value being the objective;
//! - [`status`]: the job's status as Trainer defines it (`Created`,
//!   `Complete`, `Failed`, `result`).
//!
//! The spec is immutable (Trainer's rule; the CRD's CEL rule enforces it
//! where the API server evaluates CEL): a worker runs the spec it started
//! with, and a changed spec (a generation above 1) is refused with a
//! Warning event.

pub mod metrics;
pub mod runner;
pub mod status;

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tokio::sync::Notify;

use super::watch::RESYNC;
use super::{Context, ControllerError};
use crate::api::PreparedExperiment;
use crate::api::load::ConfigMaps;
use crate::api::optimization_job::{self, OptimizationJob, OptimizationJobStatus};
use crate::api::validate::Context as ValidationContext;
use crate::engine::{Engine, Event};
use ktune_algorithms::history::TrialState;
use metrics::TrainerStatus;
use runner::{TrainJobRunner, train_job_name};
use status::{Phase, job_status};

/// The annotation recording the last spec generation refused.
const REFUSED_ANNOTATION: &str = "ktune.dev/refused-generation";

/// Reconciles one OptimizationJob: its worker runs (and is woken).
///
/// # Errors
/// [`ControllerError`] when the API or the finalizer fails.
pub async fn reconcile(
    job: Arc<OptimizationJob>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = job.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<OptimizationJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let ctx = &ctx;
    super::reconcile_worker(&api, job, &ctx.workers, |job| async move {
        refuse_spec_change(ctx, &job).await?;
        ensure_worker(ctx, job);
        Ok(())
    })
    .await
}

/// Trainer's rule: the spec is immutable. Where the API server does not
/// enforce it (no CEL), a spec changed after creation — its generation
/// above 1 — is refused with a Warning event, once per change (the
/// generation refused is kept in [`REFUSED_ANNOTATION`]); a running worker
/// runs on with the spec it started with.
async fn refuse_spec_change(ctx: &Context, job: &OptimizationJob) -> Result<(), ControllerError> {
    let generation = job.metadata.generation.unwrap_or(1);
    let refused = job
        .annotations()
        .get(REFUSED_ANNOTATION)
        .is_some_and(|g| *g == generation.to_string());
    if generation <= 1 || refused {
        return Ok(());
    }
    ctx.publish(
        &job.object_ref(&()),
        "Invalid",
        "spec is immutable: the change is ignored; delete and create the job to change it",
    )
    .await;
    let api: Api<OptimizationJob> = Api::namespaced(
        ctx.client.clone(),
        &job.namespace().unwrap_or_else(|| "default".to_owned()),
    );
    let patch = json!({"metadata": {"annotations": {REFUSED_ANNOTATION: generation.to_string()}}});
    api.patch(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// Starts the job's worker unless it runs (or ran to the job's end); one
/// that runs is woken. A job that ended before this controller started
/// gets a worker once: the engine reopens it from the store, finds it
/// ended and writes the same status (which mends one lost in a crash).
fn ensure_worker(ctx: &Arc<Context>, job: Arc<OptimizationJob>) {
    // The spec never changes for a worker (it is immutable), hence 0.
    let key = (job.uid().unwrap_or_default(), 0, job.finished());
    let span = tracing::error_span!(
        "worker",
        namespace = %job.namespace().unwrap_or_default(),
        optimization_job = %job.name_any()
    );
    let worker_ctx = Arc::clone(ctx);
    ctx.workers.ensure(key, span, |wake| async move {
        let ctx = worker_ctx;
        let object = job.object_ref(&());
        super::retry_worker(&ctx, ("optimization-job-worker", &object), || {
            work(&ctx, &job, &wake)
        })
        .await;
    });
}

/// The job read with Trainer's rules and mapped, or why it cannot run.
fn prepared(job: &OptimizationJob) -> Result<PreparedExperiment, String> {
    let configmaps = ConfigMaps::default();
    let context = ValidationContext {
        configmaps: &configmaps,
        require_configmaps: false,
    };
    match optimization_job::prepare(&job.document(), context) {
        Ok(p) if p.report.is_valid() => Ok(p),
        Ok(p) => Err(p
            .report
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// Drives one job to its end: steps the engine whenever woken or every
/// tick while trials run, and writes the job's status when it changes.
async fn work(
    ctx: &Arc<Context>,
    job: &Arc<OptimizationJob>,
    wake: &Notify,
) -> Result<(), ControllerError> {
    let namespace = job.namespace().unwrap_or_else(|| "default".to_owned());
    let name = job.name_any();
    let mut writer = StatusWriter::new(ctx, job);
    let prepared = match prepared(job) {
        Ok(p) => p,
        Err(message) => {
            writer
                .write(&Phase::Failed("InvalidSpec", &message), None)
                .await?;
            ctx.publish(&job.object_ref(&()), "Invalid", &message).await;
            tracing::warn!("optimization job refused: {message}");
            return Ok(());
        }
    };
    let runner = TrainJobRunner::new(ctx.client.clone(), Arc::clone(job), ctx.caches.clone());
    let collector = TrainerStatus::new(ctx.client.clone(), (&namespace, &name), ctx.caches.clone());
    let configmaps = ConfigMaps::default();
    let mut engine = Engine::open(
        &prepared,
        &configmaps,
        ctx.store.as_ref(),
        &runner,
        &collector,
        super::engine_options(ctx, job.as_ref()),
    )
    .await?;
    if job.status.is_none() {
        ctx.publish(
            &job.object_ref(&()),
            "Created",
            "the search runs in ktune's controller",
        )
        .await;
        tracing::info!("optimization job started");
    }
    loop {
        let mut events = Vec::new();
        let done = engine.step(&mut |e| events.push(e)).await?;
        for event in &events {
            announce(ctx, job, event).await;
        }
        let best = engine.best();
        if let Some(summary) = done {
            let phase = Phase::ended(summary.state, &summary.reason);
            writer.write(&phase, best.as_ref()).await?;
            announce_end(ctx, job, &phase, &summary.reason).await;
            return Ok(());
        }
        writer.write(&Phase::Running, best.as_ref()).await?;
        let wait = if engine.running() == 0 && !engine.needs_step() {
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

/// Says that the job ended (a log line and an Event named after its
/// condition).
async fn announce_end(ctx: &Context, job: &OptimizationJob, phase: &Phase<'_>, reason: &str) {
    tracing::info!(reason, "optimization job ended");
    let condition = if matches!(phase, Phase::Failed(..)) {
        "Failed"
    } else {
        "Complete"
    };
    let note = format!("the search ended: {reason}");
    ctx.publish(&job.object_ref(&()), condition, &note).await;
}

/// An Event on the job for each trial that starts or ends, naming its
/// TrainJob.
async fn announce(ctx: &Context, job: &OptimizationJob, event: &Event) {
    let name = job.name_any();
    let (reason, note) = match event {
        Event::Started { trial, .. } => (
            "TrialCreated",
            format!("TrainJob {} started", train_job_name(&name, trial)),
        ),
        Event::Finished {
            trial,
            state,
            reason,
            ..
        } => {
            let word = match state {
                TrialState::Succeeded => "TrialSucceeded",
                TrialState::EarlyStopped => "TrialEarlyStopped",
                TrialState::MetricsUnavailable => "TrialMetricsUnavailable",
                _ => "TrialFailed",
            };
            let first = reason.lines().next().unwrap_or_default();
            (
                word,
                format!("TrainJob {}: {first}", train_job_name(&name, trial)),
            )
        }
        _ => return,
    };
    ctx.publish(&job.object_ref(&()), reason, &note).await;
}

/// Writes a job's status when it changed (a merge patch of the status
/// subresource).
struct StatusWriter {
    api: Api<OptimizationJob>,
    name: String,
    /// The status last written (or read with the job).
    written: Option<OptimizationJobStatus>,
}

impl StatusWriter {
    fn new(ctx: &Context, job: &OptimizationJob) -> Self {
        let namespace = job.namespace().unwrap_or_else(|| "default".to_owned());
        Self {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            name: job.name_any(),
            written: job.status.clone(),
        }
    }

    async fn write(
        &mut self,
        phase: &Phase<'_>,
        best: Option<&crate::engine::BestTrial>,
    ) -> Result<(), ControllerError> {
        let status = job_status(
            self.written.as_ref(),
            &self.name,
            phase,
            best,
            &super::status::now(),
        );
        if self.written.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = Patch::Merge(json!({"status": status}));
        self.api
            .patch_status(&self.name, &PatchParams::default(), &patch)
            .await?;
        self.written = Some(status);
        Ok(())
    }
}
