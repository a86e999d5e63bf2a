//! What a new user meets in their first hour with `ktune run`, end to end
//! with the real binary: an interrupted run (Ctrl-C, SIGTERM, SIGHUP) whose
//! stopped trials run again on resume, from their folders; a failed trial
//! that shows why (the end of its stderr); and a result that says what it
//! shows.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ktune_algorithms::history::TrialState;
use nix::sys::signal::Signal;
use support::runs::{finish, run_args, run_to_end, spawn, wait_until};
use support::{describe, scratch};

const LIMIT: Duration = Duration::from_secs(60);

/// Trials `a` and `b` report `loss` for ten seconds on their first attempt
/// (leaving a checkpoint in their folder), and at once on a later one
/// (saying it resumed); `c` reports at once. With `stubborn`, the first
/// attempts ignore SIGTERM.
fn checkpointing_experiment(dir: &Path, name: &str, stubborn: bool) -> std::path::PathBuf {
    let script = r#"if [ -f "$KTUNE_TRIAL_DIR/ckpt" ]; then echo "resumed from checkpoint" >&2; echo "loss=0.5"; exit 0; fi
[ "$1" = c ] && { echo "loss=2"; exit 0; }
touch "$KTUNE_TRIAL_DIR/ckpt"
trap TRAP TERM
for i in 1 2 3 4 5 6 7 8 9 10; do echo "loss=$i"; sleep 1; done"#;
    let script = script.replace("TRAP", if stubborn { "''" } else { "'exit 143'" });
    support::shell_experiment(dir, name, &script, &["a", "b", "c"], "  maxTrialCount: 3")
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("k.db").display())
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the experiment, interrupts the run with `first` once both long
/// trials run (and `second` soon after, if any), and returns its output
/// and how long it took to exit after the first signal.
fn interrupt(dir: &Path, name: &str, first: Signal, second: Option<Signal>) -> (Output, Duration) {
    let file = checkpointing_experiment(dir, name, second.is_some());
    let child = spawn(&run_args(dir, &sqlite(dir), &file, &[]));
    let trials = dir.join("trials").join(name);
    wait_until(LIMIT, "both trials reporting", || {
        ["0001", "0002"].iter().all(|n| {
            std::fs::read_to_string(trials.join(format!("{name}-{n}/stdout.log")))
                .is_ok_and(|t| t.contains("loss=1"))
        })
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let signalled = Instant::now();
    nix::sys::signal::kill(pid, first).unwrap();
    if let Some(second) = second {
        std::thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(pid, second).unwrap();
    }
    let out = finish(child, LIMIT);
    (out, signalled.elapsed())
}

/// The experiment's trials with their reported values, as stored.
fn stored(db: &str, name: &str) -> Vec<(ktune::store::TrialRow, Vec<String>)> {
    support::runs::stored(db, name)
        .into_iter()
        .map(|(t, reports)| (t, reports.into_iter().map(|o| o.value).collect()))
        .collect()
}

/// Resumes the interrupted experiment: the two stopped trials run again
/// from their checkpoints, nothing is Killed, and the budget of three
/// holds. With `recorded`, the stopped attempts' reports were stored and are kept.
fn resume_reruns_the_stopped_trials(dir: &Path, name: &str, recorded: bool) {
    let db = sqlite(dir);
    let file = dir.join(format!("{name}.yaml"));
    let again = run_to_end(&run_args(dir, &db, &file, &[]), LIMIT);
    let out = text(&again);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(
        out.contains(&format!("resuming experiment {name}: 0 done, 2 to rerun")),
        "{out}"
    );
    assert!(out.contains("trials: 3 succeeded"), "{out}");
    assert!(out.contains("0 killed"), "{out}");
    let rows = stored(&db, name);
    assert_eq!(rows.len(), 3, "the budget holds: {rows:#?}");
    for (row, values) in &rows[..2] {
        assert_eq!(row.state, TrialState::Succeeded, "{row:#?}");
        // The first attempt's reports are kept; the second continued from
        // its checkpoint.
        if recorded {
            assert_eq!(values.first().map(String::as_str), Some("1"), "{values:?}");
        }
        assert_eq!(values.last().map(String::as_str), Some("0.5"), "{values:?}");
        let stderr = dir
            .join("trials")
            .join(name)
            .join(&row.name)
            .join("stderr.log");
        assert!(
            std::fs::read_to_string(&stderr)
                .unwrap()
                .contains("resumed from checkpoint"),
            "{}",
            row.name
        );
    }
}

/// A signal stops the run cleanly: the trials are stopped, back to Pending
/// with their reports, and the experiment resumes.
fn a_signal_stops_the_run_and_the_trials_rerun(signal: Signal, name: &str) {
    let dir = scratch(name);
    let (out, _) = interrupt(&dir, name, signal, None);
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(
        printed.contains(&format!("stopped   {name}-0001")),
        "{printed}"
    );
    assert!(
        printed.contains("run the same command again to resume (2 stopped trial(s) run again"),
        "{printed}"
    );
    let rows = stored(&sqlite(&dir), name);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (row, values) in &rows {
        assert_eq!(row.state, TrialState::Pending, "{row:#?}");
        assert_eq!(row.reason, "Interrupted");
        assert!(!values.is_empty(), "its reports are kept");
    }
    resume_reruns_the_stopped_trials(&dir, name, true);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ctrl_c_stops_the_run_and_the_stopped_trials_rerun_on_resume() {
    a_signal_stops_the_run_and_the_trials_rerun(Signal::SIGINT, "fh-int");
}

#[test]
fn sigterm_stops_the_run_like_ctrl_c() {
    a_signal_stops_the_run_and_the_trials_rerun(Signal::SIGTERM, "fh-term");
}

#[test]
fn sighup_stops_the_run_like_ctrl_c() {
    a_signal_stops_the_run_and_the_trials_rerun(Signal::SIGHUP, "fh-hup");
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_trials_still_rerun() {
    let name = "fh-twice";
    let dir = scratch(name);
    // Its trials ignore SIGTERM: a clean stop would wait out the grace (5 s).
    let (out, stopping) = interrupt(&dir, name, Signal::SIGINT, Some(Signal::SIGINT));
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted again: exiting now"),
        "{}",
        describe(&out)
    );
    assert!(stopping < Duration::from_secs(3), "took {stopping:?}");
    // What was not recorded is as after a crash: the trials run again.
    resume_reruns_the_stopped_trials(&dir, name, false);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_failed_trial_shows_the_end_of_its_stderr() {
    let name = "fh-fail";
    let dir = scratch(name);
    let script = r#"case "$1" in
  a) echo "loss=1" ;;
  *) i=0; while [ $i -lt 2000 ]; do echo "noise line $i" >&2; i=$((i+1)); done
     printf 'Traceback \033[31m(most recent call last)\n' >&2
     echo "python3: can't open file '/nope/train.py': [Errno 2] No such file or directory" >&2
     exit 2 ;;
esac"#;
    let file = support::shell_experiment(&dir, name, script, &["a", "b"], "");
    let db = sqlite(&dir);
    let out = run_to_end(&run_args(&dir, &db, &file, &[]), LIMIT);
    let printed = text(&out);
    let cause = "python3: can't open file '/nope/train.py': [Errno 2] No such file or directory";
    let hint = format!("(all of its stderr: ktune logs {name}-0002 --stderr)");
    // The plain line, then the stderr's last lines under it.
    let expected = format!(
        "failed    {name}-0002    (ExitCode2)\n          stderr: noise line 1999\n          stderr: Traceback \\u{{1b}}[31m(most recent call last)\n          stderr: {cause}\n          {hint}\n"
    );
    assert!(printed.contains(&expected), "{}", describe(&out));
    // The result repeats it.
    assert!(
        printed.contains(&format!("last failed trials:\n  {name}-0002: ExitCode2\n")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("    stderr: {cause}\n    {hint}")),
        "{printed}"
    );
    // The stored message has it, for `ktune trials -o json` and the dashboard.
    let listed = support::ktune(&["trials", name, "-o", "json", "--db", &db]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(cause), "{listed}");
    assert!(
        listed.contains("ktune logs fh-fail-0002 --stderr"),
        "{listed}"
    );
    assert!(!listed.contains('\u{1b}'), "control characters are escaped");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_images_warning_comes_once_and_only_when_a_trial_starts() {
    let name = "fh-images";
    let dir = scratch(name);
    let file = support::shell_experiment(&dir, name, r#"echo "loss=$1""#, &["1", "2", "3"], "");
    let args = run_args(&dir, &sqlite(&dir), &file, &[]);
    let first = run_to_end(&args, LIMIT);
    assert!(first.status.success(), "{}", describe(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(
        stderr.matches("container images are ignored").count(),
        1,
        "{stderr}"
    );
    // Run again: the experiment is closed, nothing runs, nothing to warn about.
    let again = run_to_end(&args, LIMIT);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("container images are ignored"),
        "{}",
        describe(&again)
    );
    // The result labels the metrics it shows.
    assert!(
        text(&first).contains(&format!("  last reported metrics of {name}-0001: loss=1")),
        "{}",
        describe(&first)
    );
    std::fs::remove_dir_all(dir).ok();
}
