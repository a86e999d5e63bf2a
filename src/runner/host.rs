//! The local [`Runner`]: each trial is the set of processes its workload
//! describes ([`replicas::plan`]), started in the trial's own folder under
//! `<trials_dir>/<trial>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checkpoint;
use super::local::{LaunchSpec, kill_orphan};
use super::replicas::{self, ReplicaSet, free_port};
use super::{Exit, LaunchRequest, Runner, RunnerError, TrialRun};
use crate::metrics::trainer_status;

/// The variable naming a PBT trial's checkpoint folder.
const CHECKPOINT_ENV: &str = "KTUNE_CHECKPOINT_DIR";

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
        let trial_dir = self.trial_dir(request.trial);
        let mut env = request.process_env();
        // PBT: the path the template names for checkpoints becomes the
        // trial's own checkpoint folder, a copy of its parent's.
        let relocated;
        let workload = match request.checkpoint {
            None => request.workload,
            Some(checkpoint) => {
                let folder =
                    checkpoint::local_folder(&self.trials_dir, request.trial, checkpoint.parent)
                        .map_err(|e| RunnerError::Prepare {
                            path: e.path,
                            source: e.source,
                        })?;
                let folder = folder.display().to_string();
                let mut workload = request.workload.clone();
                ktune_kinds::paths::relocate_all(
                    &mut workload,
                    &[(checkpoint.path.to_owned(), folder.clone())],
                );
                env.push((CHECKPOINT_ENV.to_owned(), folder));
                relocated = workload;
                &relocated
            }
        };
        let commands = replicas::plan(workload, &self.primary, free_port());
        if commands.is_empty() {
            return Err(RunnerError::NoCommand(self.primary.clone()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::push::PushCredentials;
    use crate::runner::Reporting;

    async fn run_to_exit(runner: &LocalRunner, reporting: &Reporting) -> String {
        let workload = serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "spec": {"template": {"spec": {"containers": [{
                "name": "main",
                "command": ["sh", "-c",
                    "echo \"url=$KUBEFLOW_TRAINER_SERVER_URL\"; \
                     echo \"file=$KUBEFLOW_TRAINER_SERVER_TOKEN\"; \
                     [ -n \"$KUBEFLOW_TRAINER_SERVER_TOKEN\" ] && echo \"token=$(cat \"$KUBEFLOW_TRAINER_SERVER_TOKEN\")\"; \
                     echo \"ca=${KUBEFLOW_TRAINER_SERVER_CA_CERT-unset}\""]
            }]}}}
        });
        let request = LaunchRequest {
            experiment: "e",
            trial: "t1",
            workload: &workload,
            parameters: &[],
            gpu: None,
            reporting,
            labels: &std::collections::BTreeMap::new(),
            checkpoint: None,
        };
        let mut trial = runner.launch(&request).await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(exit) = trial.poll().await {
                    break exit;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(exit, Exit::Succeeded);
        std::fs::read_to_string(trial.stdout().unwrap()).unwrap()
    }

    /// A trial with a Trainer URL finds it, and its token in a file of its
    /// folder only it can read; a trial without one gets neither variable.
    #[tokio::test]
    async fn a_push_trial_gets_trainers_variables_and_its_token_file() {
        let dir = std::env::temp_dir().join(format!("ktune-host-trainer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runner = LocalRunner {
            trials_dir: dir.clone(),
            working_dir: std::env::temp_dir(),
            primary: "main".to_owned(),
            timeout: None,
            log_limit: None,
            stop_grace: Duration::from_secs(1),
        };
        let url = "http://127.0.0.1:9/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs/t1/status";
        let reporting = Reporting {
            push: Some(PushCredentials {
                url: "http://127.0.0.1:9/v1/trials/t1/metrics".into(),
                token: "0123abcd".into(),
                trainer_url: Some(url.into()),
            }),
            ..Reporting::default()
        };
        let out = run_to_exit(&runner, &reporting).await;
        let token_file = runner.trial_dir("t1").join(trainer_status::TOKEN_FILE);
        assert_eq!(
            out,
            format!(
                "url={url}\nfile={}\ntoken=0123abcd\nca=unset\n",
                token_file.display()
            )
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        std::fs::remove_dir_all(&dir).unwrap();
        let out = run_to_exit(&runner, &Reporting::default()).await;
        assert_eq!(out, "url=\nfile=\nca=unset\n");
        assert!(!token_file.exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
