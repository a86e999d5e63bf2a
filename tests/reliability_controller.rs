//! The controller when the cluster misbehaves: the real `ktune controller`
//! against the fake API server.
//!
//! - A trial kind the cluster does not serve (its operator is not
//!   installed) fails its trials with a reason saying what to install, the
//!   experiment fails by `maxFailedTrialCount`, and a Warning Event says
//!   why; once the CRD is installed, the kind works without a restart.
//! - The API server goes away for a while mid-experiment and comes back:
//!   the controller (under leader election, so its lease runs out) waits
//!   as a standby, takes its lease back, and finishes the experiment with
//!   every trial run exactly once and every report stored once, logging
//!   the outage in a handful of lines.

mod support;

use ktune::store::Store as _;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ktune_fake_apiserver::crds;
use serde_json::Value;
use support::cluster::{Cluster, stop};
use support::{describe, two_mode_experiment};

/// `kubectl get RESOURCE -o json`, parsed.
fn get_json(cluster: &Cluster, resource: &str) -> Value {
    let out = cluster.kubectl(&["get", resource, "-o", "json"], None);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The items of a list, by name.
fn items(list: &Value) -> Vec<&Value> {
    list["items"].as_array().unwrap().iter().collect()
}

/// The message of an object's condition of this type.
fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

/// A PyTorchJob experiment (a master printing the trial's loss) that fails
/// at its first failed trial.
fn pytorch_experiment(name: &str) -> String {
    let container = r#"{name: pytorch, image: busybox, command: ["sh", "-c", "echo loss=0.$1", "trial", "${trialParameters.mode}"]}"#;
    let spec = format!(
        "      apiVersion: kubeflow.org/v1\n      kind: PyTorchJob\n      spec:\n        pytorchReplicaSpecs:\n          Master: {{replicas: 1, template: {{spec: {{containers: [{container}]}}}}}}"
    );
    two_mode_experiment(name, "  maxFailedTrialCount: 1", "pytorch", "", &spec)
}

const NOT_SERVED: &str = "PyTorchJob kubeflow.org/v1 is not served by this cluster: install the Kubeflow training operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_kind_the_cluster_does_not_serve_fails_with_what_to_install() {
    // No training operator: PyTorchJob is not served.
    let cluster = Cluster::fake("rel-unserved").await;
    let controller = cluster.controller(&["--listen", "off"]);
    let started = Instant::now();
    let (_cluster, failed, experiment, trials, events, later) =
        tokio::task::spawn_blocking(move || {
            let out = cluster.kubectl(&["apply", "-f", "-"], Some(&pytorch_experiment("torch")));
            assert!(out.status.success(), "{}", describe(&out));
            let failed = cluster.wait_for("Failed", "experiment/torch", 30);
            let experiment = get_json(&cluster, "experiment/torch");
            let trials = get_json(&cluster, "trials");
            let events = get_json(&cluster, "events.events.k8s.io");
            // Installed later, the kind serves the next experiment at once.
            let out = cluster.kubectl(&["apply", "-f", "-"], Some(crds::TRAINING_OPERATOR));
            assert!(out.status.success(), "{}", describe(&out));
            let out = cluster.kubectl(&["apply", "-f", "-"], Some(&pytorch_experiment("later")));
            assert!(out.status.success(), "{}", describe(&out));
            let later = cluster.wait_for("Succeeded", "experiment/later", 40);
            (cluster, failed, experiment, trials, events, later)
        })
        .await
        .unwrap();
    let logs = stop(controller);
    assert!(failed.status.success(), "{}\n{logs}", describe(&failed));
    // The experiment failed by Katib's rule (failed trials reached
    // maxFailedTrialCount), not by being refused as invalid.
    let why = condition(&experiment, "Failed").unwrap();
    assert_eq!(why["reason"], "ExperimentFailed", "{experiment:#}");
    // Each trial failed with the reason.
    let torch: Vec<&Value> = items(&trials)
        .into_iter()
        .filter(|t| {
            t["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("torch-")
        })
        .collect();
    assert!(!torch.is_empty(), "{trials:#}");
    for trial in &torch {
        let failed = condition(trial, "Failed").unwrap_or_else(|| panic!("{trial:#}\n{logs}"));
        assert!(
            failed["message"].as_str().unwrap().contains(NOT_SERVED),
            "{trial:#}"
        );
    }
    // A Warning Event on a trial says it.
    let warned = items(&events).into_iter().any(|e| {
        e["type"] == "Warning"
            && e["regarding"]["kind"] == "Trial"
            && e["note"].as_str().is_some_and(|n| n.contains(NOT_SERVED))
    });
    assert!(warned, "no Warning Event with the reason: {events:#}");
    assert!(later.status.success(), "{}\n{logs}", describe(&later));
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Six trials, three at a time; each reports a first loss at once and its
/// final one seconds later (so trials run, and print, across the outage),
/// and records its run in `runs` (a workload run twice shows there).
fn outage_experiment(name: &str, runs: &std::path::Path) -> String {
    let script = format!(
        "echo $1 >> {}; echo loss=0.9; sleep 3; echo loss=0.$1",
        runs.display()
    );
    support::shell_experiment_yaml(
        name,
        &script,
        &["1", "2", "3", "4", "5", "6"],
        "  parallelTrialCount: 3\n  maxTrialCount: 6\n  maxFailedTrialCount: 1",
    )
}

/// How long the API server stays away: past the lease (3 s) and several
/// steps of every backoff, short enough for a quick test.
const OUTAGE: Duration = Duration::from_secs(9);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_mid_experiment_loses_and_duplicates_nothing() {
    let cluster = Cluster::fake("rel-outage").await;
    let runs = cluster.dir.join("runs");
    let mut controller = cluster.controller(&[
        "--listen",
        "off",
        "--leader-elect",
        "--lease-duration-seconds",
        "3",
    ]);
    let yaml = outage_experiment("outage", &runs);
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        // Until trials run.
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.jsonpath(&["experiment", "outage"], "{.status.trialsRunning}") != "3" {
            assert!(Instant::now() < deadline, "no trial ran");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    })
    .await
    .unwrap();
    let server = cluster.api_server().unwrap();
    server.stop();
    tokio::time::sleep(OUTAGE).await;
    assert!(
        controller.try_wait().unwrap().is_none(),
        "the controller exited during the outage"
    );
    server.restart().await.unwrap();
    let (cluster, waited, trials, experiment) = tokio::task::spawn_blocking(move || {
        let waited = cluster.wait_for("Succeeded", "experiment/outage", 45);
        let trials = get_json(&cluster, "trials");
        let experiment = get_json(&cluster, "experiment/outage");
        (cluster, waited, trials, experiment)
    })
    .await
    .unwrap();
    let running = controller.try_wait().unwrap().is_none();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    assert!(running, "the controller exited:\n{logs}");
    // Exactly the configured trials, each once, each Succeeded.
    assert_eq!(experiment["status"]["trials"], 6, "{experiment:#}\n{logs}");
    assert_eq!(experiment["status"]["trialsSucceeded"], 6, "{experiment:#}");
    let names: BTreeSet<&str> = items(&trials)
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for trial in items(&trials) {
        assert!(condition(trial, "Succeeded").is_some(), "{trial:#}\n{logs}");
    }
    let ran = std::fs::read_to_string(&runs).unwrap();
    let mut modes: Vec<&str> = ran.lines().collect();
    modes.sort_unstable();
    assert_eq!(
        modes,
        ["1", "2", "3", "4", "5", "6"],
        "a workload ran twice or never"
    );
    // Every report stored once: the log streams cut by the outage were
    // resumed where they stopped.
    let db = format!("sqlite:{}", cluster.dir.join("controller.db").display());
    let store = ktune::store::SqlStore::connect(&db).await.unwrap();
    let experiments = store.experiments().await.unwrap();
    let rows = store.trials(experiments[0].id).await.unwrap();
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for row in &rows {
        let losses = store.observations(row.id).await.unwrap();
        assert_eq!(losses.len(), 2, "{}: {losses:?}\n{logs}", row.name);
    }
    if std::env::var("E2E_LOG").is_ok() {
        eprintln!("{logs}");
    }
    // The outage is logged once when it starts and once when it ends, not
    // per failed request; the lease's loss adds two lines. kube's client
    // adds one line per watch its end cut ("eof in poll"), not per request.
    assert_eq!(logs.matches("cannot be reached").count(), 1, "{logs}");
    assert_eq!(logs.matches("answers again").count(), 1, "{logs}");
    let (kube, ours): (Vec<&str>, Vec<&str>) =
        logs.lines().partition(|l| l.contains("kube_client"));
    assert!(ours.len() <= 6, "{} lines:\n{logs}", ours.len());
    assert!(
        kube.iter().all(|l| l.contains("eof in poll")) && kube.len() <= 6,
        "{logs}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
