//! Custom (katib-reference.md §6.6): the user's own collector container
//! runs beside each trial and reports what it reads — through ktune's push
//! endpoint (`KTUNE_PUSH_URL`, `KTUNE_PUSH_TOKEN`) or Katib's gRPC
//! `ReportObservationLog` (`KATIB_TRIAL_NAME`, the DBManager address), as
//! Push trials do; the collector is then the Push one.
//!
//! - In a cluster: the container is added, as the user wrote it, to each
//!   pod template holding the primary container — as a native sidecar (an
//!   init container with `restartPolicy: Always`) rather than Katib's plain
//!   extra container, so the pod completes when the training ends and the
//!   collector gets SIGTERM then, with the pod's grace period to send its
//!   last reports. With `source.fileSystemPath` the path's folder is an
//!   `emptyDir` mounted in both, as Katib mounts it.
//! - Locally (`ktune run`): the container's `command` and `args` run as a
//!   process beside the trial, in the trial's folder (its output in
//!   `collector.log`), with the container's plain `env`, `metadata.name`
//!   from the downward API as the trial's name, and the push variables.
//!   When the trial's processes have ended it gets SIGTERM (after running
//!   [`MIN_RUN`] at least) and [`GRACE`] to send its last reports, then
//!   SIGKILL. A path is used as
//!   it is, as the File collector uses it.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::push::{Push, Pushed};
use super::{Backend, Settings, TrialReader};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, CollectorError, TrialMetrics};
use crate::runner::{Reporting, TrialRun, pod_spec};

/// How long a local collector has, after SIGTERM, to send its last reports.
pub const GRACE: Duration = Duration::from_secs(5);
/// How long a local collector runs at least before it is told to stop: a
/// trial that ends at once must not stop its collector before the
/// collector could set up its SIGTERM handler (an interpreter starting
/// on a busy machine takes a while).
pub const MIN_RUN: Duration = Duration::from_secs(3);
/// The volume sharing `source.fileSystemPath`'s folder in a cluster.
const VOLUME: &str = "ktune-custom-metrics";

/// The Custom collector: Push, plus the user's container beside each trial.
#[derive(Debug)]
pub struct Custom {
    push: Push,
    sidecar: CustomSidecar,
    /// Locally: each prepared trial's variables, until its collector starts.
    prepared: Mutex<HashMap<String, Vec<(String, String)>>>,
}

/// The user's collector container, as the cluster runner adds it.
#[derive(Debug, Clone)]
pub struct CustomSidecar {
    container: Value,
    /// The folder of `source.fileSystemPath`, shared with the trial.
    folder: Option<String>,
}

impl Custom {
    /// The Custom collector of `settings` (validation checked the container).
    ///
    /// # Errors
    /// [`CollectorError::NoCustomContainer`] without a container; the Push
    /// collector's errors.
    pub async fn start(
        settings: &Settings,
        container: Option<&Value>,
        backend: Backend<'_>,
    ) -> Result<Self, CollectorError> {
        let container = container
            .filter(|c| c.is_object())
            .cloned()
            .ok_or(CollectorError::NoCustomContainer)?;
        let folder = settings
            .source
            .file_system_path
            .as_ref()
            .filter(|f| !f.path.is_empty())
            .map(|f| match f.kind {
                Some(crate::api::enums::FileSystemKind::Directory) => f.path.clone(),
                _ => Path::new(&f.path)
                    .parent()
                    .map_or_else(|| "/".to_owned(), |p| p.display().to_string()),
            });
        Ok(Self {
            push: Push::start(settings, backend).await?,
            sidecar: CustomSidecar { container, folder },
            prepared: Mutex::default(),
        })
    }

    /// The push collector underneath (its endpoint, its DBManager API).
    pub fn push_mut(&mut self) -> &mut Push {
        &mut self.push
    }

    /// The push collector underneath.
    #[must_use]
    pub fn push(&self) -> &Push {
        &self.push
    }

    /// The container the cluster runner adds to the trials' primary pods.
    #[must_use]
    pub fn sidecar(&self) -> &CustomSidecar {
        &self.sidecar
    }

    fn prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(String, String)>>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the collector process of a local trial in `folder`.
    fn spawn(
        &self,
        trial: &str,
        folder: &Path,
        env: Vec<(String, String)>,
    ) -> Option<tokio::process::Child> {
        let mut argv = strings(&self.sidecar.container, "command");
        argv.extend(strings(&self.sidecar.container, "args"));
        let Some((program, args)) = argv.split_first() else {
            tracing::warn!(
                trial,
                "the Custom collector's container has no command: it cannot run locally"
            );
            return None;
        };
        let log = std::fs::File::create(folder.join("collector.log"));
        let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(folder)
            .envs(container_env(&self.sidecar.container, trial))
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        match command.spawn() {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::warn!(trial, program = %program, error = %e, "the Custom collector did not start");
                None
            }
        }
    }
}

/// A container's list of strings under `key`.
fn strings(container: &Value, key: &str) -> Vec<String> {
    container
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// A container's `env` for a local process: plain values, and
/// `metadata.name` (the pod's name: here the trial's) from the downward API.
fn container_env(container: &Value, trial: &str) -> Vec<(String, String)> {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?.to_owned();
            if let Some(value) = e.get("value").and_then(Value::as_str) {
                return Some((name, value.to_owned()));
            }
            let field = e
                .pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str);
            (field == Some("metadata.name")).then(|| (name, trial.to_owned()))
        })
        .collect()
}

impl CustomSidecar {
    /// Adds the container (a native sidecar, with the trial's push Secret
    /// and its name) and the shared folder to every pod template of
    /// `workload` holding the primary container; returns how many.
    pub fn inject(&self, workload: &mut Value, primary: &str, trial: &str, secret: &str) -> usize {
        let mut container = self.container.clone();
        container["restartPolicy"] = json!("Always");
        let mut env: Vec<Value> = super::push::secret_env(secret).into();
        env.push(json!({"name": "KATIB_TRIAL_NAME", "value": trial}));
        super::push::add_env(&mut container, &env);
        let mount = self
            .folder
            .as_ref()
            .map(|folder| json!({"name": VOLUME, "mountPath": folder}));
        if let Some(mount) = &mount
            && let Some(c) = container.as_object_mut()
        {
            pod_spec::mount(c, mount);
        }
        pod_spec::each_primary_pod_spec(workload, primary, &mut |spec| {
            pod_spec::add_named(spec, "initContainers", container.clone());
            if let Some(mount) = &mount {
                pod_spec::add_named(spec, "volumes", json!({"name": VOLUME, "emptyDir": {}}));
                pod_spec::mount_in_primary(spec, primary, mount);
            }
        })
    }
}

impl Collector for Custom {
    type Trial = TrialReader;

    fn prepare(&self, trial: &str) -> Reporting {
        let reporting = self.push.prepare(trial);
        let mut env = reporting.env();
        env.push(("KATIB_TRIAL_NAME".to_owned(), trial.to_owned()));
        self.prepared().insert(trial.to_owned(), env);
        reporting
    }

    fn attach(&self, trial: &str, run: &impl TrialRun) -> TrialReader {
        let pushed = self.push.pushed(trial);
        let env = self.prepared().remove(trial);
        // Locally the trial's output file tells its folder; a cluster
        // trial has none, and its collector runs in its pod.
        let folder = run.stdout().and_then(Path::parent).map(Path::to_path_buf);
        let process = match (env, folder) {
            (Some(env), Some(folder)) => self.spawn(trial, &folder, env),
            _ => None,
        };
        TrialReader::Custom(CustomReader {
            pushed,
            process,
            started: tokio::time::Instant::now(),
        })
    }

    fn detach(&self, trial: &str) {
        self.prepared().remove(trial);
        self.push.detach(trial);
    }
}

/// A local trial's collector process and what it pushed.
#[derive(Debug)]
pub struct CustomReader {
    pushed: Pushed,
    process: Option<tokio::process::Child>,
    started: tokio::time::Instant,
}

impl TrialMetrics for CustomReader {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.pushed.poll().await
    }

    /// The trial ended: the collector gets SIGTERM (once it has run
    /// [`MIN_RUN`]) and [`GRACE`] to send its last reports, then SIGKILL.
    async fn finish(&mut self) -> Vec<MetricLog> {
        if let Some(mut child) = self.process.take() {
            tokio::time::sleep_until(self.started + MIN_RUN).await;
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let group = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                tracing::warn!("the Custom collector did not exit {GRACE:?} after SIGTERM: killed");
                let _ = child.kill().await;
            }
        }
        self.pushed.poll().await
    }

    fn replays(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_joins_the_primary_pods_as_a_native_sidecar_sharing_the_folder() {
        let sidecar = CustomSidecar {
            container: json!({"name": "my-collector", "image": "me/collector", "args": ["-path", "/katib/mnist.log"],
                              "env": [{"name": "TrialNamePrefix", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
            folder: Some("/katib".into()),
        };
        let mut w = json!({"spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}});
        assert_eq!(sidecar.inject(&mut w, "main", "t-1", "t-1-push"), 1);
        let spec = &w["spec"]["template"]["spec"];
        let c = &spec["initContainers"][0];
        assert_eq!(c["name"], "my-collector");
        assert_eq!(c["restartPolicy"], "Always");
        assert_eq!(c["args"], json!(["-path", "/katib/mnist.log"]));
        let env = c["env"].as_array().unwrap();
        assert_eq!(env[0]["name"], "TrialNamePrefix");
        assert!(env.iter().any(|e| e["name"] == "KTUNE_PUSH_TOKEN"
            && e["valueFrom"]["secretKeyRef"]["name"] == "t-1-push"));
        assert!(
            env.iter()
                .any(|e| e["name"] == "KATIB_TRIAL_NAME" && e["value"] == "t-1")
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/katib");
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], VOLUME);
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    }

    #[test]
    fn a_local_collector_gets_plain_env_and_the_pod_name_as_the_trial() {
        let c = json!({"env": [
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ]});
        assert_eq!(
            container_env(&c, "t-7"),
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("POD".to_owned(), "t-7".to_owned())
            ]
        );
    }
}
