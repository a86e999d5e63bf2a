//! The self-contained examples: every `examples/*.yaml` validates, and the
//! README's `run` command — an experiment whose trials are the example
//! trainer (`examples/trainer`, package `ktune-trainer`) — runs end to end
//! with the real `ktune` binary, finishes with a best trial, and stores one
//! observation per epoch. The run uses a reduced copy of the README's
//! experiment (fewer trials and epochs) whose trials start the trainer
//! binary directly instead of through `cargo run --release`.

mod support;

use ktune::store::Store as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{describe, ktune, repo_root, scratch};

/// The `cargo run` prefix every trainer example starts its trials with.
const CARGO_PREFIX: [&str; 7] = [
    "cargo",
    "run",
    "--release",
    "--quiet",
    "-p",
    "ktune-trainer",
    "--",
];

/// `examples/*.yaml`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// The experiment file of the README's first `run` command (section "The
/// two commands").
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("## The two commands")
        .nth(1)
        .expect("README has a section \"The two commands\"");
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with("cargo run --release -- run "))
        .expect("the section shows a `cargo run --release -- run FILE` command");
    line.trim()
        .trim_start_matches("cargo run --release -- run ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Builds `ktune-trainer` with the cargo running these tests (debug
/// profile; Cargo.toml optimises the trainer and ndarray even there) and
/// returns the executable.
fn build_trainer() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "ktune-trainer",
            "--bin",
            "ktune-trainer",
            "--message-format=json",
        ])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout on a thread so a chatty build cannot fill the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`cargo build -p ktune-trainer` took over 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let messages = reader.join().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "cargo build failed: {stderr}");
    let exe = messages
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ktune-trainer")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the ktune-trainer executable");
    assert!(exe.is_file(), "{}", exe.display());
    exe
}

/// The example's trial command (container `command` + `args`).
fn command_of(doc: &Value) -> Vec<String> {
    let container =
        &doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0];
    ["command", "args"]
        .iter()
        .filter_map(|k| container[*k].as_array())
        .flatten()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A copy of the example with `trials` trials of `epochs` epochs each, whose
/// trials run `trainer` directly.
fn reduced(doc: &Value, trainer: &Path, trials: u64, epochs: u64) -> Value {
    let mut doc = doc.clone();
    let command = command_of(&doc);
    assert_eq!(
        &command[..CARGO_PREFIX.len()],
        &CARGO_PREFIX,
        "the example runs the trainer through cargo"
    );
    let mut new = vec![trainer.display().to_string()];
    new.extend(command[CARGO_PREFIX.len()..].iter().map(|a| {
        if a.starts_with("--epochs=") {
            format!("--epochs={epochs}")
        } else {
            a.clone()
        }
    }));
    let container =
        &mut doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0];
    container["command"] = Value::from(new);
    if let Some(c) = container.as_object_mut() {
        c.remove("args");
    }
    doc["spec"]["maxTrialCount"] = Value::from(trials);
    if doc["spec"]["maxFailedTrialCount"].as_u64() > Some(trials) {
        doc["spec"]["maxFailedTrialCount"] = Value::from(trials);
    }
    doc
}

#[test]
fn every_example_validates_and_suggests() {
    let files = example_files();
    assert!(files.len() >= 9, "{files:?}");
    for file in &files {
        let path = file.display().to_string();
        let out = ktune(&["validate", &path]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", describe(&out));
        let out = ktune(&["suggest", &path, "-n", "2"]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", describe(&out));
        let name = file.file_name().unwrap().to_string_lossy();
        if name.starts_with("wine-") {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("$ cargo run --release --quiet -p ktune-trainer -- --"),
                "{path}: {text}"
            );
        }
    }
}

#[test]
fn the_readme_example_trains_the_wine_network_to_a_best_trial() {
    let example = readme_example();
    assert!(
        example.starts_with("examples/wine-"),
        "the README runs a self-contained trainer example, not {example}"
    );
    let text = std::fs::read_to_string(repo_root().join(&example)).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();

    let trainer = build_trainer();
    let dir = scratch("readme");
    let (trials, epochs) = (8, 10);
    let file = dir.join("experiment.yaml");
    // JSON is YAML.
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&reduced(&doc, &trainer, trials, epochs)).unwrap(),
    )
    .unwrap();
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let started = Instant::now();
    let out = ktune(&[
        "run",
        &file.display().to_string(),
        "--db",
        &db,
        "--trials-dir",
        &dir.join("trials").display().to_string(),
        "--timeout",
        "120",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ExperimentMaxTrialsReached"), "{stdout}");
    assert!(stdout.contains(&format!("best trial: {name}-")), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    eprintln!("{trials} trials of {epochs} epochs in {elapsed:?}");

    // Every trial that ran to the end stored one report per epoch of each
    // metric; early-stopped ones stored a prefix of their curve.
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ktune::store::SqlStore::connect(&db).await.unwrap();
        let exp = store.experiment(&name).await.unwrap().unwrap();
        let mut rows = Vec::new();
        for t in store.trials(exp.id).await.unwrap() {
            let obs = store.observations(t.id).await.unwrap();
            rows.push((t.name.clone(), t.state, obs));
        }
        rows
    });
    assert_eq!(rows.len(), trials as usize);
    let mut full = 0;
    for (trial, state, obs) in &rows {
        let curve: Vec<f64> = obs
            .iter()
            .filter(|o| o.metric == "val_loss")
            .map(|o| o.number.unwrap())
            .collect();
        assert!(!curve.is_empty(), "{trial} reported no val_loss");
        assert!(
            curve.iter().all(|v| v.is_finite() && *v > 0.0),
            "{trial}: {curve:?}"
        );
        assert!(curve.len() <= epochs as usize, "{trial}: {curve:?}");
        if *state == ktune_algorithms::history::TrialState::Succeeded {
            assert_eq!(curve.len(), epochs as usize, "{trial}: {curve:?}");
            let accuracy = obs.iter().filter(|o| o.metric == "val_accuracy").count();
            assert_eq!(accuracy, epochs as usize, "{trial}");
            full += 1;
        }
    }
    assert!(full >= 1, "{rows:?}");

    // The trial's own log holds its learning curve, one line per epoch.
    let best = ktune(&["best", &name, "--db", &db]);
    assert_eq!(best.status.code(), Some(0), "{}", describe(&best));
    let (first, ..) = &rows[0];
    let log = std::fs::read_to_string(
        dir.join("trials")
            .join(&name)
            .join(first)
            .join("stdout.log"),
    )
    .unwrap();
    assert!(log.starts_with("epoch=1 loss="), "{log}");
    assert!(
        log.contains(" val_loss=") && log.contains(" val_accuracy="),
        "{log}"
    );
}
