//! Pods as local processes: what a kubelet would do for the fake cluster.
//!
//! [`Pods::run`] runs each container's `command` + `args` as a local
//! process group with the container's plain `env` values (and `fieldRef`s
//! to the pod's name, namespace, uid, labels and annotations) in the
//! configured working directory, captures stdout and stderr as the
//! container's log, and moves the Pod through Running → Succeeded/Failed.
//! Images are ignored: a container without `command` runs its `args`.
//! Deleting the Pod sends SIGTERM to the process group and SIGKILL after
//! the grace period.
//!
//! Two annotations, set only by the fake's own workload controllers, stand
//! in for what images would do on a cluster: [`SEQUENTIAL`] runs the
//! containers one after another, stopping at the first failure (Tekton's
//! entrypoint wrapper orders a TaskRun's steps that way), and [`IDLE`]
//! lets a container without a command wait until the pod is deleted (an
//! MPI worker's image runs sshd and waits for the launcher).

use crate::ExecutorConfig;
use crate::logs::{LogBuf, Logs};
use crate::resource::{ResourceType, string_array};
use crate::store::{Store, now};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Annotation: run the pod's containers in order, stopping at a failure.
pub(crate) const SEQUENTIAL: &str = "fake.ktune.dev/sequential-containers";
/// Annotation: a container without a command idles until the pod goes.
pub(crate) const IDLE: &str = "fake.ktune.dev/idle-without-command";

pub(crate) fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The pods of the fake node: creates them and runs their containers.
#[derive(Debug)]
pub(crate) struct Pods {
    pub(crate) store: Arc<Store>,
    logs: Arc<Logs>,
    config: ExecutorConfig,
    rt: ResourceType,
    /// Kill switches of running pods, by (namespace, name).
    kills: Mutex<HashMap<(String, String), watch::Sender<bool>>>,
    /// Pods started so far: each gets its own loopback address as pod IP.
    started: std::sync::atomic::AtomicU32,
    /// Where this node keeps its pods' emptyDirs.
    root: PathBuf,
}

/// How one pod ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PodEnd {
    Succeeded,
    Failed,
    Deleted,
    DeadlineExceeded,
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

impl Pods {
    pub(crate) fn new(
        store: Arc<Store>,
        logs: Arc<Logs>,
        config: ExecutorConfig,
        rt: ResourceType,
    ) -> Self {
        Self {
            store,
            logs,
            config,
            rt,
            kills: Mutex::default(),
            // A random start: fake nodes in parallel test processes hand
            // out different pod IPs (and folders).
            started: std::sync::atomic::AtomicU32::new(fastrand::u32(..255 * 254 * 254)),
            root: std::env::temp_dir().join(format!(
                "ktune-fake-node-{}-{}",
                std::process::id(),
                crate::store::random_suffix()
            )),
        }
    }

    /// A pod IP of its own (`127.1.0.1` … `127.255.253.254`, from a random
    /// start; Linux routes all of
    /// 127.0.0.0/8 to loopback): a process binding its `status.podIP`
    /// (downward API) on a fixed port does not collide with another pod's,
    /// as on a cluster. 127.0.0.x is left to the host.
    fn next_ip(&self) -> String {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % (255 * 254 * 254);
        let (a, rest) = (n / (254 * 254), n % (254 * 254));
        format!("127.{}.{}.{}", a + 1, rest / 254, rest % 254 + 1)
    }

    /// Whether a store event is about pods.
    pub(crate) fn is_pods(&self, key: &crate::resource::ResKey) -> bool {
        *key == self.rt.key()
    }

    /// Creates a pod in `ns`: `pod` is a complete Pod (name or
    /// generateName, labels, owner references, spec), scheduled here.
    pub(crate) fn create(&self, ns: &str, mut pod: Value) -> Result<Value, crate::ApiError> {
        if let Some(m) = pod.as_object_mut() {
            m.insert("apiVersion".into(), json!("v1"));
            m.insert("kind".into(), json!("Pod"));
        }
        if let Some(s) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            s.insert("nodeName".into(), json!("fake-node"));
            s.entry("restartPolicy").or_insert(json!("Never"));
        }
        self.store.create_internal(&self.rt, Some(ns), pod)
    }

    /// Deletes a pod (its processes are stopped when the deletion is seen).
    pub(crate) fn delete(&self, ns: &str, name: &str) {
        let _ = self
            .store
            .delete(&self.rt, Some(ns), name, &Default::default(), false);
    }

    /// A pod was deleted: stop its processes, forget its logs.
    pub(crate) fn deleted(&self, pod: &Value) {
        let key = (
            str_at(pod, "/metadata/namespace").to_string(),
            str_at(pod, "/metadata/name").to_string(),
        );
        if let Some(k) = self
            .kills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            k.send_replace(true);
        }
        self.logs.remove(&key.0, &key.1);
        let _ = std::fs::remove_dir_all(self.root.join(format!("{}_{}", key.0, key.1)));
    }

    /// A key of a Secret in `ns` (`data`, base64, or `stringData`).
    fn secret(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        use base64::Engine as _;
        let rt = self.store.find_type("", "v1", "secrets")?;
        let secret = self.store.get(&rt, Some(ns), name).ok()?;
        if let Some(text) = secret
            .pointer("/data")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            return String::from_utf8(bytes).ok();
        }
        secret
            .pointer("/stringData")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// What a container of a pod has written so far.
    pub(crate) fn log(&self, ns: &str, pod: &str, container: &str) -> String {
        self.logs
            .get(ns, pod, container)
            .map(|b| String::from_utf8_lossy(&b.read_from(0).0).into_owned())
            .unwrap_or_default()
    }

    /// Runs a created pod to its end.
    pub(crate) async fn run(&self, pod: Value, deadline: Option<tokio::time::Instant>) -> PodEnd {
        let ns = str_at(&pod, "/metadata/namespace").to_string();
        let name = str_at(&pod, "/metadata/name").to_string();
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let annotation = |key: &str| {
            pod.pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                == Some("true")
        };
        let (sequential, idle) = (annotation(SEQUENTIAL), annotation(IDLE));
        // Init containers: regular ones run to completion first, in order;
        // native sidecars (`restartPolicy: Always`) start in their turn and
        // run beside the main containers until those have ended.
        let init: Vec<Value> = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let root = self.root.join(format!("{ns}_{name}"));
        let dirs = crate::volumes::empty_dirs(&pod, &root);
        let grace = pod
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .map_or(self.config.grace, |s| {
                self.config.grace.min(Duration::from_secs(s))
            });
        let (kill_tx, kill_rx) = watch::channel(false);
        self.kills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((ns.clone(), name.clone()), kill_tx);
        let started = now();
        let running: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c.get("name"), "image": c.get("image"), "imageID": "", "containerID": "fake://", "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}}))
            .collect();
        let ip = self.next_ip();
        let base = json!({"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": "BestEffort", "startTime": started});
        let mut pod = pod;
        pod["status"] = json!({"podIP": ip});
        let mut st = base.clone();
        st["phase"] = json!("Running");
        st["conditions"] = pod_conditions(true, &started);
        st["containerStatuses"] = json!(running);
        let _ = self.store.set_status(&self.rt, &ns, &name, st);

        let (sidecar_tx, sidecar_rx) = watch::channel(false);
        let start_with = |c: &Value, kill: watch::Receiver<bool>| {
            let buf = self.logs.buffer(&ns, &name, str_at(c, "/name"));
            let c = crate::volumes::localize(c, &dirs);
            let env = env_of(&pod, &c, &|secret, key| self.secret(&ns, secret, key));
            tokio::spawn(run_container(
                self.config.workdir.clone(),
                env,
                c,
                buf,
                kill,
                deadline,
                grace,
                idle,
            ))
        };
        let start = |c: &Value| start_with(c, kill_rx.clone());
        let joined = |r: Result<Exit, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Exit {
                code: 128,
                reason: "Error",
                message: Some(e.to_string()),
                started: started.clone(),
                finished: now(),
                killed: false,
            })
        };
        let mut sidecars = Vec::new();
        let mut init_failed = false;
        for c in &init {
            if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
                // Stopped when the main containers end, or with the pod.
                let (tx, rx) = watch::channel(false);
                let (mut pod_kill, mut mains_done) = (kill_rx.clone(), sidecar_rx.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = pod_kill.wait_for(|k| *k) => {}
                        _ = mains_done.wait_for(|k| *k) => {}
                    }
                    tx.send_replace(true);
                });
                sidecars.push(start_with(c, rx));
            } else if joined(start(c).await).code != 0 {
                init_failed = true;
                break;
            }
        }
        let mut exits = Vec::new();
        if init_failed {
            for c in &containers {
                self.logs.buffer(&ns, &name, str_at(c, "/name")).finish();
                exits.push(Exit::skipped());
            }
        } else if sequential {
            for c in &containers {
                if exits.iter().any(|e: &Exit| e.code != 0) || *kill_rx.borrow() {
                    self.logs.buffer(&ns, &name, str_at(c, "/name")).finish();
                    exits.push(Exit::skipped());
                    continue;
                }
                exits.push(joined(start(c).await));
            }
        } else {
            let handles: Vec<_> = containers.iter().map(start).collect();
            for h in handles {
                exits.push(joined(h.await));
            }
        }
        sidecar_tx.send_replace(true);
        for s in sidecars {
            let _ = s.await;
        }
        self.kills
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
        let _ = self.store.set_status(&self.rt, &ns, &name, st);
        match (ok, deadline_hit) {
            (true, _) => PodEnd::Succeeded,
            (false, true) => PodEnd::DeadlineExceeded,
            (false, false) => PodEnd::Failed,
        }
    }
}

impl Exit {
    /// A step never started because an earlier one failed (Tekton's
    /// "Skipped" termination).
    fn skipped() -> Self {
        let t = now();
        Self {
            code: 1,
            reason: "Skipped",
            message: None,
            started: t.clone(),
            finished: t,
            killed: false,
        }
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

/// A container's environment: plain values, `fieldRef`s to the pod, and
/// `secretKeyRef`s (through `secret`: namespace-local name and key →
/// value); a missing Secret or key is an error unless `optional`, as a
/// kubelet refuses to start the container (CreateContainerConfigError).
fn env_of(
    pod: &Value,
    c: &Value,
    secret: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = vec![(
        "HOSTNAME".to_string(),
        str_at(pod, "/metadata/name").to_string(),
    )];
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(e, "/name").to_string();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            out.push((name, v.to_string()));
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (secret_name, key) = (str_at(r, "/name"), str_at(r, "/key"));
            match secret(secret_name, key) {
                Some(v) => out.push((name, v)),
                None if r.get("optional").and_then(Value::as_bool) == Some(true) => {}
                None => {
                    return Err(format!(
                        "secret {secret_name:?} (key {key:?}) for {name} not found"
                    ));
                }
            }
        } else if let Some(path) = e
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            // `metadata.labels['k']` / `metadata.annotations['k']`.
            let keyed = |prefix: &str, map: &str| {
                path.strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix("']"))
                    .map(|k| {
                        pod.pointer(map)
                            .and_then(|m| m.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    })
            };
            if let Some(v) = keyed("metadata.labels['", "/metadata/labels")
                .or_else(|| keyed("metadata.annotations['", "/metadata/annotations"))
            {
                out.push((name, v.to_string()));
                continue;
            }
            let v = match path {
                "metadata.name" => str_at(pod, "/metadata/name"),
                "metadata.namespace" => str_at(pod, "/metadata/namespace"),
                "metadata.uid" => str_at(pod, "/metadata/uid"),
                "spec.nodeName" => "fake-node",
                "status.podIP" => str_at(pod, "/status/podIP"),
                "status.hostIP" => "127.0.0.1",
                _ => continue,
            };
            out.push((name, v.to_string()));
        } else if e.get("value").is_none() && e.get("valueFrom").is_none() {
            out.push((name, String::new()));
        }
    }
    Ok(out)
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

#[allow(clippy::too_many_arguments)] // one call site, all plain inputs
async fn run_container(
    workdir: PathBuf,
    env: Result<Vec<(String, String)>, String>,
    c: Value,
    buf: Arc<LogBuf>,
    mut kill: watch::Receiver<bool>,
    deadline: Option<tokio::time::Instant>,
    grace: Duration,
    idle: bool,
) -> Exit {
    let started = now();
    let argv: Vec<String> = string_array::<Vec<String>>(c.get("command"))
        .into_iter()
        .chain(string_array::<Vec<String>>(c.get("args")))
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
    if argv.is_empty() && idle {
        // What the image would run (an sshd): nothing to do until the pod goes.
        let _ = kill.wait_for(|k| *k).await;
        buf.finish();
        return Exit {
            code: 137,
            reason: "Error",
            message: None,
            started,
            finished: now(),
            killed: false,
        };
    }
    let env = match env {
        Ok(env) => env,
        Err(e) => return fail(e, &buf),
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
        .envs(env)
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
