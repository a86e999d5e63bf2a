//! The local runner under abuse, `ktune run` end to end: a flooding trial
//! leaves no more than `--log-limit` on disk (even when it ignores
//! SIGTERM), nothing a trial started survives it however it ends (Ctrl-C
//! and a `kill -9` of ktune included, distributed trials too), and a full
//! disk under the trials folder fails the trials with a reason while the
//! store stays whole.

mod support;

use ktune::store::Store as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{describe, scratch};

/// `ktune run FILE --db sqlite:<dir>/k.db --trials-dir <dir>/trials` and `extra`.
fn run(dir: &Path, file: &Path, extra: &[&str]) -> Output {
    support::runs::run_in(dir, file, extra).output().unwrap()
}

/// A number no other test uses, for `sleep` arguments to find in /proc:
/// `<n><pid of this test binary>`.
fn tag(n: u32) -> String {
    format!("{n}{}", std::process::id())
}

/// The living processes (zombies are dead) that have `arg` as an argument.
fn living_with_arg(arg: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Asserts that no process has one of `args` as an argument, killing
/// those found so that a failing test leaves nothing behind.
fn assert_none_left(args: &[String], context: &str) {
    // A killed process may take a moment to die on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && args.iter().any(|a| !living_with_arg(a).is_empty()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut left = Vec::new();
    for arg in args {
        for pid in living_with_arg(arg) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            left.push(format!("sleep {arg} (pid {pid})"));
        }
    }
    assert!(left.is_empty(), "left running: {left:?}\n{context}");
}

/// Bytes of stdout.log and stderr.log in a trial's folder.
fn log_bytes(trial: &Path) -> u64 {
    ["stdout.log", "stderr.log"]
        .iter()
        .filter_map(|f| std::fs::metadata(trial.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_flooding_trial_leaves_no_more_than_the_log_limit_on_disk() {
    let dir = scratch("rel-flood");
    // `deaf` ignores SIGTERM: it used to write on through the grace
    // period. Long lines, which the StdOut collector reads cheaply.
    let script = r#"line=$(printf '%01000d' 0)
case "$1" in
  plain) yes $line ;;
  deaf) trap '' TERM; yes $line ;;
  both) trap '' TERM; yes $line >&2 & yes $line ;;
esac"#;
    let file = support::shell_experiment(&dir, "flood", script, &["plain", "deaf", "both"], "");
    let started = Instant::now();
    let out = run(&dir, &file, &["--log-limit", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // One `failed … (LogLimitExceeded)` line per trial (the summary names
    // them again below).
    let failed_lines = text
        .lines()
        .filter(|l| l.starts_with("failed") && l.contains("LogLimitExceeded"))
        .count();
    assert_eq!(failed_lines, 3, "{text}");
    for n in 1..=3 {
        let trial = dir.join(format!("trials/flood/flood-000{n}"));
        assert!(
            log_bytes(&trial) <= 1024 * 1024,
            "flood-000{n} left {} bytes of logs for a 1 MiB limit",
            log_bytes(&trial)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn nothing_a_trial_started_outlives_it_however_it_ends() {
    let dir = scratch("rel-outlive");
    let base = tag(7);
    // Each trial leaves a `sleep <base>.<mode>` behind.
    let script = format!(
        r#"s={base}.$1
case "$1" in
  1) sleep $s & echo loss=1 ;;
  2) sleep $s & exit 3 ;;
  3) setsid sleep $s & echo loss=1 ;;
  4) sleep $s & sleep 30 ;;
  5) sleep $s & yes $(printf '%01000d' 0) ;;
  6) (setsid sh -c "sleep $s & exit 0") ; echo loss=1 ;;
esac"#
    );
    let modes = ["1", "2", "3", "4", "5", "6"];
    let file = support::shell_experiment(&dir, "outlive", &script, &modes, "");
    let out = run(&dir, &file, &["--timeout", "1", "--log-limit", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text.contains("ExitCode3")
            && text.contains("DeadlineExceeded")
            && text.contains("LogLimitExceeded"),
        "{text}"
    );
    let sleeps: Vec<String> = modes.iter().map(|m| format!("{base}.{m}")).collect();
    assert_none_left(&sleeps, &text);
}

#[test]
fn a_distributed_trial_leaves_no_replica_child_behind() {
    let dir = scratch("rel-replicas");
    let base = tag(8);
    // Every replica leaves a sleep in its group and one out of it.
    let script = format!(
        r#"sleep {base}.1$RANK & setsid sleep {base}.2$RANK &
if [ "$RANK" = 0 ]; then echo "loss=$1"; fi"#
    );
    let replica = |n: u32| {
        format!(
            r#"
            replicas: {n}
            template:
              spec:
                containers:
                  - name: pytorch
                    command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.lr}}"]"#
        )
    };
    let yaml = format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: replicas}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 1
  parameters:
    - {{name: lr, parameterType: discrete, feasibleSpace: {{list: ["0.5"]}}}}
  trialTemplate:
    primaryContainerName: pytorch
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:{}
          Worker:{}
"#,
        replica(1),
        replica(2)
    );
    let file = dir.join("replicas.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = run(&dir, &file, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 succeeded"), "{}", describe(&out));
    let sleeps: Vec<String> = ["10", "11", "12", "20", "21", "22"]
        .iter()
        .map(|s| format!("{base}.{s}"))
        .collect();
    assert_none_left(&sleeps, &text);
}

/// Starts `ktune run` in the background and waits until `marker` exists.
fn start_and_wait_for(dir: &Path, file: &Path, marker: &Path) -> std::process::Child {
    let child = support::runs::run_in(dir, file, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !marker.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "the trial never started");
    child
}

#[test]
fn ctrl_c_of_ktune_leaves_no_trial_process_behind() {
    let dir = scratch("rel-ctrlc");
    let base = tag(9);
    let started = dir.join("started");
    let script = format!(
        r#"setsid sleep {base}.1 & sleep {base}.2 & touch {}; sleep 30"#,
        started.display()
    );
    let file = support::shell_experiment(&dir, "ctrlc", &script, &["a"], "");
    let child = start_and_wait_for(&dir, &file, &started);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert_none_left(&[format!("{base}.1"), format!("{base}.2")], &describe(&out));
}

#[test]
fn the_run_after_a_kill_dash_nine_stops_what_the_trial_left_out_of_its_group() {
    let dir = scratch("rel-kill9");
    let base = tag(6);
    let started = dir.join("started");
    // The first attempt leaves a sleep out of its group and hangs; the
    // attempt after the restart reports at once.
    let script = format!(
        r#"if [ -e {s} ]; then echo loss=1; exit 0; fi
setsid sleep {base}.1 & touch {s}; sleep 30"#,
        s = started.display()
    );
    let file = support::shell_experiment(&dir, "kill9", &script, &["a"], "");
    let mut child = start_and_wait_for(&dir, &file, &started);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run(&dir, &file, &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 succeeded"),
        "{}",
        describe(&out)
    );
    assert_none_left(&[format!("{base}.1")], &describe(&out));
}

/// A tmpfs mounted on a folder, unmounted when dropped (a failing test
/// included).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`1m`) on `dir`; `None`, with a visible
    /// message, where this user may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs on {} (not root?); the full-disk test did not run",
                dir.display()
            );
            return None;
        }
        Some(Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a trial still holding a file there must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_trials_folder_fails_the_trials_and_spares_the_store() {
    let dir = scratch("rel-full");
    let Some(_mount) = Tmpfs::mount(&dir.join("trials"), "1m") else {
        return;
    };
    // The first trial fills the disk; the next ones find it full.
    let script = r#"head -c 3000000 /dev/zero | tr '\0' x; echo; echo loss=1"#;
    let modes = ["a", "b", "c"];
    let file = support::shell_experiment(
        &dir,
        "full",
        script,
        &modes,
        "  parallelTrialCount: 1\n  maxFailedTrialCount: 5",
    );
    let out = run(&dir, &file, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text.contains("3 failed"), "{}", describe(&out));
    let trials = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = format!("sqlite:{}", dir.join("k.db").display());
        let store = ktune::store::SqlStore::connect(&db).await.unwrap();
        let experiment = store.experiment("full").await.unwrap().unwrap();
        store.trials(experiment.id).await.unwrap()
    });
    assert_eq!(trials.len(), 3, "{trials:#?}");
    for trial in &trials {
        assert_eq!(
            trial.state,
            ktune_algorithms::history::TrialState::Failed,
            "{trial:#?}"
        );
        assert!(
            trial.message.contains("No space left on device"),
            "{trial:#?}"
        );
    }
    assert!(
        trials.iter().any(|t| t
            .message
            .starts_with("trial folder: stdout.log: No space left")),
        "{trials:#?}"
    );
}
