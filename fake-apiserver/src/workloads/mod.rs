//! The fake cluster's workload controllers: what the Job controller, the
//! Kubeflow operators, Kubeflow Trainer, Argo and Tekton would do, with
//! every pod run on the fake node by [`Pods`](crate::pod::Pods). Which
//! controller runs a kind, and how its pods are named, labelled and wired
//! together, comes from the trial-kind table (`ktune-kinds`).
//!
//! | kind's replicas | module | pods | finished when |
//! |---|---|---|---|
//! | a `batch/v1` Job's template | [`job`] | one at a time, retried | the kind's conditions |
//! | listed: the Kubeflow jobs, `TrainJob`, JobSet-shaped kinds | [`replicated`] | one per replica | the kind's conditions |
//! | Argo `Workflow` steps | [`argo`] | one per step | `status.phase` |
//! | Tekton `PipelineRun` tasks | [`tekton`] | one per task, steps in order | condition `Succeeded` |
//!
//! Each controller sees a workload once (by uid) and runs it to its end in
//! one task; a workload deleted meanwhile is left alone (its pods go with
//! it through owner-reference garbage collection). Addresses are all
//! `127.0.0.1`; every rendezvous port is one the kernel reports free, so
//! parallel workloads never collide.

pub(crate) mod argo;
pub(crate) mod job;
pub(crate) mod replicated;
pub(crate) mod tekton;

use crate::pod::{PodEnd, Pods, str_at};
use crate::resource::ResourceType;
use ktune_kinds::{Replicas, TrialKind, WorkflowEngine};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::task::JoinSet;

/// The part of a TrainJob's status that Trainer's status server owns.
const TRAINER_STATUS: &str = "trainerStatus";

/// What the workload controllers share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) pods: Pods,
    /// Trainer's status server: the variables a TrainJob's pods get.
    pub(crate) progress: Arc<crate::progress::ProgressServer>,
}

/// A workload kind the fake runs: which controller, by where the
/// trial-kind table says its replicas live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Job(&'static TrialKind),
    Replicated(&'static TrialKind),
    Workflow(WorkflowEngine),
}

impl Kind {
    /// The kind of an object, if the fake runs it.
    pub(crate) fn of(object: &Value) -> Option<Self> {
        let kind = ktune_kinds::in_group(str_at(object, "/apiVersion"), str_at(object, "/kind"))?;
        Some(match kind.replicas {
            Replicas::Job => Self::Job(kind),
            Replicas::Workflow(engine) => Self::Workflow(engine),
            Replicas::Typed(_) | Replicas::ReplicatedJobs | Replicas::Trainer => {
                Self::Replicated(kind)
            }
        })
    }

    /// Whether the workload has ended (it is not started again).
    pub(crate) fn finished(self, object: &Value) -> bool {
        match self {
            Self::Job(kind) | Self::Replicated(kind) => kind
                .conditions
                .is_some_and(|c| condition_holds(object, &[c.success, c.failure])),
            Self::Workflow(WorkflowEngine::Argo) => matches!(
                str_at(object, "/status/phase"),
                "Succeeded" | "Failed" | "Error"
            ),
            Self::Workflow(WorkflowEngine::Tekton) => object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        str_at(c, "/type") == "Succeeded"
                            && matches!(str_at(c, "/status"), "True" | "False")
                    })
                }),
        }
    }

    /// Runs the workload to its end.
    pub(crate) async fn run(self, ctx: Arc<Ctx>, rt: ResourceType, object: Value) {
        match self {
            Self::Job(_) => job::run(ctx, rt, object).await,
            Self::Replicated(kind) => replicated::run(ctx, rt, kind, object).await,
            Self::Workflow(WorkflowEngine::Argo) => argo::run(ctx, rt, object).await,
            Self::Workflow(WorkflowEngine::Tekton) => tekton::run(ctx, rt, object).await,
        }
    }
}

/// Whether one of `types` is among the object's conditions with status True.
fn condition_holds(object: &Value, types: &[&str]) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| types.contains(&str_at(c, "/type")) && str_at(c, "/status") == "True")
        })
}

/// A workload being run: its type, namespace, name and uid.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub(crate) rt: ResourceType,
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    api_version: String,
    kind: String,
}

impl Owner {
    pub(crate) fn new(rt: ResourceType, object: &Value) -> Self {
        Self {
            ns: str_at(object, "/metadata/namespace").to_owned(),
            name: str_at(object, "/metadata/name").to_owned(),
            uid: str_at(object, "/metadata/uid").to_owned(),
            api_version: str_at(object, "/apiVersion").to_owned(),
            kind: str_at(object, "/kind").to_owned(),
            rt,
        }
    }

    /// Whether the workload still exists (the same object, not a new one
    /// of the same name).
    pub(crate) fn alive(&self, ctx: &Ctx) -> bool {
        ctx.pods
            .store
            .get(&self.rt, Some(&self.ns), &self.name)
            .is_ok_and(|o| str_at(&o, "/metadata/uid") == self.uid)
    }

    /// Writes the workload's status as its controller owns it: all of it
    /// but `trainerStatus`, which Trainer's status server writes (as a
    /// field manager of its own) and which a controller's write keeps.
    pub(crate) fn set_status(&self, ctx: &Ctx, status: Value) {
        let _ = ctx
            .pods
            .store
            .modify_status(&self.rt, &self.ns, &self.name, |s| {
                let kept = s.remove(TRAINER_STATUS);
                *s = match status {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                if let Some(kept) = kept {
                    s.insert(TRAINER_STATUS.into(), kept);
                }
            });
    }

    /// The controller owner reference its pods carry.
    pub(crate) fn reference(&self) -> Value {
        json!({"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid, "controller": true, "blockOwnerDeletion": true})
    }

    /// A pod of this workload from a pod template: the template's labels
    /// and annotations plus `labels` and `annotations`, named `name`, owned
    /// by the workload.
    pub(crate) fn pod(
        &self,
        name: &str,
        template: &Value,
        labels: &[(&str, String)],
        annotations: &[(&str, String)],
    ) -> Value {
        let merged = |path: &str, extra: &[(&str, String)]| {
            let mut map = template
                .pointer(path)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in extra {
                map.insert((*k).to_owned(), json!(v));
            }
            Value::Object(map)
        };
        json!({
            "metadata": {
                "name": name,
                "namespace": self.ns,
                "labels": merged("/metadata/labels", labels),
                "annotations": merged("/metadata/annotations", annotations),
                "ownerReferences": [self.reference()],
            },
            "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        })
    }
}

/// Pods of one workload running side by side.
#[derive(Debug, Default)]
pub(crate) struct Group {
    set: JoinSet<(usize, PodEnd)>,
}

/// The pods still running when their workload's controller has decided
/// (a PyTorchJob succeeds with its master while a worker still runs) run
/// on to their own end, as on a cluster: aborting their tasks would kill
/// the processes and leave the pods `Running` for ever. A pod that must
/// stop is deleted (`cleanPodPolicy`), which stops its processes.
impl Drop for Group {
    fn drop(&mut self) {
        self.set.detach_all();
    }
}

impl Group {
    /// Creates `pod` and runs it as member `index`; a pod that cannot be
    /// created ends as Failed.
    pub(crate) fn start(&mut self, ctx: &Arc<Ctx>, index: usize, pod: Value) {
        let ctx = Arc::clone(ctx);
        self.set.spawn(async move {
            let ns = str_at(&pod, "/metadata/namespace").to_owned();
            match ctx.pods.create(&ns, pod) {
                Ok(created) => (index, ctx.pods.run(created, None).await),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create a workload's pod");
                    (index, PodEnd::Failed)
                }
            }
        });
    }

    /// The next pod to end, or `None` when all have.
    pub(crate) async fn next(&mut self) -> Option<(usize, PodEnd)> {
        loop {
            match self.set.join_next().await? {
                Ok(end) => return Some(end),
                Err(e) => tracing::warn!(error = %e, "a pod task failed"),
            }
        }
    }
}

/// A TCP port on 127.0.0.1 the kernel reports free.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(29_500, |a| a.port())
}

/// `n` distinct free ports (held open together while picked, so none repeats).
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    let mut ports: Vec<u16> = held
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect();
    while ports.len() < n {
        ports.push(free_port());
    }
    ports
}

/// Appends `vars` to the env of every container of a pod (or only those
/// `only` names, when given), as the operators inject theirs.
pub(crate) fn inject_env(pod: &mut Value, vars: &[Value], only: Option<&str>) {
    let Some(containers) = pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in containers {
        if only.is_some_and(|n| str_at(c, "/name") != n) {
            continue;
        }
        if let Some(map) = c.as_object_mut() {
            let list = map.entry("env").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.extend(vars.iter().cloned());
            }
        }
    }
}

/// Now, as the operators write condition times.
pub(crate) fn now() -> String {
    crate::store::now()
}

/// Replaces every `open key close` in the strings of `value` (recursively)
/// whose trimmed key `lookup` knows (Argo's `{{inputs.parameters.x}}`,
/// Tekton's `$(params.x)`); others stay as written.
pub(crate) fn substitute(
    value: &mut Value,
    open: &str,
    close: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    match value {
        Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find(open) {
                let after = &rest[start + open.len()..];
                let Some(end) = after.find(close) else {
                    break;
                };
                out.push_str(&rest[..start]);
                match lookup(after[..end].trim()) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + open.len() + end + close.len()]),
                }
                rest = &after[end + close.len()..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(items) => {
            for v in items {
                substitute(v, open, close, lookup);
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                substitute(v, open, close, lookup);
            }
        }
        _ => {}
    }
}

/// Writes a script where a step runs it; returns the argv that runs it:
/// `command` and the file (Argo's `script`), or the file itself when it
/// starts with `#!`, else `sh` and the file (Tekton's `script`).
pub(crate) fn script_argv(
    path: &std::path::Path,
    source: &str,
    command: Option<&Value>,
) -> std::io::Result<Vec<Value>> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, source)?;
    let file = json!(path.to_string_lossy());
    if let Some(command) = command.and_then(Value::as_array).filter(|c| !c.is_empty()) {
        let mut argv = command.clone();
        argv.push(file);
        return Ok(argv);
    }
    if source.starts_with("#!") {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        return Ok(vec![file]);
    }
    Ok(vec![json!("sh"), file])
}

/// A scratch folder for one workload's scripts and results.
pub(crate) fn scratch(owner: &Owner) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ktune-fake-{}", owner.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_replaces_known_keys_and_keeps_the_rest() {
        let mut v = json!({"a": ["x={{ inputs.parameters.x }} y={{y}}", "$(params.lr)"], "n": 1});
        substitute(&mut v, "{{", "}}", &|k| {
            (k == "inputs.parameters.x").then(|| "1".into())
        });
        substitute(&mut v, "$(", ")", &|k| {
            (k == "params.lr").then(|| "0.1".into())
        });
        assert_eq!(v, json!({"a": ["x=1 y={{y}}", "0.1"], "n": 1}));
    }
}
