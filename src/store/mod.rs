//! Persistence of experiments, trials, observations and algorithm state
//! through sqlx: SQLite (the embedded default: one file, no server) and
//! PostgreSQL, behind one [`SqlStore`] that speaks the SQL both understand.
//!
//! The rules that make a crash lose nothing (DESIGN principle 1): a trial
//! is stored before it is launched, and every write is idempotent or
//! conditional — inserting a trial twice keeps the first, observations are
//! keyed by (trial, metric, step), a state change names the states it may
//! leave, and algorithm state is saved with a compare-and-set on its version.

mod lease;
mod rows;
mod sql;

pub use lease::{Lease, LeaseHolder, Leases};

pub use rows::{
    ExperimentRecord, ExperimentState, NewTrial, ObservationRow, TrialOutcome, TrialRow,
    best_trial, state_from_str,
};
pub use sql::{ChangeMark, Deleted, SqlStore, TrialPage, TrialQuery, TrialSort, without_password};

use std::future::Future;

use ktune_algorithms::history::TrialState;
use ktune_algorithms::suggest::AlgorithmState;

/// What the experiment engine needs from storage. [`SqlStore`] implements
/// it over SQLite and PostgreSQL; the Kubernetes controller can back it
/// with anything that keeps the same promises: every write idempotent or
/// conditional (see the module doc), reads reflecting every completed write.
pub trait Store: Sync {
    /// Stores an experiment unless one with this name exists; returns the
    /// stored record and whether it was created now.
    fn create_experiment(
        &self,
        name: &str,
        spec: &serde_json::Value,
        now: i64,
    ) -> impl Future<Output = Result<(ExperimentRecord, bool), StoreError>> + Send;

    /// Replaces the stored experiment.
    fn set_experiment_spec(
        &self,
        experiment_id: i64,
        spec: &serde_json::Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an experiment's state.
    fn set_experiment_state(
        &self,
        experiment_id: i64,
        state: ExperimentState,
        reason: &str,
        completed_at: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves the algorithm's state if the stored version is still
    /// `expected_version` (compare-and-set); returns whether it was saved.
    fn save_algorithm_state(
        &self,
        experiment_id: i64,
        expected_version: i64,
        state: &AlgorithmState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Inserts trials as Pending; existing names are left alone. Returns
    /// how many were new.
    fn insert_trials(
        &self,
        experiment_id: i64,
        trials: &[NewTrial],
        now: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The experiment's trials in creation order.
    fn trials(
        &self,
        experiment_id: i64,
    ) -> impl Future<Output = Result<Vec<TrialRow>, StoreError>> + Send;

    /// Moves a trial to `outcome.state` if it is in one of `from`; returns
    /// whether it moved.
    fn transition(
        &self,
        trial_id: i64,
        from: &[TrialState],
        outcome: &TrialOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends metric reports; a (metric, step) already stored is kept.
    /// Returns how many were new.
    fn append_observations(
        &self,
        trial_id: i64,
        rows: &[ObservationRow],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A trial's reports, by metric and step.
    fn observations(
        &self,
        trial_id: i64,
    ) -> impl Future<Output = Result<Vec<ObservationRow>, StoreError>> + Send;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or the connection failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database ktune does not support.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A stored JSON column does not parse (the file was edited or is corrupt).
    #[error("corrupt stored value in {column}: {source}")]
    Corrupt {
        /// Which column.
        column: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored state word is unknown.
    #[error("unknown stored state {0:?}")]
    UnknownState(String),
    /// No experiment with this name.
    #[error("no experiment named {0:?}")]
    NoSuchExperiment(String),
    /// No experiment with this id (it was deleted while being written to).
    #[error("no experiment with id {0}")]
    NoSuchExperimentId(i64),
    /// There is no database file here (and this operation creates none).
    #[error("no database at {0} (`ktune run` creates one; --db or KTUNE_DB names another)")]
    NoDatabase(String),
    /// An operation that needs the experiment's lease found it held by
    /// another holder (or by nobody).
    #[error("the lease of experiment {0:?} is not held by this process")]
    LeaseNotHeld(String),
}

impl StoreError {
    /// Whether the failure may pass by itself: the database is unreachable,
    /// restarting, busy or locked — retrying the same operation later can
    /// succeed. Anything else (a refused statement, corrupt data) cannot.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        let Self::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
            _ => false,
        }
    }
}

/// SQLSTATEs (PostgreSQL) and result codes (SQLite) of failures that pass:
/// connection exceptions (class 08), a server shutting down or starting
/// (57P01–57P03), too many connections (53300), serialization failures and
/// deadlocks (40001, 40P01); SQLite's BUSY and LOCKED, extended codes too.
fn transient_code(code: &str) -> bool {
    if code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
    {
        return true;
    }
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_that_pass_are_told_from_those_that_do_not() {
        // PostgreSQL: connection lost, server stopping or starting, busy.
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "40001", "40P01",
        ] {
            assert!(transient_code(code), "{code}");
        }
        // SQLite: BUSY, LOCKED and their extended codes (BUSY_SNAPSHOT = 517).
        for code in ["5", "6", "517", "261", "262"] {
            assert!(transient_code(code), "{code}");
        }
        // A constraint, a syntax error, a missing table: retrying cannot help.
        for code in ["23505", "42601", "42P01", "19", "1", "2067"] {
            assert!(!transient_code(code), "{code}");
        }
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::Database(sqlx::Error::Io(io)).is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::UnknownState("x".into()).is_transient());
    }
}
