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

/// Runs one Job to its end.
pub(super) async fn run(ctx: Arc<Ctx>, jobs: ResourceType, job: Value) {
    let ns = str_at(&job, "/metadata/namespace").to_string();
    let name = str_at(&job, "/metadata/name").to_string();
    let uid = str_at(&job, "/metadata/uid").to_string();
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
    let start_time = now();
    let (mut succeeded, mut failed) = (0u64, 0u64);
    let alive = |ctx: &Ctx| {
        ctx.pods
            .store
            .get(&jobs, Some(&ns), &name)
            .is_ok_and(|j| str_at(&j, "/metadata/uid") == uid)
    };
    let status = |active: u64, succeeded: u64, failed: u64, extra: Value| {
        let mut s = json!({"startTime": start_time, "active": active, "succeeded": succeeded, "failed": failed, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}});
        if let (Some(m), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        omit_zero(&mut s);
        s
    };
    loop {
        if !alive(&ctx) {
            return;
        }
        let _ =
            ctx.pods
                .store
                .set_status(&jobs, &ns, &name, status(1, succeeded, failed, json!({})));
        let end = match create_pod(&ctx, &job) {
            Ok(pod) => ctx.pods.run(pod, deadline).await,
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "cannot create the job's pod");
                PodEnd::Failed
            }
        };
        if !alive(&ctx) {
            return;
        }
        match end {
            PodEnd::Succeeded => succeeded += 1,
            PodEnd::Failed | PodEnd::Deleted => failed += 1,
            PodEnd::DeadlineExceeded => {
                failed += 1;
                let msg = "Job was active longer than specified deadline";
                let _ = ctx.pods.store.set_status(&jobs, &ns, &name, status(0, succeeded, failed, json!({"conditions": [condition("FailureTarget", "DeadlineExceeded", msg)]})));
                let _ = ctx.pods.store.set_status(&jobs, &ns, &name, status(0, succeeded, failed, json!({"conditions": [condition("FailureTarget", "DeadlineExceeded", msg), condition("Failed", "DeadlineExceeded", msg)]})));
                return;
            }
        }
        if succeeded >= completions {
            let msg = "Reached expected number of succeeded pods";
            let target = condition("SuccessCriteriaMet", "CompletionsReached", msg);
            let _ = ctx.pods.store.set_status(
                &jobs,
                &ns,
                &name,
                status(0, succeeded, failed, json!({"conditions": [target]})),
            );
            let extra = json!({"completionTime": now(), "conditions": [target, condition("Complete", "CompletionsReached", msg)]});
            let _ =
                ctx.pods
                    .store
                    .set_status(&jobs, &ns, &name, status(0, succeeded, failed, extra));
            return;
        }
        if failed > backoff {
            let msg = "Job has reached the specified backoff limit";
            let target = condition("FailureTarget", "BackoffLimitExceeded", msg);
            let _ = ctx.pods.store.set_status(
                &jobs,
                &ns,
                &name,
                status(0, succeeded, failed, json!({"conditions": [target]})),
            );
            let extra =
                json!({"conditions": [target, condition("Failed", "BackoffLimitExceeded", msg)]});
            let _ =
                ctx.pods
                    .store
                    .set_status(&jobs, &ns, &name, status(0, succeeded, failed, extra));
            return;
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
