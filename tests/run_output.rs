//! What `ktune run` prints, with the real binary: `-o json` event lines and
//! their summary, `--quiet`, and the plain lines and result when stdout is
//! not a terminal.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{describe, scratch};

/// A three-trial grid experiment whose trial is a shell script: mode `a`
/// reports loss 0.5 then 0.25 (and `acc`), `b` loss 0.75, `c` fails.
fn experiment(dir: &Path, name: &str) -> String {
    let script = r#"case "$1" in
  a) echo "loss=0.5"; echo "acc=0.1"; echo "loss=0.25"; echo "acc=0.2" ;;
  b) echo "loss=0.75"; echo "acc=0.05" ;;
  *) exit 3 ;;
esac"#;
    let extra = "  objective: {type: minimize, objectiveMetricName: loss, additionalMetricNames: [acc]}\n  parallelTrialCount: 1\n  maxTrialCount: 3";
    support::shell_experiment(dir, name, script, &["a", "b", "c"], extra)
        .display()
        .to_string()
}

/// Runs `ktune run FILE` against the scratch folder's database, with `extra` flags.
fn run(dir: &Path, file: &str, extra: &[&str]) -> Output {
    support::runs::run_in(dir, Path::new(file), extra)
        .output()
        .unwrap()
}

/// Every stdout line as JSON (the test fails on any other line).
fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{}", describe(out)))
        })
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn json_output_is_one_event_per_line_then_a_summary() {
    let dir = scratch("json");
    let file = experiment(&dir, "jsonout");
    let out = run(&dir, &file, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let events = json_lines(&out);

    let started = of_kind(&events, "started");
    assert_eq!(started.len(), 3, "{}", describe(&out));
    assert_eq!(started[0]["trial"], "jsonout-0001");
    assert!(started.iter().all(|e| e["parameters"]["mode"].is_string()));

    let finished = of_kind(&events, "finished");
    assert_eq!(finished.len(), 3, "{}", describe(&out));
    let states: Vec<&str> = finished
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["Succeeded", "Succeeded", "Failed"]);
    assert_eq!(finished[0]["objective"], 0.25);
    assert_eq!(finished[2]["objective"], Value::Null);
    assert!(finished[2]["reason"].is_string());

    let reported = of_kind(&events, "reported");
    assert!(
        reported
            .iter()
            .any(|e| e["trial"] == "jsonout-0001" && e["metrics"]["loss"].is_string()),
        "{}",
        describe(&out)
    );
    let progress = of_kind(&events, "progress");
    assert!(!progress.is_empty());
    let last = progress.last().unwrap();
    assert_eq!(last["counts"]["succeeded"], 2);
    assert_eq!(last["completed"], 3);

    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "{}", describe(&out));
    assert_eq!(of_kind(&events, "summary").len(), 1);
    assert_eq!(summary["experiment"], "jsonout");
    assert_eq!(summary["state"], "Succeeded");
    assert_eq!(summary["reason"], "ExperimentMaxTrialsReached");
    assert_eq!(summary["closed"], false);
    let counts = &summary["counts"];
    assert_eq!(counts["succeeded"], 2);
    assert_eq!(counts["failed"], 1);
    assert_eq!(counts["killed"], 0);
    assert_eq!(counts["earlyStopped"], 0);
    assert_eq!(counts["metricsUnavailable"], 0);
    let best = &summary["best"];
    assert_eq!(best["trial"], "jsonout-0001");
    assert_eq!(best["objective"], 0.25);
    assert_eq!(best["parameters"]["mode"], "a");
    assert_eq!(best["metrics"]["loss"], "0.25");
    assert_eq!(best["metrics"]["acc"], "0.2");

    // Run again: the experiment is closed, nothing runs, and the best
    // trial's metrics come from the store.
    let again = run(&dir, &file, &["--output", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    let events = json_lines(&again);
    assert!(of_kind(&events, "started").is_empty());
    let summary = events.last().unwrap();
    assert_eq!(summary["closed"], true);
    assert_eq!(summary["best"]["metrics"]["loss"], "0.25");
    assert_eq!(summary["best"]["metrics"]["acc"], "0.2");
}

#[test]
fn quiet_prints_only_the_result() {
    let dir = scratch("quiet");
    let file = experiment(&dir, "quietout");
    let out = run(&dir, &file, &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("started"), "{text}");
    assert!(!text.contains("succeeded quietout-"), "{text}");
    assert!(!text.contains("failed    quietout-"), "{text}");
    assert!(
        text.contains("experiment quietout: Succeeded ExperimentMaxTrialsReached"),
        "{text}"
    );
    assert!(text.contains("trials: 2 succeeded, 1 failed"), "{text}");
    assert!(
        text.contains("best trial: quietout-0001  objective=0.25  mode=a"),
        "{text}"
    );
    assert!(
        text.contains("  last reported metrics of quietout-0001: acc=0.2 loss=0.25"),
        "{text}"
    );

    // With -o json, only the summary line.
    let out = run(&dir, &file, &["-q", "-o", "json"]);
    let events = json_lines(&out);
    assert_eq!(events.len(), 1, "{}", describe(&out));
    assert_eq!(events[0]["event"], "summary");
    assert_eq!(events[0]["counts"]["succeeded"], 2);
}

#[test]
fn without_a_terminal_each_trial_is_a_plain_line_then_the_result() {
    let dir = scratch("plain");
    let file = experiment(&dir, "plainout");
    let out = run(&dir, &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"started   plainout-0001  mode=a"), "{text}");
    assert!(
        lines.contains(&"succeeded plainout-0001  objective=0.25"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed    plainout-0003    (")),
        "{text}"
    );
    assert!(
        text.contains(
            "trials: 2 succeeded, 1 failed, 0 early-stopped, 0 metrics-unavailable, 0 killed"
        ),
        "{text}"
    );
    assert!(
        text.contains("  last reported metrics of plainout-0001: acc=0.2 loss=0.25"),
        "{text}"
    );
    // No escape sequences from a progress bar.
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_experiment() {
    let dir = scratch("json-logs");
    let file = experiment(&dir, "logged");
    let out = run(&dir, &file, &["--quiet", "--log-format", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    // The trial template names an image, which `ktune run` ignores and says so.
    let warning = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("container images are ignored"))
        })
        .unwrap_or_else(|| panic!("no image warning in {stderr}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["span"]["name"], "experiment", "{warning}");
    assert_eq!(warning["span"]["experiment"], "logged", "{warning}");
    assert_eq!(warning["spans"][0]["experiment"], "logged", "{warning}");
    std::fs::remove_dir_all(&dir).ok();
}
