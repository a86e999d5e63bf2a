//! The controller as Katib's drop-in (`--api-group kubeflow.org`): Katib's
//! own example Experiments, applied unconverted with the real `kubectl`
//! against Katib's group, run to `Succeeded`, and the objects look as
//! Katib writes them (what Katib's SDK and kubectl users read).
//!
//! The examples' training images cannot run here, so the script inside
//! them (`/opt/pytorch-mnist/mnist.py`) is swapped for a stand-in that
//! takes the same arguments (`${trialParameters.…}` substituted by ktune)
//! and logs the same lines; nothing else is changed.

mod support;

use std::process::Child;

use ktune_fake_apiserver::crds;
use serde_json::{Value, json};
use support::cluster::{Cluster, stop};
use support::{describe, katib_examples};

/// The example `file`, its program swapped, in namespace `default`, with a
/// budget of `trials` (two at a time).
fn example(dir: &std::path::Path, file: &str, trials: u32) -> Value {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut experiment: Value = serde_saphyr::from_str(&text).unwrap();
    experiment["metadata"]["namespace"] = json!("default");
    experiment["spec"]["maxTrialCount"] = json!(trials);
    experiment["spec"]["parallelTrialCount"] = json!(2);
    experiment["spec"]["maxFailedTrialCount"] = json!(trials);
    swap_programs(&mut experiment["spec"]["trialTemplate"]["trialSpec"]);
    experiment
}

/// Katib's example image's training script, and its stand-in here (the
/// Python SDK suite's: same arguments, same log lines).
const SCRIPT: (&str, &str) = (
    "/opt/pytorch-mnist/mnist.py",
    "tests/python/stand-ins/pytorch-mnist.py",
);

/// Points every command at the stand-in instead of the image's script.
fn swap_programs(value: &mut Value) {
    match value {
        Value::String(text) if text == SCRIPT.0 => *text = SCRIPT.1.to_owned(),
        Value::Object(map) => map.values_mut().for_each(swap_programs),
        Value::Array(items) => items.iter_mut().for_each(swap_programs),
        _ => {}
    }
}

/// A fake cluster serving Katib's group (and the workload kinds) with the
/// controller in Katib mode.
async fn katib_cluster(name: &str) -> (Cluster, Child) {
    let cluster = Cluster::fake_with(name, &[crds::TRAINING_OPERATOR, crds::TRAINER]).await;
    let katib_crds = support::repo_root().join("crds/kubeflow.org");
    let out = cluster.kubectl(&["apply", "-f", katib_crds.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", describe(&out));
    let controller = cluster.controller(&[
        "--listen",
        "off",
        "--api-group",
        "kubeflow.org",
        "--db-manager-listen",
        "127.0.0.1:0",
    ]);
    (cluster, controller)
}

fn get(cluster: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    let out = cluster.kubectl(&args, None);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The types of the experiment's conditions that hold, in order.
fn holding(status: &Value) -> Vec<String> {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the experiment `name` succeeded with `trials` trials (not
/// one of its earlier runs), failing at once if it failed.
fn wait_succeeded(cluster: &Cluster, name: &str, trials: u32, seconds: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let status = get(cluster, &["experiments.kubeflow.org", name])["status"].clone();
        let holds = holding(&status);
        assert!(!holds.contains(&"Failed".to_owned()), "{name}: {status:#}");
        if holds.last().is_some_and(|t| t == "Succeeded") && status["trialsSucceeded"] == trials {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{name}: {status:#}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn katibs_examples_run_unconverted_and_look_as_katib_writes_them() {
    let Some(dir) = katib_examples() else { return };
    let (cluster, controller) = katib_cluster("katib-mode").await;
    let examples = [
        ("hp-tuning/random.yaml", "random"),
        (
            "kubeflow-training-operator/pytorchjob-mnist.yaml",
            "pytorchjob-mnist",
        ),
        (
            "kubeflow-trainer/trainjob-pytorch.yaml",
            "torch-distributed-example",
        ),
    ];
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        for (file, _) in examples {
            let yaml = serde_json::to_string(&example(&dir, file, 2)).unwrap();
            let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
            assert!(out.status.success(), "{file}: {}", describe(&out));
        }
        for (_, name) in examples {
            wait_succeeded(&cluster, name, 2, 120);
        }
        (cluster, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    for (file, name) in examples {
        let experiment = get(&cluster, &["experiments.kubeflow.org", name]);
        check_experiment(&experiment, file);
        let trials = get(
            &cluster,
            &[
                "trials.kubeflow.org",
                "-l",
                &format!("katib.kubeflow.org/experiment={name}"),
            ],
        );
        let trials = trials["items"].as_array().unwrap();
        assert_eq!(trials.len(), 2, "{file}");
        for trial in trials {
            check_trial(trial, file);
            let trial_name = trial["metadata"]["name"].as_str().unwrap();
            let pods = get(
                &cluster,
                &[
                    "pods",
                    "-l",
                    &format!("katib.kubeflow.org/trial={trial_name}"),
                ],
            );
            assert!(
                !pods["items"].as_array().unwrap().is_empty() || trial["spec"]["retainRun"] != true,
                "{file}: the trial's pods carry its label"
            );
        }
    }
    let events = get(&cluster, &["events"]);
    let events = events["items"].as_array().unwrap();
    assert!(!events.is_empty(), "{logs}");
    for event in events {
        assert!(event["firstTimestamp"].is_string(), "{event:#}");
        assert!(event["involvedObject"]["name"].is_string(), "{event:#}");
    }
}

/// An Experiment as Katib writes it: its webhook's defaults in the spec,
/// start and completion times, the best trial with Katib's metrics.
fn check_experiment(experiment: &Value, file: &str) {
    let spec = &experiment["spec"];
    for parameter in spec["parameters"].as_array().unwrap() {
        if parameter["parameterType"] == "double" || parameter["parameterType"] == "int" {
            assert_eq!(
                parameter["feasibleSpace"]["distribution"], "uniform",
                "{file}"
            );
        }
    }
    assert_eq!(spec["resumePolicy"], "Never", "{file}");
    assert!(
        spec["metricsCollectorSpec"]["collector"]["kind"].is_string(),
        "{file}"
    );
    assert!(spec["objective"]["metricStrategies"].is_array(), "{file}");
    assert!(
        spec["trialTemplate"]["successCondition"].is_string(),
        "{file}"
    );
    let status = &experiment["status"];
    assert!(status["startTime"].is_string(), "{file}: {status:#}");
    assert!(status["completionTime"].is_string(), "{file}: {status:#}");
    assert_eq!(status["trialsSucceeded"], 2, "{file}");
    let best = &status["currentOptimalTrial"];
    assert!(best["bestTrialName"].is_string(), "{file}: {status:#}");
    let metric = &best["observation"]["metrics"][0];
    assert_eq!(metric["name"], "loss", "{file}");
    assert!(
        metric["latest"].as_str().unwrap().parse::<f64>().is_ok(),
        "{file}"
    );
}

/// A Trial as Katib writes it: its conditions, times, and the observation
/// as `{name, min, max, latest}` strings.
fn check_trial(trial: &Value, file: &str) {
    let status = &trial["status"];
    assert!(status["startTime"].is_string(), "{file}: {status:#}");
    assert!(status["completionTime"].is_string(), "{file}: {status:#}");
    let conditions: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["Created", "Running", "Succeeded"], "{file}");
    assert_eq!(
        status["conditions"][2]["reason"], "TrialSucceeded",
        "{file}"
    );
    let loss = &status["observation"]["metrics"][0];
    assert_eq!(loss["name"], "loss", "{file}");
    let (min, max, latest) = (
        loss["min"].as_str().unwrap().parse::<f64>().unwrap(),
        loss["max"].as_str().unwrap().parse::<f64>().unwrap(),
        loss["latest"].as_str().unwrap().parse::<f64>().unwrap(),
    );
    assert!(min <= latest && latest <= max, "{file}: {loss}");
    assert_eq!(trial["apiVersion"], "kubeflow.org/v1beta1");
}

/// A LongRunning experiment that ended is resumed by a raised
/// `maxTrialCount`, shows `Restarting`, and ends again with more trials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_experiment_resumes_when_its_budget_is_raised() {
    let Some(dir) = katib_examples() else { return };
    let (cluster, controller) = katib_cluster("katib-restart").await;
    let mut experiment = example(&dir, "hp-tuning/random.yaml", 2);
    experiment["spec"]["resumePolicy"] = json!("LongRunning");
    experiment["metadata"]["name"] = json!("resumed");
    let (cluster, controller) = tokio::task::spawn_blocking(move || {
        let yaml = serde_json::to_string(&experiment).unwrap();
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        wait_succeeded(&cluster, "resumed", 2, 90);
        // As Katib's SDK's edit_experiment_budget does: a merge patch.
        let out = cluster.kubectl(
            &[
                "patch",
                "experiments.kubeflow.org/resumed",
                "--type=merge",
                "-p",
                r#"{"spec":{"maxTrialCount":4}}"#,
            ],
            None,
        );
        assert!(out.status.success(), "{}", describe(&out));
        let status = wait_succeeded(&cluster, "resumed", 4, 90);
        assert!(
            holding(&status).contains(&"Restarting".to_owned()),
            "{status:#}"
        );
        (cluster, controller)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(!logs.contains("panicked"), "{logs}");
    drop(cluster);
}
