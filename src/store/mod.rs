//! Persistence of experiments, trials, observations and algorithm state
//! through sqlx: SQLite (the embedded default: one file, no server) and
//! PostgreSQL, behind one [`SqlStore`] that speaks the SQL both understand.
//!
//! The rules that make a crash lose nothing (DESIGN principle 1): a trial
//! is stored before it is launched, and every write is idempotent or
//! conditional — inserting a trial twice keeps the first, observations are
//! keyed by (trial, metric, step), a state change names the states it may
//! leave, and algorithm state is saved with a compare-and-set on its version.

mod rows;
mod sql;

pub use rows::{
    ExperimentRecord, ExperimentState, NewTrial, ObservationRow, TrialOutcome, TrialRow,
    state_from_str, state_to_str,
};
pub use sql::SqlStore;

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
}
