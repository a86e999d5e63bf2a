//! The fake cluster's controllers: watches the store and runs every
//! workload of a kind in the trial-kind table (a `batch/v1` Job, the
//! Kubeflow training jobs, a Trainer `TrainJob`, a `JobSet`, an Argo
//! `Workflow`, a Tekton `PipelineRun`; see [`crate::workloads`]) as pods
//! on one fake node, whose containers are
//! local processes ([`crate::pod`]). Images are ignored. Deleting a Pod
//! (or its workload, whose pods the garbage collector then deletes) sends
//! SIGTERM to the process group and SIGKILL after the grace period.

use crate::logs::Logs;
use crate::pod::{Pods, str_at};
use crate::resource::ResourceType;
use crate::store::{EventType, Store};
use crate::workloads::{Ctx, Kind};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

/// Executor settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where processes run (unless a container's `workingDir` exists here).
    pub workdir: PathBuf,
    /// SIGTERM→SIGKILL grace when the pod does not set
    /// `terminationGracePeriodSeconds` (capped by it when it does).
    pub grace: Duration,
    /// Give each pod a working directory of its own,
    /// `<workdir>/<namespace>/<pod>` (created), as each pod has its own
    /// filesystem on a cluster: pods that write the same relative path
    /// (the Kubeflow SDK's trainer writes its function's source file
    /// beside it) then do not overwrite each other's. Off (the default),
    /// every pod runs in `workdir` itself, where paths relative to a
    /// checkout resolve.
    pub workdir_per_pod: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            grace: Duration::from_secs(5),
            workdir_per_pod: false,
        }
    }
}

/// A running executor; dropping it stops it and kills its processes.
#[derive(Debug)]
pub struct Executor {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Executor {
    pub(crate) fn start(
        store: Arc<Store>,
        logs: Arc<Logs>,
        progress: Arc<crate::progress::ProgressServer>,
        config: ExecutorConfig,
    ) -> Self {
        let pods = store.find_type("", "v1", "pods");
        let events = store.subscribe();
        let task = tokio::spawn(async move {
            let Some(pods) = pods else {
                tracing::error!("the store serves no v1 pods");
                return;
            };
            let ctx = Arc::new(Ctx {
                pods: Pods::new(store, logs, config, pods),
                progress,
            });
            run(ctx, events).await;
        });
        Self { task }
    }
}

/// The served type an object was written through (its group and kind; the
/// version it names, if served, else any).
fn type_of(store: &Store, object: &Value) -> Option<ResourceType> {
    let api_version = str_at(object, "/apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = str_at(object, "/kind");
    let types = store.types();
    let same = |t: &&ResourceType| t.group == group && t.kind == kind;
    types
        .iter()
        .filter(same)
        .find(|t| t.version == version)
        .or_else(|| types.iter().find(same))
        .cloned()
}

async fn run(ctx: Arc<Ctx>, mut events: broadcast::Receiver<Arc<crate::store::Event>>) {
    let mut started: HashSet<String> = HashSet::new();
    let mut tasks = JoinSet::new();
    let relist = |ctx: &Arc<Ctx>, started: &mut HashSet<String>, tasks: &mut JoinSet<()>| {
        let store = &ctx.pods.store;
        for rt in store.types() {
            for object in store
                .list(&rt, None, &Default::default())
                .ok()
                .as_ref()
                .and_then(|l| l.get("items"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                maybe_start(ctx, object, started, tasks);
            }
        }
    };
    relist(&ctx, &mut started, &mut tasks);
    loop {
        tokio::select! {
            r = events.recv() => match r {
                Ok(ev) => match ev.kind {
                    EventType::Deleted if ctx.pods.is_pods(&ev.key) => ctx.pods.deleted(&ev.object),
                    EventType::Added | EventType::Modified => maybe_start(&ctx, &ev.object, &mut started, &mut tasks),
                    EventType::Deleted => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => relist(&ctx, &mut started, &mut tasks),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

fn maybe_start(
    ctx: &Arc<Ctx>,
    object: &Value,
    started: &mut HashSet<String>,
    tasks: &mut JoinSet<()>,
) {
    let Some(kind) = Kind::of(object) else {
        return;
    };
    let uid = str_at(object, "/metadata/uid").to_string();
    if uid.is_empty()
        || started.contains(&uid)
        || object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
        || object
            .pointer("/spec/runPolicy/suspend")
            .and_then(Value::as_bool)
            == Some(true)
        || kind.finished(object)
        || object.pointer("/metadata/deletionTimestamp").is_some()
    {
        return;
    }
    let Some(rt) = type_of(&ctx.pods.store, object) else {
        return;
    };
    started.insert(uid);
    tasks.spawn(kind.run(ctx.clone(), rt, object.clone()));
}
