//! The trials as the algorithms see them: stored rows with the objective
//! reports of running and ended trials, and the best of them.

use ktune_algorithms::history::{Observation, TrialRecord, TrialState};

use super::core::Engine;
use super::events::BestTrial;
use crate::metrics::collector::Collector;
use crate::metrics::parse_number;
use crate::runner::Runner;
use crate::store::{ObservationRow, Store, StoreError, TrialRow};

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// The trials as the algorithms see them (rows whose assignment no
    /// longer fits the search space are left out).
    pub(super) fn history(&self) -> Vec<TrialRecord> {
        self.rows
            .iter()
            .filter_map(|row| {
                let assignment = self
                    .setup
                    .plan
                    .space
                    .parse_assignment(row.assignment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .ok()?;
                let mut record = TrialRecord::new(row.name.clone(), assignment);
                record.labels = row.labels.clone();
                record.state = row.state;
                record.objective = row.objective;
                record.observations = match self.live.iter().find(|l| l.row.id == row.id) {
                    Some(l) => {
                        record.state = TrialState::Running;
                        l.series.clone()
                    }
                    None => self.finished.get(&row.name).cloned().unwrap_or_default(),
                };
                Some(record)
            })
            .collect()
    }

    /// Reads an ended trial's stored objective reports, for the stopping
    /// rule's history.
    pub(super) async fn load_finished(&mut self, row: &TrialRow) -> Result<(), StoreError> {
        let stored = self.store.observations(row.id).await?;
        self.finished.insert(
            row.name.clone(),
            objective_series(&stored, &self.setup.plan.objective.metric),
        );
        Ok(())
    }

    /// The best trial of `history`, with its parameters as stored.
    ///
    /// Without a numeric best, the last trial that succeeded with an
    /// objective that is not a number (Katib lets such a trial be the
    /// best: DARTS reports `Best-Genotype=Genotype(…)`), its objective NaN.
    pub(super) fn best_of(&self, history: &[TrialRecord]) -> Option<BestTrial> {
        let numeric = self.setup.plan.objective.best_trial(history).and_then(|t| {
            let row = self.rows.iter().find(|r| r.name == t.name)?;
            Some(BestTrial {
                name: t.name.clone(),
                parameters: row.assignment.clone(),
                objective: t.finite_objective()?,
            })
        });
        numeric.or_else(|| {
            let row = self
                .rows
                .iter()
                .rev()
                .find(|r| r.state == TrialState::Succeeded && r.objective.is_none())?;
            Some(BestTrial {
                name: row.name.clone(),
                parameters: row.assignment.clone(),
                objective: f64::NAN,
            })
        })
    }
}

/// The reports of `metric` among stored rows, as the stopping rule reads
/// them (a value that is not a number reads as NaN: missing).
pub(super) fn objective_series(rows: &[ObservationRow], metric: &str) -> Vec<Observation> {
    rows.iter()
        .filter(|r| r.metric == metric)
        .map(|r| Observation {
            step: u64::try_from(r.step).unwrap_or(0),
            value: r
                .number
                .or_else(|| parse_number(&r.value))
                .unwrap_or(f64::NAN),
        })
        .collect()
}
