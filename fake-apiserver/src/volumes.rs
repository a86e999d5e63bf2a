//! Volumes on the fake node: an `emptyDir` is a folder of its own per pod
//! (under the node's folder, removed with the pod); a
//! `persistentVolumeClaim` is the claim's folder on the node, shared by
//! every pod that mounts it and kept after them (`<node>/pvc/<namespace>/
//! <claim>`), a mount's `subPath` a folder below it (created, as the
//! kubelet creates it). A container sees a volume where it mounts it by
//! having that mount path rewritten to the folder in its `command`,
//! `args`, `env` values and `workingDir` ([`ktune_kinds::paths`]) — local
//! processes cannot mount, but a trial that is told its file's path
//! (`--log /var/log/katib/metrics.log`) and a sidecar told the same path
//! then meet in one folder. Other volume kinds are ignored.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The pod's emptyDir and claim folders by volume name (created): the
/// pod's own below `root`, the claims' below `node`.
pub(crate) fn volume_dirs(
    pod: &Value,
    root: &std::path::Path,
    node: &std::path::Path,
) -> HashMap<String, PathBuf> {
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut out = HashMap::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let claim = v
            .pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str);
        let dir = match (claim, v.get("emptyDir")) {
            (Some(claim), _) => node.join("pvc").join(namespace).join(claim),
            (None, Some(_)) => root.join(name),
            (None, None) => continue,
        };
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                out.insert(name.to_owned(), dir);
            }
            Err(e) => tracing::warn!(volume = name, error = %e, "cannot create an emptyDir"),
        }
    }
    out
}

/// The container as its processes see it: every volume's mount path in
/// its command, args, env values and working directory replaced by the
/// volume's folder (its `subPath` below it, created).
pub(crate) fn localize(container: &Value, dirs: &HashMap<String, PathBuf>) -> Value {
    let mut c = container.clone();
    let mounts: Vec<(String, String)> = container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let mut dir = dirs.get(m.get("name")?.as_str()?)?.clone();
            if let Some(sub) = m.get("subPath").and_then(Value::as_str) {
                // A subPath stays inside its volume, as the kubelet requires.
                if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                    return None;
                }
                dir = dir.join(sub);
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot create a subPath");
                }
            }
            Some((
                m.get("mountPath")?.as_str()?.to_owned(),
                dir.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    ktune_kinds::paths::relocate(&mut c, &mounts);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mount_paths_become_the_pods_folder() {
        let dirs = HashMap::from([("m".to_owned(), PathBuf::from("/tmp/x/m"))]);
        let c = json!({
            "command": ["sh", "-c", "echo 1 > /var/log/katib/metrics.log; cat /var/log/katibx"],
            "args": ["--path=/var/log/katib"],
            "env": [{"name": "P", "value": "/var/log/katib/a"}],
            "volumeMounts": [{"name": "m", "mountPath": "/var/log/katib"}]
        });
        let l = localize(&c, &dirs);
        assert_eq!(
            l["command"][2],
            "echo 1 > /tmp/x/m/metrics.log; cat /var/log/katibx"
        );
        assert_eq!(l["args"][0], "--path=/tmp/x/m");
        assert_eq!(l["env"][0]["value"], "/tmp/x/m/a");
    }
}
