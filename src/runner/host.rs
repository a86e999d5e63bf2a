//! The local [`Runner`]: each trial is the set of processes its workload
//! describes ([`replicas::plan`]), started in the trial's own folder under
//! `<trials_dir>/<trial>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::local::{LaunchSpec, kill_orphan};
use super::replicas::{self, ReplicaSet, free_port};
use super::{Exit, LaunchRequest, Runner, RunnerError, TrialRun};
use crate::metrics::trainer_status;

/// Runs trials as processes on this machine.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    /// The experiment's trial folders: `<trials_dir>/<trial>/`.
    pub trials_dir: PathBuf,
    /// The working directory of every trial process.
    pub working_dir: PathBuf,
    /// The template's primary container.
    pub primary: String,
    /// Wall-clock limit per trial.
    pub timeout: Option<Duration>,
    /// Most bytes of output per trial.
    pub log_limit: Option<u64>,
    /// Time between SIGTERM and SIGKILL when stopping a trial.
    pub stop_grace: Duration,
}

impl LocalRunner {
    /// A trial's folder.
    #[must_use]
    pub fn trial_dir(&self, trial: &str) -> PathBuf {
        self.trials_dir.join(trial)
    }
}

/// A trial running on this machine.
#[derive(Debug)]
pub struct LocalTrial {
    replicas: ReplicaSet,
    grace: Duration,
}

impl Runner for LocalRunner {
    type Trial = LocalTrial;

    async fn launch(&self, request: &LaunchRequest<'_>) -> Result<LocalTrial, RunnerError> {
        let commands = replicas::plan(request.workload, &self.primary, free_port());
        if commands.is_empty() {
            return Err(RunnerError::NoCommand(self.primary.clone()));
        }
        let trial_dir = self.trial_dir(request.trial);
        let mut env = request.process_env();
        if let Some(push) = &request.reporting.push
            && let Some(url) = &push.trainer_url
        {
            // Kubeflow Trainer's SDK reads the token from a file, as a
            // pod reads its projected service-account token.
            let token_file =
                trainer_status::write_token_file(&trial_dir, &push.token).map_err(|source| {
                    RunnerError::Prepare {
                        path: trial_dir.join(trainer_status::TOKEN_FILE),
                        source,
                    }
                })?;
            env.extend(trainer_status::process_env(url, &token_file));
        }
        env.push((
            "KTUNE_TRIAL_DIR".to_owned(),
            trial_dir.display().to_string(),
        ));
        let spec = LaunchSpec {
            argv: Vec::new(),
            env,
            trial_dir,
            working_dir: self.working_dir.clone(),
            timeout: self.timeout,
            log_limit: self.log_limit,
        };
        let replicas = ReplicaSet::launch(&spec, &commands).await?;
        Ok(LocalTrial {
            replicas,
            grace: self.stop_grace,
        })
    }

    fn reap(&self, trial: &str) {
        kill_orphan(&self.trial_dir(trial), trial);
    }
}

impl TrialRun for LocalTrial {
    async fn poll(&mut self) -> Option<Exit> {
        self.replicas.poll(self.grace).await
    }

    async fn stop(&mut self) {
        self.replicas.stop(self.grace).await;
    }

    fn stdout(&self) -> Option<&Path> {
        Some(self.replicas.stdout_path())
    }

    fn stderr(&self) -> Option<&Path> {
        Some(self.replicas.stderr_path())
    }
}
