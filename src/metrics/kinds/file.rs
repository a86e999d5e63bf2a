//! File (katib-reference.md §6.2, §6.3): a metrics file the trial writes,
//! TEXT lines with the experiment's filters or JSON lines, read while the
//! trial runs.
//!
//! - Locally: the file itself (a relative path is relative to the trials'
//!   working directory).
//! - In a cluster: the controller adds a `ktune collect-file` native
//!   sidecar (an init container with `restartPolicy: Always`) to each pod
//!   template whose containers include the primary container, shares the
//!   file's folder with it through an `emptyDir`, and the sidecar streams
//!   the file's reports to the controller's push endpoint with the trial's
//!   token (its env from the trial's push Secret, see [`super::push`]); the
//!   collector is then the Push one. Because the kubelet stops a native
//!   sidecar once the main containers end, the pod completes — no
//!   rewritten command, no waiting on the training process as Katib's
//!   sidecar does.
//!
//! Pod templates are found wherever a workload keeps a `containers` list
//! (a Job, the Kubeflow jobs' replica templates, any PodSpec); kinds that
//! describe their containers otherwise (a TrainJob's `trainer`, Argo
//! templates, Tekton steps) get no sidecar, and their File trials report
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::push::{Push, secret_env};
use super::{Backend, Settings, TrialReader};
use crate::api::enums::FileFormat;
use crate::metrics::cluster::{ClusterBackend, SidecarImage};
use crate::metrics::collector::{Collector, CollectorError};
use crate::metrics::lines::{LineFormat, LineReader};
use crate::runner::{Reporting, TrialRun, pod_spec};

/// The volume shared by the trial and the sidecar.
pub const VOLUME: &str = "ktune-metrics";
/// The sidecar's container name.
pub const CONTAINER: &str = "ktune-metrics-collector";
/// The sidecar's `--format` for TensorBoard event files.
pub const TFEVENT_FORMAT: &str = "TFEVENT";

/// What the sidecar reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SidecarRead {
    /// A metrics file's lines, in this format (File).
    Lines(FileFormat),
    /// A folder of TensorBoard event files (TensorFlowEvent).
    EventFiles,
}

/// The File collector.
#[derive(Debug)]
pub enum File {
    /// The file on this machine.
    Local {
        /// How its lines become reports.
        format: Arc<LineFormat>,
        /// The file.
        path: PathBuf,
    },
    /// What the trials' sidecars push.
    Cluster {
        /// The pushes.
        push: Push,
        /// The sidecar streaming the file.
        sidecar: FileSidecar,
    },
}

impl File {
    /// The collector for the spec's `fileSystemPath` on `backend`.
    ///
    /// # Errors
    /// [`CollectorError`] for a missing path, a bad filter, or (in a
    /// cluster) no push endpoint.
    pub fn new(settings: &Settings, backend: Backend<'_>) -> Result<Self, CollectorError> {
        let file = settings
            .source
            .file_system_path
            .as_ref()
            .filter(|f| !f.path.is_empty())
            .ok_or(CollectorError::NoPath)?;
        // Katib reads JSON when asked, TEXT otherwise.
        let format = if file.format == Some(FileFormat::Json) {
            FileFormat::Json
        } else {
            FileFormat::Text
        };
        let line_format = settings.line_format(&format)?;
        Ok(match backend {
            Backend::Local => Self::Local {
                format: Arc::new(line_format),
                path: PathBuf::from(&file.path),
            },
            Backend::Cluster(cluster) => {
                Self::pushed_by_sidecar(settings, cluster, &file.path, SidecarRead::Lines(format))?
            }
        })
    }

    /// The cluster half, shared with TensorFlowEvent: a sidecar in each
    /// trial's primary pod reads `path` as `read` says and pushes the
    /// reports; the collector is the Push one.
    ///
    /// # Errors
    /// [`CollectorError::NoPushEndpoint`] without the controller's push
    /// endpoint.
    pub(super) fn pushed_by_sidecar(
        settings: &Settings,
        cluster: &ClusterBackend,
        path: &str,
        read: SidecarRead,
    ) -> Result<Self, CollectorError> {
        let filters = match read {
            SidecarRead::Lines(_) => settings.filters.clone(),
            SidecarRead::EventFiles => Vec::new(),
        };
        Ok(Self::Cluster {
            push: Push::for_cluster(settings, cluster)?,
            sidecar: FileSidecar {
                image: cluster.sidecar.clone(),
                path: path.to_owned(),
                read,
                metrics: settings.metrics.to_vec(),
                filters,
            },
        })
    }

    /// The pushes its sidecars send, in a cluster.
    #[must_use]
    pub fn cluster_push(&self) -> Option<&Push> {
        match self {
            Self::Cluster { push, .. } => Some(push),
            Self::Local { .. } => None,
        }
    }

    /// The sidecar the trials' pods get, in a cluster.
    #[must_use]
    pub fn sidecar(&self) -> Option<&FileSidecar> {
        match self {
            Self::Cluster { sidecar, .. } => Some(sidecar),
            Self::Local { .. } => None,
        }
    }
}

impl Collector for File {
    type Trial = TrialReader;

    fn prepare(&self, trial: &str) -> Reporting {
        self.cluster_push()
            .map(|push| push.prepare(trial))
            .unwrap_or_default()
    }

    fn attach(&self, trial: &str, run: &impl TrialRun) -> TrialReader {
        match self {
            Self::Local { format, path } => {
                TrialReader::Lines(LineReader::new(Arc::clone(format), Some(path.clone())))
            }
            Self::Cluster { push, .. } => push.attach(trial, run),
        }
    }

    fn detach(&self, trial: &str) {
        if let Some(push) = self.cluster_push() {
            push.detach(trial);
        }
    }
}

/// What the File (and TensorFlowEvent) collector's sidecar runs and reads.
#[derive(Debug, Clone)]
pub struct FileSidecar {
    /// Its image and binary.
    pub image: SidecarImage,
    /// The metrics file, or the event files' folder (absolute).
    pub path: String,
    /// TEXT or JSON lines, or event files.
    pub read: SidecarRead,
    /// The experiment's metrics.
    pub metrics: Vec<String>,
    /// The TEXT filters.
    pub filters: Vec<String>,
}

impl FileSidecar {
    /// The folder mounted: the file's, or the event files' own.
    fn folder(&self) -> String {
        if self.read == SidecarRead::EventFiles {
            let folder = self.path.trim_end_matches('/');
            return if folder.is_empty() {
                "/".to_owned()
            } else {
                folder.to_owned()
            };
        }
        match self.path.rsplit_once('/') {
            Some(("", _)) | None => "/".to_owned(),
            Some((dir, _)) => dir.to_owned(),
        }
    }

    fn container(&self, secret: &str) -> Value {
        let mut args = vec![
            "collect-file".to_owned(),
            "--path".to_owned(),
            self.path.clone(),
            "--format".to_owned(),
            match &self.read {
                SidecarRead::Lines(format) => format.to_string(),
                SidecarRead::EventFiles => TFEVENT_FORMAT.to_owned(),
            },
        ];
        for m in &self.metrics {
            args.extend(["--metric".to_owned(), m.clone()]);
        }
        for f in &self.filters {
            args.extend(["--filter".to_owned(), f.clone()]);
        }
        json!({
            "name": CONTAINER,
            "image": self.image.image,
            "restartPolicy": "Always",
            "command": [self.image.command],
            "args": args,
            "env": secret_env(secret),
            "volumeMounts": [{"name": VOLUME, "mountPath": self.folder()}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        })
    }

    /// Adds the sidecar, the volume and the primary container's mount to
    /// every pod template of `workload` holding a container named
    /// `primary`; returns how many templates got it.
    pub fn inject(&self, workload: &mut Value, primary: &str, secret: &str) -> usize {
        let mount = json!({"name": VOLUME, "mountPath": self.folder()});
        pod_spec::each_primary_pod_spec(workload, primary, &mut |spec| {
            pod_spec::add_named(spec, "volumes", json!({"name": VOLUME, "emptyDir": {}}));
            pod_spec::add_named(spec, "initContainers", self.container(secret));
            pod_spec::mount_in_primary(spec, primary, &mount);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::collector::TrialMetrics;
    use crate::metrics::testing::{FakeRun, cluster_backend, spec_with_collector};

    #[test]
    fn the_primary_pod_templates_get_the_sidecar_volume_and_mount() {
        let sidecar = FileSidecar {
            image: SidecarImage {
                image: "ktune".into(),
                command: "/usr/local/bin/ktune".into(),
            },
            path: "/var/log/katib/metrics.log".into(),
            read: SidecarRead::Lines(FileFormat::Text),
            metrics: vec!["loss".into()],
            filters: vec![],
        };
        let mut w = json!({"spec": {"pytorchReplicaSpecs": {
            "Master": {"template": {"spec": {"containers": [{"name": "pytorch"}]}}},
            "Worker": {"template": {"spec": {"containers": [{"name": "other"}]}}}
        }}});
        assert_eq!(sidecar.inject(&mut w, "pytorch", "t-push"), 1);
        let spec = &w["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(spec["volumes"][0], json!({"name": VOLUME, "emptyDir": {}}));
        assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
        assert_eq!(
            spec["initContainers"][0]["args"][2],
            "/var/log/katib/metrics.log"
        );
        assert_eq!(spec["initContainers"][0]["args"][4], "TEXT");
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0],
            json!({"name": VOLUME, "mountPath": "/var/log/katib"})
        );
        assert!(
            w["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
                .get("initContainers")
                .is_none()
        );
        let once = w.clone();
        sidecar.inject(&mut w, "pytorch", "t-push");
        assert_eq!(w, once, "idempotent");
    }

    /// Locally the file is read as it grows, in its format; a File
    /// collector without a path is refused.
    #[tokio::test]
    async fn local_json_files_are_read_and_a_missing_path_refused() {
        let dir = std::env::temp_dir().join(format!("ktune-file-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.json");
        std::fs::write(&path, "{\"loss\": 0.25}\nloss=9\n").unwrap();
        let spec = spec_with_collector(json!({
            "collector": {"kind": "File"},
            "source": {"fileSystemPath": {"path": path, "format": "JSON"}}
        }));
        let file = File::new(&Settings::of(&spec), Backend::Local).unwrap();
        assert!(file.sidecar().is_none() && file.prepare("t") == Reporting::default());
        let logs = file.attach("t", &FakeRun::default()).poll().await;
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].value, "0.25");
        let _ = std::fs::remove_dir_all(dir);
        let no_path = spec_with_collector(json!({"collector": {"kind": "File"}}));
        let refused = File::new(&Settings::of(&no_path), Backend::Local);
        assert!(matches!(refused, Err(CollectorError::NoPath)));
    }

    /// In a cluster the trials' sidecars push the file: the collector is
    /// Push's, and the sidecar reads the spec's file in its format.
    #[tokio::test]
    async fn cluster_files_are_pushed_by_a_sidecar() {
        let server = crate::metrics::push::PushServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cluster = cluster_backend(Some(Arc::new(server)));
        let spec = spec_with_collector(json!({
            "collector": {"kind": "File"},
            "source": {"fileSystemPath": {"path": "/var/log/m.json", "format": "JSON"}}
        }));
        let file = File::new(&Settings::of(&spec), Backend::Cluster(&cluster)).unwrap();
        let sidecar = file.sidecar().unwrap();
        assert_eq!(sidecar.path, "/var/log/m.json");
        assert_eq!(sidecar.read, SidecarRead::Lines(FileFormat::Json));
        assert_eq!(sidecar.metrics, ["loss"]);
        assert!(
            file.cluster_push()
                .is_some_and(|p| p.cluster_endpoint().is_some())
        );
        assert!(
            file.prepare("t1").push.is_some(),
            "the trial's push credentials"
        );
        let pushed = file.attach("t1", &FakeRun::default());
        assert!(!pushed.replays());
        file.detach("t1");
    }
}
