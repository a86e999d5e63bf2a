//! `ktune controller` end to end: the real binary reconciling against the
//! fake API server (with its Job executor running trials as processes),
//! driven and checked with the real `kubectl`.

mod support;

use ktune::store::Store as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, stop};
use support::{describe, shell_experiment};

/// A Katib Experiment (`kubeflow.org/v1beta1`) over the quadratic example
/// trial, written to `dir`.
fn katib_experiment(dir: &Path, name: &str, trials: u32, epochs: u32, sleep: f64) -> PathBuf {
    let yaml = format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
  namespace: default
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
  algorithm:
    algorithmName: random
  parallelTrialCount: 2
  maxTrialCount: {trials}
  maxFailedTrialCount: 2
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {{min: "0.001", max: "0.3"}}
    - name: momentum
      parameterType: double
      feasibleSpace: {{min: "0.5", max: "0.99"}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - {{name: learningRate, reference: lr}}
      - {{name: momentum, reference: momentum}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training-container
                image: python:3.11-slim
                command:
                  - python3
                  - examples/trials/quadratic.py
                  - --lr=${{trialParameters.learningRate}}
                  - --momentum=${{trialParameters.momentum}}
                  - --epochs={epochs}
                  - --sleep={sleep}
"#
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_katib_experiment_runs_to_completion_and_kubectl_shows_the_best_trial() {
    let cluster = Cluster::fake("complete").await;
    let file = katib_experiment(&cluster.dir, "quadratic", 4, 3, 0.05);
    let controller = cluster.controller(&["--listen", "off"]);
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/quadratic", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        (cluster, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    let (cluster, table, trials, best, succeeded, events) =
        tokio::task::spawn_blocking(move || {
            let table = cluster.kubectl(&["get", "experiments"], None);
            let trials = cluster.kubectl(&["get", "trials"], None);
            let best = cluster.jsonpath(
                &["experiment", "quadratic"],
                "{.status.currentOptimalTrial.bestTrialName}",
            );
            let succeeded =
                cluster.jsonpath(&["experiment", "quadratic"], "{.status.trialsSucceeded}");
            // The controller writes events.k8s.io/v1 Events (a real cluster
            // also shows them as core/v1 `kubectl get events`).
            let events = cluster.kubectl(
                &[
                    "get",
                    "events.events.k8s.io",
                    "-o",
                    "jsonpath={.items[*].reason}",
                ],
                None,
            );
            (cluster, table, trials, best, succeeded, events)
        })
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("quadratic") && table.contains("Succeeded"),
        "{table}\n{logs}"
    );
    assert_eq!(succeeded, "4", "{table}\n{logs}");
    assert!(best.starts_with("quadratic-"), "{best}");
    let trials = String::from_utf8_lossy(&trials.stdout).into_owned();
    assert_eq!(trials.matches("quadratic-").count(), 4, "{trials}");
    assert!(trials.contains("Succeeded"), "{trials}");
    let events = String::from_utf8_lossy(&events.stdout).into_owned();
    assert!(
        events.contains("Created") && events.contains("Succeeded"),
        "{events}"
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_killed_mid_experiment_and_restarted_duplicates_nothing() {
    let cluster = Cluster::fake("restart").await;
    let file = katib_experiment(&cluster.dir, "restart", 4, 6, 0.2);
    let first = cluster.controller(&["--listen", "off"]);
    let (cluster, first) = tokio::task::spawn_blocking(move || {
        cluster.submit(&file);
        // Until the first trials run.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && cluster.jsonpath(&["experiment", "restart"], "{.status.trialsRunning}") != "2"
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        (cluster, first)
    })
    .await
    .unwrap();
    let first_logs = stop(first);
    let second = cluster.controller(&["--listen", "off"]);
    let (cluster, second) = tokio::task::spawn_blocking(move || {
        let waited = cluster.wait_for("Succeeded", "experiment/restart", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        (cluster, second)
    })
    .await
    .unwrap();
    let logs = stop(second);
    if std::env::var("E2E_LOG").is_ok() {
        eprintln!("FIRST:\n{first_logs}\nSECOND:\n{logs}");
    }
    let db = format!("sqlite:{}", cluster.dir.join("controller.db").display());
    let store = ktune::store::SqlStore::connect(&db).await.unwrap();
    let experiments = store.experiments().await.unwrap();
    assert_eq!(experiments.len(), 1, "{experiments:?}");
    let trials = store.trials(experiments[0].id).await.unwrap();
    assert_eq!(
        trials.len(),
        4,
        "no trial duplicated: {trials:#?}\n{first_logs}\n{logs}"
    );
    for t in &trials {
        let reports = store.observations(t.id).await.unwrap();
        let losses = reports.iter().filter(|r| r.metric == "loss").count();
        assert_eq!(losses, 6, "{}: each epoch stored once: {reports:?}", t.name);
    }
    let count = tokio::task::spawn_blocking(move || {
        cluster.jsonpath(&["experiment", "restart"], "{.status.trials}")
    })
    .await
    .unwrap();
    assert_eq!(count, "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stopping_and_a_failing_workload_end_their_trials_alone() {
    stops_scenario().await;
}

async fn stops_scenario() {
    let cluster = Cluster::fake_or_real("stops").await;
    // Two good trials, a bad one the median rule stops mid-run, and one
    // whose container exits 3.
    let script = r#"case "$1" in
bad) n=40; v=9;; crash) echo "loss=1"; exit 3;; *) n=4; v=1;; esac
i=0; while [ $i -lt $n ]; do i=$((i+1)); echo "loss=$v"; sleep 0.15; done"#;
    let extra = "  parallelTrialCount: 1\n  maxFailedTrialCount: 3\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"2\"}\n      - {name: start_step, value: \"3\"}";
    let file = shell_experiment(
        &cluster.dir,
        "stops",
        script,
        &["good1", "good2", "bad", "crash"],
        extra,
    );
    let controller = cluster.controller(&["--listen", "off"]);
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/stops", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        (cluster, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    let (early, failed, jobs) = tokio::task::spawn_blocking(move || {
        let early = cluster.jsonpath(&["experiment", "stops"], "{.status.earlyStoppedTrialList}");
        let failed = cluster.jsonpath(&["experiment", "stops"], "{.status.failedTrialList}");
        let jobs = cluster.jsonpath(&["jobs"], "{.items[*].metadata.name}");
        (early, failed, jobs)
    })
    .await
    .unwrap();
    assert!(
        early.contains("stops-0003"),
        "early stopped: {early}\n{logs}"
    );
    assert!(failed.contains("stops-0004"), "failed: {failed}\n{logs}");
    // Finished trials do not keep their workloads (retain is off).
    assert!(
        !jobs.contains("stops-0003"),
        "the stopped trial's Job is deleted: {jobs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_experiment_is_reported_in_its_status() {
    invalid_scenario().await;
}

async fn invalid_scenario() {
    let cluster = Cluster::fake_or_real("invalid").await;
    let file = shell_experiment(
        &cluster.dir,
        "invalid",
        "echo loss=1",
        &["a"],
        "  maxTrialCount: 3",
    );
    // Valid for the schema, refused by ktune: an unknown algorithm setting.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "algorithm: {algorithmName: grid}",
        "algorithm: {algorithmName: grid, algorithmSettings: [{name: bogus, value: \"1\"}]}",
    );
    assert!(text.contains("bogus"), "{text}");
    let controller = cluster.controller(&["--listen", "off"]);
    let (reason, message) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&text));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Failed", "experiment/invalid", 30);
        assert!(waited.status.success(), "{}", describe(&waited));
        let reason = cluster.jsonpath(
            &["experiment", "invalid"],
            "{.status.conditions[-1:].reason}",
        );
        let message = cluster.jsonpath(
            &["experiment", "invalid"],
            "{.status.conditions[-1:].message}",
        );
        (reason, message)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert_eq!(reason, "ExperimentInvalid", "{logs}");
    assert!(message.contains("bogus"), "{message}");
}

/// The suite's busybox scenarios against a real cluster (kind, k3d …):
///
/// ```text
/// KTUNE_E2E_KUBECONFIG=$HOME/.kube/config cargo test --test controller_e2e real_cluster -- --ignored
/// ```
///
/// The controller runs on this machine against that cluster; trials run
/// `busybox` Jobs in namespace `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: set KTUNE_E2E_KUBECONFIG"]
async fn real_cluster_suite() {
    assert!(
        std::env::var("KTUNE_E2E_KUBECONFIG").is_ok(),
        "set KTUNE_E2E_KUBECONFIG to a real cluster's kubeconfig"
    );
    stops_scenario().await;
    invalid_scenario().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_template_from_a_configmap_runs() {
    let cluster = Cluster::fake("configmap").await;
    let manifest = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: trial-templates, namespace: default}
data:
  job.yaml: |
    apiVersion: batch/v1
    kind: Job
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: main
              image: busybox
              command: ["sh", "-c", "echo loss=${trialParameters.x}"]
---
apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {name: configmap, namespace: default}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  parameters:
    - {name: x, parameterType: categorical, feasibleSpace: {list: ["3", "1", "2"]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    configMap: {configMapName: trial-templates, configMapNamespace: default, templatePath: job.yaml}
    # Katib defaults these for inline templates only.
    successCondition: status.conditions.#(type=="Complete")#|#(status=="True")#
    failureCondition: status.conditions.#(type=="Failed")#|#(status=="True")#
"#;
    let controller = cluster.controller(&["--listen", "off"]);
    let (best, controller) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Succeeded", "experiment/configmap", 60);
        assert!(waited.status.success(), "{}", describe(&waited));
        let best = cluster.jsonpath(
            &["experiment", "configmap"],
            "{.status.currentOptimalTrial.objectiveValue}",
        );
        (best, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert_eq!(best, "1", "{logs}");
}
