//! Kubeflow Trainer's `OptimizationJob` through the real `ktune` binary:
//! `examples/optimizationjob.yaml` validates, suggests trials, converts to
//! a ktune Experiment that validates again, and runs end to end — its
//! trials are TrainJobs whose trainer reads `KUBEFLOW_TRAINER_OPT_*` and
//! reports its loss through Kubeflow Trainer's progress protocol (a plain
//! Python POST here, where the Kubeflow SDK is not installed; the SDK
//! itself is tested in tests/python-kubeflow/); an invalid job is refused
//! with every field named.

mod support;

use serde_json::Value;
use support::{describe, ktune, repo_root, scratch};

const EXAMPLE: &str = "examples/optimizationjob.yaml";

fn example() -> Value {
    let text = std::fs::read_to_string(repo_root().join(EXAMPLE)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn the_example_validates_and_suggests_trainjob_trials() {
    let out = ktune(&["validate", "--strict", EXAMPLE]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("valid: default/optjob-quadratic: random over 2 parameters, minimize loss, 6 trials (2 at a time)"),
        "{text}"
    );

    let out = ktune(&["suggest", EXAMPLE, "-n", "3", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trials.len(), 3);
    for trial in &trials {
        let workload = &trial["workload"];
        assert_eq!(workload["kind"], "TrainJob", "{trial}");
        assert_eq!(workload["apiVersion"], "trainer.kubeflow.org/v1alpha1");
        assert_eq!(workload["metadata"]["labels"]["example"], "optimizationjob");
        let env = workload["spec"]["trainer"]["env"].as_array().unwrap();
        for name in ["lr", "momentum"] {
            let value = env
                .iter()
                .find(|e| e["name"] == format!("KUBEFLOW_TRAINER_OPT_{name}"))
                .and_then(|e| e["value"].as_str())
                .unwrap_or_else(|| panic!("no {name} in {env:?}"));
            assert_eq!(Some(value), trial["parameters"][name].as_str(), "{trial}");
        }
        let lr: f64 = trial["parameters"]["lr"].as_str().unwrap().parse().unwrap();
        assert!((0.001..=0.3).contains(&lr), "{lr}");
    }
    // The API's seed makes the search repeatable.
    let again = ktune(&["suggest", EXAMPLE, "-n", "3", "-o", "json"]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn the_example_converts_to_an_experiment_that_validates_again() {
    let out = ktune(&["convert", EXAMPLE, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let experiment: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(experiment["apiVersion"], "ktune.dev/v1beta1");
    assert_eq!(experiment["kind"], "Experiment");
    let spec = &experiment["spec"];
    assert_eq!(spec["maxTrialCount"], 6);
    assert_eq!(spec["parallelTrialCount"], 2);
    assert_eq!(spec["algorithm"]["algorithmName"], "random");
    assert_eq!(spec["algorithm"]["algorithmSettings"][0]["value"], "42");
    assert_eq!(
        spec["parameters"][0]["feasibleSpace"]["distribution"],
        "logUniform"
    );
    assert_eq!(spec["trialTemplate"]["trialSpec"]["kind"], "TrainJob");
    // Trials report through Trainer's progress protocol, served by the
    // push endpoint.
    assert_eq!(spec["metricsCollectorSpec"]["collector"]["kind"], "Push");

    let dir = scratch("optjob-convert");
    let file = dir.join("experiment.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let out = ktune(&["validate", "--strict", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Both plan the same first trials.
    let a = ktune(&["suggest", EXAMPLE, "-n", "4"]);
    let b = ktune(&["suggest", file.to_str().unwrap(), "-n", "4"]);
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
}

#[test]
fn an_invalid_job_is_refused_by_every_command_with_each_field_named() {
    let mut job = example();
    job["spec"]["parallelTrials"] = 7.into();
    job["spec"]["parameters"][0]["searchSpace"]["logUniform"]["min"] = "0".into();
    job["spec"]["parameters"][1]["searchSpace"]["uniform"]["max"] = "0.99.1".into();
    job["spec"]["trainJobTemplate"]["metadata"]["name"] = "fixed".into();
    let dir = scratch("optjob-invalid");
    let file = dir.join("job.json");
    std::fs::write(&file, job.to_string()).unwrap();
    let file = file.to_str().unwrap();
    let out = ktune(&["validate", file]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for path in [
        "spec.parallelTrials",
        "spec.parameters[0].searchSpace.logUniform.min",
        "spec.parameters[1].searchSpace.uniform.max",
        "spec.trainJobTemplate.metadata.name",
    ] {
        assert!(text.contains(&format!("error: {path}: ")), "{path}: {text}");
    }
    for command in ["suggest", "convert", "run"] {
        let out = ktune(&[command, file]);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("spec.parallelTrials"),
            "{command}: {}",
            describe(&out)
        );
    }
}

/// A `ktune run` of `job` in its own scratch folder and store.
struct Run {
    out: std::process::Output,
    /// The store, as `--db` takes it.
    db: String,
    trials_dir: std::path::PathBuf,
}

fn run(job: &Value, scratch_name: &str) -> Run {
    let dir = scratch(scratch_name);
    let file = dir.join("job.json");
    std::fs::write(&file, job.to_string()).unwrap();
    let out = support::runs::run_in(&dir, &file, &["--timeout", "60"])
        .output()
        .unwrap();
    Run {
        out,
        db: format!("sqlite:{}", dir.join("k.db").display()),
        trials_dir: dir.join("trials"),
    }
}

/// The loss a trial's trainer printed last (`epoch N: loss=X`).
fn printed_loss(log: &str) -> f64 {
    log.lines()
        .filter_map(|l| l.split_once("loss=").map(|(_, v)| v.trim()))
        .next_back()
        .unwrap_or_else(|| panic!("no loss in {log}"))
        .parse()
        .unwrap()
}

#[test]
fn the_example_runs_its_trainjob_trials_locally_with_the_parameters_in_the_environment() {
    let mut job = example();
    job["spec"]["numTrials"] = 3.into();
    let Run {
        out,
        db,
        trials_dir,
    } = run(&job, "optjob-run");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ExperimentMaxTrialsReached"), "{text}");
    assert!(text.contains("3 succeeded"), "{text}");
    assert!(text.contains("best trial: optjob-quadratic-"), "{text}");
    let out = ktune(&["trials", "optjob-quadratic", "--db", &db, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trials.len(), 3);
    // Each trial's program got its values from KUBEFLOW_TRAINER_OPT_*
    // (without them it fails), and its objective is the loss it sent
    // through Trainer's progress protocol (the Push collector reads
    // nothing from standard output).
    for trial in &trials {
        let name = trial["name"].as_str().unwrap();
        let folder = trials_dir.join("optjob-quadratic").join(name);
        let log = std::fs::read_to_string(folder.join("stdout.log")).unwrap();
        assert!(log.contains("epoch 5: loss="), "{log}");
        let objective = trial["objective"].as_f64().unwrap();
        assert!(
            (objective - printed_loss(&log)).abs() < 1e-9,
            "{name}: {objective} vs {log}"
        );
        // The token file the runner wrote for it, its owner's alone.
        let token = folder.join("kubeflow-trainer-token");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&token).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", token.display());
    }
}

/// A trainer that only prints its loss, as it could under the StdOut
/// collector an OptimizationJob used to map to, has no objective now: the
/// objective arrives through Trainer's protocol or not at all.
#[test]
fn a_trainer_that_only_prints_its_loss_reports_nothing() {
    let mut job = example();
    job["spec"]["numTrials"] = 1.into();
    job["spec"]["parallelTrials"] = 1.into();
    job["spec"]["trainJobTemplate"]["spec"]["trainer"]["command"] =
        serde_json::json!(["sh", "-c", "echo loss=0.5"]);
    let out = run(&job, "optjob-stdout-only").out;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 metrics-unavailable"), "{}", describe(&out));
}
