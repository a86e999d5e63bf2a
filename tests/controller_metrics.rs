//! Metrics collectors in a cluster, end to end: the real `ktune
//! controller` against the fake API server. Push: trials post with
//! examples/python/ktune_report.py to the controller's endpoint, their
//! token delivered in a Secret; a wrong token is refused.

mod support;

use support::cluster::{Cluster, stop};
use support::{describe, two_mode_experiment};

/// A Push experiment over modes 1 and 2 whose Job trials run `script`
/// (`$1` is the mode) in the repository root.
fn push_experiment(name: &str, script: &str) -> String {
    let trial_spec = format!(
        r#"      apiVersion: batch/v1
      kind: Job
      spec:
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: python:3.12-slim
                command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]"#
    );
    two_mode_experiment(
        name,
        "  metricsCollectorSpec: {collector: {kind: Push}}",
        "main",
        "",
        &trial_spec,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_trials_report_with_the_python_helper_and_their_secret_token() {
    let cluster = Cluster::fake("push").await;
    // A forged report first (refused: wrong token), then the real ones;
    // nothing is printed, so only pushes can reach the controller.
    let script = "KTUNE_PUSH_TOKEN=forged python3 examples/python/ktune_report.py loss=0.0001 2>/dev/null && exit 9; \
                  python3 examples/python/ktune_report.py loss=0.5$1 >/dev/null && \
                  python3 examples/python/ktune_report.py loss=0.$1 accuracy=0.9 >/dev/null";
    let yaml = push_experiment("push", script);
    let controller = cluster.controller(&["--listen", "off", "--push-listen", "127.0.0.1:0"]);
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Succeeded", "experiment/push", 60);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    let get = |what: &[&str], path: &str| cluster.jsonpath(what, path);
    assert_eq!(
        get(&["experiment", "push"], "{.status.trialsSucceeded}"),
        "2",
        "{logs}"
    );
    assert_eq!(
        get(
            &["experiment", "push"],
            "{.status.currentOptimalTrial.objectiveValue}"
        ),
        "0.1",
        "{logs}"
    );
    // Min over the two reports of the best trial: 0.1, not the forged 0.0001.
    let trial = get(
        &["experiment", "push"],
        "{.status.currentOptimalTrial.bestTrialName}",
    );
    // The token is in a Secret, referenced (not copied) by the runSpec.
    let secrets = get(&["secrets"], "{.items[*].metadata.name}");
    assert!(secrets.contains(&format!("{trial}-push")), "{secrets}");
    let refs = get(
        &["trial", &trial],
        "{.spec.runSpec.spec.template.spec.containers[0].env[*].valueFrom.secretKeyRef.name}",
    );
    assert_eq!(refs, format!("{trial}-push {trial}-push"));
    let token = get(&["secret", &format!("{trial}-push")], "{.data.token}");
    let spec = get(&["trial", &trial], "{.spec.runSpec}");
    assert!(!token.is_empty() && !spec.contains(&token), "{spec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_experiment_fails_when_the_controller_serves_no_push_endpoint() {
    let cluster = Cluster::fake("push-off").await;
    let yaml = push_experiment("nopush", "true");
    let controller = cluster.controller(&["--listen", "off"]);
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Failed", "experiment/nopush", 30);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    let reason = cluster.jsonpath(
        &["experiment", "nopush"],
        "{.status.conditions[-1:].reason}",
    );
    assert_eq!(reason, "PushUnavailable", "{logs}");
}

/// A trial serving `loss` in the Prometheus text format on its pod IP
/// (downward API) at :8080 for about two seconds: 0.9, then `0.<mode>`.
const PROMETHEUS_TRIAL: &str = r##"
import http.server, os, sys, threading, time
state = {"loss": 0.9}
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("# TYPE loss gauge\nloss %s\n" % state["loss"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((os.environ["POD_IP"], 8080), Metrics)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(0.8)
state["loss"] = float("0." + sys.argv[1])
time.sleep(1.4)
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_trials_are_scraped_on_their_pod_ip() {
    let cluster = Cluster::fake("prometheus").await;
    let trial_spec = format!(
        r#"      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: python:3.12-slim
                env: [{{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}]
                command: ["python3", "-c", {PROMETHEUS_TRIAL:?}, "${{trialParameters.mode}}"]"#
    );
    let yaml = two_mode_experiment(
        "scraped",
        "  metricsCollectorSpec:\n    collector: {kind: PrometheusMetric}\n    source: {httpGet: {port: 8080, path: /metrics}}",
        "main",
        "",
        &trial_spec,
    );
    let controller = cluster.controller(&["--listen", "off"]);
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for("Succeeded", "experiment/scraped", 60);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    let get = |path: &str| cluster.jsonpath(&["experiment", "scraped"], path);
    assert_eq!(get("{.status.trialsSucceeded}"), "2", "{logs}");
    // Both values of the best trial were seen: min 0.1, max 0.9.
    assert_eq!(
        get("{.status.currentOptimalTrial.objectiveValue}"),
        "0.1",
        "{logs}"
    );
    let max = get("{.status.currentOptimalTrial.observation.metrics[0].max}");
    assert_eq!(max, "0.9", "{logs}");
}

/// A File experiment over modes 1 and 2 (`source` is the collector's
/// source YAML) whose trials are `trial_spec` (YAML indented by 6).
fn file_experiment(name: &str, source: &str, container: &str, trial_spec: &str) -> String {
    let collector =
        format!("  metricsCollectorSpec:\n    collector: {{kind: File}}\n    source: {source}");
    two_mode_experiment(name, &collector, container, "", trial_spec)
}

/// A Job trial (YAML indented by 6) whose container `main` runs the shell
/// `script` with the trial's mode as `$1`.
fn shell_job(script: &str) -> String {
    format!(
        r#"      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{{name: main, image: x, command: ["sh", "-c", {script:?}, "t", "${{trialParameters.mode}}"]}}]"#
    )
}

/// Runs a File experiment under a controller whose sidecar is this test's
/// `ktune`; returns the best objective value and its max.
async fn run_file_experiment(cluster: Cluster, name: &str, yaml: String) -> (String, String) {
    let controller = cluster.controller(&[
        "--listen",
        "off",
        "--push-listen",
        "127.0.0.1:0",
        "--collector-command",
        env!("CARGO_BIN_EXE_ktune"),
    ]);
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
    (
        get("{.status.currentOptimalTrial.objectiveValue}"),
        get("{.status.currentOptimalTrial.observation.metrics[0].max}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_trials_stream_text_lines_through_a_native_sidecar_in_the_primary_pod() {
    let cluster = Cluster::fake_with(
        "file-text",
        &[ktune_fake_apiserver::crds::TRAINING_OPERATOR],
    )
    .await;
    // The master writes the metrics file (the sidecar is in its pod only);
    // the worker prints a worse value that no collector reads.
    let master = "echo loss=0.9 >> /var/log/katib/metrics.log; sleep 0.6; echo loss=0.$1 >> /var/log/katib/metrics.log";
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template: {{spec: {{containers: [{{name: pytorch, image: x, command: ["sh", "-c", {master:?}, "t", "${{trialParameters.mode}}"]}}]}}}}
          Worker:
            replicas: 1
            template: {{spec: {{containers: [{{name: pytorch, image: x, command: ["sh", "-c", "echo loss=9"]}}]}}}}"#
    );
    let yaml = file_experiment(
        "filetext",
        "{fileSystemPath: {path: /var/log/katib/metrics.log, kind: File, format: TEXT}}",
        "pytorch",
        &spec,
    );
    let (best, max) = run_file_experiment(cluster, "filetext", yaml).await;
    assert_eq!((best.as_str(), max.as_str()), ("0.1", "0.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_trials_stream_json_lines() {
    let cluster = Cluster::fake("file-json").await;
    let script = r#"echo '{"loss": "0.7"}' > /out/m.json; sleep 0.3; echo "{\"loss\": \"0.$1\"}" >> /out/m.json"#;
    let spec = shell_job(script);
    let yaml = file_experiment(
        "filejson",
        "{fileSystemPath: {path: /out/m.json, kind: File, format: JSON}}",
        "main",
        &spec,
    );
    let (best, max) = run_file_experiment(cluster, "filejson", yaml).await;
    assert_eq!((best.as_str(), max.as_str()), ("0.1", "0.7"));
}

/// TensorFlowEvent: the trial writes TensorBoard event files below the
/// collector's folder (here with a standard-library writer: the pods have
/// no tensorboardX), the File collector's sidecar follows the folder with
/// `--format TFEVENT` and pushes the scalars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tensorflow_event_trials_stream_event_files_through_the_sidecar() {
    let cluster = Cluster::fake("tfevent").await;
    let writer = support::repo_root().join("tests/support/write_tfevents.py");
    let script = format!(
        "mkdir -p /var/log/katib/tfevent/train && python3 {} /var/log/katib/tfevent/train/events.out.tfevents.1.pod loss=0.7 loss=0.$1",
        writer.display()
    );
    let spec = shell_job(&script);
    let collector = "  metricsCollectorSpec:\n    collector: {kind: TensorFlowEvent}\n    \
                     source: {fileSystemPath: {path: /var/log/katib/tfevent/, kind: Directory}}";
    let yaml = two_mode_experiment("tfevent", collector, "main", "", &spec);
    let (best, max) = run_file_experiment(cluster, "tfevent", yaml).await;
    assert_eq!((best.as_str(), max.as_str()), ("0.1", "0.7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_trial_adopted_by_a_restarted_controller_keeps_its_token() {
    let cluster = Cluster::fake("push-restart").await;
    let go = cluster.dir.join("go");
    // Report once (and say so), wait for the test's go (after the
    // restart), report again with the token the pod started with — for up
    // to 5 s, while the new controller takes the trial back (a wrong
    // token stays refused).
    let script = format!(
        "python3 examples/python/ktune_report.py loss=0.5$1 || exit 7; touch {dir}/reported-$1; \
         i=0; while [ ! -f {go} ] && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.05; done; \
         i=0; until python3 examples/python/ktune_report.py loss=0.$1; do \
           i=$((i+1)); [ $i -lt 50 ] || exit 8; sleep 0.1; done",
        dir = cluster.dir.display(),
        go = go.display()
    );
    let yaml = push_experiment("adopted", &script);
    // One address for both controllers, as a Service gives in a cluster.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--listen", "off", "--push-listen", listen.as_str()];
    let first = cluster.controller(&args);
    let (cluster, first) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        // Until both trials run and have pushed once to this controller.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let reported = |m: &str| cluster.dir.join(format!("reported-{m}")).exists();
        while std::time::Instant::now() < deadline && !(reported("1") && reported("2")) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(reported("1") && reported("2"), "the trials never pushed");
        (cluster, first)
    })
    .await
    .unwrap();
    let first_logs = stop(first);
    let second = cluster.controller(&args);
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        // Let the new controller start, then let the trials report.
        std::thread::sleep(std::time::Duration::from_millis(500));
        std::fs::write(&go, "").unwrap();
        let waited = cluster.wait_for("Succeeded", "experiment/adopted", 60);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(second);
    assert!(
        waited.status.success(),
        "{}\n{first_logs}\n{logs}",
        describe(&waited)
    );
    let get = |path: &str| cluster.jsonpath(&["experiment", "adopted"], path);
    let trials = cluster.jsonpath(
        &["trials"],
        r#"{range .items[*]}{.metadata.name} {.status.conditions[-1:].type} {.status.conditions[-1:].reason} {.status.conditions[-1:].message}{"\n"}{end}"#,
    );
    assert_eq!(
        get("{.status.trialsSucceeded}"),
        "2",
        "{trials}\n{first_logs}\n{logs}"
    );
    assert_eq!(
        get("{.status.currentOptimalTrial.objectiveValue}"),
        "0.1",
        "{first_logs}\n{logs}"
    );
}
