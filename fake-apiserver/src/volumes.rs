//! `emptyDir` volumes on the fake node: each is a folder of its own per
//! pod (under the system's temporary folder, removed with the pod), and a
//! container sees it where it mounts it by having that mount path
//! rewritten to the folder in its `command`, `args`, `env` values and
//! `workingDir` — local processes cannot mount, but a trial that is told
//! its file's path (`--log /var/log/katib/metrics.log`) and a sidecar told
//! the same path then meet in one folder. Other volume kinds are ignored.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The pod's emptyDir folders by volume name (created).
pub(crate) fn empty_dirs(pod: &Value, root: &std::path::Path) -> HashMap<String, PathBuf> {
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
        if v.get("emptyDir").is_none() {
            continue;
        }
        let dir = root.join(name);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                out.insert(name.to_owned(), dir);
            }
            Err(e) => tracing::warn!(volume = name, error = %e, "cannot create an emptyDir"),
        }
    }
    out
}

/// Replaces `from` in `text` where it is a whole path prefix (followed by
/// `/`, the end, or a character that cannot continue a path segment).
fn replace_path(text: &str, from: &str, to: &str) -> String {
    let from = from.trim_end_matches('/');
    if from.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let boundary = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')));
        out.push_str(&rest[..i]);
        out.push_str(if boundary { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The container as its processes see it: every emptyDir mount path in its
/// command, args, env values and working directory replaced by the folder.
pub(crate) fn localize(container: &Value, dirs: &HashMap<String, PathBuf>) -> Value {
    let mut c = container.clone();
    let mounts: Vec<(String, String)> = container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let dir = dirs.get(m.get("name")?.as_str()?)?;
            Some((
                m.get("mountPath")?.as_str()?.to_owned(),
                dir.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    if mounts.is_empty() {
        return c;
    }
    let fix = |s: &mut Value| {
        if let Some(text) = s.as_str() {
            let mut t = text.to_owned();
            for (from, to) in &mounts {
                t = replace_path(&t, from, to);
            }
            *s = Value::String(t);
        }
    };
    for key in ["command", "args"] {
        if let Some(items) = c.get_mut(key).and_then(Value::as_array_mut) {
            items.iter_mut().for_each(fix);
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(v) = e.get_mut("value") {
                fix(v);
            }
        }
    }
    if let Some(w) = c.get_mut("workingDir") {
        fix(w);
    }
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
