//! Driver leases: at most one process drives an experiment at a time.
//!
//! A `ktune run` takes its experiment's lease before it reads or writes the
//! experiment, renews it while it runs (a heartbeat, as Optuna's RDB
//! storage does for trials) and releases it when it exits. A second run
//! of the same experiment on the same store is refused, naming the holder.
//! A holder that died without releasing loses the lease when it expires —
//! at once when it ran on this machine and its process is gone.
//!
//! Every decision is one SQL statement judged by the database's clock, so
//! two drivers racing for a free or expired lease cannot both win, and
//! hosts with skewed clocks agree on when a lease expires.

use std::future::Future;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use super::sql::{Backend, SqlStore};

/// Who holds, or asks for, a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Unique to one process run: the lease is this holder's only while the
    /// stored token is this one.
    pub token: String,
    /// The machine's name, for people.
    pub host: String,
    /// The machine's boot and PID namespace: two holders with the same node
    /// see the same process ids (empty where unknown: never compared).
    pub node: String,
    /// The holder's process id.
    pub pid: i64,
}

impl LeaseHolder {
    /// This process, with a token no other process run shares.
    #[must_use]
    pub fn this_process() -> Self {
        let pid = i64::from(std::process::id());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let host = host_name();
        Self {
            token: format!("{host}/{pid}/{nanos:x}"),
            host,
            node: node_id(),
            pid,
        }
    }

    /// Whether this holder is certainly gone: it ran on this node (same
    /// boot, same PID namespace) and its process no longer runs (or is a
    /// zombie). Anything uncertain counts as alive — this very process
    /// too (another run inside it, or a dead holder's reused id) — and
    /// that lease is then waited out.
    #[must_use]
    pub fn is_gone(&self) -> bool {
        let here = node_id();
        if self.node.is_empty() || self.node != here {
            return false;
        }
        let Ok(raw) = i32::try_from(self.pid) else {
            return false;
        };
        if raw <= 0 || self.pid == i64::from(std::process::id()) {
            return false;
        }
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
            Err(nix::errno::Errno::ESRCH) => true,
            Ok(()) => is_zombie(raw),
            Err(_) => false,
        }
    }
}

/// The machine's name: the kernel's, else `/etc/hostname`, else "unknown".
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This boot and PID namespace: process ids are comparable only between
/// processes that share both (containers on one host share the boot but
/// not the namespace). Empty where either is unknown.
fn node_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default();
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.is_empty() || namespace.is_empty() {
        String::new()
    } else {
        format!("{boot}/{namespace}")
    }
}

/// Whether process `pid` has exited but not been waited for.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        // The state follows the command name's closing parenthesis.
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub holder: LeaseHolder,
    /// When the holder took it (Unix ms, database clock).
    pub acquired_at: i64,
    /// The holder's last heartbeat.
    pub heartbeat_at: i64,
    /// When it expires unless renewed.
    pub expires_at: i64,
    /// The database's clock when this was read.
    pub now: i64,
}

impl Lease {
    /// The holder, for a refusal: host, pid, since when, how fresh.
    #[must_use]
    pub fn describe(&self) -> String {
        let since = jiff::Timestamp::from_millisecond(self.acquired_at)
            .map_or_else(|_| self.acquired_at.to_string(), |t| t.to_string());
        let beat = (self.now - self.heartbeat_at).max(0) / 1000;
        let left = (self.expires_at - self.now).max(0) / 1000;
        format!(
            "host {}, pid {}, since {since}; last heartbeat {beat} s ago, expires in {left} s unless renewed",
            self.holder.host, self.holder.pid
        )
    }
}

/// The database clock in Unix milliseconds, as SQL.
fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4)
}

impl SqlStore {
    /// Takes the lease of `experiment` for `me` for `ttl`, if it is free,
    /// expired, already `me`'s, or held by a holder [`LeaseHolder::is_gone`].
    /// Returns `None` when taken, else the lease that stands in the way.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn acquire_lease(
        &self,
        experiment: &str,
        me: &LeaseHolder,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if self.try_take(experiment, me, ttl, "").await? {
            return Ok(None);
        }
        let Some(held) = self.lease(experiment).await? else {
            // Released between the two statements: try once more.
            return Ok(if self.try_take(experiment, me, ttl, "").await? {
                None
            } else {
                self.lease(experiment).await?
            });
        };
        if held.holder.is_gone()
            && self
                .try_take(experiment, me, ttl, &held.holder.token)
                .await?
        {
            tracing::info!(
                experiment,
                "took over the lease of {}, whose process is gone",
                held.describe()
            );
            return Ok(None);
        }
        Ok(Some(held))
    }

    /// One atomic attempt: insert the lease, or replace the stored one if
    /// it expired, is `me`'s, or is `dead`'s (a token, or empty for none).
    async fn try_take(
        &self,
        experiment: &str,
        me: &LeaseHolder,
        ttl: Duration,
        dead: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO driver_leases (experiment, holder, host, node, pid, acquired_at, heartbeat_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, clock.n, clock.n, clock.n + $6 FROM (SELECT {} AS n) AS clock WHERE true \
             ON CONFLICT (experiment) DO UPDATE SET holder = excluded.holder, host = excluded.host, \
             node = excluded.node, pid = excluded.pid, acquired_at = excluded.acquired_at, \
             heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at \
             WHERE driver_leases.expires_at <= excluded.acquired_at \
             OR driver_leases.holder = excluded.holder OR driver_leases.holder = $7",
            now_sql(self.backend)
        );
        // Only fixed text is spliced in; every value is bound.
        let taken = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(experiment)
            .bind(&me.token)
            .bind(&me.host)
            .bind(&me.node)
            .bind(me.pid)
            .bind(millis(ttl))
            .bind((!dead.is_empty()).then_some(dead))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(taken == 1)
    }

    /// The lease of `experiment`, if any holder has one (expired or not).
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn lease(&self, experiment: &str) -> Result<Option<Lease>, StoreError> {
        let sql = format!(
            "SELECT holder, host, node, pid, acquired_at, heartbeat_at, expires_at, \
             {} AS now FROM driver_leases WHERE experiment = $1",
            now_sql(self.backend)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(experiment)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(lease_from_row).transpose()
    }

    /// Extends `token`'s lease of `experiment` to `ttl` from now; returns
    /// false when the lease is no longer `token`'s (another driver took it
    /// after it expired, or it was deleted). An expired lease nobody took
    /// is still the holder's and is renewed.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn renew_lease(
        &self,
        experiment: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_sql(self.backend);
        let sql = format!(
            "UPDATE driver_leases SET heartbeat_at = {now}, expires_at = {now} + $3 \
             WHERE experiment = $1 AND holder = $2"
        );
        let renewed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(experiment)
            .bind(token)
            .bind(millis(ttl))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(renewed == 1)
    }

    /// Gives up `token`'s lease of `experiment`; returns whether it was
    /// still `token`'s.
    ///
    /// # Errors
    /// [`StoreError`] on a database error.
    pub async fn release_lease(&self, experiment: &str, token: &str) -> Result<bool, StoreError> {
        let released = sqlx::query(RELEASE_LEASE)
            .bind(experiment)
            .bind(token)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(released == 1)
    }
}

fn lease_from_row(row: &AnyRow) -> Result<Lease, StoreError> {
    Ok(Lease {
        holder: LeaseHolder {
            token: row.try_get("holder")?,
            host: row.try_get("host")?,
            node: row.try_get("node")?,
            pid: row.try_get("pid")?,
        },
        acquired_at: row.try_get("acquired_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        expires_at: row.try_get("expires_at")?,
        now: row.try_get("now")?,
    })
}

/// Deletes a holder's lease (`$1` the experiment, `$2` the holder's token).
pub(super) const RELEASE_LEASE: &str =
    "DELETE FROM driver_leases WHERE experiment = $1 AND holder = $2";

/// What a driver needs to hold its experiment's lease. [`SqlStore`]
/// implements it; see its methods of the same names.
pub trait Leases: Sync {
    /// Takes the lease, or returns the lease that stands in the way.
    fn acquire_lease(
        &self,
        experiment: &str,
        me: &LeaseHolder,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Extends the lease; false when it is no longer `token`'s.
    fn renew_lease(
        &self,
        experiment: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease up.
    fn release_lease(
        &self,
        experiment: &str,
        token: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl Leases for SqlStore {
    async fn acquire_lease(
        &self,
        experiment: &str,
        me: &LeaseHolder,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        Self::acquire_lease(self, experiment, me, ttl).await
    }

    async fn renew_lease(
        &self,
        experiment: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Self::renew_lease(self, experiment, token, ttl).await
    }

    async fn release_lease(&self, experiment: &str, token: &str) -> Result<bool, StoreError> {
        Self::release_lease(self, experiment, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store as _;

    fn holder(token: &str, pid: i64, node: &str) -> LeaseHolder {
        LeaseHolder {
            token: token.to_owned(),
            host: "elsewhere".to_owned(),
            node: node.to_owned(),
            pid,
        }
    }

    #[test]
    fn only_a_holder_on_this_node_whose_process_is_gone_counts_as_gone() {
        let here = LeaseHolder::this_process();
        // This very process is alive (whatever the token).
        assert!(!holder("x", here.pid, &here.node).is_gone());
        // Another node's process ids mean nothing here.
        assert!(!holder("x", 1, "another-boot/pid:[1]").is_gone());
        assert!(!holder("x", 999_999_999, "").is_gone());
        // pid 1 runs here.
        assert!(!holder("x", 1, &here.node).is_gone());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i64::from(child.id());
        child.wait().unwrap();
        assert!(
            !here.node.is_empty(),
            "boot id and pid namespace unreadable"
        );
        assert!(holder("x", pid, &here.node).is_gone());
    }

    #[tokio::test]
    async fn a_lease_is_taken_once_renewed_by_its_holder_and_released() {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let ttl = Duration::from_secs(30);
        let me = holder("me", 1, "");
        let other = holder("other", 2, "");
        assert_eq!(store.acquire_lease("e", &me, ttl).await.unwrap(), None);
        // Taking it again is fine for the holder, refused for anyone else.
        assert_eq!(store.acquire_lease("e", &me, ttl).await.unwrap(), None);
        let held = store
            .acquire_lease("e", &other, ttl)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.holder, me);
        assert!(held.describe().contains("host elsewhere, pid 1, since "));
        assert!(store.renew_lease("e", "me", ttl).await.unwrap());
        assert!(!store.renew_lease("e", "other", ttl).await.unwrap());
        assert!(!store.release_lease("e", "other").await.unwrap());
        assert!(store.release_lease("e", "me").await.unwrap());
        assert_eq!(store.acquire_lease("e", &other, ttl).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_lease_goes_to_the_next_driver_and_its_holder_knows() {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let me = holder("me", 1, "");
        let other = holder("other", 2, "");
        assert_eq!(
            store.acquire_lease("e", &me, Duration::ZERO).await.unwrap(),
            None
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let ttl = Duration::from_secs(30);
        assert_eq!(store.acquire_lease("e", &other, ttl).await.unwrap(), None);
        assert!(!store.renew_lease("e", "me", ttl).await.unwrap());
        assert_eq!(store.lease("e").await.unwrap().unwrap().holder, other);
    }

    #[tokio::test]
    async fn an_experiment_is_deleted_only_under_its_lease_and_wholly() {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let spec = serde_json::json!({"spec": {}});
        let (e, _) = store.create_experiment("e", &spec, 0).await.unwrap();
        let (other, _) = store.create_experiment("other", &spec, 0).await.unwrap();
        let trial = crate::store::NewTrial {
            name: "t".into(),
            assignment: Vec::new(),
            labels: std::collections::BTreeMap::new(),
        };
        for id in [e.id, other.id] {
            store
                .insert_trials(id, std::slice::from_ref(&trial), 0)
                .await
                .unwrap();
        }
        let t = store.trials(e.id).await.unwrap()[0].id;
        let report = crate::store::ObservationRow {
            metric: "loss".into(),
            step: 1,
            value: "1".into(),
            number: Some(1.0),
            time: None,
        };
        store.append_observations(t, &[report]).await.unwrap();
        let me = holder("me", 1, "");
        let ttl = Duration::from_secs(30);
        assert!(matches!(
            store.delete_experiment("e", "me").await,
            Err(StoreError::LeaseNotHeld(_))
        ));
        assert_eq!(store.acquire_lease("e", &me, ttl).await.unwrap(), None);
        let deleted = store.delete_experiment("e", "me").await.unwrap();
        assert_eq!(
            deleted,
            Some(crate::store::Deleted {
                trials: 1,
                observations: 1
            })
        );
        assert!(store.experiment("e").await.unwrap().is_none());
        assert!(store.observations(t).await.unwrap().is_empty());
        assert_eq!(store.lease("e").await.unwrap(), None, "released with it");
        assert_eq!(store.trials(other.id).await.unwrap().len(), 1);
    }
}
