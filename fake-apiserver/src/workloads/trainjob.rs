//! Kubeflow Trainer v2 `TrainJob` (`trainer.kubeflow.org/v1alpha1`) under
//! a torch runtime: `spec.trainer.numNodes` pods (default 1) named and
//! labelled as the JobSet the Trainer creates would name them
//! (`<job>-node-0-<i>`, `jobset.sigs.k8s.io/jobset-name`,
//! `jobset.sigs.k8s.io/replicatedjob-name: node`,
//! `batch.kubernetes.io/job-completion-index`), each running the trainer
//! container `node` (`image`, `command`, `args`, `env`) with the torch
//! runtime's `PET_*` environment — `PET_NODE_RANK` through the downward API
//! from the completion-index annotation, as the runtime does. No
//! `TrainingRuntime` object is read: the runtime is assumed. The job
//! becomes `Complete` when every node succeeds, `Failed` when one fails
//! (both `metav1.Condition`s, as the Trainer copies them from the JobSet).

use super::{Ctx, Group, Owner, env, free_port, now};
use crate::pod::PodEnd;
use crate::resource::ResourceType;
use serde_json::{Value, json};
use std::sync::Arc;

const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The pod of node `index` of `nodes`.
fn pod(owner: &Owner, trainer: &Value, index: u64, nodes: u64, port: u16) -> Value {
    let mut container = json!({"name": "node"});
    for key in ["image", "command", "args", "resources"] {
        if let Some(v) = trainer.get(key) {
            container[key] = v.clone();
        }
    }
    let nproc = trainer.get("numProcPerNode").map_or_else(
        || "auto".to_owned(),
        |n| n.as_str().map_or_else(|| n.to_string(), str::to_owned),
    );
    let mut vars: Vec<Value> = trainer
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    vars.extend([
        env("PET_NNODES", nodes),
        env("PET_NPROC_PER_NODE", nproc),
        json!({"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}}),
        env("PET_MASTER_ADDR", "127.0.0.1"),
        env("PET_MASTER_PORT", port),
    ]);
    container["env"] = json!(vars);
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [container]}});
    let labels = [
        ("jobset.sigs.k8s.io/jobset-name", owner.name.clone()),
        ("jobset.sigs.k8s.io/replicatedjob-name", "node".to_owned()),
        ("jobset.sigs.k8s.io/job-index", "0".to_owned()),
        (COMPLETION_INDEX, index.to_string()),
        (
            "trainer.kubeflow.org/trainjob-ancestor-step",
            "trainer".to_owned(),
        ),
    ];
    let annotations = [(COMPLETION_INDEX, index.to_string())];
    owner.pod(
        &format!("{}-node-0-{index}", owner.name),
        &template,
        &labels,
        &annotations,
    )
}

fn condition(ty: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now()})
}

/// Runs one TrainJob to its end.
pub(crate) async fn run(ctx: Arc<Ctx>, rt: ResourceType, job: Value) {
    let owner = Owner::new(rt, &job);
    let trainer = job
        .pointer("/spec/trainer")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let nodes = trainer
        .get("numNodes")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 256);
    let jobs_status = |active: u64, succeeded: u64, failed: u64| json!([{"name": "node", "ready": 0, "active": active, "succeeded": succeeded, "failed": failed, "suspended": 0}]);
    owner.set_status(&ctx, json!({"jobsStatus": jobs_status(nodes, 0, 0)}));
    let port = free_port();
    let mut group = Group::default();
    for index in 0..nodes {
        let i = usize::try_from(index).unwrap_or(0);
        group.start(&ctx, i, pod(&owner, &trainer, index, nodes, port));
    }
    let (mut succeeded, mut failed) = (0u64, 0u64);
    while let Some((_, end)) = group.next().await {
        if !owner.alive(&ctx) {
            return;
        }
        if end == PodEnd::Succeeded {
            succeeded += 1;
        } else {
            failed += 1;
            break;
        }
        if succeeded == nodes {
            break;
        }
    }
    let active = nodes.saturating_sub(succeeded + failed);
    let last = if failed == 0 && succeeded == nodes {
        condition("Complete", "JobsCompleted", "jobset completed successfully")
    } else {
        condition("Failed", "FailedJobs", "jobset failed")
    };
    owner.set_status(
        &ctx,
        json!({"conditions": [last], "jobsStatus": jobs_status(active, succeeded, failed)}),
    );
}
