//! One trial as a local process: started from an argv (never through a
//! shell), in its own process group so stopping it stops every child, with
//! its own folder holding its standard output and error, a wall-clock limit
//! and a cap on how much it may write. A trial that crashes, hangs past its
//! limit or floods its output fails alone, with a reason saying which.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The file in a trial's folder that holds its process group id.
const PGID_FILE: &str = "pgid";

/// Kills what is left of a trial started by an earlier `ktune run` that
/// died (`kill -9` leaves the trial's process group running, writing to the
/// same log files). The group is killed only if its leader still carries
/// the trial's name in its environment, so a reused process id is safe.
pub fn kill_orphan(trial_dir: &Path, trial_name: &str) {
    // Replicas other than the primary have their own sub-folders.
    if let Ok(entries) = std::fs::read_dir(trial_dir) {
        for entry in entries.flatten() {
            if entry.path().join(PGID_FILE).is_file() {
                kill_orphan(&entry.path(), trial_name);
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
    let marker = format!("KTUNE_TRIAL_NAME={trial_name}");
    if environ
        .split(|b| *b == 0)
        .any(|entry| entry == marker.as_bytes())
    {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
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
    started: Instant,
    timeout: Option<Duration>,
    log_limit: Option<u64>,
    stdout: PathBuf,
    stderr: PathBuf,
    stop_requested: bool,
}

fn create_log(path: &Path) -> Result<std::fs::File, RunnerError> {
    std::fs::File::create(path).map_err(|source| RunnerError::Prepare {
        path: path.to_owned(),
        source,
    })
}

/// Starts a trial's process in its own process group.
///
/// # Errors
/// [`RunnerError`] when the argv is empty, the folder cannot be prepared or
/// the program cannot be started.
pub fn launch(spec: &LaunchSpec) -> Result<RunningTrial, RunnerError> {
    let (program, args) = spec.argv.split_first().ok_or(RunnerError::EmptyCommand)?;
    std::fs::create_dir_all(&spec.trial_dir).map_err(|source| RunnerError::Prepare {
        path: spec.trial_dir.clone(),
        source,
    })?;
    let stdout = spec.trial_dir.join("stdout.log");
    let stderr = spec.trial_dir.join("stderr.log");
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(create_log(&stdout)?)
        .stderr(create_log(&stderr)?)
        // Its own group: stopping the trial signals the group, children included.
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(|source| RunnerError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    if let Some(pgid) = pgid {
        // Remembered so a later `ktune run` can stop this group if we die first.
        let _ = std::fs::write(spec.trial_dir.join(PGID_FILE), pgid.to_string());
    }
    Ok(RunningTrial {
        child,
        pgid,
        started: Instant::now(),
        timeout: spec.timeout,
        log_limit: spec.log_limit,
        stdout,
        stderr,
        stop_requested: false,
    })
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

    fn log_bytes(&self) -> u64 {
        [&self.stdout, &self.stderr]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // The group may already be gone; that is what we wanted.
            let _ = killpg(pgid, signal);
        }
    }

    /// Asks the trial to stop: SIGTERM to its group now, SIGKILL after
    /// `grace` if it is still running. Returns how it ended ([`Exit::Stopped`]
    /// unless it had already ended on its own).
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Ok(Some(status)) = self.child.try_wait() {
            return self.classify(status);
        }
        self.stop_requested = true;
        self.signal_group(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.signal_group(Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Children that ignored SIGTERM must not outlive the trial.
        self.signal_group(Signal::SIGKILL);
        Exit::Stopped
    }

    /// Whether it has ended, without waiting; enforces the limits (a trial
    /// past its time or log limit is killed and reported as such).
    pub async fn poll(&mut self) -> Option<Exit> {
        match self.child.try_wait() {
            Ok(Some(status)) => return Some(self.classify(status)),
            Ok(None) => {}
            Err(_) => return Some(Exit::Signalled { signal: 0 }),
        }
        let over_time = self.timeout.is_some_and(|t| self.started.elapsed() > t);
        let over_logs = self.log_limit.is_some_and(|l| self.log_bytes() > l);
        if over_time || over_logs {
            self.stop(Duration::from_secs(2)).await;
            return Some(if over_time {
                Exit::TimedOut
            } else {
                Exit::LogLimitExceeded
            });
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

    #[tokio::test]
    async fn stopping_a_trial_stops_its_children_too() {
        let dir = temp("stop");
        let pidfile = dir.join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let mut t = launch(&spec(&dir, &["sh", "-c", &script])).unwrap();
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(t.stop(Duration::from_secs(1)).await, Exit::Stopped);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A killed child may linger as a zombie until its new parent reaps it.
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let alive = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
        assert!(!alive, "the trial's child process {child} outlived it");
        std::fs::remove_dir_all(dir).ok();
    }
}
