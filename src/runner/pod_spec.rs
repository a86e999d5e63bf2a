//! Editing a workload's pod templates: finding those that hold the
//! trial's primary container, and adding volumes, init containers and
//! mounts to them once (an edit made again changes nothing). Used by the
//! File collector's sidecar and PBT's checkpoint volume.

use serde_json::{Map, Value, json};

/// Calls `edit` on every pod spec of `workload` (any object whose
/// `containers` holds one named `primary`); returns how many it edited.
pub fn each_primary_pod_spec(
    workload: &mut Value,
    primary: &str,
    edit: &mut dyn FnMut(&mut Map<String, Value>),
) -> usize {
    match workload {
        Value::Object(map) => {
            let is_pod_spec = map
                .get("containers")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| name_of(c) == Some(primary)));
            if is_pod_spec {
                edit(map);
                return 1;
            }
            map.values_mut()
                .map(|v| each_primary_pod_spec(v, primary, edit))
                .sum()
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|v| each_primary_pod_spec(v, primary, edit))
            .sum(),
        _ => 0,
    }
}

fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

/// The list under `key` of a pod spec, created empty when missing.
pub fn list<'a>(spec: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    spec.entry(key).or_insert_with(|| json!([])).as_array_mut()
}

/// Adds `item` to the pod spec's list `key` (`volumes`, `initContainers`)
/// unless one of that name is there.
pub fn add_named(spec: &mut Map<String, Value>, key: &str, item: Value) {
    if let Some(items) = list(spec, key)
        && !items.iter().any(|i| name_of(i) == name_of(&item))
    {
        items.push(item);
    }
}

/// Adds `mount` to the `primary` container's `volumeMounts` unless it is
/// there.
pub fn mount_in_primary(spec: &mut Map<String, Value>, primary: &str, mount: &Value) {
    for c in list(spec, "containers").into_iter().flatten() {
        if name_of(c) == Some(primary)
            && let Some(container) = c.as_object_mut()
        {
            self::mount(container, mount);
        }
    }
}

/// Adds `mount` to a container's `volumeMounts` unless it is there.
pub fn mount(container: &mut Map<String, Value>, mount: &Value) {
    if let Some(mounts) = list(container, "volumeMounts")
        && !mounts.contains(mount)
    {
        mounts.push(mount.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_reach_every_primary_template_once() {
        let mut w = json!({"spec": {"pytorchReplicaSpecs": {
            "Master": {"template": {"spec": {"containers": [{"name": "pytorch"}]}}},
            "Worker": {"template": {"spec": {"containers": [{"name": "pytorch"}, {"name": "x"}]}}},
            "Other": {"template": {"spec": {"containers": [{"name": "x"}]}}}
        }}});
        let mount = json!({"name": "v", "mountPath": "/v"});
        for _ in 0..2 {
            let n = each_primary_pod_spec(&mut w, "pytorch", &mut |spec| {
                add_named(spec, "volumes", json!({"name": "v", "emptyDir": {}}));
                mount_in_primary(spec, "pytorch", &mount);
            });
            assert_eq!(n, 2);
        }
        let worker = &w["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"];
        assert_eq!(worker["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(worker["containers"][0]["volumeMounts"], json!([mount]));
        assert!(worker["containers"][1].get("volumeMounts").is_none());
        assert!(
            w["spec"]["pytorchReplicaSpecs"]["Other"]["template"]["spec"]
                .get("volumes")
                .is_none()
        );
    }
}
