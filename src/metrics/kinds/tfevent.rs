//! TensorFlowEvent (katib-reference.md §6.4): the TensorBoard event files
//! a trial writes below a folder (`fileSystemPath` of kind `Directory`,
//! Katib's default `/var/log/katib/tfevent/`), scalars read as they are
//! written ([`crate::metrics::tfevent`]: TF1 `simple_value` and TF2 scalar
//! tensors, Katib's `dir/tag` naming).
//!
//! - Locally: the folder itself, from the content a trial adds (what is
//!   already there just before it starts — an earlier trial's files — is
//!   skipped).
//!   Trials that run side by side and write to the same folder mix their
//!   events, as they would mix a File collector's file: give each its own
//!   folder (its log folder, `$KTUNE_TRIAL_DIR`) or run one at a time.
//! - In a cluster: the File collector's native sidecar with `--format
//!   TFEVENT` follows the folder, shared through an `emptyDir`, and streams
//!   the reports to the push endpoint (see [`super::file`]); Katib's
//!   sidecar instead reads the files once the training process has ended.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::file::{File, SidecarRead};
use super::{Backend, KindCollector, Settings, TrialReader};
use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, CollectorError, TrialMetrics};
use crate::metrics::tfevent::EventFiles;
use crate::runner::{Reporting, TrialRun};

/// The TensorFlowEvent collector for the spec's `fileSystemPath` on
/// `backend`: [`TfEvent`] locally; in a cluster, the File collector's
/// cluster half with a sidecar that reads event files.
///
/// # Errors
/// [`CollectorError`] for a missing path or (in a cluster) no push
/// endpoint.
pub fn start(settings: &Settings, backend: Backend<'_>) -> Result<KindCollector, CollectorError> {
    let path = settings
        .source
        .file_system_path
        .as_ref()
        .map(|f| f.path.clone())
        .filter(|p| !p.is_empty())
        .ok_or(CollectorError::NoPath)?;
    Ok(match backend {
        Backend::Local => KindCollector::TfEvent(TfEvent {
            dir: PathBuf::from(path),
            metrics: settings.metrics.to_vec(),
            before: Mutex::new(HashMap::new()),
        }),
        Backend::Cluster(cluster) => KindCollector::File(File::pushed_by_sidecar(
            settings,
            cluster,
            &path,
            SidecarRead::EventFiles,
        )?),
    })
}

/// The TensorFlowEvent collector on this machine.
#[derive(Debug)]
pub struct TfEvent {
    /// The folder.
    dir: PathBuf,
    /// The experiment's metrics.
    metrics: Vec<String>,
    /// Each trial about to start: the folder as it was before (read to
    /// its end, so the trial reads only what it adds).
    before: Mutex<HashMap<String, EventFiles>>,
}

impl Collector for TfEvent {
    type Trial = TrialReader;

    /// Notes where the folder's files end before the trial starts (a fast
    /// trial may have written everything by the time it is attached).
    fn prepare(&self, trial: &str) -> Reporting {
        let mut files = EventFiles::new(self.dir.clone(), self.metrics.clone());
        files.poll();
        if let Ok(mut before) = self.before.lock() {
            before.insert(trial.to_owned(), files);
        }
        Reporting::default()
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> TrialReader {
        let noted = self.before.lock().ok().and_then(|mut b| b.remove(trial));
        let files =
            noted.unwrap_or_else(|| EventFiles::new(self.dir.clone(), self.metrics.clone()));
        TrialReader::Events(EventReader { files })
    }

    fn detach(&self, trial: &str) {
        if let Ok(mut before) = self.before.lock() {
            before.remove(trial);
        }
    }
}

/// One local trial's event files: what the folder gains from its start.
#[derive(Debug)]
pub struct EventReader {
    files: EventFiles,
}

impl TrialMetrics for EventReader {
    async fn poll(&mut self) -> Vec<MetricLog> {
        self.files.poll()
    }

    /// A rerun trial starts from what the folder holds then (locally,
    /// interrupted trials are rerun, not adopted).
    fn replays(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{FakeRun, cluster_backend, spec_with_collector};
    use serde_json::json;

    #[tokio::test]
    async fn cluster_event_files_are_pushed_by_the_sidecar_following_the_folder() {
        let server = crate::metrics::push::PushServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cluster = cluster_backend(Some(std::sync::Arc::new(server)));
        let spec = spec_with_collector(json!({
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}}
        }));
        let kind = start(&Settings::of(&spec), Backend::Cluster(&cluster)).unwrap();
        let sidecar = kind.file_sidecar().unwrap();
        assert_eq!(sidecar.read, SidecarRead::EventFiles);
        let mut workload =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}});
        assert_eq!(sidecar.inject(&mut workload, "main", "t-push"), 1);
        let pod = &workload["spec"]["template"]["spec"];
        let args = &pod["initContainers"][0]["args"];
        assert_eq!(args[2], "/var/log/katib/tfevent/");
        assert_eq!(args[4], "TFEVENT");
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            "/var/log/katib/tfevent"
        );
        assert!(kind.prepare("t1").push.is_some());
        assert!(!kind.attach("t1", &FakeRun::default()).replays());
    }

    #[tokio::test]
    async fn locally_a_trial_reads_only_what_the_folder_gains() {
        let dir = std::env::temp_dir().join(format!("ktune-tfevent-kind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let earlier = crate::metrics::tfevent::tests_support::scalar_file(&[("loss", 0.9)]);
        std::fs::write(dir.join("events.out.tfevents.1.a"), earlier).unwrap();
        let spec = spec_with_collector(json!({
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": dir, "kind": "Directory"}}
        }));
        let kind = start(&Settings::of(&spec), Backend::Local).unwrap();
        assert_eq!(kind.prepare("t"), Reporting::default());
        // The trial writes before it is attached (a fast one).
        let own = crate::metrics::tfevent::tests_support::scalar_file(&[("loss", 0.5)]);
        std::fs::write(dir.join("events.out.tfevents.2.b"), own).unwrap();
        let mut reader = kind.attach("t", &FakeRun::default());
        let logs = reader.poll().await;
        assert_eq!(logs.len(), 1);
        assert_eq!(
            (logs[0].name.as_str(), logs[0].value.as_str()),
            ("loss", "0.5")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
