//! One container of a pod as a local process group: its environment
//! (plain values, the downward API, Secrets), its output into the
//! container's log, and its end — exit, the pod's deletion (SIGTERM, then
//! SIGKILL after the grace period) or the deadline.

use super::str_at;
use crate::logs::LogBuf;
use crate::resource::string_array;
use crate::store::now;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::sync::watch;

/// One container's end.
#[derive(Debug)]
pub(super) struct Exit {
    pub(super) code: i32,
    pub(super) reason: &'static str,
    pub(super) message: Option<String>,
    pub(super) started: String,
    pub(super) finished: String,
    /// Stopped by the deadline.
    pub(super) killed: bool,
}

impl Exit {
    /// A step never started because an earlier one failed (Tekton's
    /// "Skipped" termination).
    pub(super) fn skipped() -> Self {
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

    /// A container that could not start, its reason in its log.
    fn start_error(message: String, buf: &LogBuf) -> Self {
        buf.append(format!("{message}\n").as_bytes());
        buf.finish();
        Self {
            code: 128,
            reason: "StartError",
            message: Some(message),
            started: now(),
            finished: now(),
            killed: false,
        }
    }

    /// The end of a container task that itself failed.
    pub(super) fn joined(result: Result<Self, tokio::task::JoinError>, started: &str) -> Self {
        result.unwrap_or_else(|e| Self {
            code: 128,
            reason: "Error",
            message: Some(e.to_string()),
            started: started.to_owned(),
            finished: now(),
            killed: false,
        })
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

/// A `fieldRef` to the pod: `metadata.labels['k']`,
/// `metadata.annotations['k']`, or one of the pod's own fields.
fn field_ref<'a>(pod: &'a Value, path: &str) -> Option<&'a str> {
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
        return Some(v);
    }
    Some(match path {
        "metadata.name" => str_at(pod, "/metadata/name"),
        "metadata.namespace" => str_at(pod, "/metadata/namespace"),
        "metadata.uid" => str_at(pod, "/metadata/uid"),
        "spec.nodeName" => "fake-node",
        "status.podIP" => str_at(pod, "/status/podIP"),
        "status.hostIP" => "127.0.0.1",
        _ => return None,
    })
}

/// A container's environment: plain values, `fieldRef`s to the pod, and
/// `secretKeyRef`s (through `secret`: namespace-local name and key →
/// value); a missing Secret or key is an error unless `optional`, as a
/// kubelet refuses to start the container (CreateContainerConfigError).
pub(super) fn env_of(
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
            if let Some(v) = field_ref(pod, path) {
                out.push((name, v.to_string()));
            }
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

/// How one container runs: where, for how long, and how it is stopped.
pub(super) struct Launch {
    /// Where it runs unless its `workingDir` exists.
    pub(super) workdir: PathBuf,
    /// Its environment, or why it has none (it then fails to start).
    pub(super) env: Result<Vec<(String, String)>, String>,
    /// The container (its volume paths made local).
    pub(super) container: Value,
    /// Its log.
    pub(super) buf: Arc<LogBuf>,
    /// Turns true when the pod is deleted.
    pub(super) kill: watch::Receiver<bool>,
    /// When the pod's `activeDeadlineSeconds` runs out.
    pub(super) deadline: Option<tokio::time::Instant>,
    /// SIGTERM → SIGKILL.
    pub(super) grace: Duration,
    /// Whether a container without a command idles until the pod goes.
    pub(super) idle: bool,
}

impl Launch {
    /// Runs the container to its end.
    pub(super) async fn run(mut self) -> Exit {
        let started = now();
        let argv: Vec<String> = string_array::<Vec<String>>(self.container.get("command"))
            .into_iter()
            .chain(string_array::<Vec<String>>(self.container.get("args")))
            .collect();
        if argv.is_empty() && self.idle {
            // What the image would run (an sshd): nothing to do until the pod goes.
            let _ = self.kill.wait_for(|k| *k).await;
            self.buf.finish();
            return Exit {
                code: 137,
                reason: "Error",
                message: None,
                started,
                finished: now(),
                killed: false,
            };
        }
        let env = match std::mem::replace(&mut self.env, Ok(Vec::new())) {
            Ok(env) => env,
            Err(e) => return Exit::start_error(e, &self.buf),
        };
        let Some((prog, args)) = argv.split_first() else {
            return Exit::start_error(
                "the container has no command or args (the fake executor ignores images)".into(),
                &self.buf,
            );
        };
        let dir = self
            .container
            .get("workingDir")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| self.workdir.clone());
        let child = tokio::process::Command::new(prog)
            .args(args)
            .envs(env)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(child) => self.wait(child, started).await,
            Err(e) => Exit::start_error(
                format!("failed to start {prog:?} in {}: {e}", dir.display()),
                &self.buf,
            ),
        }
    }

    /// Copies the process's output into the log until it exits, the pod
    /// is deleted or the deadline passes.
    async fn wait(mut self, mut child: Child, started: String) -> Exit {
        let mut guard = GroupGuard(
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .map(Pid::from_raw),
        );
        let out = child
            .stdout
            .take()
            .map(|o| tokio::spawn(pump(o, self.buf.clone())));
        let err = child
            .stderr
            .take()
            .map(|e| tokio::spawn(pump(e, self.buf.clone())));
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let mut deadline_hit = false;
        let status = tokio::select! {
            s = child.wait() => s,
            () = async { let _ = self.kill.wait_for(|k| *k).await; } => stop(&mut child, &guard, self.grace).await,
            () = tokio::time::sleep_until(self.deadline.unwrap_or(far)) => {
                deadline_hit = true;
                stop(&mut child, &guard, self.grace).await
            }
        };
        guard.0 = None;
        for t in [out, err].into_iter().flatten() {
            let _ = t.await;
        }
        self.buf.finish();
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
}

async fn stop(
    child: &mut Child,
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
