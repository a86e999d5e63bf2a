//! `ktune run` end to end with the real binary, real processes and a real
//! SQLite file: completion reasons, faulty trials failing alone, and
//! `kill -9` + resume losing and duplicating nothing.

mod support;

use ktune::store::Store as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{describe, scratch};

fn run_args<'a>(dir: &'a Path, db: &'a str, file: &'a str) -> Vec<String> {
    vec![
        "run".into(),
        file.into(),
        "--db".into(),
        db.into(),
        "--trials-dir".into(),
        dir.join("trials").display().to_string(),
    ]
}

fn ktune(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(args)
        .current_dir(support::repo_root())
        .output()
        .unwrap()
}

/// An experiment whose trial is a shell script (`$1` is the mode), as a
/// path for the command line.
fn shell_experiment(dir: &Path, name: &str, script: &str, modes: &[&str], extra: &str) -> String {
    support::shell_experiment(dir, name, script, modes, extra)
        .display()
        .to_string()
}

/// Starts `ktune run` in the background and returns once `marker` (a path
/// under `dir`) exists and a little more time has passed.
fn start_and_wait_for(dir: &Path, db: &str, file: &str, marker: &str) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(run_args(dir, db, file))
        .current_dir(support::repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !dir.join(marker).exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(400));
    child
}

#[test]
fn the_random_example_runs_to_its_budget_and_prints_the_best_trial() {
    let dir = scratch("readme");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let out = ktune(&run_args(&dir, &db, "examples/random.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ExperimentMaxTrialsReached"), "{text}");
    assert!(text.contains("12 succeeded"), "{text}");
    assert!(text.contains("best trial: random-quadratic-"), "{text}");
    // The companion commands read the same store.
    let trials = ktune(&[
        "trials".into(),
        "random-quadratic".into(),
        "-o".into(),
        "json".into(),
        "--db".into(),
        db.clone(),
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&trials.stdout).unwrap();
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(12),
        "{}",
        describe(&trials)
    );
    let best = ktune(&[
        "best".into(),
        "random-quadratic".into(),
        "--db".into(),
        db.clone(),
    ]);
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    assert!(
        text.contains(&format!("best trial: {}", best["trial"].as_str().unwrap())),
        "{best}"
    );
    assert!(best["parameters"]["lr"].is_string());
    let status = ktune(&["status".into(), "--db".into(), db.clone()]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("random-quadratic  Succeeded") && status_text.contains("0 killed"),
        "{}",
        describe(&status)
    );
    let table = ktune(&[
        "trials".into(),
        "random-quadratic".into(),
        "--db".into(),
        db.clone(),
    ]);
    let header = String::from_utf8_lossy(&table.stdout)
        .lines()
        .next()
        .map(str::to_owned);
    assert!(
        header.is_some_and(|h| h.starts_with("NAME") && h.contains("OBJECTIVE")),
        "{}",
        describe(&table)
    );
    // A wrong name says which store was read and what it holds.
    let missing = ktune(&["status".into(), "nope".into(), "--db".into(), db.clone()]);
    let text = String::from_utf8_lossy(&missing.stderr);
    assert!(
        text.contains(&db) && text.contains("it holds random-quadratic"),
        "{text}"
    );
    let logs = ktune(&[
        "logs".into(),
        "random-quadratic-0001".into(),
        "--db".into(),
        db.clone(),
        "--trials-dir".into(),
        dir.join("trials").display().to_string(),
    ]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("epoch 5: loss="),
        "{}",
        describe(&logs)
    );
    // Running it again finds it complete and runs nothing more.
    let again = ktune(&run_args(&dir, &db, "examples/random.yaml"));
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("started"),
        "{}",
        describe(&again)
    );
}

#[test]
fn crashing_garbage_and_hanging_trials_fail_alone_and_exhaustion_ends_the_run() {
    let dir = scratch("faults");
    let script = r#"case "$1" in
  ok) echo "loss=0.5"; echo "loss=0.25" ;;
  crash) echo "loss=0.1"; exit 7 ;;
  garbage) head -c 3000 /dev/urandom | tr -d '\n'; echo; echo "no metrics here" ;;
  hang) sleep 60 ;;
esac"#;
    let file = shell_experiment(
        &dir,
        "faults",
        script,
        &["ok", "crash", "garbage", "hang"],
        "",
    );
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let mut args = run_args(&dir, &db, &file);
    args.extend(["--timeout".into(), "2".into()]);
    let out = ktune(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("ExperimentSuggestionEndReached"), "{text}");
    assert!(text.contains("1 succeeded, 2 failed"), "{text}");
    assert!(text.contains("1 metrics-unavailable"), "{text}");
    assert!(
        text.contains("ExitCode7") && text.contains("DeadlineExceeded"),
        "{text}"
    );
    assert!(
        text.contains("best trial: faults-0001  objective=0.25"),
        "{text}"
    );
}

#[test]
fn the_goal_and_too_many_failures_end_the_experiment() {
    let dir = scratch("goal");
    let script = r#"case "$1" in good) echo "loss=0.01" ;; *) exit 1 ;; esac"#;
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let goal = shell_experiment(
        &dir,
        "goal",
        script,
        &["good", "x", "y", "z"],
        "  parallelTrialCount: 1\n  objective: {type: minimize, goal: 0.1, objectiveMetricName: loss}",
    );
    let out = ktune(&run_args(&dir, &db, &goal));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ExperimentGoalReached"),
        "{}",
        describe(&out)
    );
    let failing = shell_experiment(
        &dir,
        "failing",
        script,
        &["x", "y", "z", "good"],
        "  maxFailedTrialCount: 2",
    );
    let out = ktune(&run_args(&dir, &db, &failing));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Failed ExperimentFailed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn kill_dash_nine_then_resume_loses_and_duplicates_nothing() {
    let dir = scratch("resume");
    let db_path = dir.join("k.db");
    let db = format!("sqlite:{}", db_path.display());
    let script = r#"for i in 1 2 3 4 5 6; do echo "loss=$(( 10 - i ))"; sleep 0.2; done"#;
    let modes = ["a", "b", "c", "d", "e", "f"];
    let file = shell_experiment(&dir, "resume", script, &modes, "");
    // Wait until two trials have run for a while, then kill -9.
    let marker = "trials/resume/resume-0003/stdout.log";
    let mut child = start_and_wait_for(&dir, &db, &file, marker);
    // …and until the third has reported three times (ktune reads every 100 ms).
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !std::fs::read_to_string(dir.join(marker)).is_ok_and(|t| t.contains("loss=7"))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let out = ktune(&run_args(&dir, &db, &file));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("6 succeeded"), "{text}");
    assert!(text.contains("resuming experiment resume: "), "{text}");
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ktune::store::SqlStore::connect(&db).await.unwrap();
        let exp = store.experiment("resume").await.unwrap().unwrap();
        let trials = store.trials(exp.id).await.unwrap();
        let mut observations = Vec::new();
        for t in &trials {
            observations.push(store.observations(t.id).await.unwrap());
        }
        (trials, observations)
    });
    let (trials, observations) = rows;
    let names: std::collections::BTreeSet<_> = trials.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        (trials.len(), names.len()),
        (6, 6),
        "no trial is duplicated: {trials:#?}"
    );
    assert!(
        trials
            .iter()
            .all(|t| t.state == ktune_algorithms::history::TrialState::Succeeded)
    );
    // A restarted trial keeps what its interrupted attempt reported and
    // numbers the new attempt's reports after it: steps 1..=n, the last
    // six being one whole attempt.
    for reports in &observations {
        let steps: Vec<i64> = reports.iter().map(|o| o.step).collect();
        let expected: Vec<i64> = (1..=i64::try_from(steps.len()).unwrap()).collect();
        assert_eq!(steps, expected, "{reports:?}");
        let values: Vec<&str> = reports.iter().map(|o| o.value.as_str()).collect();
        assert!(
            values.len() >= 6 && values[values.len() - 6..] == ["9", "8", "7", "6", "5", "4"],
            "{values:?}"
        );
    }
    assert!(
        observations.iter().any(|r| r.len() > 6),
        "the interrupted trials' reports are kept: {observations:?}"
    );
    assert_eq!(text.matches("best trial").count(), 1);
}

#[test]
fn ctrl_c_stops_trials_and_the_resumed_run_reruns_them() {
    let dir = scratch("ctrlc");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = r#"trap 'exit 143' TERM; for i in 1 2 3 4 5 6 7 8 9 10; do echo "loss=$i"; sleep 0.3; done"#;
    let file = shell_experiment(&dir, "ctrlc", script, &["a", "b", "c"], "");
    let child = start_and_wait_for(&dir, &db, &file, "trials/ctrlc/ctrlc-0002/stdout.log");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(text.contains("stopped   ctrlc-0001"), "{text}");
    assert!(
        text.contains("run the same command again to resume"),
        "{text}"
    );
    // Resuming runs the stopped trials again (they are not lost as
    // Killed, nor counted toward maxTrialCount), as after kill -9.
    let again = ktune(&run_args(&dir, &db, &file));
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(
        text.contains("resuming experiment ctrlc: 0 done, 2 to rerun"),
        "{text}"
    );
    assert!(text.contains("0 killed"), "{text}");
    assert!(text.contains("3 succeeded"), "{text}");
}

#[test]
fn gpus_are_shared_out_one_per_running_trial() {
    let dir = scratch("gpus");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    // Each trial records its GPU, then holds it for a moment.
    let script = r#"echo "gpu=$CUDA_VISIBLE_DEVICES" >&2; sleep 0.3; echo "loss=1""#;
    let file = shell_experiment(
        &dir,
        "gpus",
        script,
        &["a", "b", "c", "d"],
        "  parallelTrialCount: 3",
    );
    let mut args = run_args(&dir, &db, &file);
    args.extend(["--gpus".into(), "0,1".into()]);
    let out = ktune(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for trial in ["gpus-0001", "gpus-0002", "gpus-0003", "gpus-0004"] {
        let stderr =
            std::fs::read_to_string(dir.join("trials/gpus").join(trial).join("stderr.log"))
                .unwrap();
        assert!(
            stderr == "gpu=0\n" || stderr == "gpu=1\n",
            "{trial}: {stderr:?}"
        );
    }
    // Never more trials at once than GPUs, though parallelTrialCount is 3.
    let started = String::from_utf8_lossy(&out.stdout);
    let mut running = 0i32;
    let mut most = 0;
    for line in started.lines() {
        if line.starts_with("started") {
            running += 1;
        } else if line.starts_with("succeeded") {
            running -= 1;
        }
        most = most.max(running);
    }
    assert_eq!(most, 2, "{started}");
}

#[test]
fn a_pytorchjob_trial_runs_master_and_workers_with_the_operators_environment() {
    let dir = scratch("pytorch");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let path = dir.join("pytorch.yaml");
    // Each replica checks its rank and world size; the master reports the loss.
    let script = r#"echo "rank=$RANK world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT" >&2
[ "$WORLD_SIZE" = 3 ] || exit 9
if [ "$RANK" = 0 ]; then echo "loss=$1"; fi"#;
    let yaml = format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: pytorch}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 1
  parameters:
    - {{name: lr, parameterType: discrete, feasibleSpace: {{list: ["0.5", "0.25"]}}}}
  trialTemplate:
    primaryContainerName: pytorch
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template:
              spec:
                containers:
                  - name: pytorch
                    image: pytorch
                    command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.lr}}"]
          Worker:
            replicas: 2
            template:
              spec:
                containers:
                  - name: pytorch
                    image: pytorch
                    command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.lr}}"]
"#
    );
    std::fs::write(&path, yaml).unwrap();
    let out = ktune(&run_args(&dir, &db, path.to_str().unwrap()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("2 succeeded"), "{text}");
    let trial = dir.join("trials/pytorch/pytorch-0001");
    let master = std::fs::read_to_string(trial.join("stderr.log")).unwrap();
    let worker = std::fs::read_to_string(trial.join("worker-1/stderr.log")).unwrap();
    assert!(
        master.starts_with("rank=0 world=3 master=127.0.0.1:"),
        "{master}"
    );
    assert!(
        worker.starts_with("rank=2 world=3 master=127.0.0.1:"),
        "{worker}"
    );
}

#[test]
fn a_finished_experiment_runs_on_only_when_its_resume_policy_allows() {
    let dir = scratch("policy");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = r#"echo "loss=1""#;
    let modes = ["a", "b", "c", "d", "e"];
    let count = |text: &str| text.matches("succeeded ").count();
    let first = shell_experiment(&dir, "policy", script, &modes, "  maxTrialCount: 2");
    let out = ktune(&run_args(&dir, &db, &first));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Never (the default): a raised budget runs nothing.
    let never = shell_experiment(&dir, "policy", script, &modes, "  maxTrialCount: 4");
    let out = ktune(&run_args(&dir, &db, &never));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("keeps it closed"), "{text}");
    assert!(text.contains("2 succeeded"), "{text}");
    assert_eq!(count(&text), 0, "no trial ran: {text}");
    // LongRunning: it runs on to the new budget.
    let long = shell_experiment(
        &dir,
        "policy",
        script,
        &modes,
        "  maxTrialCount: 4\n  resumePolicy: LongRunning",
    );
    let out = ktune(&run_args(&dir, &db, &long));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("4 succeeded"), "{text}");
    assert!(
        text.contains("policy-0003") && text.contains("policy-0004"),
        "{text}"
    );
}

#[test]
fn an_existing_experiment_with_a_different_search_is_refused() {
    let dir = scratch("changed");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = r#"echo "loss=1""#;
    let first = shell_experiment(&dir, "changed", script, &["a", "b"], "");
    assert_eq!(ktune(&run_args(&dir, &db, &first)).status.code(), Some(0));
    let other = shell_experiment(&dir, "changed", script, &["a", "z"], "");
    let out = ktune(&run_args(&dir, &db, &other));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(err.contains("different spec.parameters"), "{err}");
}

#[test]
fn push_collector_takes_authenticated_reports_of_the_experiments_metrics() {
    let dir = scratch("push");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = r#"python3 - <<'EOF'
import json, os, sys, urllib.error, urllib.request
url, token = os.environ["KTUNE_PUSH_URL"], os.environ["KTUNE_PUSH_TOKEN"]
def post(body, token):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return urllib.request.urlopen(request).status
for loss in [3.0, 2.0, 1.5]:
    assert post({"loss": loss, "junk": 7}, token) == 204
try:
    post({"loss": 0.0}, "wrong")
    sys.exit(5)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 else 6)
EOF"#;
    let extra = "  metricsCollectorSpec: {collector: {kind: Push}}";
    let file = shell_experiment(&dir, "push", script, &["a", "b"], extra);
    let out = ktune(&run_args(&dir, &db, &file));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 succeeded"), "{text}");
    for (trial, reports) in support::runs::stored(&db, "push") {
        assert_eq!(trial.objective, Some(1.5), "{trial:?}");
        let values: Vec<(&str, &str)> = reports
            .iter()
            .map(|r| (r.metric.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(values, [("loss", "3.0"), ("loss", "2.0"), ("loss", "1.5")]);
    }
}

#[test]
fn prometheus_collector_scrapes_each_trial_on_its_own_port() {
    let dir = scratch("prometheus");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = r##"python3 - <<'EOF'
import http.server, os, threading, time
state = {"loss": 3.0}
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("# TYPE loss gauge\nloss %s\nother 1\n" % state["loss"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(os.environ["KTUNE_METRICS_PORT"])), Metrics)
threading.Thread(target=server.serve_forever, daemon=True).start()
for loss in [3.0, 2.0, 1.0]:
    state["loss"] = loss
    time.sleep(1.3)
EOF"##;
    let extra = "  metricsCollectorSpec:\n    source: {httpGet: {port: 8080, path: /metrics}}\n    collector: {kind: PrometheusMetric}";
    let file = shell_experiment(&dir, "prometheus", script, &["a", "b"], extra);
    let out = ktune(&run_args(&dir, &db, &file));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for (trial, reports) in support::runs::stored(&db, "prometheus") {
        assert_eq!(trial.objective, Some(1.0), "{trial:?}");
        let values: Vec<&str> = reports.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(
            values,
            ["3.0", "2.0", "1.0"],
            "each value once: {reports:?}"
        );
    }
}

#[test]
fn early_stopping_kills_a_bad_trial_mid_run() {
    let dir = scratch("earlystop");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    // Two good trials finish first; the bad one would report 30 times over
    // 6 s, and the median rule stops it after its third report.
    let script = r#"if [ "$1" = bad ]; then n=30; v=9; else n=4; v=1; fi
i=0; while [ $i -lt $n ]; do i=$((i+1)); echo "loss=$v"; sleep 0.2; done"#;
    let extra = "  parallelTrialCount: 1\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"2\"}\n      - {name: start_step, value: \"3\"}";
    let file = shell_experiment(&dir, "earlystop", script, &["good1", "good2", "bad"], extra);
    let started = Instant::now();
    let out = ktune(&run_args(&dir, &db, &file));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the bad trial did not run to its end"
    );
    let all = support::runs::stored(&db, "earlystop");
    let (bad, reports) = all
        .iter()
        .find(|(t, _)| t.assignment.iter().any(|(_, v)| v == "bad"))
        .unwrap();
    assert_eq!(
        bad.state,
        ktune_algorithms::history::TrialState::EarlyStopped,
        "{bad:?}"
    );
    assert!((3..30).contains(&reports.len()), "{reports:?}");
}

#[test]
fn a_value_that_reads_like_a_placeholder_reaches_its_trial_as_text() {
    // Rendering used to scan the substituted text again: this value made
    // every trial's template fail and stopped the experiment for good.
    let dir = scratch("placeholder-value");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let out_dir = dir.join("seen");
    std::fs::create_dir_all(&out_dir).unwrap();
    let script = format!(
        "printf '%s' \"$1\" > {}/$KTUNE_TRIAL_NAME; echo loss=1",
        out_dir.display()
    );
    let file = shell_experiment(
        &dir,
        "placeholder-value",
        &script,
        &[
            "${trialParameters.mode}",
            "${trialParameters.nope}",
            "plain",
        ],
        "",
    );
    let out = ktune(&run_args(&dir, &db, &file));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 succeeded"), "{text}");
    let mut seen: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "${trialParameters.mode}",
            "${trialParameters.nope}",
            "plain"
        ]
    );
}
