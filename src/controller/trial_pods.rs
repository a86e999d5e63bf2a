//! What every pod of a trial carries, as Katib's controller and pod
//! webhook give it: the label `katib.kubeflow.org/trial=<trial>` and the
//! Trial's own labels on every pod template of its workload (Katib's SDK
//! finds a trial's pods, and their logs, by that label), and with the Push
//! collector the trial's name in `KATIB_TRIAL_NAME` (what
//! `katib.report_metrics()` reports under).
//!
//! Written into the workload before it is created, so no webhook is
//! needed. Pod templates are found by shape (`template.spec.containers`),
//! whatever the kind: a Job's, each replica's of the Kubeflow jobs, each
//! replicated job's of a JobSet. Kinds whose pods are made from elsewhere
//! get the labels where their API propagates them: a TrainJob's
//! `spec.labels`, an Argo Workflow's `spec.podMetadata`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The label naming a pod's trial.
pub const TRIAL_LABEL: &str = "katib.kubeflow.org/trial";

/// The variable `katib.report_metrics()` reads the trial's name from.
pub const TRIAL_NAME_ENV: &str = "KATIB_TRIAL_NAME";

/// Adds `labels` to every pod template of `workload` (and where its kind
/// propagates labels to pods); returns how many places got them. Labels
/// the template sets itself are overwritten only for the keys given.
pub fn label_pods(workload: &mut Value, labels: &BTreeMap<String, String>) -> usize {
    let mut count = label_templates(workload, labels);
    let kind = workload.get("kind").and_then(Value::as_str).unwrap_or("");
    let propagated = match kind {
        "TrainJob" => Some(&["spec", "labels"][..]),
        "Workflow" => Some(&["spec", "podMetadata", "labels"][..]),
        _ => None,
    };
    if let Some(path) = propagated
        && let Some(map) = object_at(workload, path)
    {
        merge(map, labels);
        count += 1;
    }
    count
}

/// Labels the pod templates below `value`.
fn label_templates(value: &mut Value, labels: &BTreeMap<String, String>) -> usize {
    match value {
        Value::Object(map) => {
            let mut count = 0;
            for (key, child) in map.iter_mut() {
                if key == "template" && is_pod_template(child) {
                    if let Some(target) = object_at(child, &["metadata", "labels"]) {
                        merge(target, labels);
                        count += 1;
                    }
                } else {
                    count += label_templates(child, labels);
                }
            }
            count
        }
        Value::Array(items) => items.iter_mut().map(|v| label_templates(v, labels)).sum(),
        _ => 0,
    }
}

fn is_pod_template(value: &Value) -> bool {
    value
        .pointer("/spec/containers")
        .is_some_and(Value::is_array)
}

/// The object at `path` below `value`, made where missing (`None` when
/// something else than an object is in the way).
fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut here = value;
    for key in path {
        let map = here.as_object_mut()?;
        let next = map.entry((*key).to_owned()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        here = next;
    }
    here.as_object_mut()
}

fn merge(target: &mut Map<String, Value>, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        target.insert(key.clone(), Value::String(value.clone()));
    }
}

/// Gives every container of `workload` the variable [`TRIAL_NAME_ENV`]:
/// in pod templates (which carry [`TRIAL_LABEL`]) from that label through
/// the downward API, as Katib's pod webhook does; elsewhere (a TrainJob's
/// `trainer`, Argo's and Tekton's steps) as the name itself.
pub fn add_trial_name(workload: &mut Value, trial: &str) {
    let from_label = json!({"name": TRIAL_NAME_ENV, "valueFrom": {"fieldRef": {
        "fieldPath": format!("metadata.labels['{TRIAL_LABEL}']")}}});
    let literal = json!({"name": TRIAL_NAME_ENV, "value": trial});
    add_env(workload, &from_label, &literal, false);
}

fn add_env(value: &mut Value, from_label: &Value, literal: &Value, in_pod: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("containers" | "initContainers" | "steps", Value::Array(items)) => {
                        let var = if in_pod && key != "steps" {
                            from_label
                        } else {
                            literal
                        };
                        for item in items.iter_mut() {
                            set_env(item, var);
                        }
                    }
                    ("container" | "script" | "trainer", item @ Value::Object(_)) => {
                        set_env(item, literal);
                    }
                    ("template", child) if is_pod_template(child) => {
                        add_env(child, from_label, literal, true);
                    }
                    _ => add_env(child, from_label, literal, in_pod),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                add_env(item, from_label, literal, in_pod);
            }
        }
        _ => {}
    }
}

/// Sets one variable of a container, replacing one of the same name.
fn set_env(container: &mut Value, var: &Value) {
    let Some(map) = container.as_object_mut() else {
        return;
    };
    let env = map.entry("env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    if let Some(list) = env.as_array_mut() {
        list.retain(|e| e.get("name") != var.get("name"));
        list.push(var.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            (TRIAL_LABEL.to_owned(), "t1".to_owned()),
            ("katib.kubeflow.org/experiment".to_owned(), "e".to_owned()),
        ])
    }

    fn container() -> Value {
        json!({"name": "main", "image": "python", "env": [{"name": "A", "value": "1"}]})
    }

    #[test]
    fn every_pod_template_of_a_job_and_a_pytorchjob_is_labelled() {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
            "metadata": {"labels": {"mine": "kept"}}, "spec": {"containers": [container()]}}}});
        assert_eq!(label_pods(&mut job, &labels()), 1);
        let l = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(l[TRIAL_LABEL], "t1");
        assert_eq!(l["mine"], "kept");
        let mut torch = json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {"template": {"spec": {"containers": [container()]}}},
            "Worker": {"replicas": 2, "template": {"metadata": null, "spec": {"containers": [container()]}}}}}});
        assert_eq!(label_pods(&mut torch, &labels()), 2);
        for role in ["Master", "Worker"] {
            let l = &torch["spec"]["pytorchReplicaSpecs"][role]["template"]["metadata"]["labels"];
            assert_eq!(l["katib.kubeflow.org/experiment"], "e");
        }
    }

    #[test]
    fn a_jobsets_pods_and_a_trainjobs_propagated_labels_get_them() {
        let mut set = json!({"kind": "JobSet", "spec": {"replicatedJobs": [{"name": "w",
            "template": {"spec": {"template": {"spec": {"containers": [container()]}}}}}]}});
        assert_eq!(label_pods(&mut set, &labels()), 1);
        let pod = &set["spec"]["replicatedJobs"][0]["template"]["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"][TRIAL_LABEL], "t1");
        let mut train = json!({"kind": "TrainJob", "spec": {"trainer": container()}});
        assert_eq!(label_pods(&mut train, &labels()), 1);
        assert_eq!(train["spec"]["labels"][TRIAL_LABEL], "t1");
    }

    #[test]
    fn containers_get_the_trial_name_from_their_pods_label_or_as_text() {
        let mut job = json!({"kind": "Job", "spec": {"template": {"spec": {
            "containers": [container()], "initContainers": [container()]}}}});
        add_trial_name(&mut job, "t1");
        add_trial_name(&mut job, "t1");
        let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        assert_eq!(env.len(), 2, "added once, the trial's own kept: {env:?}");
        assert_eq!(
            env[1]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['katib.kubeflow.org/trial']"
        );
        let init = &job["spec"]["template"]["spec"]["initContainers"][0]["env"][1];
        assert_eq!(init["name"], TRIAL_NAME_ENV);
        let mut train = json!({"kind": "TrainJob", "spec": {"trainer": {"image": "x"}}});
        add_trial_name(&mut train, "t1");
        assert_eq!(
            train["spec"]["trainer"]["env"][0],
            json!({"name": TRIAL_NAME_ENV, "value": "t1"})
        );
    }

    #[test]
    fn odd_workloads_are_left_alone() {
        for mut odd in [
            json!(null),
            json!([1, 2]),
            json!({"spec": {"template": 3}}),
            json!({"spec": {"template": {"spec": {"containers": [1, "x"]}}}}),
        ] {
            label_pods(&mut odd, &labels());
            add_trial_name(&mut odd, "t");
        }
    }
}
