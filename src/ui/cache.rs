//! The dashboard's copy of each experiment's trials, kept up to date
//! incrementally: a page asks the store only for the trials changed since
//! the revision it last saw ([`SqlStore::trials_since`]), never for every
//! trial again (optuna-dashboard's cost per refresh), and never one query
//! per trial (Katib's). A live refresh of an experiment of 10 000 trials
//! where one trial finished reads one row.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::store::{SqlStore, StoreError, TrialRow};

/// One experiment's trials as of a revision.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// The highest revision applied.
    revision: i64,
    /// Every trial, in creation order (by `seq`).
    trials: Arc<Vec<TrialRow>>,
    /// Store id → position in `trials`.
    index: HashMap<i64, usize>,
}

impl Snapshot {
    /// Applies changed rows (new trials and new versions of known ones).
    fn apply(&mut self, changed: Vec<TrialRow>, revision: i64) {
        self.revision = self.revision.max(revision);
        if changed.is_empty() {
            return;
        }
        let trials = Arc::make_mut(&mut self.trials);
        let mut appended = false;
        for row in changed {
            match self.index.get(&row.id) {
                Some(&at) => trials[at] = row,
                None => {
                    self.index.insert(row.id, trials.len());
                    trials.push(row);
                    appended = true;
                }
            }
        }
        if appended && !trials.windows(2).all(|w| w[0].seq <= w[1].seq) {
            trials.sort_by_key(|t| t.seq);
            self.index = trials.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        }
    }
}

/// Every experiment's snapshot, by store id.
#[derive(Debug, Default)]
pub struct TrialCache {
    snapshots: Mutex<HashMap<i64, Snapshot>>,
}

impl TrialCache {
    /// The experiment's trials in creation order, brought up to date with
    /// one query for the rows changed since the last call.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (the cached copy is kept).
    pub async fn trials(
        &self,
        store: &SqlStore,
        experiment_id: i64,
    ) -> Result<Arc<Vec<TrialRow>>, StoreError> {
        // One lock for all: concurrent pages of one experiment then share
        // one delta query instead of racing to apply the same rows.
        let mut snapshots = self.snapshots.lock().await;
        let snapshot = snapshots.entry(experiment_id).or_default();
        let since = if snapshot.trials.is_empty() {
            -1
        } else {
            snapshot.revision
        };
        let (changed, revision) = store.trials_since(experiment_id, since).await?;
        snapshot.apply(changed, revision);
        Ok(Arc::clone(&snapshot.trials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_algorithms::history::TrialState;

    fn row(id: i64, seq: i64, state: TrialState) -> TrialRow {
        TrialRow {
            id,
            ..TrialRow::example(seq, state)
        }
    }

    #[test]
    fn applying_changes_replaces_known_rows_and_keeps_creation_order() {
        let mut s = Snapshot::default();
        s.apply(
            vec![
                row(10, 1, TrialState::Pending),
                row(11, 2, TrialState::Pending),
            ],
            1,
        );
        s.apply(vec![row(11, 2, TrialState::Succeeded)], 2);
        s.apply(
            vec![
                row(13, 4, TrialState::Pending),
                row(12, 3, TrialState::Running),
            ],
            3,
        );
        let seqs: Vec<i64> = s.trials.iter().map(|t| t.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(s.trials[1].state, TrialState::Succeeded);
        assert_eq!(s.revision, 3);
        s.apply(vec![row(12, 3, TrialState::Failed)], 4);
        assert_eq!(
            s.trials[2].state,
            TrialState::Failed,
            "the index follows the re-sort"
        );
        assert_eq!(s.trials.len(), 4);
    }

    #[test]
    fn a_snapshot_handed_out_does_not_change_under_its_reader() {
        let mut s = Snapshot::default();
        s.apply(vec![row(1, 1, TrialState::Running)], 1);
        let held = Arc::clone(&s.trials);
        s.apply(vec![row(1, 1, TrialState::Succeeded)], 2);
        assert_eq!(held[0].state, TrialState::Running);
        assert_eq!(s.trials[0].state, TrialState::Succeeded);
    }
}
