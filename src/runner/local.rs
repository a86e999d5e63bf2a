//! One trial as a local process: started from an argv (never through a
//! shell), in its own process group so stopping it stops every child, with
//! its own folder holding its standard output and error, a wall-clock limit
//! and a cap on how much it may write. A trial that crashes, hangs past its
//! limit, floods its output or cannot write its logs fails alone, with a
//! reason saying which.
//!
//! Nothing the trial started outlives it, however it ends: its process
//! group is killed when it ends, and so is every process whose environment
//! still carries the trial's [`REPLICA_DIR_VAR`] (those that left the group
//! with `setsid` or `setpgid`). Only a process that both leaves the group
//! and clears its environment escapes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::output::{Capture, LogBudget, spawn_copy};

/// The file in a trial's folder that holds its process group id.
const PGID_FILE: &str = "pgid";

/// The variable every process of a trial gets: the absolute path of the
/// folder holding its logs (the trial's folder, or a replica's sub-folder).
/// Every descendant inherits it unless it clears its environment, so it
/// finds those that left the trial's process group.
pub const REPLICA_DIR_VAR: &str = "KTUNE_REPLICA_DIR";

/// How long the copies of a trial's output may take to drain once all of
/// its processes are killed (they end at once unless a process out of
/// reach still holds a pipe).
const DRAIN: Duration = Duration::from_secs(2);

/// Kills what is left of a trial started by an earlier `ktune run` that
/// died (`kill -9` leaves the trial's processes running). The group in the
/// `pgid` file is killed only if its leader still carries the trial's name
/// in its environment, so a reused process id is safe; then every process
/// whose [`REPLICA_DIR_VAR`] is the trial's folder or one below it.
pub fn kill_orphan(trial_dir: &Path, trial_name: &str) {
    kill_orphan_group(trial_dir, trial_name);
    let dir = marker_value(trial_dir);
    kill_marked(&|value| is_under(value, dir.as_encoded_bytes()));
}

/// The `pgid` part of [`kill_orphan`], the replicas' sub-folders included.
fn kill_orphan_group(trial_dir: &Path, trial_name: &str) {
    if let Ok(entries) = std::fs::read_dir(trial_dir) {
        for entry in entries.flatten() {
            if entry.path().join(PGID_FILE).is_file() {
                kill_orphan_group(&entry.path(), trial_name);
            }
        }
    }
    let Ok(text) = std::fs::read_to_string(trial_dir.join(PGID_FILE)) else {
        return;
    };
    let Ok(pgid) = text.trim().parse::<i32>() else {
        return;
    };
    let environ = std::fs::read(format!("/proc/{pgid}/environ")).unwrap_or_default();
    let marker = format!("{}={trial_name}", super::TRIAL_NAME_ENV);
    if environ
        .split(|b| *b == 0)
        .any(|entry| entry == marker.as_bytes())
    {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// The value of [`REPLICA_DIR_VAR`] for a folder: absolute, so that it
/// names one folder on the machine whatever the working directory.
fn marker_value(dir: &Path) -> OsString {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_owned())
        .into_os_string()
}

/// Whether `value` is `dir` or a path below it.
fn is_under(value: &[u8], dir: &[u8]) -> bool {
    value
        .strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// The [`REPLICA_DIR_VAR`] value in a `/proc/<pid>/environ`, if any.
fn replica_dir(environ: &[u8]) -> Option<&[u8]> {
    environ.split(|b| *b == 0).find_map(|entry| {
        entry
            .strip_prefix(REPLICA_DIR_VAR.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// Sends `signal` to every process but ktune whose [`REPLICA_DIR_VAR`]
/// satisfies `matches`, except those in `skip`; returns those signalled.
/// Processes of other users (unreadable environment) are left alone.
fn signal_marked(matches: &dyn Fn(&[u8]) -> bool, signal: Signal, skip: &[i32]) -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut signalled = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == me) || skip.contains(&pid) {
            continue;
        }
        // A zombie's environment reads empty: it is dead already.
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if replica_dir(&environ).is_some_and(matches) {
            let _ = kill(Pid::from_raw(pid), signal);
            signalled.push(pid);
        }
    }
    signalled
}

/// Kills every process whose [`REPLICA_DIR_VAR`] satisfies `matches`,
/// scanning again until a scan finds no new one (a child forked while the
/// previous scan ran is found by the next). Bounded, against a fork bomb.
fn kill_marked(matches: &dyn Fn(&[u8]) -> bool) {
    let mut killed = Vec::new();
    for _ in 0..32 {
        let new = signal_marked(matches, Signal::SIGKILL, &killed);
        if new.is_empty() {
            return;
        }
        killed.extend(new);
    }
}

/// How often a running trial's limits are checked.
const POLL: Duration = Duration::from_millis(100);

/// What to run for one trial.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The program and its arguments, after template substitution.
    pub argv: Vec<String>,
    /// Extra environment variables (the trial's name, parameters …).
    pub env: Vec<(String, String)>,
    /// The trial's own folder: logs go here; created if missing.
    pub trial_dir: PathBuf,
    /// The working directory of the process.
    pub working_dir: PathBuf,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Most bytes stdout and stderr may hold together.
    pub log_limit: Option<u64>,
}

/// Why a trial could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The argv is empty.
    #[error("the trial has no command to run")]
    EmptyCommand,
    /// The Kubernetes API refused or failed.
    #[error("Kubernetes API: {0}")]
    Api(String),
    /// The workload has no container of this name with a command.
    #[error("the trial template has no container {0:?} with a command to run locally")]
    NoCommand(String),
    /// The trial folder or a log file could not be created.
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How a trial's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status.
    Failed {
        /// The exit code.
        code: i32,
    },
    /// Killed by a signal it did not ask for.
    Signalled {
        /// The signal number.
        signal: i32,
    },
    /// Ran past its wall-clock limit and was killed.
    TimedOut,
    /// Wrote more than its log limit and was killed.
    LogLimitExceeded,
    /// Its output could not be written to its folder (a full disk) and it
    /// was killed.
    LogWriteFailed {
        /// The log file and the error (`stdout.log: No space left …`).
        error: String,
    },
    /// Stopped on request (early stopping, Ctrl-C).
    Stopped,
    /// Could not run for a reason outside the trial, which says what to do
    /// (a cluster that does not serve the workload's kind, or refuses the
    /// workload).
    Refused {
        /// The reason, shown as the trial's message.
        reason: String,
    },
}

impl Exit {
    /// Katib-style reason for a trial that ended this way.
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            Self::Succeeded => "Completed".to_owned(),
            Self::Failed { code } => format!("ExitCode{code}"),
            Self::Signalled { signal } => format!("Signal{signal}"),
            Self::TimedOut => "DeadlineExceeded".to_owned(),
            Self::LogLimitExceeded => "LogLimitExceeded".to_owned(),
            Self::LogWriteFailed { error } => format!("trial folder: {error}"),
            Self::Stopped => "Stopped".to_owned(),
            Self::Refused { reason } => reason.clone(),
        }
    }
}

/// A started trial process.
#[derive(Debug)]
pub struct RunningTrial {
    child: Child,
    pgid: Option<Pid>,
    /// Its [`REPLICA_DIR_VAR`] value.
    marker: OsString,
    started: Instant,
    timeout: Option<Duration>,
    capture: Arc<Capture>,
    copiers: Vec<JoinHandle<()>>,
    stdout: PathBuf,
    stderr: PathBuf,
    stop_requested: bool,
    /// Whether everything it started was killed and its output drained.
    finished: bool,
}

fn create_log(path: &Path) -> Result<std::fs::File, RunnerError> {
    std::fs::File::create(path).map_err(|source| RunnerError::Prepare {
        path: path.to_owned(),
        source,
    })
}

/// Starts a trial's process in its own process group, its output limited
/// by `spec.log_limit` alone (the tests' way in; trials start through
/// [`super::replicas::ReplicaSet`], whose replicas share one budget).
///
/// # Errors
/// [`RunnerError`] when the argv is empty, the folder cannot be prepared or
/// the program cannot be started.
#[cfg(test)]
pub fn launch(spec: &LaunchSpec) -> Result<RunningTrial, RunnerError> {
    launch_with(spec, &LogBudget::new(spec.log_limit))
}

/// Starts a trial's process in its own process group, its output counted
/// against `budget` (shared by the replicas of one trial). Its stdout and
/// stderr are pipes that ktune copies into the log files.
///
/// # Errors
/// [`RunnerError`] when the argv is empty, the folder cannot be prepared
/// (a full disk included) or the program cannot be started; nothing of it
/// is left running then.
pub fn launch_with(
    spec: &LaunchSpec,
    budget: &Arc<LogBudget>,
) -> Result<RunningTrial, RunnerError> {
    let (program, args) = spec.argv.split_first().ok_or(RunnerError::EmptyCommand)?;
    std::fs::create_dir_all(&spec.trial_dir).map_err(|source| RunnerError::Prepare {
        path: spec.trial_dir.clone(),
        source,
    })?;
    let stdout = spec.trial_dir.join("stdout.log");
    let stderr = spec.trial_dir.join("stderr.log");
    let out_file = create_log(&stdout)?;
    let err_file = create_log(&stderr)?;
    let marker = marker_value(&spec.trial_dir);
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(REPLICA_DIR_VAR, &marker)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: stopping the trial signals the group, children included.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| RunnerError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let capture = Arc::new(Capture::default());
    // A flood or a refused write kills the group at once, no grace period.
    let stop = move || {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    };
    let copiers = [
        child
            .stdout
            .take()
            .map(|pipe| spawn_copy(pipe, out_file, "stdout.log", budget, &capture, stop)),
        child
            .stderr
            .take()
            .map(|pipe| spawn_copy(pipe, err_file, "stderr.log", budget, &capture, stop)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let trial = RunningTrial {
        child,
        pgid,
        marker,
        started: Instant::now(),
        timeout: spec.timeout,
        capture,
        copiers,
        stdout,
        stderr,
        stop_requested: false,
        finished: false,
    };
    if let Some(pgid) = pgid {
        // Remembered so a later `ktune run` can stop this group if we die
        // first. Failing that (a full disk), the trial does not run: dropping
        // it kills it.
        let path = spec.trial_dir.join(PGID_FILE);
        std::fs::write(&path, pgid.to_string())
            .map_err(|source| RunnerError::Prepare { path, source })?;
    }
    Ok(trial)
}

impl RunningTrial {
    /// The file holding its standard output.
    #[must_use]
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// The file holding its standard error.
    #[must_use]
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// How long it has run.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // The group may already be gone; that is what we wanted.
            let _ = killpg(pgid, signal);
        }
    }

    /// Whether a process's [`REPLICA_DIR_VAR`] is this trial's.
    fn is_mine(&self, value: &[u8]) -> bool {
        value == self.marker.as_encoded_bytes()
    }

    /// Kills whatever the trial left running: its group, and the processes
    /// that left the group but carry its marker.
    fn kill_everything(&self) {
        self.signal_group(Signal::SIGKILL);
        kill_marked(&|value| self.is_mine(value));
    }

    /// Ends the trial for good once its main process has ended: kills all
    /// it left running, then lets the copies of its output drain (so the
    /// last lines are in its logs before its metrics are read), giving up
    /// on a pipe still held after [`DRAIN`].
    async fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.kill_everything();
        let deadline = tokio::time::Instant::now() + DRAIN;
        for copier in &mut self.copiers {
            if tokio::time::timeout_at(deadline, &mut *copier)
                .await
                .is_err()
            {
                copier.abort();
            }
        }
    }

    /// Asks the trial to stop: SIGTERM to its group (and to its processes
    /// out of the group) now, SIGKILL to all after `grace` if it is still
    /// running. Returns how it ended ([`Exit::Stopped`] unless it had
    /// already ended on its own).
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.finish().await;
            return self.classify(status);
        }
        self.stop_requested = true;
        self.signal_group(Signal::SIGTERM);
        signal_marked(&|value| self.is_mine(value), Signal::SIGTERM, &[]);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.signal_group(Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Children that ignored SIGTERM must not outlive the trial.
        self.finish().await;
        Exit::Stopped
    }

    /// Whether it has ended, without waiting; enforces the time limit (a
    /// trial past it is stopped and reported as such). The log limit is
    /// enforced as the output is copied: a flooding trial is killed at once
    /// and reported here.
    pub async fn poll(&mut self) -> Option<Exit> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.finish().await;
                return Some(self.classify(status));
            }
            Ok(None) => {}
            Err(_) => {
                self.finish().await;
                return Some(Exit::Signalled { signal: 0 });
            }
        }
        if self.timeout.is_some_and(|t| self.started.elapsed() > t) {
            self.stop(Duration::from_secs(2)).await;
            return Some(Exit::TimedOut);
        }
        None
    }

    /// Waits until it ends (or a limit ends it).
    pub async fn wait(&mut self) -> Exit {
        loop {
            if let Some(exit) = self.poll().await {
                return exit;
            }
            tokio::select! {
                _ = self.child.wait() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn classify(&self, status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        if let Some(error) = self.capture.fault() {
            return Exit::LogWriteFailed {
                error: error.to_owned(),
            };
        }
        if self.capture.flooded() {
            return Exit::LogLimitExceeded;
        }
        if self.stop_requested {
            return Exit::Stopped;
        }
        match (status.code(), status.signal()) {
            (Some(0), _) => Exit::Succeeded,
            (Some(code), _) => Exit::Failed { code },
            (None, Some(signal)) => Exit::Signalled { signal },
            (None, None) => Exit::Signalled { signal: 0 },
        }
    }
}

impl Drop for RunningTrial {
    /// A trial dropped while running (ktune ending on an error, a replica
    /// set that failed to start) is killed with all it started.
    fn drop(&mut self) {
        if !self.finished {
            self.kill_everything();
        }
        for copier in &self.copiers {
            copier.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, argv: &[&str]) -> LaunchSpec {
        LaunchSpec {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: vec![("KTUNE_TRIAL_NAME".into(), "t-1".into())],
            trial_dir: dir.to_owned(),
            working_dir: std::env::temp_dir(),
            timeout: None,
            log_limit: None,
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ktune-runner-{name}-{}", std::process::id()))
    }

    #[tokio::test]
    async fn a_trial_runs_with_its_environment_and_its_output_in_its_folder() {
        let dir = temp("ok");
        let mut t = launch(&spec(
            &dir,
            &["sh", "-c", "echo loss=0.5 $KTUNE_TRIAL_NAME; echo oops >&2"],
        ))
        .unwrap();
        assert_eq!(t.wait().await, Exit::Succeeded);
        assert_eq!(
            std::fs::read_to_string(t.stdout_path()).unwrap(),
            "loss=0.5 t-1\n"
        );
        assert_eq!(std::fs::read_to_string(t.stderr_path()).unwrap(), "oops\n");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn arguments_are_never_interpreted_by_a_shell() {
        let dir = temp("argv");
        let mut t = launch(&spec(
            &dir,
            &["echo", "$(touch /tmp/ktune-pwned); 'quoted' \"x\""],
        ))
        .unwrap();
        assert_eq!(t.wait().await, Exit::Succeeded);
        let out = std::fs::read_to_string(t.stdout_path()).unwrap();
        assert_eq!(out, "$(touch /tmp/ktune-pwned); 'quoted' \"x\"\n");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn failures_timeouts_and_floods_fail_the_trial_with_a_reason() {
        let dir = temp("fail");
        assert_eq!(
            launch(&spec(&dir, &["sh", "-c", "exit 3"]))
                .unwrap()
                .wait()
                .await,
            Exit::Failed { code: 3 }
        );
        let mut hang = spec(&dir, &["sleep", "30"]);
        hang.timeout = Some(Duration::from_millis(300));
        assert_eq!(launch(&hang).unwrap().wait().await, Exit::TimedOut);
        let mut flood = spec(&dir, &["sh", "-c", "yes ktune"]);
        flood.log_limit = Some(64 * 1024);
        assert_eq!(launch(&flood).unwrap().wait().await, Exit::LogLimitExceeded);
        assert!(matches!(
            launch(&spec(&dir, &["/no/such/program"])),
            Err(RunnerError::Spawn { .. })
        ));
        assert!(matches!(
            launch(&spec(&dir, &[])),
            Err(RunnerError::EmptyCommand)
        ));
        std::fs::remove_dir_all(dir).ok();
    }

    /// Whether `pid` is a living process: a reaped one (no /proc entry)
    /// and a zombie are both dead.
    fn alive(pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    }

    /// The pid a trial's script wrote into `file`, waiting for it.
    async fn pid_in(file: &Path) -> i32 {
        for _ in 0..200 {
            if let Ok(pid) = std::fs::read_to_string(file)
                .unwrap_or_default()
                .trim()
                .parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} was never written", file.display());
    }

    /// A script that starts `background` (e.g. `sleep 30`) writing its pid
    /// into `<dir>/child.pid`, then runs `then`.
    fn leaving(dir: &Path, background: &str, then: &str) -> String {
        let pidfile = dir.join("child.pid");
        let _ = std::fs::remove_file(&pidfile);
        format!("{background} & echo $! > {}; {then}", pidfile.display())
    }

    /// Asserts that the process whose pid a trial wrote in `dir` is dead
    /// (killing it if not, so that a failing test leaves nothing behind).
    async fn assert_child_dead(dir: &Path, how: &str) {
        let child = pid_in(&dir.join("child.pid")).await;
        // A killed process may take a moment to die on a busy machine.
        for _ in 0..100 {
            if !alive(child) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let survived = alive(child);
        if survived {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
        assert!(!survived, "{how}: the trial's child {child} outlived it");
    }

    #[tokio::test]
    async fn stopping_a_trial_stops_its_children_too() {
        let dir = temp("stop");
        std::fs::create_dir_all(&dir).unwrap();
        let script = leaving(&dir, "sleep 30", "wait");
        let mut t = launch(&spec(&dir, &["sh", "-c", &script])).unwrap();
        pid_in(&dir.join("child.pid")).await;
        assert_eq!(t.stop(Duration::from_secs(1)).await, Exit::Stopped);
        assert_child_dead(&dir, "stopped").await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn nothing_a_trial_started_outlives_it_however_it_ends() {
        let dir = temp("outlive");
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &str, &str, Exit); 5] = [
            ("succeeded", "sleep 30", "echo loss=1", Exit::Succeeded),
            ("failed", "sleep 30", "exit 3", Exit::Failed { code: 3 }),
            // Out of the trial's process group (and session).
            ("setsid", "setsid sleep 30", "true", Exit::Succeeded),
            ("timed out", "sleep 30", "sleep 30", Exit::TimedOut),
            ("flooded", "sleep 30", "yes", Exit::LogLimitExceeded),
        ];
        for (how, background, then, expected) in cases {
            let mut s = spec(&dir, &["sh", "-c", &leaving(&dir, background, then)]);
            s.timeout = Some(Duration::from_millis(500));
            s.log_limit = Some(4096);
            let mut t = launch(&s).unwrap();
            assert_eq!(t.wait().await, expected, "{how}");
            assert_child_dead(&dir, how).await;
        }
        // Dropped while running (ktune ending on an error).
        let t = launch(&spec(
            &dir,
            &["sh", "-c", &leaving(&dir, "setsid sleep 30", "wait")],
        ));
        pid_in(&dir.join("child.pid")).await;
        drop(t);
        assert_child_dead(&dir, "dropped").await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_flood_is_cut_at_the_limit_exactly_even_when_it_ignores_sigterm() {
        let dir = temp("flood");
        let limit = 256 * 1024;
        for script in [
            "yes loss=1",
            "trap '' TERM; yes loss=1",
            "trap '' TERM; yes loss=1 >&2 & yes loss=2",
        ] {
            let mut s = spec(&dir, &["sh", "-c", script]);
            s.log_limit = Some(limit);
            let mut t = launch(&s).unwrap();
            assert_eq!(t.wait().await, Exit::LogLimitExceeded, "{script}");
            let written: u64 = [t.stdout_path(), t.stderr_path()]
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum();
            assert_eq!(written, limit, "{script}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn the_last_lines_are_in_the_log_when_the_trial_is_reported_ended() {
        let dir = temp("drain");
        // More than a pipe holds, written just before exiting.
        let mut t = launch(&spec(&dir, &["sh", "-c", "seq 1 200000; echo loss=1"])).unwrap();
        assert_eq!(t.wait().await, Exit::Succeeded);
        let out = std::fs::read_to_string(t.stdout_path()).unwrap();
        assert!(out.ends_with("200000\nloss=1\n"), "{}", out.len());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_process_out_of_reach_holding_the_output_delays_the_end_by_the_drain_at_most() {
        let dir = temp("reach");
        std::fs::create_dir_all(&dir).unwrap();
        // Out of the group with a cleared environment: ktune cannot find
        // it, and it holds the trial's stdout open.
        // (Once it runs `sleep`: until then it still carries the marker.)
        let script = leaving(
            &dir,
            "setsid env -i sleep 30",
            "until tr '\\0' ' ' < /proc/$!/cmdline | grep -q '^sleep'; do sleep 0.01; done; echo loss=1",
        );
        let mut t = launch(&spec(&dir, &["sh", "-c", &script])).unwrap();
        let started = Instant::now();
        assert_eq!(t.wait().await, Exit::Succeeded);
        assert!(started.elapsed() < DRAIN + Duration::from_secs(1));
        assert_eq!(
            std::fs::read_to_string(t.stdout_path()).unwrap(),
            "loss=1\n"
        );
        let escaped = pid_in(&dir.join("child.pid")).await;
        assert!(alive(escaped), "not covered: it escapes");
        let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn an_orphan_out_of_its_group_is_found_by_its_folder() {
        let dir = temp("orphan");
        let replica = dir.join("worker-1");
        std::fs::create_dir_all(&replica).unwrap();
        // What a `ktune run` killed by -9 leaves: a replica's child that
        // left the group, its parent gone.
        let mut orphan = std::process::Command::new("setsid")
            .args(["sleep", "30"])
            .env(REPLICA_DIR_VAR, marker_value(&replica))
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .env(REPLICA_DIR_VAR, marker_value(&temp("orphan-other")))
            .spawn()
            .unwrap();
        kill_orphan(&dir, "t-1");
        let reaped = orphan.wait().unwrap();
        assert!(
            other.try_wait().unwrap().is_none(),
            "another trial's process was killed"
        );
        other.kill().ok();
        other.wait().ok();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&reaped),
            Some(9)
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_marker_matches_its_folder_and_those_below_only() {
        assert!(is_under(b"/t/exp/t-1", b"/t/exp/t-1"));
        assert!(is_under(b"/t/exp/t-1/worker-0", b"/t/exp/t-1"));
        assert!(!is_under(b"/t/exp/t-10", b"/t/exp/t-1"));
        assert_eq!(
            replica_dir(b"A=1\0KTUNE_REPLICA_DIR=/x\0"),
            Some(&b"/x"[..])
        );
        assert_eq!(replica_dir(b"KTUNE_REPLICA_DIRX=/x\0"), None);
    }
}
