//! The same experiment decides alike locally (`ktune run`) and in a
//! cluster (the fake API server with `ktune controller`): which trials the
//! early-stopping rule stops does not depend on the backend, nor on how
//! fast it reads a trial's reports.

mod support;

use ktune::store::Store as _;
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

/// GETs `path` from the dashboard's router: (status, body).
async fn get(router: &axum::Router, path: &str) -> (u16, String) {
    use tower::ServiceExt as _;
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_controller_experiments_at_namespace_and_name() {
    let dir = support::scratch("dashboard-paths");
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    let store = ktune::store::SqlStore::connect(&db).await.unwrap();
    let spec = |name: &str| serde_json::json!({"metadata": {"name": name}, "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"}}});
    // Deleted and created again: two uids of default/wine; and a `ktune run` one.
    for (key, at) in [("default/wine/u1", 1), ("default/wine/u2", 2), ("plain", 3)] {
        store.create_experiment(key, &spec(key), at).await.unwrap();
    }
    let router = ktune::ui::router(
        store,
        ktune::ui::Config {
            base_path: String::new(),
            trials_dir: None,
            poll: Duration::from_secs(60),
        },
    );
    let (status, list) = get(&router, "/").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("href=\"/experiments/default/wine\""),
        "{list}"
    );
    assert!(
        list.contains("href=\"/experiments/default/wine?uid=u1\""),
        "{list}"
    );
    assert!(list.contains("href=\"/experiments/plain\""), "{list}");
    let (status, newest) = get(&router, "/experiments/default/wine").await;
    assert_eq!(status, 200, "{newest}");
    assert!(newest.contains("default/wine/u2"), "{newest}");
    let (status, older) = get(&router, "/experiments/default/wine?uid=u1").await;
    assert_eq!(status, 200, "{older}");
    assert!(older.contains("default/wine/u1"), "{older}");
    // The older one's own links keep its whole key: never its namesake's.
    assert!(
        older.contains("/experiments/default%2Fwine%2Fu1/"),
        "{older}"
    );
    for path in [
        "/experiments/default/wine/trials",
        "/experiments/default/wine/spec.yaml",
        "/experiments/default%2Fwine%2Fu1",
        "/experiments/plain",
        "/experiments/plain/trials",
    ] {
        let (status, body) = get(&router, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(get(&router, "/experiments/default/nothing").await.0, 404);
}
