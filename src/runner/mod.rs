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

pub mod host;
pub mod local;
pub mod output;
pub mod replicas;

use std::future::Future;
use std::path::Path;

pub use local::{Exit, RunnerError};

/// What the engine asks a runner to start.
#[derive(Debug, Clone)]
pub struct LaunchRequest<'a> {
    /// The trial's name (unique within the experiment).
    pub trial: &'a str,
    /// The trial's workload after `${trialParameters.…}` substitution.
    pub workload: &'a serde_json::Value,
    /// Variables the trial's processes get on top of the workload's own:
    /// its name, experiment, parameters, a GPU, the Push endpoint …
    pub env: Vec<(String, String)>,
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
