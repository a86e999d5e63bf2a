//! A simulated workload executor: runs each Job's pod as local processes.
//!
//! For every Job (not suspended, not finished) it creates a Pod
//! (`<job>-<5 random>`, the Job's labels, an owner reference to the Job),
//! runs each container's `command` + `args` as a local process group with
//! the container's plain `env` values (and `fieldRef`s to the pod's name,
//! namespace and uid) in the configured working directory, captures
//! stdout and stderr as the container's log, and moves the Pod through
//! Pending → Running → Succeeded/Failed and the Job through `active`,
//! `succeeded`/`failed`, `SuccessCriteriaMet` → `Complete` or
//! `FailureTarget` → `Failed` (as Kubernetes 1.31+ does), retrying failed
//! pods up to `backoffLimit` and honouring `completions` (one pod at a
//! time) and `activeDeadlineSeconds`. Images are ignored: a container
//! without `command` runs its `args`. Deleting the Pod (or the Job, whose
//! pods the garbage collector then deletes) sends SIGTERM to the process
//! group and SIGKILL after the grace period.

use crate::logs::{LogBuf, Logs};
use crate::resource::ResourceType;
use crate::store::{EventType, Store, now};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

/// Executor settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Where processes run (unless a container's `workingDir` exists here).
    pub workdir: PathBuf,
    /// SIGTERM→SIGKILL grace when the pod does not set
    /// `terminationGracePeriodSeconds` (capped by it when it does).
    pub grace: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            grace: Duration::from_secs(5),
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

#[derive(Debug)]
struct Ctx {
    store: Arc<Store>,
    logs: Arc<Logs>,
    config: ExecutorConfig,
    jobs: ResourceType,
    pods: ResourceType,
    /// Kill switches of running pods, by (namespace, name).
    kills: Mutex<HashMap<(String, String), watch::Sender<bool>>>,
}

impl Executor {
    pub(crate) fn start(store: Arc<Store>, logs: Arc<Logs>, config: ExecutorConfig) -> Self {
        let jobs = store.find_type("batch", "v1", "jobs");
        let pods = store.find_type("", "v1", "pods");
        let events = store.subscribe();
        let task = tokio::spawn(async move {
            let (Some(jobs), Some(pods)) = (jobs, pods) else {
                tracing::error!("the store serves no batch/v1 jobs or v1 pods");
                return;
            };
            let ctx = Arc::new(Ctx {
                store,
                logs,
                config,
                jobs,
                pods,
                kills: Mutex::default(),
            });
            run(ctx, events).await;
        });
        Self { task }
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(str_at(c, "/type"), "Complete" | "Failed")
                    && str_at(c, "/status") == "True"
            })
        })
}

async fn run(ctx: Arc<Ctx>, mut events: broadcast::Receiver<Arc<crate::store::Event>>) {
    let mut started: HashSet<String> = HashSet::new();
    let mut tasks = JoinSet::new();
    let relist = |ctx: &Arc<Ctx>, started: &mut HashSet<String>, tasks: &mut JoinSet<()>| {
        if let Ok(list) = ctx.store.list(&ctx.jobs, None, &Default::default()) {
            for job in list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                maybe_start(ctx, job, started, tasks);
            }
        }
    };
    relist(&ctx, &mut started, &mut tasks);
    loop {
        tokio::select! {
            r = events.recv() => match r {
                Ok(ev) => {
                    let is_jobs = ev.key == ctx.jobs.key();
                    let is_pods = ev.key == ctx.pods.key();
                    match ev.kind {
                        EventType::Added | EventType::Modified if is_jobs => maybe_start(&ctx, &ev.object, &mut started, &mut tasks),
                        EventType::Deleted if is_pods => {
                            let key = (str_at(&ev.object, "/metadata/namespace").to_string(), str_at(&ev.object, "/metadata/name").to_string());
                            if let Some(k) = ctx.kills.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                                k.send_replace(true);
                            }
                            ctx.logs.remove(&key.0, &key.1);
                        }
                        _ => {}
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => relist(&ctx, &mut started, &mut tasks),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

fn maybe_start(
    ctx: &Arc<Ctx>,
    job: &Value,
    started: &mut HashSet<String>,
    tasks: &mut JoinSet<()>,
) {
    let uid = str_at(job, "/metadata/uid").to_string();
    if uid.is_empty()
        || started.contains(&uid)
        || job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
        || finished(job)
        || job.pointer("/metadata/deletionTimestamp").is_some()
    {
        return;
    }
    started.insert(uid);
    tasks.spawn(run_job(ctx.clone(), job.clone()));
}

/// How one pod ended.
#[derive(Debug, PartialEq)]
enum PodEnd {
    Succeeded,
    Failed,
    Deleted,
    DeadlineExceeded,
}

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

async fn run_job(ctx: Arc<Ctx>, job: Value) {
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
        ctx.store
            .get(&ctx.jobs, Some(&ns), &name)
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
        let _ = ctx.store.set_status(
            &ctx.jobs,
            &ns,
            &name,
            status(1, succeeded, failed, json!({})),
        );
        let end = match create_pod(&ctx, &job) {
            Ok(pod) => run_pod(&ctx, pod, deadline).await,
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
                let _ = ctx.store.set_status(&ctx.jobs, &ns, &name, status(0, succeeded, failed, json!({"conditions": [condition("FailureTarget", "DeadlineExceeded", msg)]})));
                let _ = ctx.store.set_status(&ctx.jobs, &ns, &name, status(0, succeeded, failed, json!({"conditions": [condition("FailureTarget", "DeadlineExceeded", msg), condition("Failed", "DeadlineExceeded", msg)]})));
                return;
            }
        }
        if succeeded >= completions {
            let msg = "Reached expected number of succeeded pods";
            let target = condition("SuccessCriteriaMet", "CompletionsReached", msg);
            let _ = ctx.store.set_status(
                &ctx.jobs,
                &ns,
                &name,
                status(0, succeeded, failed, json!({"conditions": [target]})),
            );
            let extra = json!({"completionTime": now(), "conditions": [target, condition("Complete", "CompletionsReached", msg)]});
            let _ =
                ctx.store
                    .set_status(&ctx.jobs, &ns, &name, status(0, succeeded, failed, extra));
            return;
        }
        if failed > backoff {
            let msg = "Job has reached the specified backoff limit";
            let target = condition("FailureTarget", "BackoffLimitExceeded", msg);
            let _ = ctx.store.set_status(
                &ctx.jobs,
                &ns,
                &name,
                status(0, succeeded, failed, json!({"conditions": [target]})),
            );
            let extra =
                json!({"conditions": [target, condition("Failed", "BackoffLimitExceeded", msg)]});
            let _ =
                ctx.store
                    .set_status(&ctx.jobs, &ns, &name, status(0, succeeded, failed, extra));
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
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.insert("nodeName".into(), json!("fake-node"));
        s.entry("restartPolicy").or_insert(json!("Never"));
    }
    let mut meta = json!({
        "generateName": format!("{name}-"),
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
    });
    if let Some(a) = template.pointer("/metadata/annotations") {
        meta["annotations"] = a.clone();
    }
    ctx.store.create_internal(
        &ctx.pods,
        Some(ns),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}),
    )
}

/// One container's end.
#[derive(Debug)]
struct Exit {
    code: i32,
    reason: &'static str,
    message: Option<String>,
    started: String,
    finished: String,
    killed: bool,
}

fn pod_conditions(ready: bool, t: &str) -> Value {
    let c = |ty: &str, ok: bool| {
        let mut v = json!({"type": ty, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": t});
        if !ok {
            v["reason"] = json!("PodCompleted");
        }
        v
    };
    json!([
        c("PodReadyToStartContainers", true),
        c("Initialized", true),
        c("Ready", ready),
        c("ContainersReady", ready),
        c("PodScheduled", true)
    ])
}

async fn run_pod(ctx: &Arc<Ctx>, pod: Value, deadline: Option<tokio::time::Instant>) -> PodEnd {
    let ns = str_at(&pod, "/metadata/namespace").to_string();
    let name = str_at(&pod, "/metadata/name").to_string();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .map_or(ctx.config.grace, |s| {
            ctx.config.grace.min(Duration::from_secs(s))
        });
    let (kill_tx, kill_rx) = watch::channel(false);
    ctx.kills
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((ns.clone(), name.clone()), kill_tx);
    let started = now();
    let running: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c.get("name"), "image": c.get("image"), "imageID": "", "containerID": "fake://", "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}}))
        .collect();
    let base = json!({"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "qosClass": "BestEffort", "startTime": started});
    let mut st = base.clone();
    st["phase"] = json!("Running");
    st["conditions"] = pod_conditions(true, &started);
    st["containerStatuses"] = json!(running);
    let _ = ctx.store.set_status(&ctx.pods, &ns, &name, st);

    let mut handles = Vec::new();
    for c in &containers {
        let buf = ctx.logs.buffer(&ns, &name, str_at(c, "/name"));
        handles.push(tokio::spawn(run_container(
            ctx.config.workdir.clone(),
            pod.clone(),
            c.clone(),
            buf,
            kill_rx.clone(),
            deadline,
            grace,
        )));
    }
    let mut exits = Vec::new();
    for h in handles {
        exits.push(h.await.unwrap_or_else(|e| Exit {
            code: 128,
            reason: "Error",
            message: Some(e.to_string()),
            started: started.clone(),
            finished: now(),
            killed: false,
        }));
    }
    ctx.kills
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(ns.clone(), name.clone()));
    if *kill_rx.borrow() {
        return PodEnd::Deleted;
    }
    let deadline_hit = exits.iter().any(|e| e.killed);
    let ok = !deadline_hit && exits.iter().all(|e| e.code == 0);
    let finished = now();
    let statuses: Vec<Value> = containers
        .iter()
        .zip(&exits)
        .map(|(c, e)| {
            let mut term = json!({"exitCode": e.code, "reason": e.reason, "startedAt": e.started, "finishedAt": e.finished, "containerID": "fake://"});
            if let Some(m) = &e.message {
                term["message"] = json!(m);
            }
            json!({"name": c.get("name"), "image": c.get("image"), "imageID": "", "containerID": "fake://", "ready": false, "started": false, "restartCount": 0, "state": {"terminated": term}})
        })
        .collect();
    let mut st = base;
    st["phase"] = json!(if ok { "Succeeded" } else { "Failed" });
    st["conditions"] = pod_conditions(false, &finished);
    st["containerStatuses"] = json!(statuses);
    if deadline_hit {
        st["reason"] = json!("DeadlineExceeded");
        st["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    let _ = ctx.store.set_status(&ctx.pods, &ns, &name, st);
    match (ok, deadline_hit) {
        (true, _) => PodEnd::Succeeded,
        (false, true) => PodEnd::DeadlineExceeded,
        (false, false) => PodEnd::Failed,
    }
}

/// Kills the process group when dropped while armed (executor stopped mid-run).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

fn env_of(pod: &Value, c: &Value) -> Vec<(String, String)> {
    let mut out = vec![(
        "HOSTNAME".to_string(),
        str_at(pod, "/metadata/name").to_string(),
    )];
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(e, "/name").to_string();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            out.push((name, v.to_string()));
        } else if let Some(path) = e
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            let v = match path {
                "metadata.name" => str_at(pod, "/metadata/name"),
                "metadata.namespace" => str_at(pod, "/metadata/namespace"),
                "metadata.uid" => str_at(pod, "/metadata/uid"),
                "spec.nodeName" => "fake-node",
                "status.podIP" | "status.hostIP" => "127.0.0.1",
                _ => continue,
            };
            out.push((name, v.to_string()));
        } else if e.get("value").is_none() && e.get("valueFrom").is_none() {
            out.push((name, String::new()));
        }
    }
    out
}

async fn pump(mut r: impl tokio::io::AsyncRead + Unpin, buf: Arc<LogBuf>) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.append(&chunk[..n]);
    }
}

async fn run_container(
    workdir: PathBuf,
    pod: Value,
    c: Value,
    buf: Arc<LogBuf>,
    mut kill: watch::Receiver<bool>,
    deadline: Option<tokio::time::Instant>,
    grace: Duration,
) -> Exit {
    let started = now();
    let strings = |k: &str| -> Vec<String> {
        c.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let argv: Vec<String> = strings("command")
        .into_iter()
        .chain(strings("args"))
        .collect();
    let fail = |msg: String, buf: &LogBuf| {
        buf.append(format!("{msg}\n").as_bytes());
        buf.finish();
        Exit {
            code: 128,
            reason: "StartError",
            message: Some(msg),
            started: now(),
            finished: now(),
            killed: false,
        }
    };
    let Some((prog, args)) = argv.split_first() else {
        return fail(
            "the container has no command or args (the fake executor ignores images)".into(),
            &buf,
        );
    };
    let dir = c
        .get("workingDir")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or(workdir);
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .envs(env_of(&pod, &c))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return fail(
                format!("failed to start {prog:?} in {}: {e}", dir.display()),
                &buf,
            );
        }
    };
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw),
    );
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(pump(o, buf.clone())));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(pump(e, buf.clone())));
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut deadline_hit = false;
    let status = tokio::select! {
        s = child.wait() => s,
        () = async { let _ = kill.wait_for(|k| *k).await; } => stop(&mut child, &guard, grace).await,
        () = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
            deadline_hit = true;
            stop(&mut child, &guard, grace).await
        }
    };
    guard.0 = None;
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    buf.finish();
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + s.signal().unwrap_or(9)
        }),
        Err(_) => 128,
    };
    Exit {
        code,
        reason: if code == 0 { "Completed" } else { "Error" },
        message: None,
        started,
        finished: now(),
        killed: deadline_hit,
    }
}

async fn stop(
    child: &mut tokio::process::Child,
    guard: &GroupGuard,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = guard.0 {
        let _ = killpg(pid, Signal::SIGTERM);
        if let Ok(s) = tokio::time::timeout(grace, child.wait()).await {
            return s;
        }
        let _ = killpg(pid, Signal::SIGKILL);
    }
    child.wait().await
}
