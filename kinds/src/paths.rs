//! Moving a path a container names: where a cluster would mount a volume
//! at a path, a local process is told another folder instead, by having
//! that path rewritten in the container's `command`, `args`, `env` values
//! and `workingDir` (the fake API server's volumes, `ktune run`'s PBT
//! checkpoint folders).

use serde_json::Value;

/// Replaces `from` in `text` where it is a whole path prefix (followed by
/// `/`, the end, or a character that cannot continue a path segment).
#[must_use]
pub fn replace_path(text: &str, from: &str, to: &str) -> String {
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

/// Rewrites each `(from, to)` path in the container's command, args, env
/// values and working directory.
pub fn relocate(container: &mut Value, moves: &[(String, String)]) {
    let fix = |s: &mut Value| {
        if let Some(text) = s.as_str() {
            let mut t = text.to_owned();
            for (from, to) in moves {
                t = replace_path(&t, from, to);
            }
            *s = Value::String(t);
        }
    };
    for key in ["command", "args"] {
        if let Some(items) = container.get_mut(key).and_then(Value::as_array_mut) {
            items.iter_mut().for_each(fix);
        }
    }
    if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(v) = e.get_mut("value") {
                fix(v);
            }
        }
    }
    if let Some(w) = container.get_mut("workingDir") {
        fix(w);
    }
}

/// Rewrites the paths in every container of every pod template in a
/// workload (any object's `containers` and `initContainers`).
pub fn relocate_all(workload: &mut Value, moves: &[(String, String)]) {
    match workload {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    ("containers" | "initContainers", Value::Array(items)) => {
                        items.iter_mut().for_each(|c| relocate(c, moves));
                    }
                    (_, other) => relocate_all(other, moves),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relocate_all(v, moves)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_whole_path_prefixes_move() {
        assert_eq!(
            replace_path("/var/log/katib/a", "/var/log/katib/", "/t"),
            "/t/a"
        );
        assert_eq!(
            replace_path("/var/log/katibx", "/var/log/katib", "/t"),
            "/var/log/katibx"
        );
        assert_eq!(replace_path("--p=/ck/", "/ck", "/t/c"), "--p=/t/c/");
        assert_eq!(
            replace_path("x", "/", "/t"),
            "x",
            "an empty path moves nothing"
        );
    }

    #[test]
    fn every_pod_template_of_a_workload_is_rewritten() {
        let mut w = json!({"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {
            "initContainers": [{"args": ["/ck"]}],
            "containers": [{"name": "m", "command": ["run", "--checkpoint=/ck/"],
                            "env": [{"name": "C", "value": "/ck/x"}], "workingDir": "/ck"}]
        }}}}}});
        relocate_all(
            &mut w,
            &[("/ck".to_owned(), "/trials/t1/checkpoint".to_owned())],
        );
        let c = &w["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"][1], "--checkpoint=/trials/t1/checkpoint/");
        assert_eq!(c["env"][0]["value"], "/trials/t1/checkpoint/x");
        assert_eq!(c["workingDir"], "/trials/t1/checkpoint");
        let init =
            &w["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["initContainers"][0];
        assert_eq!(init["args"][0], "/trials/t1/checkpoint");
    }
}
