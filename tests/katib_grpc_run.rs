//! `ktune run` serving Katib's gRPC DBManager API to its trials end to end:
//! a Push experiment's trial gets `KATIB_TRIAL_NAME` and
//! `KTUNE_DB_MANAGER_ADDRESS`, what is reported there reaches the store
//! (read back with `GetObservationLog`) and the trial's objective. The
//! trial hands its environment to this test, which reports for it with the
//! Rust client (Python's grpcio is not needed); a second test runs Katib's
//! own SDK (`examples/trials/katib_report_metrics.py`) when it is installed.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktune::metrics::katib_grpc::client::DbManagerClient;
use ktune::metrics::katib_grpc::messages::{
    GetObservationLogRequest, Metric, MetricLog, ObservationLog, ReportObservationLogRequest,
};
use ktune_algorithms::history::TrialState;
use support::{describe, scratch};
use tonic::Code;

fn report(trial: &str, value: &str) -> ReportObservationLogRequest {
    ReportObservationLogRequest {
        trial_name: trial.to_owned(),
        observation_log: Some(ObservationLog {
            metric_logs: vec![MetricLog {
                time_stamp: String::new(),
                metric: Some(Metric {
                    name: "loss".into(),
                    value: value.into(),
                }),
            }],
        }),
    }
}

fn wait_for(path: &Path, what: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with("END\n")
        {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_local_trial_reports_through_grpc_into_the_store() {
    let dir = scratch("katib-grpc-run");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let env_file = dir.join("env");
    let done = dir.join("done");
    let script = format!(
        "env | grep -E '^(KATIB_TRIAL_NAME|KTUNE_DB_MANAGER_ADDRESS)=' > {env}.tmp; echo END >> {env}.tmp; mv {env}.tmp {env}\n\
         while [ ! -e {done} ]; do sleep 0.05; done",
        env = env_file.display(),
        done = done.display()
    );
    let extra = "  metricsCollectorSpec: {collector: {kind: Push}}";
    let file = support::shell_experiment(&dir, "grpcrun", &script, &["a"], extra);
    let child = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args([
            "run",
            &file.display().to_string(),
            "--db",
            &db,
            "--trials-dir",
        ])
        .arg(dir.join("trials"))
        .current_dir(support::repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let env = wait_for(&env_file, "trial environment");
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not in {env}"))
            .to_owned()
    };
    let trial = var("KATIB_TRIAL_NAME");
    let address: SocketAddr = var("KTUNE_DB_MANAGER_ADDRESS").parse().unwrap();
    assert!(address.ip().is_loopback(), "{address}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = DbManagerClient::connect(address, None).await.unwrap();
        for loss in ["3.0", "2.0", "1.5"] {
            client.report(report(&trial, loss)).await.unwrap();
        }
        let garbage = client.report(report(&trial, "lots")).await.unwrap_err();
        assert_eq!(garbage.code(), Code::InvalidArgument);
        let unknown = client
            .report(report("no-such-trial", "1"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        // The Push collector drains the queue into the store; read it back.
        let started = Instant::now();
        loop {
            let reply = client
                .get(GetObservationLogRequest {
                    trial_name: trial.clone(),
                    metric_name: "loss".into(),
                    ..GetObservationLogRequest::default()
                })
                .await
                .unwrap();
            let values: Vec<String> = reply
                .observation_log
                .unwrap()
                .metric_logs
                .into_iter()
                .map(|l| l.metric.unwrap().value)
                .collect();
            if values.len() == 3 {
                assert_eq!(values, ["3.0", "2.0", "1.5"]);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{values:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    std::fs::write(&done, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stored = support::runs::stored(&db, "grpcrun");
    assert_eq!(stored.len(), 1);
    let (row, reports) = &stored[0];
    assert_eq!(row.state, TrialState::Succeeded, "{row:?}");
    assert_eq!(row.objective, Some(1.5), "{row:?}");
    assert_eq!(reports.len(), 3, "{reports:?}");
    // The run is over: its endpoint is gone.
    runtime.block_on(async {
        assert!(DbManagerClient::connect(address, None).await.is_err());
    });
}

/// Katib's own SDK (`kubeflow-katib`, with grpcio) as the trial's client,
/// when the interpreter in `KTUNE_KATIB_PYTHON` (default `python3`) has it.
#[test]
fn katibs_python_sdk_reports_to_a_local_run() {
    let python = std::env::var("KTUNE_KATIB_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_sdk = Command::new(&python)
        .args(["-c", "import kubeflow.katib, grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        println!(
            "SKIPPED: {python} has no kubeflow-katib/grpcio (pip install kubeflow-katib, or set KTUNE_KATIB_PYTHON); Katib's SDK against ktune run's gRPC API did not run"
        );
        return;
    }
    let dir = scratch("katib-grpc-sdk");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    // The trial, then the SDK's own stub reading back what it stored
    // (`GetObservationLog`, as `KatibClient.get_trial_metrics` calls it).
    let read_back = r#"
import os, time, grpc
import kubeflow.katib.katib_api_pb2 as pb, kubeflow.katib.katib_api_pb2_grpc as rpc
stub = rpc.DBManagerStub(grpc.insecure_channel(os.environ["KTUNE_DB_MANAGER_ADDRESS"]))
request = pb.GetObservationLogRequest(trial_name=os.environ["KATIB_TRIAL_NAME"], metric_name="loss")
for _ in range(100):
    logs = stub.GetObservationLog(request, timeout=10).observation_log.metric_logs
    if len(logs) == 3:
        break
    time.sleep(0.1)
assert len(logs) == 3 and all(l.time_stamp.endswith("Z") for l in logs), logs
"#;
    let script = format!(
        "{python} {} \"$1\" && {python} -c '{read_back}'",
        support::repo_root()
            .join("examples/trials/katib_report_metrics.py")
            .display()
    );
    let extra = "  metricsCollectorSpec: {collector: {kind: Push}}";
    let file = support::shell_experiment(&dir, "grpcsdk", &script, &["1.0", "3.0"], extra);
    let out = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args([
            "run",
            &file.display().to_string(),
            "--db",
            &db,
            "--trials-dir",
        ])
        .arg(dir.join("trials"))
        .current_dir(support::repo_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut objectives: Vec<f64> = support::runs::stored(&db, "grpcsdk")
        .into_iter()
        .map(|(row, reports)| {
            // Succeeded: the read-back's assertions held too.
            assert_eq!(row.state, TrialState::Succeeded, "{row:?}");
            assert_eq!(reports.len(), 3, "{reports:?}");
            row.objective.unwrap()
        })
        .collect();
    objectives.sort_by(f64::total_cmp);
    assert!((objectives[0] - 1.0 / 3.0).abs() < 1e-9, "{objectives:?}");
    assert!(
        (objectives[1] - (4.0 + 1.0 / 3.0)).abs() < 1e-9,
        "{objectives:?}"
    );
}
