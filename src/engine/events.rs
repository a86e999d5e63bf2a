//! What the engine tells its caller as an experiment runs, and how a run
//! ended.

use ktune_algorithms::history::TrialState;

use super::decide::Counts;
use crate::store::ExperimentState;

/// Something the user may want to see, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// The trials by state, whenever a trial was added or changed state.
    Progress {
        /// The counts.
        counts: Counts,
    },
    /// A trial started.
    Started {
        /// The trial.
        trial: String,
        /// Its parameters.
        parameters: Vec<(String, String)>,
    },
    /// A running trial reported metrics.
    Reported {
        /// The trial.
        trial: String,
        /// The latest value of each metric it reported just now.
        latest: Vec<(String, String)>,
    },
    /// The experiment existed and runs on: what its earlier runs left.
    Resumed {
        /// The experiment.
        experiment: String,
        /// Trials that had ended.
        done: usize,
        /// Trials that were pending or running (interrupted): they run (again).
        rerun: usize,
    },
    /// A running trial was stopped because the run was interrupted
    /// (Ctrl-C, SIGTERM, SIGHUP): it is Pending again, with its reports
    /// and folder kept, and runs again when the experiment is resumed.
    Interrupted {
        /// The trial.
        trial: String,
    },
    /// A trial ended. A failed trial's `reason` may go on over further
    /// lines: the end of its stderr (`stderr: …` lines) and where to read
    /// all of it.
    Finished {
        /// The trial.
        trial: String,
        /// How it ended.
        state: TrialState,
        /// Its objective value.
        objective: Option<f64>,
        /// Why.
        reason: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The experiment's state (Running when interrupted).
    pub state: ExperimentState,
    /// Katib's condition reason (empty when interrupted).
    pub reason: String,
    /// Trials by state.
    pub counts: Counts,
    /// The best trial.
    pub best: Option<BestTrial>,
    /// The experiment had finished before this run and its resumePolicy
    /// (Never) kept it closed: nothing ran.
    pub closed: bool,
    /// The last few failed trials, with their stored messages (which end
    /// with their stderr's last lines): why they failed, at a glance.
    pub failures: Vec<(String, String)>,
    /// Trials stopped by this run's interruption, to run again on resume.
    pub interrupted: usize,
}

/// The best trial of a run.
#[derive(Debug, Clone)]
pub struct BestTrial {
    /// Its name.
    pub name: String,
    /// Its parameters.
    pub parameters: Vec<(String, String)>,
    /// Its objective value.
    pub objective: f64,
}
