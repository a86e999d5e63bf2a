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
    /// A trial ended.
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
