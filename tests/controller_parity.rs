//! The same experiment decides alike locally (`ktune run`) and in a
//! cluster (the fake API server with `ktune controller`): which trials the
//! early-stopping rule stops does not depend on the backend, nor on how
//! fast it reads a trial's reports.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use ktune_algorithms::history::TrialState;
use support::cluster::{Cluster, stop};
use support::runs::{run_args, run_to_end, stored};
use support::{describe, shell_experiment};

/// One trial a mode: it prints `loss = mode - step` for six steps at once
/// and exits, so every report and the exit are read in the same poll.
const SCRIPT: &str = r#"i=0; while [ $i -lt 6 ]; do i=$((i+1)); echo "loss=$(($1 - i))"; done"#;

/// Grid order: 10 and 30 build the history, 20 and 15 beat the mean of the
/// succeeded trials' first two reports, 90 and 25 do not.
const MODES: &[&str] = &["10", "30", "20", "90", "15", "25"];

/// One trial at a time (a deterministic history), the median rule after
/// two succeeded trials on the first two reports.
const EXTRA: &str = "  parallelTrialCount: 1\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"2\"}\n      - {name: start_step, value: \"2\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stopping_decides_alike_locally_and_in_the_cluster() {
    let cluster = Cluster::fake("parity").await;
    let file = shell_experiment(&cluster.dir, "parity", SCRIPT, MODES, EXTRA);
    let local = {
        let (dir, file) = (cluster.dir.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            let db = format!("sqlite:{}", dir.join("local.db").display());
            let out = run_to_end(&run_args(&dir, &db, &file, &[]), Duration::from_secs(60));
            assert!(out.status.success(), "{}", describe(&out));
            // The controller's info lines are its own: `ktune run` stays quiet.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("INFO"), "{stderr}");
            stored(&db, "parity")
                .into_iter()
                .filter(|(t, _)| t.state == TrialState::EarlyStopped)
                .map(|(t, _)| t.name)
                .collect::<BTreeSet<_>>()
        })
        .await
        .unwrap()
    };
    let controller = cluster.controller(&["--listen", "off"]);
    let (early, controller) = tokio::task::spawn_blocking(move || {
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/parity", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        let early = cluster.jsonpath(&["experiment", "parity"], "{.status.earlyStoppedTrialList}");
        (early, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    let cluster_early: BTreeSet<String> = serde_json::from_str::<Vec<String>>(&early)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = ["parity-0004", "parity-0006"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(local, expected, "early stopped by `ktune run`");
    assert_eq!(
        cluster_early, expected,
        "early stopped by the controller ({early})\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_logs_its_start_and_each_experiment_with_no_ktune_log_set() {
    let cluster = Cluster::fake("talks").await;
    let file = shell_experiment(&cluster.dir, "talks", "echo loss=1", &["a"], "");
    let controller = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["controller", "--tick-ms", "100", "--listen", "off", "--db"])
        .arg(format!(
            "sqlite:{}",
            cluster.dir.join("controller.db").display()
        ))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("KTUNE_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let controller = tokio::task::spawn_blocking(move || {
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/talks", 60);
        assert!(waited.status.success(), "{}", describe(&waited));
        // The end is logged just after the last status write.
        std::thread::sleep(Duration::from_millis(500));
        controller
    })
    .await
    .unwrap();
    let logs = stop(controller);
    for expected in [
        "ktune controller started",
        "version=",
        "api=ktune.dev/v1beta1",
        "store=\"sqlite:",
        "listen=\"off\"",
        "leader_election=\"off\"",
        "experiment started",
        "experiment ended",
        "state=\"Succeeded\"",
    ] {
        assert!(logs.contains(expected), "no {expected:?} in\n{logs}");
    }
}
