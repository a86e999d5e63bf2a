//! Pods as local processes: what a kubelet would do for the fake cluster.
//!
//! [`Pods::run`] runs each container's `command` + `args` as a local
//! process group with the container's plain `env` values (and `fieldRef`s
//! to the pod's name, namespace, uid, labels and annotations) in the
//! configured working directory, captures stdout and stderr as the
//! container's log, and moves the Pod through Running → Succeeded/Failed.
//! Images are ignored: a container without `command` runs its `args`, and
//! one without an image is given [`PLACEHOLDER_IMAGE`] so that clients
//! (the Kubernetes Python client among them) parse its status; statuses
//! follow the pod through init containers (`status`).
//! Deleting the Pod sends SIGTERM to the process group and SIGKILL after
//! the grace period.
//!
//! Two annotations, set only by the fake's own workload controllers, stand
//! in for what images would do on a cluster: [`SEQUENTIAL`] runs the
//! containers one after another, stopping at the first failure (Tekton's
//! entrypoint wrapper orders a TaskRun's steps that way), and [`IDLE`]
//! lets a container without a command wait until the pod is deleted (an
//! MPI worker's image runs sshd and waits for the launcher).

mod container;
mod status;

use crate::ExecutorConfig;
use crate::logs::Logs;
use crate::resource::ResourceType;
use crate::store::{Store, now};
use container::{Exit, Launch, env_of};
use serde_json::{Value, json};
pub use status::PLACEHOLDER_IMAGE;
use status::{State, container_status, give_images};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

    /// The fake node's own folder (pods' emptyDirs, workloads' files).
    pub(crate) fn node_folder(&self) -> &std::path::Path {
        &self.root
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
        if let Some(spec) = pod.get_mut("spec") {
            give_images(spec);
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

    /// Runs a created pod to its end: init containers (native sidecars
    /// beside the rest), then the containers (in order under
    /// [`SEQUENTIAL`], else together), its status kept as a kubelet would.
    pub(crate) async fn run(&self, pod: Value, deadline: Option<tokio::time::Instant>) -> PodEnd {
        let ns = str_at(&pod, "/metadata/namespace").to_string();
        let name = str_at(&pod, "/metadata/name").to_string();
        let inits = list(&pod, "/spec/initContainers");
        let containers = list(&pod, "/spec/containers");
        let (kill_tx, kill_rx) = watch::channel(false);
        self.kills_lock()
            .insert((ns.clone(), name.clone()), kill_tx);
        let started = now();
        let ip = self.next_ip();
        let base = json!({"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": "BestEffort", "startTime": started});
        self.set_phase(
            &ns,
            &name,
            &base,
            "Running",
            &started,
            &starting(&inits, &containers, &started),
        );
        let root = self.root.join(format!("{ns}_{name}"));
        let mut pod = pod;
        let dirs = crate::volumes::volume_dirs(&pod, &root, &self.root);
        pod["status"] = json!({"podIP": ip});
        let starter = Starter {
            pods: self,
            grace: self.grace_of(&pod),
            idle: annotated(&pod, IDLE),
            pod: &pod,
            dirs,
            deadline,
            kill: kill_rx.clone(),
            started: started.clone(),
        };
        let (sidecars_done, mains_done) = watch::channel(false);
        let mut init = starter.run_init(&inits, mains_done).await;
        let exits = if init.ok {
            if !inits.is_empty() {
                let mains_started = now();
                self.set_phase(
                    &ns,
                    &name,
                    &base,
                    "Running",
                    &mains_started,
                    &initialized(&inits, &init.exits, &containers, &mains_started),
                );
            }
            starter
                .run_main(&containers, annotated(&pod, SEQUENTIAL))
                .await
        } else {
            containers.iter().map(|c| starter.skip(c)).collect()
        };
        sidecars_done.send_replace(true);
        for (i, s) in init.sidecars {
            let end = Exit::joined(s.await, &started);
            if let Some(slot) = init.exits.get_mut(i) {
                *slot = Some(end);
            }
        }
        self.kills_lock().remove(&(ns.clone(), name.clone()));
        if *kill_rx.borrow() {
            return PodEnd::Deleted;
        }
        let statuses = ended(&inits, &init.exits, &containers, &exits);
        self.finish(&ns, &name, base, &exits, &statuses)
    }

    fn kills_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), watch::Sender<bool>>> {
        self.kills.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod's SIGTERM → SIGKILL grace: the executor's, capped by the
    /// pod's `terminationGracePeriodSeconds`.
    fn grace_of(&self, pod: &Value) -> Duration {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .map_or(self.config.grace, |s| {
                self.config.grace.min(Duration::from_secs(s))
            })
    }

    /// Writes the pod's status: `base`, a phase, its conditions and its
    /// containers' statuses.
    fn set_phase(
        &self,
        ns: &str,
        name: &str,
        base: &Value,
        phase: &str,
        at: &str,
        statuses: &Statuses,
    ) {
        let mut st = base.clone();
        st["phase"] = json!(phase);
        st["conditions"] = pod_conditions(phase == "Running", at);
        if !statuses.init.is_empty() {
            st["initContainerStatuses"] = json!(statuses.init);
        }
        st["containerStatuses"] = json!(statuses.main);
        let _ = self.store.set_status(&self.rt, ns, name, st);
    }

    /// The pod's final status, from its containers' ends.
    fn finish(
        &self,
        ns: &str,
        name: &str,
        base: Value,
        exits: &[Exit],
        statuses: &Statuses,
    ) -> PodEnd {
        let deadline_hit = exits.iter().any(|e| e.killed);
        let ok = !deadline_hit && exits.iter().all(|e| e.code == 0);
        let mut base = base;
        if deadline_hit {
            base["reason"] = json!("DeadlineExceeded");
            base["message"] =
                json!("Pod was active on the node longer than the specified deadline");
        }
        let phase = if ok { "Succeeded" } else { "Failed" };
        self.set_phase(ns, name, &base, phase, &now(), statuses);
        match (ok, deadline_hit) {
            (true, _) => PodEnd::Succeeded,
            (false, true) => PodEnd::DeadlineExceeded,
            (false, false) => PodEnd::Failed,
        }
    }
}

/// An array of a pod (`/spec/containers`), empty when absent.
fn list(pod: &Value, pointer: &str) -> Vec<Value> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether the pod carries `key: "true"`.
fn annotated(pod: &Value, key: &str) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        == Some("true")
}

/// The statuses of a pod's init containers and containers.
#[derive(Debug, Default)]
struct Statuses {
    init: Vec<Value>,
    main: Vec<Value>,
}

/// Whether an init container is a native sidecar (runs beside the rest).
fn is_sidecar(c: &Value) -> bool {
    c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

/// The statuses as the pod starts: the first init container running and
/// the rest waiting behind it, or, without init containers, every
/// container running.
fn starting(inits: &[Value], containers: &[Value], started: &str) -> Statuses {
    let init = inits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let state = if i == 0 {
                State::Running {
                    started,
                    ready: false,
                }
            } else {
                State::Waiting("PodInitializing")
            };
            container_status(c, state)
        })
        .collect();
    let main_state = if inits.is_empty() {
        State::Running {
            started,
            ready: true,
        }
    } else {
        State::Waiting("PodInitializing")
    };
    Statuses {
        init,
        main: containers
            .iter()
            .map(|c| container_status(c, main_state))
            .collect(),
    }
}

/// The statuses once the init containers are done: those that ran to
/// their end terminated, native sidecars running, the containers running.
fn initialized(
    inits: &[Value],
    init_exits: &[Option<Exit>],
    containers: &[Value],
    started: &str,
) -> Statuses {
    let running = State::Running {
        started,
        ready: true,
    };
    Statuses {
        init: inits
            .iter()
            .zip(init_exits)
            .map(|(c, e)| {
                let state = match e {
                    Some(e) => State::Terminated(e),
                    None if is_sidecar(c) => running,
                    None => State::Waiting("PodInitializing"),
                };
                container_status(c, state)
            })
            .collect(),
        main: containers
            .iter()
            .map(|c| container_status(c, running))
            .collect(),
    }
}

/// The statuses once the pod ended: every container that ran terminated,
/// init containers that never started still waiting.
fn ended(
    inits: &[Value],
    init_exits: &[Option<Exit>],
    containers: &[Value],
    exits: &[Exit],
) -> Statuses {
    Statuses {
        init: inits
            .iter()
            .zip(init_exits)
            .map(|(c, e)| {
                let state = e
                    .as_ref()
                    .map_or(State::Waiting("PodInitializing"), State::Terminated);
                container_status(c, state)
            })
            .collect(),
        main: containers
            .iter()
            .zip(exits)
            .map(|(c, e)| container_status(c, State::Terminated(e)))
            .collect(),
    }
}

/// What [`Starter::run_init`] leaves: the native sidecars still running
/// (by their index), the ends of the others, and whether all succeeded.
struct InitRun {
    sidecars: Vec<(usize, JoinHandle<Exit>)>,
    exits: Vec<Option<Exit>>,
    ok: bool,
}

/// Starts the containers of one pod.
struct Starter<'a> {
    pods: &'a Pods,
    /// The pod, its `status.podIP` set (the downward API reads it).
    pod: &'a Value,
    dirs: HashMap<String, PathBuf>,
    deadline: Option<tokio::time::Instant>,
    grace: Duration,
    idle: bool,
    /// Turns true when the pod is deleted.
    kill: watch::Receiver<bool>,
    started: String,
}

impl Starter<'_> {
    fn ns(&self) -> &str {
        str_at(self.pod, "/metadata/namespace")
    }

    fn name(&self) -> &str {
        str_at(self.pod, "/metadata/name")
    }

    /// Where the pod's containers run (unless their `workingDir` exists):
    /// the configured folder, or the pod's own below it (created; the
    /// configured folder when it cannot be).
    fn workdir(&self) -> PathBuf {
        let config = &self.pods.config;
        if !config.workdir_per_pod {
            return config.workdir.clone();
        }
        let own = config.workdir.join(self.ns()).join(self.name());
        match std::fs::create_dir_all(&own) {
            Ok(()) => own,
            Err(e) => {
                tracing::warn!(pod = self.name(), error = %e, "cannot create the pod's working directory");
                config.workdir.clone()
            }
        }
    }

    /// Starts a container, stopped when `kill` turns true.
    fn start(&self, c: &Value, kill: watch::Receiver<bool>) -> JoinHandle<Exit> {
        let (ns, name) = (self.ns(), self.name());
        let buf = self.pods.logs.buffer(ns, name, str_at(c, "/name"));
        let container = crate::volumes::localize(c, &self.dirs);
        let env = env_of(self.pod, &container, &|secret, key| {
            self.pods.secret(ns, secret, key)
        });
        tokio::spawn(
            Launch {
                workdir: self.workdir(),
                env,
                container,
                buf,
                kill,
                deadline: self.deadline,
                grace: self.grace,
                idle: self.idle,
            }
            .run(),
        )
    }

    /// Runs a container to its end.
    async fn run_one(&self, c: &Value) -> Exit {
        Exit::joined(self.start(c, self.kill.clone()).await, &self.started)
    }

    /// A container that never starts: its log closed, its end "Skipped".
    fn skip(&self, c: &Value) -> Exit {
        self.pods
            .logs
            .buffer(self.ns(), self.name(), str_at(c, "/name"))
            .finish();
        Exit::skipped()
    }

    /// Runs the init containers in order; native sidecars
    /// (`restartPolicy: Always`) start in their turn and run until the
    /// main containers end (`mains_done`) or the pod goes. Stops at the
    /// first init container that fails.
    async fn run_init(&self, init: &[Value], mains_done: watch::Receiver<bool>) -> InitRun {
        let mut run = InitRun {
            sidecars: Vec::new(),
            exits: init.iter().map(|_| None).collect(),
            ok: true,
        };
        for (i, c) in init.iter().enumerate() {
            if is_sidecar(c) {
                let (tx, rx) = watch::channel(false);
                let (mut pod_kill, mut mains_done) = (self.kill.clone(), mains_done.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = pod_kill.wait_for(|k| *k) => {}
                        _ = mains_done.wait_for(|k| *k) => {}
                    }
                    tx.send_replace(true);
                });
                run.sidecars.push((i, self.start(c, rx)));
                continue;
            }
            let exit = self.run_one(c).await;
            let failed = exit.code != 0;
            if let Some(slot) = run.exits.get_mut(i) {
                *slot = Some(exit);
            }
            if failed {
                run.ok = false;
                break;
            }
        }
        run
    }

    /// Runs the main containers: in order, stopping at the first failure
    /// (or the pod's deletion), when `sequential`; else all together.
    async fn run_main(&self, containers: &[Value], sequential: bool) -> Vec<Exit> {
        let mut exits: Vec<Exit> = Vec::new();
        if sequential {
            for c in containers {
                let stop = exits.iter().any(|e| e.code != 0) || *self.kill.borrow();
                exits.push(if stop {
                    self.skip(c)
                } else {
                    self.run_one(c).await
                });
            }
            return exits;
        }
        let handles: Vec<_> = containers
            .iter()
            .map(|c| self.start(c, self.kill.clone()))
            .collect();
        for h in handles {
            exits.push(Exit::joined(h.await, &self.started));
        }
        exits
    }
}
