//! Population based training under the controller, against the fake API
//! server: the experiment's checkpoint volume (`<experiment>-pbt`) mounted
//! in every trial at `suggestion_trial_dir` with its own sub-folder, each
//! child's folder copied from its parent's by an init container, Katib's
//! generation and parent labels on the Trials, and a controller restart in
//! the middle losing no generation.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::cluster::{Cluster, stop};
use support::{check_pbt_run, describe, pbt_experiment_yaml};

const GENERATION: &str = "pbt.suggestion.katib.kubeflow.org/generation";

/// The experiment's Trials: name, labels, and the primary container's log.
fn trials(cluster: &Cluster, name: &str) -> Vec<(String, BTreeMap<String, String>, String)> {
    let selector = format!("katib.kubeflow.org/experiment={name}");
    let out = cluster.kubectl(&["get", "trials", "-l", &selector, "-o", "json"], None);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let trial = t["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let labels: BTreeMap<String, String> =
                serde_json::from_value(t["metadata"]["labels"].clone()).unwrap_or_default();
            let pod = cluster.jsonpath(
                &["pods", "-l", &format!("katib.kubeflow.org/trial={trial}")],
                "{.items[0].metadata.name}",
            );
            let log = cluster.kubectl(&["logs", &pod, "-c", "main"], None);
            (
                trial,
                labels,
                String::from_utf8_lossy(&log.stdout).into_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_share_the_experiments_volume_and_children_copy_their_parents_folder() {
    let name = "pbt-cluster";
    let cluster = Cluster::fake(name).await;
    let args = [
        "--listen",
        "off",
        "--collector-command",
        env!("CARGO_BIN_EXE_ktune"),
    ];
    let controller = cluster.controller(&args);
    let yaml = pbt_experiment_yaml(name);
    let (cluster, first_logs) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        // A restart once the second generation has begun.
        let selector = format!("katib.kubeflow.org/experiment={name},{GENERATION}=1");
        support::runs::wait_until(std::time::Duration::from_secs(90), "generation 1", || {
            !cluster
                .jsonpath(&["trials", "-l", &selector], "{.items[*].metadata.name}")
                .is_empty()
        });
        (cluster, stop(controller))
    })
    .await
    .unwrap();
    let controller = cluster.controller(&args);
    let object = format!("experiment/{name}");
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let waited = cluster.wait_for("Succeeded", &object, 120);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(
        waited.status.success(),
        "{}\n{first_logs}\n{logs}",
        describe(&waited)
    );

    let owner = cluster.jsonpath(
        &["pvc", &format!("{name}-pbt")],
        "{.metadata.ownerReferences[0].kind}/{.spec.accessModes[0]}",
    );
    assert_eq!(owner, "Experiment/ReadWriteMany");
    let all = trials(&cluster, name);
    check_pbt_run(&all);
    let children = all.iter().filter(|(_, l, _)| l[GENERATION] != "0");
    for (trial, _, _) in children {
        let init = cluster.jsonpath(
            &["pods", "-l", &format!("katib.kubeflow.org/trial={trial}")],
            "{.items[0].spec.initContainers[0].name}",
        );
        assert_eq!(init, "ktune-checkpoint", "{trial}");
    }
}
