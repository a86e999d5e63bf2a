//! Every kind whose replicas the trial-kind table lists (`ktune-kinds`):
//! the Kubeflow training operator's jobs (`PyTorchJob`, `TFJob`,
//! `XGBoostJob`, `PaddleJob`, `JAXJob`, `MPIJob`), mpi-operator's
//! `MPIJob`, Kubeflow Trainer's `TrainJob` (as the JobSet its torch
//! runtime makes) and any JobSet-shaped kind: one pod per replica, named
//! and labelled as the kind's controller names and labels it, with the
//! table's distributed environment pointing at 127.0.0.1 and free ports
//! (the same rules `ktune run` follows), and the kind's conditions.
//!
//! | replicas | status | succeeds when |
//! |---|---|---|
//! | typed (Kubeflow operators) | `Created` → `Running` → `Succeeded`/`Failed`, `replicaStatuses` | the lead succeeds (no lead: every replica); see the table |
//! | JobSet-shaped | the success or failure condition, a status per replicated job | every pod succeeds |
//!
//! Any replica failing fails the job (no restarts: `restartPolicy` and
//! `backoffLimit` are not simulated). `runPolicy.cleanPodPolicy` (and v1
//! MPIJob's `spec.cleanPodPolicy`) `Running` or `All` deletes the pods
//! still running when the job ends; the default, `None`, keeps them. A
//! replica that starts nothing of its own (an MPI worker) idles until its
//! pod is deleted.

mod status;

use super::{Ctx, Group, Owner, free_ports, inject_env};
use crate::pod::{IDLE, PodEnd, str_at};
use crate::resource::ResourceType;
use ktune_kinds::{EnvVar, Replica, Replicas, TrialKind};
use serde_json::{Value, json};
use status::Report;
use std::sync::Arc;

/// Runs one workload of `kind` to its end.
pub(crate) async fn run(ctx: Arc<Ctx>, rt: ResourceType, kind: &'static TrialKind, job: Value) {
    let owner = Owner::new(rt, &job);
    let report = Report::new(kind, &owner);
    let replicas = match kind.replicas(&job) {
        Ok(replicas) if !replicas.is_empty() => replicas,
        other => {
            let error = other.err().map(|e| e.to_string());
            tracing::debug!(name = %owner.name, ?error, "a workload without replicas fails");
            report.failed_to_start(&ctx);
            return;
        }
    };
    let ports = free_ports(kind.environment.ports(&replicas));
    let variables = kind.environment.variables(&job, &replicas, &ports);
    let mut ends: Vec<Option<PodEnd>> = vec![None; replicas.len()];
    report.running(&ctx, &replicas, &ends);
    let mut group = Group::default();
    let mut names = Vec::new();
    let progress = progress_env(&ctx, kind, &owner);
    for (i, (replica, vars)) in replicas.iter().zip(&variables).enumerate() {
        let mut p = pod(kind, &owner, replica, vars);
        inject_env(&mut p, &progress, None);
        names.push(str_at(&p, "/metadata/name").to_owned());
        group.start(&ctx, i, p);
    }
    let Some(succeeded) = outcome(&ctx, kind, &owner, &replicas, &mut ends, &mut group).await
    else {
        return;
    };
    report.ended(&ctx, succeeded, &replicas, &ends);
    clean_up(&ctx, &job, &owner.ns, &names, &ends);
}

/// Waits for the kind's success rule or a failure; `None` when the
/// workload went away meanwhile.
async fn outcome(
    ctx: &Ctx,
    kind: &TrialKind,
    owner: &Owner,
    replicas: &[Replica],
    ends: &mut [Option<PodEnd>],
    group: &mut Group,
) -> Option<bool> {
    loop {
        let Some((i, end)) = group.next().await else {
            // Every pod ended without meeting the success rule.
            return Some(false);
        };
        if !owner.alive(ctx) {
            return None;
        }
        if let Some(slot) = ends.get_mut(i) {
            *slot = Some(end);
        }
        if end != PodEnd::Succeeded {
            return Some(false);
        }
        let done: Vec<bool> = ends.iter().map(|e| *e == Some(PodEnd::Succeeded)).collect();
        if kind.succeeded(replicas, &done) {
            return Some(true);
        }
    }
}

/// The pod of one replica, named, labelled and with the environment its
/// kind's controller gives it.
fn pod(kind: &TrialKind, owner: &Owner, replica: &Replica, vars: &[EnvVar]) -> Value {
    let identity = kind.pod(&owner.name, replica);
    let mut annotations = pairs(&identity.annotations);
    if replica.idle {
        annotations.push((IDLE, "true".to_owned()));
    }
    let mut pod = owner.pod(
        &identity.name,
        &replica.template,
        &pairs(&identity.labels),
        &annotations,
    );
    let env: Vec<Value> = vars.iter().map(env_entry).collect();
    inject_env(&mut pod, &env, kind.environment.container());
    pod
}

/// What Trainer's `TrainJobStatus` gate injects into every container of
/// a TrainJob's pods (see [`crate::progress`]); nothing for other kinds.
fn progress_env(ctx: &Ctx, kind: &TrialKind, owner: &Owner) -> Vec<Value> {
    if kind.replicas != Replicas::Trainer {
        return Vec::new();
    }
    let folder = ctx
        .pods
        .node_folder()
        .join(format!("trainjob-{}", owner.uid));
    ctx.progress
        .pod_env(&owner.ns, &owner.name, &owner.uid, &folder)
}

fn pairs(list: &[(String, String)]) -> Vec<(&str, String)> {
    list.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// A container `env` entry: a value, or the downward API where the
/// operator reads it from the pod.
fn env_entry(var: &EnvVar) -> Value {
    match &var.field_path {
        Some(path) => json!({"name": var.name, "valueFrom": {"fieldRef": {"fieldPath": path}}}),
        None => json!({"name": var.name, "value": var.value}),
    }
}

/// `cleanPodPolicy` `All` deletes every pod, `Running` those still running.
fn clean_up(ctx: &Ctx, job: &Value, ns: &str, names: &[String], ends: &[Option<PodEnd>]) {
    let policy = job
        .pointer("/spec/runPolicy/cleanPodPolicy")
        .or_else(|| job.pointer("/spec/cleanPodPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    for (pod, end) in names.iter().zip(ends) {
        if policy == "All" || (policy == "Running" && end.is_none()) {
            ctx.pods.delete(ns, pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u64) -> Value {
        json!({"replicas": n, "template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}})
    }

    fn owner(job: &Value) -> Owner {
        Owner::new(crate::resource::builtins().remove(0), job)
    }

    #[test]
    fn mpi_v2beta1_labels_launcher_and_workers_by_role() {
        let j = json!({"kind": "MPIJob", "metadata": {"name": "m"}, "spec": {"mpiReplicaSpecs": {"Launcher": spec(1), "Worker": spec(2)}}});
        let kind = ktune_kinds::find("kubeflow.org", "v2beta1", "MPIJob").unwrap();
        let all = kind.replicas(&j).unwrap();
        let launcher = pod(kind, &owner(&j), &all[0], &[]);
        assert_eq!(launcher["metadata"]["name"], "m-launcher");
        assert_eq!(
            launcher["metadata"]["labels"]["training.kubeflow.org/job-role"],
            "launcher"
        );
        let worker = pod(kind, &owner(&j), &all[2], &[]);
        assert_eq!(worker["metadata"]["name"], "m-worker-1");
        assert_eq!(worker["metadata"]["annotations"][IDLE], "true");
    }

    #[test]
    fn tf_config_goes_to_tensorflow_containers_and_ranks_through_the_downward_api() {
        let j = json!({"metadata": {"name": "t"}, "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2,
            "template": {"spec": {"containers": [{"name": "tensorflow"}, {"name": "sidecar"}]}}}}}});
        let kind = ktune_kinds::find("kubeflow.org", "v1", "TFJob").unwrap();
        let all = kind.replicas(&j).unwrap();
        let vars = kind.environment.variables(&j, &all, &[1, 2]);
        let p = pod(kind, &owner(&j), &all[1], &vars[1]);
        assert_eq!(p["spec"]["containers"][0]["env"][0]["name"], "TF_CONFIG");
        assert!(p["spec"]["containers"][1].get("env").is_none());
        let var = EnvVar {
            name: "PET_NODE_RANK".into(),
            value: "1".into(),
            field_path: Some("metadata.annotations['x']".into()),
        };
        assert_eq!(
            env_entry(&var)["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['x']"
        );
    }
}
