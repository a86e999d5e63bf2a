//! The Custom collector: the user's own collector program beside each
//! trial — a process in the trial's folder with `ktune run`, a native
//! sidecar in the trial's pod under the controller — reading a format no
//! built-in collector reads (`examples/trials/csv_collector.py`: CSV rows)
//! and reporting through the push endpoint.

mod support;

use std::time::Duration;

use support::cluster::{Cluster, stop};
use support::runs::{finish, run_args, spawn};
use support::{describe, repo_root, scratch};

/// An experiment of two trials appending `epoch,accuracy` rows to
/// `trial_csv`, collected from `csv` by the CSV collector with `source`
/// (spec lines).
fn experiment(name: &str, (trial_csv, csv): (&str, &str), source: &str) -> String {
    let collector = repo_root().join("examples/trials/csv_collector.py");
    // The collector (a Python interpreter) needs a moment to start: in a
    // pod it is stopped as soon as the trial's container ends.
    let script =
        format!("sleep 2; for e in 1 2 3; do echo \"$e,0.$1$e\" >> {trial_csv}; sleep 0.3; done");
    let extra = format!(
        r#"  objective: {{type: maximize, objectiveMetricName: accuracy, additionalMetricNames: [epoch]}}
  metricsCollectorSpec:
    collector:
      kind: Custom
      customCollector:
        name: csv-collector
        image: python:3.12-slim
        command: ["python3", "{collector}", "--path", "{csv}"]
{source}"#,
        collector = collector.display()
    );
    support::shell_experiment_yaml(name, &script, &["4", "7"], &extra)
}

#[test]
fn a_local_custom_collector_runs_beside_each_trial_and_pushes_what_it_reads() {
    let dir = scratch("custom-local");
    // Locally the collector runs in the trial's folder; the trial is told
    // that folder in KTUNE_TRIAL_DIR.
    let file = dir.join("custom.yaml");
    let yaml = experiment(
        "custom-local",
        ("\"$KTUNE_TRIAL_DIR/progress.csv\"", "progress.csv"),
        "",
    );
    std::fs::write(&file, yaml).unwrap();
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let out = finish(
        spawn(&run_args(&dir, &db, &file, &[])),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let trials = support::runs::stored(&db, "custom-local");
    assert_eq!(trials.len(), 2);
    for (trial, reports) in &trials {
        let accuracy: Vec<f64> = reports
            .iter()
            .filter(|r| r.metric == "accuracy")
            .map(|r| r.value.parse().unwrap())
            .collect();
        let mode = &trial.assignment[0].1;
        let expected: Vec<f64> = (1..=3)
            .map(|e| format!("0.{mode}{e}").parse().unwrap())
            .collect();
        assert_eq!(
            accuracy, expected,
            "{}: every row, the last one after SIGTERM",
            trial.name
        );
        let log = dir
            .join("trials/custom-local")
            .join(&trial.name)
            .join("collector.log");
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains("reported 3 rows"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_custom_collector_is_a_native_sidecar_sharing_the_files_folder() {
    let name = "custom-cluster";
    let cluster = Cluster::fake(name).await;
    let controller = cluster.controller(&["--listen", "off", "--push-listen", "127.0.0.1:0"]);
    let source = "    source:\n      fileSystemPath: {path: /katib/progress.csv, kind: File}";
    let csv = "/katib/progress.csv";
    let yaml = experiment(name, (csv, csv), source);
    let object = format!("experiment/{name}");
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Succeeded", &object, 60);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    let get = |path: &str| cluster.jsonpath(&["experiment", name], path);
    assert_eq!(get("{.status.trialsSucceeded}"), "2", "{logs}");
    assert_eq!(
        get("{.status.currentOptimalTrial.objectiveValue}"),
        "0.73",
        "{logs}"
    );
}
