//! `batch/v1` Job: one pod at a time until `completions` succeed, retried
//! up to `backoffLimit`, with `activeDeadlineSeconds`; the Job moves
//! through `active`, `succeeded`/`failed`, `SuccessCriteriaMet` →
//! `Complete` or `FailureTarget` → `Failed`, as Kubernetes 1.31+ does.

use super::Ctx;
use crate::pod::{PodEnd, str_at};
use crate::resource::ResourceType;
use crate::store::now;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn omit_zero(status: &mut Value) {
    if let Some(m) = status.as_object_mut() {
        m.retain(|k, v| {
            !(matches!(k.as_str(), "active" | "succeeded" | "failed") && v == &json!(0))
        });
    }
}

fn condition(ty: &str, reason: &str, message: &str) -> Value {
    let t = now();
    json!({"type": ty, "status": "True", "lastProbeTime": t, "lastTransitionTime": t, "reason": reason, "message": message})
}

/// One Job being run: its counts so far.
struct JobRun {
    ctx: Arc<Ctx>,
    jobs: ResourceType,
    ns: String,
    name: String,
    uid: String,
    start_time: String,
    succeeded: u64,
    failed: u64,
}

impl JobRun {
    /// Whether the Job still exists (the same object, not a new one of the same name).
    fn alive(&self) -> bool {
        self.ctx
            .pods
            .store
            .get(&self.jobs, Some(&self.ns), &self.name)
            .is_ok_and(|j| str_at(&j, "/metadata/uid") == self.uid)
    }

    /// Writes the Job's status: its counts, `active` pods and `extra` fields.
    fn set_status(&self, active: u64, extra: Value) {
        let mut status = json!({"startTime": self.start_time, "active": active, "succeeded": self.succeeded, "failed": self.failed, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}});
        if let (Some(m), Some(e)) = (status.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        omit_zero(&mut status);
        let _ = self
            .ctx
            .pods
            .store
            .set_status(&self.jobs, &self.ns, &self.name, status);
    }

    /// Ends the Job as Kubernetes 1.31+ does: first the target condition
    /// (`SuccessCriteriaMet`, `FailureTarget`), then the final one beside it.
    fn end(&self, target: &str, last: &str, reason: &str, message: &str) {
        let target = condition(target, reason, message);
        self.set_status(0, json!({"conditions": [target]}));
        let mut extra = json!({"conditions": [target, condition(last, reason, message)]});
        if last == "Complete" {
            extra["completionTime"] = json!(now());
        }
        self.set_status(0, extra);
    }
}

/// Runs one Job to its end.
pub(super) async fn run(ctx: Arc<Ctx>, jobs: ResourceType, job: Value) {
    let completions = job
        .pointer("/spec/completions")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let backoff = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_u64)
        .unwrap_or(6);
    let deadline = job
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_u64)
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut run = JobRun {
        ns: str_at(&job, "/metadata/namespace").to_string(),
        name: str_at(&job, "/metadata/name").to_string(),
        uid: str_at(&job, "/metadata/uid").to_string(),
        start_time: now(),
        ctx,
        jobs,
        succeeded: 0,
        failed: 0,
    };
    while run.alive() {
        run.set_status(1, json!({}));
        let end = match create_pod(&run.ctx, &job) {
            Ok(pod) => run.ctx.pods.run(pod, deadline).await,
            Err(e) => {
                tracing::warn!(job = %run.name, error = %e, "cannot create the job's pod");
                PodEnd::Failed
            }
        };
        if !run.alive() {
            return;
        }
        match end {
            PodEnd::Succeeded => run.succeeded += 1,
            PodEnd::Failed | PodEnd::Deleted => run.failed += 1,
            PodEnd::DeadlineExceeded => {
                run.failed += 1;
                let message = "Job was active longer than specified deadline";
                return run.end("FailureTarget", "Failed", "DeadlineExceeded", message);
            }
        }
        if run.succeeded >= completions {
            let message = "Reached expected number of succeeded pods";
            return run.end(
                "SuccessCriteriaMet",
                "Complete",
                "CompletionsReached",
                message,
            );
        }
        if run.failed > backoff {
            let message = "Job has reached the specified backoff limit";
            return run.end("FailureTarget", "Failed", "BackoffLimitExceeded", message);
        }
    }
}

fn create_pod(ctx: &Ctx, job: &Value) -> Result<Value, crate::ApiError> {
    let ns = str_at(job, "/metadata/namespace");
    let name = str_at(job, "/metadata/name");
    let uid = str_at(job, "/metadata/uid");
    let template = job
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid),
            ("job-name", name),
        ] {
            l.insert(k.into(), json!(v));
        }
    }
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut meta = json!({
        "generateName": format!("{name}-"),
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
    });
    if let Some(a) = template.pointer("/metadata/annotations") {
        meta["annotations"] = a.clone();
    }
    ctx.pods.create(ns, json!({"metadata": meta, "spec": spec}))
}
