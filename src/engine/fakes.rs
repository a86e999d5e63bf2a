//! In-memory stand-ins for the engine's [`Store`] and [`Runner`], for unit
//! tests of the engine's behaviour: deterministic, no database, no process,
//! no sleep. Each keeps the promises of the trait it stands for (the
//! store's writes are idempotent or conditional) and lets a test script
//! what a real backend does by itself: a trial ending, a launch refused, a
//! trial adopted after a restart, the store going away.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ktune_algorithms::history::TrialState;
use ktune_algorithms::suggest::AlgorithmState;

use crate::runner::{Exit, LaunchRequest, Reporting, Runner, RunnerError, TrialRun};
use crate::store::{
    ExperimentRecord, ExperimentState, NewTrial, ObservationRow, Store, StoreError, TrialOutcome,
    TrialRow,
};

/// Locks a fake's state; a test that panicked while holding it has
/// failed already, so its poison is passed over.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A store in memory. While [`FakeStore::set_down`] holds, every call
/// fails as an unreachable database does (a transient error).
#[derive(Debug, Default)]
pub(super) struct FakeStore {
    tables: Mutex<Tables>,
    down: AtomicBool,
}

#[derive(Debug, Default)]
struct Tables {
    experiments: Vec<ExperimentRecord>,
    /// Trials with their experiment's id, in creation order.
    trials: Vec<(i64, TrialRow)>,
    observations: BTreeMap<i64, Vec<ObservationRow>>,
    next_id: i64,
}

impl Tables {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

impl FakeStore {
    /// Makes every call fail (`true`) or answer again (`false`).
    pub(super) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut))
        } else {
            Ok(())
        }
    }

    /// The stored experiment named `name`.
    pub(super) fn experiment(&self, name: &str) -> Option<ExperimentRecord> {
        lock(&self.tables)
            .experiments
            .iter()
            .find(|e| e.name == name)
            .cloned()
    }

    /// Every stored trial, in creation order.
    pub(super) fn all_trials(&self) -> Vec<TrialRow> {
        lock(&self.tables)
            .trials
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The stored trial named `name`.
    pub(super) fn trial(&self, name: &str) -> Option<TrialRow> {
        self.all_trials().into_iter().find(|t| t.name == name)
    }

    /// The stored reports of the trial named `name`.
    pub(super) fn reports(&self, name: &str) -> Vec<ObservationRow> {
        let Some(id) = self.trial(name).map(|t| t.id) else {
            return Vec::new();
        };
        lock(&self.tables)
            .observations
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }
}

impl Store for FakeStore {
    async fn create_experiment(
        &self,
        name: &str,
        spec: &serde_json::Value,
        now: i64,
    ) -> Result<(ExperimentRecord, bool), StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        if let Some(e) = tables.experiments.iter().find(|e| e.name == name) {
            return Ok((e.clone(), false));
        }
        let record = ExperimentRecord {
            id: tables.id(),
            name: name.to_owned(),
            spec: spec.clone(),
            state: ExperimentState::Created,
            reason: String::new(),
            created_at: now,
            completed_at: None,
            algorithm_state: None,
            algorithm_state_version: 0,
        };
        tables.experiments.push(record.clone());
        Ok((record, true))
    }

    async fn set_experiment_spec(
        &self,
        experiment_id: i64,
        spec: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let e = experiment_mut(&mut tables, experiment_id)?;
        e.spec = spec.clone();
        Ok(())
    }

    async fn set_experiment_state(
        &self,
        experiment_id: i64,
        state: ExperimentState,
        reason: &str,
        completed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let e = experiment_mut(&mut tables, experiment_id)?;
        e.state = state;
        reason.clone_into(&mut e.reason);
        e.completed_at = completed_at;
        Ok(())
    }

    async fn save_algorithm_state(
        &self,
        experiment_id: i64,
        expected_version: i64,
        state: &AlgorithmState,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let e = experiment_mut(&mut tables, experiment_id)?;
        if e.algorithm_state_version != expected_version {
            return Ok(false);
        }
        e.algorithm_state = Some(state.clone());
        e.algorithm_state_version += 1;
        Ok(true)
    }

    async fn insert_trials(
        &self,
        experiment_id: i64,
        trials: &[NewTrial],
        now: i64,
    ) -> Result<u64, StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let mut new = 0;
        for trial in trials {
            let exists = tables
                .trials
                .iter()
                .any(|(e, t)| *e == experiment_id && t.name == trial.name);
            if exists {
                continue;
            }
            let seq = tables
                .trials
                .iter()
                .filter(|(e, _)| *e == experiment_id)
                .count();
            let id = tables.id();
            let row = TrialRow {
                id,
                seq: i64::try_from(seq).unwrap_or(i64::MAX) + 1,
                name: trial.name.clone(),
                assignment: trial.assignment.clone(),
                labels: trial.labels.clone(),
                created_at: now,
                ..TrialRow::example(0, TrialState::Pending)
            };
            tables.trials.push((experiment_id, row));
            new += 1;
        }
        Ok(new)
    }

    async fn trials(&self, experiment_id: i64) -> Result<Vec<TrialRow>, StoreError> {
        self.reachable()?;
        Ok(lock(&self.tables)
            .trials
            .iter()
            .filter(|(e, _)| *e == experiment_id)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn transition(
        &self,
        trial_id: i64,
        from: &[TrialState],
        outcome: &TrialOutcome,
    ) -> Result<bool, StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let Some((_, row)) = tables.trials.iter_mut().find(|(_, t)| t.id == trial_id) else {
            return Ok(false);
        };
        if !from.contains(&row.state) {
            return Ok(false);
        }
        row.state = outcome.state;
        row.reason.clone_from(&outcome.reason);
        row.message.clone_from(&outcome.message);
        row.objective = outcome.objective;
        match outcome.state {
            TrialState::Running => {
                row.started_at.get_or_insert(outcome.at);
            }
            state if state.is_terminal() => row.completed_at = Some(outcome.at),
            _ => {}
        }
        Ok(true)
    }

    async fn append_observations(
        &self,
        trial_id: i64,
        rows: &[ObservationRow],
    ) -> Result<u64, StoreError> {
        self.reachable()?;
        let mut tables = lock(&self.tables);
        let stored = tables.observations.entry(trial_id).or_default();
        let mut new = 0;
        for row in rows {
            if !stored
                .iter()
                .any(|o| o.metric == row.metric && o.step == row.step)
            {
                stored.push(row.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn observations(&self, trial_id: i64) -> Result<Vec<ObservationRow>, StoreError> {
        self.reachable()?;
        let mut rows = lock(&self.tables)
            .observations
            .get(&trial_id)
            .cloned()
            .unwrap_or_default();
        rows.sort_by(|a, b| (&a.metric, a.step).cmp(&(&b.metric, b.step)));
        Ok(rows)
    }
}

fn experiment_mut(tables: &mut Tables, id: i64) -> Result<&mut ExperimentRecord, StoreError> {
    tables
        .experiments
        .iter_mut()
        .find(|e| e.id == id)
        .ok_or(StoreError::NoSuchExperimentId(id))
}

/// A launch as the fake runner received it.
#[derive(Debug, Clone)]
pub(super) struct Launched {
    pub(super) experiment: String,
    pub(super) trial: String,
    pub(super) workload: serde_json::Value,
    pub(super) parameters: Vec<(String, String)>,
    pub(super) gpu: Option<String>,
    pub(super) reporting: Reporting,
}

/// A runner whose trials run until the test ends them ([`FakeRunner::end`]).
#[derive(Debug, Clone, Default)]
pub(super) struct FakeRunner {
    state: Arc<Mutex<Trials>>,
}

#[derive(Debug, Default)]
struct Trials {
    launched: Vec<Launched>,
    running: BTreeSet<String>,
    /// How trials end at their next poll.
    exits: BTreeMap<String, Exit>,
    /// Trials whose launch fails.
    refused: BTreeSet<String>,
    /// Trials a launch finds running already (started before a restart).
    adopted: BTreeSet<String>,
    stopped: Vec<String>,
    reaped: Vec<String>,
}

impl FakeRunner {
    /// The running trial `trial` ends with `exit` at its next poll.
    pub(super) fn end(&self, trial: &str, exit: Exit) {
        lock(&self.state).exits.insert(trial.to_owned(), exit);
    }

    /// Launching `trial` fails.
    pub(super) fn refuse(&self, trial: &str) {
        lock(&self.state).refused.insert(trial.to_owned());
    }

    /// Launching `trial` finds it running already (an earlier engine
    /// started it before it died) and takes it over.
    pub(super) fn adopt(&self, trial: &str) {
        lock(&self.state).adopted.insert(trial.to_owned());
    }

    /// Every launch so far, in order.
    pub(super) fn launched(&self) -> Vec<Launched> {
        lock(&self.state).launched.clone()
    }

    /// The names of the trials launched so far, in order.
    pub(super) fn launched_names(&self) -> Vec<String> {
        self.launched().into_iter().map(|l| l.trial).collect()
    }

    /// The trials running now (launched, neither ended nor stopped).
    pub(super) fn running(&self) -> Vec<String> {
        lock(&self.state).running.iter().cloned().collect()
    }

    /// The trials stopped, in order.
    pub(super) fn stopped(&self) -> Vec<String> {
        lock(&self.state).stopped.clone()
    }

    /// The trials reaped (left over by an earlier run), in order.
    pub(super) fn reaped(&self) -> Vec<String> {
        lock(&self.state).reaped.clone()
    }
}

impl Runner for FakeRunner {
    type Trial = FakeTrial;

    async fn launch(&self, request: &LaunchRequest<'_>) -> Result<FakeTrial, RunnerError> {
        let mut state = lock(&self.state);
        if state.refused.contains(request.trial) {
            return Err(RunnerError::Api("refused by the fake runner".into()));
        }
        state.launched.push(Launched {
            experiment: request.experiment.to_owned(),
            trial: request.trial.to_owned(),
            workload: request.workload.clone(),
            parameters: request.parameters.to_vec(),
            gpu: request.gpu.map(str::to_owned),
            reporting: request.reporting.clone(),
        });
        state.running.insert(request.trial.to_owned());
        Ok(FakeTrial {
            name: request.trial.to_owned(),
            adopted: state.adopted.remove(request.trial),
            state: Arc::clone(&self.state),
        })
    }

    fn reap(&self, trial: &str) {
        let mut state = lock(&self.state);
        state.reaped.push(trial.to_owned());
        state.running.remove(trial);
    }
}

/// A trial of the [`FakeRunner`].
#[derive(Debug)]
pub(super) struct FakeTrial {
    name: String,
    adopted: bool,
    state: Arc<Mutex<Trials>>,
}

impl TrialRun for FakeTrial {
    async fn poll(&mut self) -> Option<Exit> {
        let mut state = lock(&self.state);
        let exit = state.exits.remove(&self.name)?;
        state.running.remove(&self.name);
        Some(exit)
    }

    async fn stop(&mut self) {
        let mut state = lock(&self.state);
        state.running.remove(&self.name);
        state.stopped.push(self.name.clone());
    }

    fn stdout(&self) -> Option<&Path> {
        None
    }

    fn adopted(&self) -> bool {
        self.adopted
    }
}
