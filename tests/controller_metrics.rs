//! Metrics collectors in a cluster, end to end: the real `ktune
//! controller` against the fake API server. Push: trials post with
//! examples/python/ktune_report.py to the controller's endpoint, their
//! token delivered in a Secret; a wrong token is refused.

mod support;

use support::cluster::{Cluster, stop};
use support::describe;

/// A Push experiment over modes 1 and 2 whose Job trials run `script`
/// (`$1` is the mode) in the repository root.
fn push_experiment(name: &str, script: &str) -> String {
    format!(
        r#"apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: {name}, namespace: default}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
  metricsCollectorSpec: {{collector: {{kind: Push}}}}
  parameters:
    - {{name: mode, parameterType: categorical, feasibleSpace: {{list: ["2", "1"]}}}}
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
                image: python:3.12-slim
                command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]
"#
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
