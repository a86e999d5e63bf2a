//! Where trials run. The engine talks to a [`Runner`] and the
//! [`TrialRun`]s it starts, never to processes or pods directly, so the same
//! loop drives local processes ([`host::LocalRunner`]) and, later,
//! Kubernetes workloads.
//!
//! - [`local`]: one trial process in its own process group, with its logs,
//!   time limit and log cap.
//! - [`output`]: its stdout and stderr, copied by ktune into capped log files.
//! - [`replicas`]: the processes of a distributed workload (PyTorchJob,
//!   TrainJob …) and the environment the operators inject.
//! - [`host`]: the local [`Runner`], tying the two together.

pub mod checkpoint;
pub mod host;
pub mod local;
pub mod output;
pub mod pod_spec;
pub mod replicas;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

pub use local::{Exit, RunnerError};

use crate::metrics::kinds::prometheus::METRICS_PORT_ENV;
use crate::metrics::push::PushCredentials;

/// The variable holding the trial's name (Katib's name for it too, below).
pub const TRIAL_NAME_ENV: &str = "KTUNE_TRIAL_NAME";
/// Katib's variable for the trial's name, for trainers written for Katib.
const KATIB_TRIAL_NAME_ENV: &str = "KATIB_TRIAL_NAME";
/// The variable holding the experiment's name.
const EXPERIMENT_ENV: &str = "KTUNE_EXPERIMENT";
/// The variable holding the trial's parameters as a JSON object.
const PARAMETERS_ENV: &str = "KTUNE_PARAMETERS";
/// The variable naming the GPU a trial may use.
const GPU_ENV: &str = "CUDA_VISIBLE_DEVICES";

/// What the engine asks a runner to start: typed, so that each runner
/// turns it into what its trials need (environment variables for a
/// process, fields and a Secret for a cluster `Trial`) and nothing is
/// parsed back from text.
#[derive(Debug, Clone)]
pub struct LaunchRequest<'a> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The trial's name (unique within the experiment).
    pub trial: &'a str,
    /// The trial's workload after `${trialParameters.…}` substitution.
    pub workload: &'a serde_json::Value,
    /// The trial's parameter assignments, name → value text, in the
    /// suggester's order.
    pub parameters: &'a [(String, String)],
    /// The GPU the trial may use (`ktune run --gpus`), if GPUs are shared out.
    pub gpu: Option<&'a str>,
    /// What the collector hands the trial so that it can report metrics.
    pub reporting: &'a Reporting,
    /// The suggester's labels (PBT's generation and parent, Hyperband's
    /// bracket …), for the runner to show where it can.
    pub labels: &'a BTreeMap<String, String>,
    /// The trial's checkpoint folder, for an algorithm that hands
    /// checkpoints from trial to trial (PBT).
    pub checkpoint: Option<Checkpoint<'a>>,
}

/// A trial's checkpoint folder (PBT's `suggestion_trial_dir`): the path
/// its template reads and writes checkpoints at, and the trial whose
/// folder it starts as a copy of. Each runner gives every trial a folder
/// of its own at that path: `ktune run` a folder in the trial's folder
/// (the path rewritten in the template's commands), the controller a
/// sub-folder of the experiment's volume mounted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    /// The path the template names.
    pub path: &'a str,
    /// The trial whose checkpoint this one starts from.
    pub parent: Option<&'a str>,
}

impl LaunchRequest<'_> {
    /// The variables a trial's processes get on top of the workload's own:
    /// its name (ktune's and Katib's variable), experiment, parameters as a
    /// JSON object, its GPU and what it needs to report metrics.
    #[must_use]
    pub fn process_env(&self) -> Vec<(String, String)> {
        let parameters: BTreeMap<&str, &str> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut env: Vec<(String, String)> = self
            .gpu
            .map(|gpu| (GPU_ENV.to_owned(), gpu.to_owned()))
            .into_iter()
            .collect();
        env.extend([
            (EXPERIMENT_ENV.to_owned(), self.experiment.to_owned()),
            (TRIAL_NAME_ENV.to_owned(), self.trial.to_owned()),
            (KATIB_TRIAL_NAME_ENV.to_owned(), self.trial.to_owned()),
            (
                PARAMETERS_ENV.to_owned(),
                serde_json::to_string(&parameters).unwrap_or_default(),
            ),
        ]);
        env.extend(self.reporting.env());
        env
    }
}

/// What a trial is handed so that it can report its metrics, as the
/// collector prepared it before the trial starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reporting {
    /// Where to push reports, with the trial's token (the Push collector).
    pub push: Option<PushCredentials>,
    /// The port to serve `/metrics` on (the PrometheusMetric collector).
    pub metrics_port: Option<u16>,
    /// The `host:port` of Katib's gRPC DBManager API for
    /// `katib.report_metrics(…, db_manager_address=…)` (a local Push
    /// collector's; [`crate::metrics::katib_grpc`]).
    pub db_manager: Option<String>,
}

impl Reporting {
    /// The environment variables that hand it to a process.
    #[must_use]
    pub fn env(&self) -> Vec<(String, String)> {
        let push = self.push.iter().flat_map(|p| {
            p.env()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into_iter()
        });
        let port = self
            .metrics_port
            .map(|port| (METRICS_PORT_ENV.to_owned(), port.to_string()));
        let db_manager = self.db_manager.as_ref().map(|address| {
            (
                crate::metrics::katib_grpc::DB_MANAGER_ADDRESS_ENV.to_owned(),
                address.clone(),
            )
        });
        push.chain(port).chain(db_manager).collect()
    }
}

/// Starts trials.
pub trait Runner: Sync {
    /// A started trial.
    type Trial: TrialRun;

    /// Starts one trial.
    ///
    /// # Errors
    /// [`RunnerError`] when it could not be started; nothing of it is left
    /// running then.
    fn launch(
        &self,
        request: &LaunchRequest<'_>,
    ) -> impl Future<Output = Result<Self::Trial, RunnerError>> + Send;

    /// Stops whatever an earlier run that died left of this trial, before
    /// the trial is started again.
    fn reap(&self, trial: &str);
}

/// A started trial.
pub trait TrialRun: Send {
    /// Whether it has ended, without waiting (enforcing its limits).
    fn poll(&mut self) -> impl Future<Output = Option<Exit>> + Send;

    /// Stops it: politely, then by force after the runner's grace period.
    fn stop(&mut self) -> impl Future<Output = ()> + Send;

    /// Where its primary output can be read, for the StdOut collector.
    fn stdout(&self) -> Option<&Path>;

    /// Where its primary error output can be read (a failure's message
    /// quotes its end); `None` where the runner keeps none.
    fn stderr(&self) -> Option<&Path> {
        None
    }

    /// Whether `launch` found the trial already running (started by an
    /// earlier engine that died) and took it over instead of starting it
    /// again: its metrics source then replays what was already stored.
    fn adopted(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::push::{PUSH_TOKEN_ENV, PUSH_URL_ENV};

    #[test]
    fn a_process_gets_its_trial_parameters_gpu_and_reporting_as_variables() {
        let reporting = Reporting {
            push: Some(PushCredentials {
                url: "http://127.0.0.1:9/v1/trials/t/metrics".into(),
                token: "secret".into(),
                trainer_url: None,
            }),
            metrics_port: Some(9100),
            db_manager: Some("127.0.0.1:9".into()),
        };
        let parameters = [
            ("momentum".to_owned(), "0.9".to_owned()),
            ("lr".to_owned(), "0.1".to_owned()),
        ];
        let request = LaunchRequest {
            experiment: "e",
            trial: "e-0001",
            workload: &serde_json::Value::Null,
            parameters: &parameters,
            gpu: Some("1"),
            reporting: &reporting,
            labels: &BTreeMap::new(),
            checkpoint: None,
        };
        let env: BTreeMap<String, String> = request.process_env().into_iter().collect();
        let get = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(get(GPU_ENV), Some("1"));
        assert_eq!(get(EXPERIMENT_ENV), Some("e"));
        assert_eq!(get(TRIAL_NAME_ENV), Some("e-0001"));
        assert_eq!(get(KATIB_TRIAL_NAME_ENV), Some("e-0001"));
        assert_eq!(
            get(PARAMETERS_ENV),
            Some(r#"{"lr":"0.1","momentum":"0.9"}"#)
        );
        assert_eq!(
            get(PUSH_URL_ENV),
            Some("http://127.0.0.1:9/v1/trials/t/metrics")
        );
        assert_eq!(get(PUSH_TOKEN_ENV), Some("secret"));
        assert_eq!(get(METRICS_PORT_ENV), Some("9100"));
        assert_eq!(
            get(crate::metrics::katib_grpc::DB_MANAGER_ADDRESS_ENV),
            Some("127.0.0.1:9")
        );
        let plain = LaunchRequest {
            gpu: None,
            reporting: &Reporting::default(),
            ..request
        };
        let env = plain.process_env();
        assert_eq!(env.len(), 4, "no GPU, nothing to report with: {env:?}");
    }
}
