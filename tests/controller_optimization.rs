//! `ktune controller --optimization-jobs` end to end against the fake API
//! server: a Kubeflow Trainer OptimizationJob applied with kubectl runs
//! its trials as TrainJobs named `<job>-trial-<suffix>`, owned by the job,
//! labelled with it, each assignment in `spec.trainer.env`; metrics come
//! from `TrainJob.status.trainerStatus.metrics` (here written by the test,
//! in the place of Trainer's status server); the job ends `Complete` with
//! `status.result` naming the best trial. A spec changed afterwards is
//! refused (Trainer's rule), and a job that breaks Trainer's rules fails
//! naming the field.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ktune_fake_apiserver::crds;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::cluster::{Cluster, stop};
use support::{describe, repo_root};

fn optimization_job_crd() -> String {
    std::fs::read_to_string(
        repo_root().join("crds/trainer.kubeflow.org/optimizationjobs.trainer.kubeflow.org.yaml"),
    )
    .unwrap()
}

/// A job minimising `loss` over `lr` (grid over three choices, two at once).
fn job(name: &str, num_trials: u32) -> String {
    format!(
        r#"apiVersion: trainer.kubeflow.org/v1alpha1
kind: OptimizationJob
metadata:
  name: {name}
spec:
  objectives: [{{metric: loss, direction: Minimize}}]
  searchAlgorithm: {{grid: {{}}}}
  parameters:
    - name: lr
      searchSpace: {{categorical: {{choices: ["0.3", "0.1", "0.2"]}}}}
  numTrials: {num_trials}
  parallelTrials: 2
  trainJobTemplate:
    metadata:
      labels: {{team: vision}}
      annotations: {{owner: me}}
    spec:
      runtimeRef: {{name: torch-distributed}}
      trainer:
        numNodes: 1
        image: x
        command: ["sh", "-c", "sleep 1"]
        env: [{{name: KEEP, value: "1"}}]
"#
    )
}

/// The env of a TrainJob's trainer, by name.
fn trainer_env(train_job: &Value) -> BTreeMap<String, String> {
    train_job
        .pointer("/spec/trainer/env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_owned(),
                e.get("value")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Trainer's status server's part: each TrainJob of the job that has no
/// `trainerStatus` gets one reporting `loss` = its `lr` (so the smallest
/// lr is the best), until `deadline`. Returns the TrainJobs seen.
async fn report_losses(api: &Api<DynamicObject>, deadline: Instant, want: usize) -> Vec<Value> {
    loop {
        let list = api.list(&Default::default()).await.unwrap();
        let mut seen = Vec::new();
        for object in list.items {
            let value = serde_json::to_value(&object).unwrap();
            if value.pointer("/status/trainerStatus").is_none() {
                let lr = trainer_env(&value)
                    .get("KUBEFLOW_TRAINER_OPT_lr")
                    .cloned()
                    .unwrap_or_default();
                let patch = json!({"status": {"trainerStatus": {
                    "lastUpdatedTime": "2026-12-07T10:00:00Z",
                    "progressPercentage": 100,
                    "metrics": [{"name": "loss", "value": lr}, {"name": "note", "value": "n/a"}]
                }}});
                let name = object.metadata.name.clone().unwrap();
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
            seen.push(value);
        }
        if seen.len() >= want || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn train_jobs(cluster: &Cluster) -> Api<DynamicObject> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let kind = ApiResource {
        group: "trainer.kubeflow.org".into(),
        version: "v1alpha1".into(),
        api_version: "trainer.kubeflow.org/v1alpha1".into(),
        kind: "TrainJob".into(),
        plural: "trainjobs".into(),
    };
    Api::namespaced_with(client, "default", &kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optimization_job_runs_as_trainjobs_and_ends_complete_with_its_result() {
    let crd = optimization_job_crd();
    let cluster = Cluster::fake_with("opt-job", &[crds::TRAINER, &crd]).await;
    let controller = cluster.controller(&["--listen", "off", "--optimization-jobs"]);
    let applied = tokio::task::block_in_place(|| {
        cluster.kubectl(&["apply", "-f", "-"], Some(&job("tune", 3)))
    });
    assert!(applied.status.success(), "{}", describe(&applied));

    let api = train_jobs(&cluster).await;
    let seen = report_losses(&api, Instant::now() + Duration::from_secs(60), 3).await;
    let complete =
        tokio::task::block_in_place(|| cluster.wait_for("Complete", "optimizationjob/tune", 60));
    let logs = stop(controller);
    assert!(complete.status.success(), "{}\n{logs}", describe(&complete));

    // Three TrainJobs, named as Trainer names them, owned and labelled.
    let mut names: Vec<String> = seen
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["tune-trial-0001", "tune-trial-0002", "tune-trial-0003"]
    );
    for train_job in &seen {
        let meta = &train_job["metadata"];
        assert_eq!(
            meta["labels"]["trainer.kubeflow.org/optimization-job"],
            "tune"
        );
        assert_eq!(meta["labels"]["team"], "vision");
        assert_eq!(meta["annotations"]["owner"], "me");
        let owner = &meta["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("OptimizationJob"), Some("tune"))
        );
        assert_eq!(owner["controller"], true);
        let env = trainer_env(train_job);
        assert_eq!(
            env.get("KEEP").map(String::as_str),
            Some("1"),
            "the template's env stays"
        );
        assert!(env.contains_key("KUBEFLOW_TRAINER_OPT_lr"));
    }

    // The result names the best trial's TrainJob and its values.
    let result = cluster.jsonpath(&["optimizationjob", "tune"], "{.status.result}");
    let result: Value = serde_json::from_str(&result).unwrap();
    let best = result["trainJobName"].as_str().unwrap();
    let best_job = seen.iter().find(|t| t["metadata"]["name"] == best).unwrap();
    assert_eq!(trainer_env(best_job)["KUBEFLOW_TRAINER_OPT_lr"], "0.1");
    assert_eq!(
        result["parameters"],
        json!([{"name": "lr", "value": "0.1"}])
    );
    let types = cluster.jsonpath(&["optimizationjob", "tune"], "{.status.conditions[*].type}");
    assert_eq!(types, "Created Complete");

    // Events on the job name its TrainJobs.
    let events = cluster.kubectl(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=tune",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
        None,
    );
    let reasons = String::from_utf8_lossy(&events.stdout);
    for reason in ["Created", "TrialCreated", "TrialSucceeded", "Complete"] {
        assert!(reasons.contains(reason), "{reason} in {reasons}");
    }

    // The printer columns show the state and the best TrainJob.
    let table = cluster.kubectl(&["get", "optimizationjob", "tune"], None);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("Best TrainJob") || table.contains("BEST TRAINJOB"),
        "{table}"
    );
    assert!(table.contains(best), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_breaks_trainers_rules_fails_naming_the_field_and_a_changed_spec_is_refused() {
    let crd = optimization_job_crd();
    let cluster = Cluster::fake_with("opt-job-bad", &[crds::TRAINER, &crd]).await;
    let controller = cluster.controller(&["--listen", "off", "--optimization-jobs"]);
    // Grid over a uniform parameter: Trainer refuses it (the fake server
    // does not evaluate CEL, so the controller must).
    let bad = job("bad", 2).replace(
        r#"{categorical: {choices: ["0.3", "0.1", "0.2"]}}"#,
        r#"{uniform: {min: "0.1", max: "0.3"}}"#,
    );
    let applied =
        tokio::task::block_in_place(|| cluster.kubectl(&["apply", "-f", "-"], Some(&bad)));
    assert!(applied.status.success(), "{}", describe(&applied));
    let failed =
        tokio::task::block_in_place(|| cluster.wait_for("Failed", "optimizationjob/bad", 30));
    assert!(failed.status.success(), "{}", describe(&failed));
    let message = cluster.jsonpath(
        &["optimizationjob", "bad"],
        r#"{.status.conditions[?(@.type=="Failed")].message}"#,
    );
    assert!(
        message.contains("spec.parameters[0]") || message.contains("searchAlgorithm"),
        "{message}"
    );

    // A running job's spec changed: refused with a Warning event, the
    // job runs on with its spec.
    let applied = tokio::task::block_in_place(|| {
        cluster.kubectl(&["apply", "-f", "-"], Some(&job("keep", 3)))
    });
    assert!(applied.status.success(), "{}", describe(&applied));
    let created =
        tokio::task::block_in_place(|| cluster.wait_for("Created", "optimizationjob/keep", 30));
    assert!(created.status.success(), "{}", describe(&created));
    let patched = cluster.kubectl(
        &[
            "patch",
            "optimizationjob",
            "keep",
            "--type=merge",
            "-p",
            r#"{"spec":{"numTrials":1}}"#,
        ],
        None,
    );
    assert!(patched.status.success(), "{}", describe(&patched));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = cluster.kubectl(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=keep",
                "-o",
                "jsonpath={.items[*].message}",
            ],
            None,
        );
        if String::from_utf8_lossy(&events.stdout).contains("spec is immutable") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no immutability event:\n{}",
            stop(controller)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(controller);
}

/// A controller killed while trials run: the next one adopts the
/// TrainJobs already created (same names), creates none twice, and the
/// job still ends Complete with all its trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_adopts_the_trainjobs_and_finishes_the_job() {
    let crd = optimization_job_crd();
    let cluster = Cluster::fake_with("opt-job-restart", &[crds::TRAINER, &crd]).await;
    let first = cluster.controller(&["--listen", "off", "--optimization-jobs"]);
    let yaml = job("again", 3).replace(r#""sleep 1""#, r#""sleep 3""#);
    let applied =
        tokio::task::block_in_place(|| cluster.kubectl(&["apply", "-f", "-"], Some(&yaml)));
    assert!(applied.status.success(), "{}", describe(&applied));
    let api = train_jobs(&cluster).await;
    // The first two trials run: the controller dies.
    let running = report_losses(&api, Instant::now() + Duration::from_secs(30), 2).await;
    assert_eq!(running.len(), 2);
    stop(first);

    let second = cluster.controller(&["--listen", "off", "--optimization-jobs"]);
    let seen = report_losses(&api, Instant::now() + Duration::from_secs(60), 3).await;
    let complete =
        tokio::task::block_in_place(|| cluster.wait_for("Complete", "optimizationjob/again", 60));
    let logs = stop(second);
    assert!(complete.status.success(), "{}\n{logs}", describe(&complete));
    let mut names: Vec<&str> = seen
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["again-trial-0001", "again-trial-0002", "again-trial-0003"]
    );
    let best = cluster.jsonpath(
        &["optimizationjob", "again"],
        "{.status.result.parameters[0].value}",
    );
    assert_eq!(best, "0.1");
}
