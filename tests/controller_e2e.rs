//! `ktune controller` end to end: the real binary reconciling against the
//! fake API server (with its Job executor running trials as processes),
//! driven and checked with the real `kubectl`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer, kubeconfig};
use support::describe;

/// A fake cluster for one test: the server on a free port, its executor
/// running pods in the repository root, and a kubeconfig pointing at it.
///
/// With `KTUNE_E2E_KUBECONFIG` set, a real cluster instead (see
/// [`real_cluster_suite`]).
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    _fake: Option<(
        ktune_fake_apiserver::ServerHandle,
        ktune_fake_apiserver::Executor,
    )>,
}

impl Cluster {
    async fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ktune-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Ok(real) = std::env::var("KTUNE_E2E_KUBECONFIG") {
            let cluster = Self {
                dir,
                kubeconfig: PathBuf::from(real),
                _fake: None,
            };
            let crds = support::repo_root().join("crds");
            let out = cluster.kubectl(&["apply", "-f", crds.to_str().unwrap()], None);
            assert!(out.status.success(), "{}", describe(&out));
            // Leftovers of an earlier run of the suite.
            let _ = cluster.kubectl(&["delete", "experiment", name, "--ignore-not-found"], None);
            return cluster;
        }
        let fake = FakeApiServer::new();
        let (addr, server) = fake.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let executor = fake.start_executor(ExecutorConfig {
            workdir: support::repo_root(),
            grace: Duration::from_secs(2),
        });
        let config = dir.join("kubeconfig");
        kubeconfig(&config, &format!("http://{addr}")).unwrap();
        let cluster = Self {
            dir,
            kubeconfig: config,
            _fake: Some((server, executor)),
        };
        let crds = support::repo_root().join("crds");
        let out = cluster.kubectl(&["apply", "-f", crds.to_str().unwrap()], None);
        assert!(out.status.success(), "{}", describe(&out));
        cluster
    }

    /// Runs kubectl against the fake server (blocking: call from
    /// `spawn_blocking` while the server runs on this runtime).
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match stdin {
            None => command.output().unwrap(),
            Some(text) => {
                use std::io::Write as _;
                let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }

    fn controller(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_ktune"))
            .args(["controller", "--listen", "off", "--tick-ms", "100", "--db"])
            .arg(format!(
                "sqlite:{}",
                self.dir.join("controller.db").display()
            ))
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "KTUNE_LOG",
                std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `kubectl get … -o jsonpath=…`.
    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let query = format!("jsonpath={path}");
        args.extend(["-o", &query]);
        let out = self.kubectl(&args, None);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

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

/// `ktune convert FILE | kubectl apply -f -`.
fn submit(cluster: &Cluster, file: &Path) {
    let converted = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .arg("convert")
        .arg(file)
        .output()
        .unwrap();
    assert!(converted.status.success(), "{}", describe(&converted));
    let text = String::from_utf8(converted.stdout).unwrap();
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(&text));
    assert!(out.status.success(), "{}", describe(&out));
}

fn wait_for(cluster: &Cluster, condition: &str, object: &str, seconds: u64) -> Output {
    cluster.kubectl(
        &[
            "wait",
            &format!("--for=condition={condition}"),
            object,
            &format!("--timeout={seconds}s"),
        ],
        None,
    )
}

fn stop(mut controller: Child) -> String {
    let _ = controller.kill();
    let out = controller.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_katib_experiment_runs_to_completion_and_kubectl_shows_the_best_trial() {
    let cluster = Cluster::start("complete").await;
    let file = katib_experiment(&cluster.dir, "quadratic", 4, 3, 0.05);
    let controller = cluster.controller();
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        submit(&cluster, &file);
        let waited = wait_for(&cluster, "Succeeded", "experiment/quadratic", 90);
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
    let cluster = Cluster::start("restart").await;
    let file = katib_experiment(&cluster.dir, "restart", 4, 6, 0.2);
    let first = cluster.controller();
    let (cluster, first) = tokio::task::spawn_blocking(move || {
        submit(&cluster, &file);
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
    let second = cluster.controller();
    let (cluster, second) = tokio::task::spawn_blocking(move || {
        let waited = wait_for(&cluster, "Succeeded", "experiment/restart", 90);
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

/// A Katib Experiment whose trial is a shell script (`$1` is the mode).
fn shell_experiment(dir: &Path, name: &str, script: &str, modes: &[&str], extra: &str) -> PathBuf {
    let list = modes
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}, namespace: default}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 1
{extra}
  parameters:
    - {{name: mode, parameterType: categorical, feasibleSpace: {{list: [{list}]}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: mode, reference: mode}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]
"#
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stopping_and_a_failing_workload_end_their_trials_alone() {
    stops_scenario().await;
}

async fn stops_scenario() {
    let cluster = Cluster::start("stops").await;
    // Two good trials, a bad one the median rule stops mid-run, and one
    // whose container exits 3.
    let script = r#"case "$1" in
bad) n=40; v=9;; crash) echo "loss=1"; exit 3;; *) n=4; v=1;; esac
i=0; while [ $i -lt $n ]; do i=$((i+1)); echo "loss=$v"; sleep 0.15; done"#;
    let extra = "  maxFailedTrialCount: 3\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"2\"}\n      - {name: start_step, value: \"3\"}";
    let file = shell_experiment(
        &cluster.dir,
        "stops",
        script,
        &["good1", "good2", "bad", "crash"],
        extra,
    );
    let controller = cluster.controller();
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        submit(&cluster, &file);
        let waited = wait_for(&cluster, "Succeeded", "experiment/stops", 90);
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
    let cluster = Cluster::start("invalid").await;
    let file = shell_experiment(
        &cluster.dir,
        "invalid",
        "echo loss=1",
        &["a"],
        "  maxTrialCount: 3",
    );
    // Valid for the schema, refused by ktune: an unknown algorithm setting.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "apiVersion: kubeflow.org/v1beta1",
            "apiVersion: ktune.dev/v1beta1",
        )
        .replace(
            "algorithm: {algorithmName: grid}",
            "algorithm: {algorithmName: grid, algorithmSettings: [{name: bogus, value: \"1\"}]}",
        );
    let controller = cluster.controller();
    let (reason, message) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&text));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = wait_for(&cluster, "Failed", "experiment/invalid", 30);
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
    let cluster = Cluster::start("configmap").await;
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
    let controller = cluster.controller();
    let (best, controller) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = wait_for(&cluster, "Succeeded", "experiment/configmap", 60);
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
