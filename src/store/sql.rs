//! [`SqlStore`]: one implementation for SQLite and PostgreSQL through sqlx's
//! `Any` driver, with SQL both accept (`$n` placeholders, `ON CONFLICT`),
//! and one migration folder per backend (their DDL differs only in how ids
//! are generated).

use std::collections::BTreeMap;

use ktune_algorithms::history::TrialState;
use ktune_algorithms::suggest::AlgorithmState;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::StoreError;
use super::rows::{
    ExperimentRecord, ExperimentState, NewTrial, ObservationRow, TrialOutcome, TrialRow,
    state_from_str,
};

/// Observation rows per INSERT statement (one JSON document each).
const ROWS_PER_INSERT: usize = 10_000;

/// How long a call waits for a pooled connection (or for the server to
/// accept a new one) before it fails.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// Experiments, trials and observations in SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
}

/// The columns [`experiment_from_row`] reads, for every query that builds
/// an `ExperimentRecord` (a macro so that `concat!` keeps queries static).
macro_rules! experiment_columns {
    () => {
        "id, name, spec, status, reason, created_at, completed_at, algorithm_state, \
         algorithm_state_version"
    };
}

/// The columns [`trial_from_row`] reads, for every query that builds a
/// `TrialRow`.
macro_rules! trial_columns {
    () => {
        "id, seq, name, assignment, labels, state, reason, message, objective, created_at, \
         started_at, completed_at"
    };
}

fn json_column<T: serde::de::DeserializeOwned>(
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { column, source })
}

fn to_json<T: serde::Serialize>(column: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { column, source })
}

/// What opening a store may do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Create a missing SQLite file, bring the schema up to date.
    CreateAndMigrate,
    /// Bring an existing database's schema up to date.
    Migrate,
    /// Neither: only read.
    AsItIs,
}

impl SqlStore {
    /// Opens (creating if needed) the database at `url` — `sqlite:PATH`,
    /// `sqlite::memory:` or `postgres://…` — and brings its schema up to date.
    ///
    /// SQLite runs in WAL mode with `synchronous=NORMAL`: a killed `ktune`
    /// loses nothing it committed; only an operating-system crash may lose
    /// the last transactions.
    ///
    /// # Errors
    /// [`StoreError`] when the URL is not supported, the database cannot be
    /// reached, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Open::CreateAndMigrate).await
    }

    /// Opens the database at `url` like [`connect`](Self::connect), but
    /// never creates one: a missing SQLite file is an error (PostgreSQL
    /// databases are never created either way). For commands that act on
    /// what is stored, where a mistyped path must not leave an empty database.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); a missing file is a database error.
    pub async fn connect_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Open::Migrate).await
    }

    /// Opens an existing database at `url` to read it, for the commands
    /// that only look (`status`, `trials`, `best`, `logs`): never creates
    /// a database and never changes its schema. A store written by an older
    /// ktune reads as far as its schema allows; `ktune run` upgrades it.
    ///
    /// # Errors
    /// As [`connect_existing`](Self::connect_existing).
    pub async fn open_for_reading(url: &str) -> Result<Self, StoreError> {
        Self::open(url, Open::AsItIs).await
    }

    async fn open(url: &str, how: Open) -> Result<Self, StoreError> {
        if how != Open::CreateAndMigrate
            && let Some(path) = sqlite_file(url)
            && !std::path::Path::new(path).exists()
        {
            return Err(StoreError::NoDatabase(path.to_owned()));
        }
        sqlx::any::install_default_drivers();
        let mode = if how == Open::CreateAndMigrate {
            "rwc"
        } else {
            "rw"
        };
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let with_mode = if rest.contains(":memory:") || rest.contains("mode=") {
                url.to_owned()
            } else if rest.contains('?') {
                format!("{url}&mode={mode}")
            } else {
                format!("{url}?mode={mode}")
            };
            (Backend::Sqlite, with_mode)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let memory = url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // One connection for an in-memory SQLite database: each connection
            // would otherwise see its own empty database.
            .max_connections(if memory { 1 } else { 4 })
            // While the server is down, a call fails after this long instead
            // of 30 s, so a driver riding out an outage stays responsive
            // (it retries; see `engine::driver`).
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        match (backend, how) {
            (_, Open::AsItIs) => {}
            (Backend::Sqlite, _) => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            (Backend::Postgres, _) => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    /// Whether this store is SQLite (otherwise PostgreSQL).
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// The experiment with this name.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM experiments WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(experiment_from_row).transpose()
    }

    /// Every experiment, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn experiments(&self) -> Result<Vec<ExperimentRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM experiments ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(experiment_from_row).collect()
    }

    /// Every experiment's key and creation time, oldest first: what the
    /// dashboard needs on every request to resolve addresses, without
    /// reading specs or algorithm states.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn experiment_keys(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at FROM experiments ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
            .collect()
    }

    /// Deletes the experiment `name` — its observations, trials, row and
    /// lease — in one transaction, if the lease is `token`'s (take it with
    /// [`acquire_lease`](Self::acquire_lease) first, so no driver is
    /// writing meanwhile). Returns what was removed, `None` when there was
    /// no such experiment (the lease is released either way).
    ///
    /// # Errors
    /// [`StoreError::LeaseNotHeld`] when the lease is not `token`'s;
    /// [`StoreError`] on a database error.
    pub async fn delete_experiment(
        &self,
        name: &str,
        token: &str,
    ) -> Result<Option<Deleted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(super::lease::RELEASE_LEASE)
            .bind(name)
            .bind(token)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if held != 1 {
            return Err(StoreError::LeaseNotHeld(name.to_owned()));
        }
        let observations = sqlx::query(
            "DELETE FROM observations WHERE trial_id IN (SELECT t.id FROM trials t \
             JOIN experiments e ON e.id = t.experiment_id WHERE e.name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let trials = sqlx::query(
            "DELETE FROM trials WHERE experiment_id IN (SELECT id FROM experiments WHERE name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let experiments = sqlx::query("DELETE FROM experiments WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((experiments == 1).then_some(Deleted {
            trials,
            observations,
        }))
    }

    /// The experiment's trials written after revision `since` (every
    /// trial for a negative `since`), in creation order, and the highest
    /// revision among them (`since` when none changed): what a reader that
    /// keeps a copy needs to bring it up to date.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn trials_since(
        &self,
        experiment_id: i64,
        since: i64,
    ) -> Result<(Vec<TrialRow>, i64), StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            ", revision FROM trials WHERE experiment_id = $1 AND revision > $2 ORDER BY seq"
        ))
        .bind(experiment_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut revision = since;
        let mut trials = Vec::with_capacity(rows.len());
        for row in &rows {
            revision = revision.max(row.try_get("revision")?);
            trials.push(trial_from_row(row)?);
        }
        Ok((trials, revision))
    }

    /// Finds a trial by name in any experiment: the experiment's name and
    /// the trial (the first match, oldest experiment first).
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn find_trial(&self, name: &str) -> Result<Option<(String, TrialRow)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            ", (SELECT e.name FROM experiments e WHERE e.id = trials.experiment_id) \
                 AS experiment FROM trials WHERE name = $1 ORDER BY experiment_id LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("experiment")?, trial_from_row(&r)?)))
            .transpose()
    }

    /// Every stored trial named `name`, with its experiment's name, oldest
    /// experiment first (at most `limit`): Katib's gRPC API names a trial
    /// without its namespace, so the caller must see whether a name is
    /// ambiguous.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn trials_named(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<(String, TrialRow)>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            ", (SELECT e.name FROM experiments e WHERE e.id = trials.experiment_id) \
                 AS experiment FROM trials WHERE name = $1 ORDER BY experiment_id LIMIT $2"
        ))
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("experiment")?, trial_from_row(r)?)))
            .collect()
    }

    /// Deletes a trial's observations (Katib's `DeleteObservationLog`);
    /// returns how many rows went. The trial itself, its state and
    /// objective stay.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn delete_observations(&self, trial_id: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM observations WHERE trial_id = $1")
            .bind(trial_id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// The column the trial table is ordered by. A closed set, so that only
/// fixed SQL text ever reaches `ORDER BY` (user input picks a variant, it
/// is never spliced in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrialSort {
    /// Creation order (the trial number).
    #[default]
    Seq,
    /// The trial's name.
    Name,
    /// The state word.
    State,
    /// The objective; trials without one come last either way.
    Objective,
    /// When it completed; unfinished trials come last either way.
    Completed,
}

impl TrialSort {
    /// The `ORDER BY` text, ties broken by trial number so pages are stable.
    fn order_by(self, descending: bool) -> &'static str {
        match (self, descending) {
            (Self::Seq, false) => "seq ASC",
            (Self::Seq, true) => "seq DESC",
            (Self::Name, false) => "name ASC, seq ASC",
            (Self::Name, true) => "name DESC, seq ASC",
            (Self::State, false) => "state ASC, seq ASC",
            (Self::State, true) => "state DESC, seq ASC",
            (Self::Objective, false) => "objective IS NULL, objective ASC, seq ASC",
            (Self::Objective, true) => "objective IS NULL, objective DESC, seq ASC",
            (Self::Completed, false) => "completed_at IS NULL, completed_at ASC, seq ASC",
            (Self::Completed, true) => "completed_at IS NULL, completed_at DESC, seq ASC",
        }
    }
}

/// What [`SqlStore::delete_experiment`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Trial rows.
    pub trials: u64,
    /// Observation rows.
    pub observations: u64,
}

/// Which trials a page shows and how they are ordered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrialQuery {
    /// Only trials in this state.
    pub state: Option<TrialState>,
    /// Only trials whose name contains this text (case-insensitive for ASCII).
    pub name_contains: Option<String>,
    /// The order.
    pub sort: TrialSort,
    /// Largest first.
    pub descending: bool,
    /// At most this many rows.
    pub limit: i64,
    /// Rows skipped before the first one returned.
    pub offset: i64,
}

/// One page of trials and how many match the filter in all.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialPage {
    /// The page's trials, in the requested order.
    pub rows: Vec<TrialRow>,
    /// How many trials match the filter (every page together).
    pub total: i64,
}

/// Counters that change whenever anything a dashboard shows of an
/// experiment changes: cheap to read together for every experiment in one
/// round trip, so a watcher can poll them instead of reloading trials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMark {
    /// The experiment's id.
    pub experiment_id: i64,
    /// The experiment's name.
    pub experiment: String,
    /// The experiment's stored state word.
    pub status: String,
    /// Its revision: bumped by every write that changes its trials.
    pub revision: i64,
    /// How many observations its running trials have stored.
    pub running_observations: i64,
}

/// `text` as a `LIKE` pattern matching it anywhere, with `\` escaping the
/// pattern characters it contains.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl SqlStore {
    /// One page of an experiment's trials: filtered, ordered and windowed
    /// in SQL, so a dashboard stays fast however many trials there are.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn trial_page(
        &self,
        experiment_id: i64,
        query: &TrialQuery,
    ) -> Result<TrialPage, StoreError> {
        // Only generated placeholders and fixed text are spliced in; every
        // value is bound.
        let mut filter = String::from("experiment_id = $1");
        let mut next = 2;
        if query.state.is_some() {
            filter.push_str(&format!(" AND state = ${next}"));
            next += 1;
        }
        if query.name_contains.is_some() {
            filter.push_str(&format!(" AND LOWER(name) LIKE ${next} ESCAPE '\\'"));
            next += 1;
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM trials WHERE {filter}");
        let rows_sql = format!(
            "SELECT {} FROM trials WHERE {filter} ORDER BY {} LIMIT ${next} OFFSET ${}",
            trial_columns!(),
            query.sort.order_by(query.descending),
            next + 1
        );
        let pattern = query.name_contains.as_deref().map(contains_pattern);
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql)).bind(experiment_id);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(rows_sql)).bind(experiment_id);
        if let Some(state) = query.state {
            count = count.bind(state.as_str());
            rows = rows.bind(state.as_str());
        }
        if let Some(pattern) = &pattern {
            count = count.bind(pattern.clone());
            rows = rows.bind(pattern.clone());
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let rows = rows
            .bind(query.limit.max(0))
            .bind(query.offset.max(0))
            .fetch_all(&self.pool)
            .await?;
        Ok(TrialPage {
            rows: rows.iter().map(trial_from_row).collect::<Result<_, _>>()?,
            total,
        })
    }

    /// One trial of an experiment, by name.
    ///
    /// # Errors
    /// [`StoreError`] on a database error or corrupt row.
    pub async fn trial_named(
        &self,
        experiment_id: i64,
        name: &str,
    ) -> Result<Option<TrialRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            " FROM trials WHERE experiment_id = $1 AND name = $2"
        ))
        .bind(experiment_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(trial_from_row).transpose()
    }

    /// The ids of an experiment's trials that reported `metric` at least
    /// once, by id: one index probe per trial, never a scan of every
    /// observation.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn trials_reporting(
        &self,
        experiment_id: i64,
        metric: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id AS id FROM trials t WHERE t.experiment_id = $1 AND EXISTS \
             (SELECT 1 FROM observations o WHERE o.trial_id = t.id AND o.metric = $2) \
             ORDER BY t.id",
        )
        .bind(experiment_id)
        .bind(metric)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// One metric's numeric reports for the given trials, as (trial id,
    /// step, number) by trial then step: the learning curves a chart
    /// draws, in one query instead of one per trial. Unknown ids are
    /// skipped; no ids, no rows.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn metric_curves(
        &self,
        trial_ids: &[i64],
        metric: &str,
    ) -> Result<Vec<(i64, i64, Option<f64>)>, StoreError> {
        let mut out = Vec::new();
        // Bounded statements: SQLite caps the number of bound values.
        for chunk in trial_ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT trial_id, step, number FROM observations \
                 WHERE metric = $1 AND trial_id IN ({}) ORDER BY trial_id, step",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(metric);
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.push((
                    r.try_get("trial_id")?,
                    r.try_get("step")?,
                    r.try_get("number")?,
                ));
            }
        }
        out.sort_by_key(|(trial, step, _)| (*trial, *step));
        Ok(out)
    }

    /// Every experiment's [`ChangeMark`], by id, in two queries that read
    /// one row per experiment and the running trials' observations (by
    /// index), whatever the number of finished trials.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn change_marks(&self) -> Result<Vec<ChangeMark>, StoreError> {
        let rows = sqlx::query("SELECT id, name, status, revision FROM experiments ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let observed = sqlx::query(
            "SELECT t.experiment_id AS id, COUNT(*) AS n FROM trials t \
             JOIN observations o ON o.trial_id = t.id WHERE t.state = $1 GROUP BY t.experiment_id",
        )
        .bind(TrialState::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut running = BTreeMap::new();
        for r in &observed {
            running.insert(r.try_get::<i64, _>("id")?, r.try_get::<i64, _>("n")?);
        }
        rows.iter()
            .map(|r| {
                let experiment_id: i64 = r.try_get("id")?;
                Ok(ChangeMark {
                    experiment_id,
                    experiment: r.try_get("name")?,
                    status: r.try_get("status")?,
                    revision: r.try_get("revision")?,
                    running_observations: running.get(&experiment_id).copied().unwrap_or(0),
                })
            })
            .collect()
    }
}

/// A store URL fit for messages and logs: a PostgreSQL URL's password is
/// shown as `***`.
#[must_use]
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The file of a `sqlite:PATH` (or `sqlite://PATH`) URL; `None` for an
/// in-memory database or another scheme.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// A float bound as text and cast in SQL. sqlx 0.9's `Any` driver sends a
/// NULL `f64` to PostgreSQL as `float4` (its Null(Double)/Null(Real) mapping
/// is swapped), so a statement first prepared with a NULL then fails when
/// given a number ("incorrect binary data format"). Text NULLs and text
/// numbers share one type; Rust's shortest round-trip formatting keeps the
/// value exact. Non-finite values are stored as NULL (the text column keeps them).
fn float_text(value: Option<f64>) -> Option<String> {
    value.filter(|v| v.is_finite()).map(|v| v.to_string())
}

/// Bumps the revision of the experiment `which` selects (`$1`, or a
/// subquery over `$1`) inside `tx` and returns the new value, for the
/// trial rows the transaction writes; `None` when there is no such
/// experiment. Locking the experiment's row first orders concurrent
/// writers, so a reader that sees revision n committed also sees every
/// revision below it.
async fn bump_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    which: &'static str,
    id: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = format!(
        "UPDATE experiments SET revision = revision + 1 WHERE id = {which} RETURNING revision"
    );
    // Only fixed text is spliced in; the id is bound.
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get("revision")).transpose()?)
}

fn experiment_from_row(row: &AnyRow) -> Result<ExperimentRecord, StoreError> {
    let spec: String = row.try_get("spec")?;
    let status: String = row.try_get("status")?;
    let state: Option<String> = row.try_get("algorithm_state")?;
    Ok(ExperimentRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: json_column("experiments.spec", &spec)?,
        state: ExperimentState::parse(&status)?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        algorithm_state: state
            .map(|s| json_column("experiments.algorithm_state", &s))
            .transpose()?,
        algorithm_state_version: row.try_get("algorithm_state_version")?,
    })
}

fn trial_from_row(row: &AnyRow) -> Result<TrialRow, StoreError> {
    let assignment: String = row.try_get("assignment")?;
    let labels: String = row.try_get("labels")?;
    let state: String = row.try_get("state")?;
    Ok(TrialRow {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        name: row.try_get("name")?,
        assignment: json_column("trials.assignment", &assignment)?,
        labels: json_column::<BTreeMap<String, String>>("trials.labels", &labels)?,
        state: state_from_str(&state)?,
        reason: row.try_get("reason")?,
        message: row.try_get("message")?,
        objective: row.try_get("objective")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

impl super::Store for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        spec: &serde_json::Value,
        now: i64,
    ) -> Result<(ExperimentRecord, bool), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO experiments (name, spec, status, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(to_json("experiments.spec", spec)?)
        .bind(ExperimentState::Created.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let record = self
            .experiment(name)
            .await?
            .ok_or_else(|| StoreError::NoSuchExperiment(name.to_owned()))?;
        Ok((record, inserted == 1))
    }

    async fn set_experiment_spec(
        &self,
        experiment_id: i64,
        spec: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE experiments SET spec = $1 WHERE id = $2")
            .bind(to_json("experiments.spec", spec)?)
            .bind(experiment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_experiment_state(
        &self,
        experiment_id: i64,
        state: ExperimentState,
        reason: &str,
        completed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE experiments SET status = $1, reason = $2, completed_at = $3 WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(completed_at)
        .bind(experiment_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn save_algorithm_state(
        &self,
        experiment_id: i64,
        expected_version: i64,
        state: &AlgorithmState,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE experiments SET algorithm_state = $1, algorithm_state_version = $2 \
             WHERE id = $3 AND algorithm_state_version = $4",
        )
        .bind(to_json("experiments.algorithm_state", state)?)
        .bind(expected_version.saturating_add(1))
        .bind(experiment_id)
        .bind(expected_version)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn insert_trials(
        &self,
        experiment_id: i64,
        trials: &[NewTrial],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revision = bump_revision(&mut tx, "$1", experiment_id)
            .await?
            .ok_or(StoreError::NoSuchExperimentId(experiment_id))?;
        let mut inserted = 0;
        for trial in trials {
            inserted += sqlx::query(
                "INSERT INTO trials (experiment_id, seq, name, assignment, labels, state, created_at, revision) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7 FROM trials WHERE experiment_id = $1 \
                 ON CONFLICT (experiment_id, name) DO NOTHING",
            )
            .bind(experiment_id)
            .bind(&trial.name)
            .bind(to_json("trials.assignment", &trial.assignment)?)
            .bind(to_json("trials.labels", &trial.labels)?)
            .bind(TrialState::Pending.as_str())
            .bind(now)
            .bind(revision)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn trials(&self, experiment_id: i64) -> Result<Vec<TrialRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            " FROM trials WHERE experiment_id = $1 ORDER BY seq"
        ))
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trial_from_row).collect()
    }

    async fn transition(
        &self,
        trial_id: i64,
        from: &[TrialState],
        outcome: &TrialOutcome,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        // The trial's experiment, found in the same statement.
        let Some(revision) = bump_revision(
            &mut tx,
            "(SELECT experiment_id FROM trials WHERE id = $1)",
            trial_id,
        )
        .await?
        else {
            return Ok(false);
        };
        // $1..$8 are the fields below; the states it may leave follow from $9.
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 9)).collect();
        let sql = format!(
            "UPDATE trials SET state = $1, reason = $2, message = $3, objective = COALESCE(CAST($4 AS DOUBLE PRECISION), objective), \
             started_at = CASE WHEN $1 = 'Running' AND started_at IS NULL THEN $5 ELSE started_at END, \
             completed_at = CASE WHEN $6 = 1 THEN $5 ELSE completed_at END, revision = $8 \
             WHERE id = $7 AND state IN ({})",
            placeholders.join(", ")
        );
        // Only generated placeholders are spliced in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(outcome.state.as_str())
            .bind(&outcome.reason)
            .bind(&outcome.message)
            .bind(float_text(outcome.objective))
            .bind(outcome.at)
            .bind(i64::from(outcome.state.is_terminal()))
            .bind(trial_id)
            .bind(revision);
        for state in from {
            query = query.bind(state.as_str());
        }
        let moved = query.execute(&mut *tx).await?.rows_affected() == 1;
        // Not moved: dropping the transaction rolls the bump back too.
        if moved {
            tx.commit().await?;
        }
        Ok(moved)
    }

    async fn append_observations(
        &self,
        trial_id: i64,
        rows: &[ObservationRow],
    ) -> Result<u64, StoreError> {
        // A whole batch travels as one JSON parameter and is unpacked by the
        // database (`json_each` / `jsonb_to_recordset`): one statement and
        // two bound values per batch, instead of six values per row, which
        // is what makes batched inserts fast through sqlx.
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT INTO observations (trial_id, metric, step, value, number, time) \
                 SELECT $1, json_extract(j.value, '$.metric'), json_extract(j.value, '$.step'), \
                 json_extract(j.value, '$.value'), json_extract(j.value, '$.number'), \
                 json_extract(j.value, '$.time') FROM json_each($2) AS j WHERE true \
                 ON CONFLICT (trial_id, metric, step) DO NOTHING"
            }
            Backend::Postgres => {
                "INSERT INTO observations (trial_id, metric, step, value, number, time) \
                 SELECT $1, r.metric, r.step, r.value, r.number, r.time \
                 FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS r(metric text, step bigint, \
                 value text, number double precision, time bigint) \
                 ON CONFLICT (trial_id, metric, step) DO NOTHING"
            }
        };
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let batch: Vec<serde_json::Value> = chunk
                .iter()
                .map(|row| {
                    serde_json::json!({
                        "metric": row.metric,
                        "step": row.step,
                        "value": row.value,
                        // Non-finite numbers are stored as NULL; the text keeps them.
                        "number": row.number.filter(|n| n.is_finite()),
                        "time": row.time,
                    })
                })
                .collect();
            inserted += sqlx::query(sql)
                .bind(trial_id)
                .bind(to_json("observations", &batch)?)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn observations(&self, trial_id: i64) -> Result<Vec<ObservationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT metric, step, value, number, time FROM observations WHERE trial_id = $1 \
             ORDER BY metric, step",
        )
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ObservationRow {
                    metric: r.try_get("metric")?,
                    step: r.try_get("step")?,
                    value: r.try_get("value")?,
                    number: r.try_get("number")?,
                    time: r.try_get("time")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn the_shown_store_url_hides_a_password() {
        assert_eq!(
            without_password("postgres://ktune:s3cr@t@db:5432/k"),
            "postgres://ktune:***@db:5432/k"
        );
        assert_eq!(
            without_password("postgres://ktune@db/k"),
            "postgres://ktune@db/k"
        );
        assert_eq!(without_password("sqlite:ktune.db"), "sqlite:ktune.db");
    }
}
