//! The File collector in a cluster: the controller adds a `ktune
//! collect-file` native sidecar (an init container with `restartPolicy:
//! Always`) to each pod template whose containers include the primary
//! container, shares the metrics file's folder with it through an
//! `emptyDir`, and the sidecar streams the file's reports to the
//! controller's push endpoint with the trial's token (its env from the
//! trial's push Secret, as in [`super::push`]). Because the kubelet stops a
//! native sidecar once the main containers end, the pod completes — no
//! rewritten command, no waiting on the training process as Katib's
//! sidecar does.
//!
//! Pod templates are found wherever a workload keeps a `containers` list
//! (a Job, the Kubeflow jobs' replica templates, any PodSpec); kinds that
//! describe their containers otherwise (a TrainJob's `trainer`, Argo
//! templates, Tekton steps) get no sidecar, and their File trials report
//! nothing.

use serde_json::{Value, json};

use super::push::{TOKEN_KEY, URL_KEY};
use crate::metrics::push::{PUSH_TOKEN_ENV, PUSH_URL_ENV};

/// The volume shared by the trial and the sidecar.
pub const VOLUME: &str = "ktune-metrics";
/// The sidecar's container name.
pub const CONTAINER: &str = "ktune-metrics-collector";

/// What the sidecar runs and reads.
#[derive(Debug, Clone)]
pub struct FileSidecar {
    /// The controller's image (it holds the `ktune` binary).
    pub image: String,
    /// The `ktune` binary in that image.
    pub command: String,
    /// The metrics file (absolute).
    pub path: String,
    /// `TEXT` or `JSON`.
    pub format: String,
    /// The experiment's metrics.
    pub metrics: Vec<String>,
    /// The TEXT filters.
    pub filters: Vec<String>,
}

impl FileSidecar {
    /// The folder mounted: the file's.
    fn folder(&self) -> String {
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
            self.format.clone(),
        ];
        for m in &self.metrics {
            args.extend(["--metric".to_owned(), m.clone()]);
        }
        for f in &self.filters {
            args.extend(["--filter".to_owned(), f.clone()]);
        }
        let env = [(PUSH_URL_ENV, URL_KEY), (PUSH_TOKEN_ENV, TOKEN_KEY)].map(|(name, key)| {
            json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        });
        json!({
            "name": CONTAINER,
            "image": self.image,
            "restartPolicy": "Always",
            "command": [self.command],
            "args": args,
            "env": env,
            "volumeMounts": [{"name": VOLUME, "mountPath": self.folder()}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        })
    }

    /// Adds the sidecar, the volume and the primary container's mount to
    /// every pod template of `workload` holding a container named
    /// `primary`; returns how many templates got it.
    pub fn inject(&self, workload: &mut Value, primary: &str, secret: &str) -> usize {
        let mut count = 0;
        self.walk(workload, primary, secret, &mut count);
        count
    }

    fn walk(&self, value: &mut Value, primary: &str, secret: &str, count: &mut usize) {
        match value {
            Value::Object(map) => {
                let is_pod_spec =
                    map.get("containers")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.get("name").and_then(Value::as_str) == Some(primary))
                        });
                if is_pod_spec {
                    self.add(map, primary, secret);
                    *count += 1;
                    return;
                }
                for v in map.values_mut() {
                    self.walk(v, primary, secret, count);
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.walk(v, primary, secret, count);
                }
            }
            _ => {}
        }
    }

    fn add(&self, spec: &mut serde_json::Map<String, Value>, primary: &str, secret: &str) {
        if let Some(volumes) = list(spec, "volumes")
            && !volumes
                .iter()
                .any(|v| v.get("name").and_then(Value::as_str) == Some(VOLUME))
        {
            volumes.push(json!({"name": VOLUME, "emptyDir": {}}));
        }
        if let Some(init) = list(spec, "initContainers")
            && !init
                .iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))
        {
            init.push(self.container(secret));
        }
        let mount = json!({"name": VOLUME, "mountPath": self.folder()});
        for c in list(spec, "containers").into_iter().flatten() {
            if c.get("name").and_then(Value::as_str) != Some(primary) {
                continue;
            }
            if let Some(mounts) = c
                .as_object_mut()
                .map(|m| m.entry("volumeMounts").or_insert_with(|| json!([])))
                .and_then(Value::as_array_mut)
                && !mounts.contains(&mount)
            {
                mounts.push(mount.clone());
            }
        }
    }
}

/// The list under `key` of a pod spec, created empty when missing.
fn list<'a>(spec: &'a mut serde_json::Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    spec.entry(key).or_insert_with(|| json!([])).as_array_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_pod_templates_get_the_sidecar_volume_and_mount() {
        let sidecar = FileSidecar {
            image: "ktune".into(),
            command: "/usr/local/bin/ktune".into(),
            path: "/var/log/katib/metrics.log".into(),
            format: "TEXT".into(),
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
}
