//! The caller rule: who may report, read or delete a trial's observations.
//!
//! Katib's DBManager accepts any caller for any trial name; the request
//! carries no credentials. ktune asks a [`CallerGate`] before it reads a
//! request's metrics, with the trial name and the TCP peer's address:
//!
//! * [`LocalGate`] (`ktune run`): loopback callers only, reports only for
//!   the trials of this run that are running (registered on its push
//!   endpoint), reads and deletes only for this run's experiment. Any local
//!   process of the same machine can still claim to be a trial — the same
//!   trust as the HTTP push token in the trial's environment, readable by
//!   the user's other processes: the machine is the trust boundary.
//! * the controller's gate (`src/controller/dbmanager.rs`): the peer must
//!   be one of the trial's pods (or their nodes, or anyone, as
//!   `--db-manager-callers` says).
//!
//! A refusal is a [`Refusal`], answered with its gRPC status; nothing of a
//! refused request is stored.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::metrics::push::PushServer;
use crate::store::{SqlStore, StoreError, TrialRow};

/// Why a caller was refused, as its gRPC status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such trial, or it is not running (reports): `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not speak for this trial: `PERMISSION_DENIED`.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request cannot be answered as asked (an ambiguous trial name, a
    /// delete of a running trial): `FAILED_PRECONDITION`.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something ktune depends on failed (the store, the API server):
    /// `UNAVAILABLE`, worth retrying.
    #[error("{0}")]
    Unavailable(String),
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(m) => Self::not_found(m),
            Refusal::PermissionDenied(m) => Self::permission_denied(m),
            Refusal::FailedPrecondition(m) => Self::failed_precondition(m),
            Refusal::Unavailable(m) => Self::unavailable(m),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::warn!("DBManager: the store failed: {e}");
        Self::Unavailable(format!("the store failed: {e}"))
    }
}

/// What a read or a delete is about: a stored trial.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrial {
    /// The experiment's name in the store (locally the experiment's name,
    /// in the controller `namespace/name/uid`).
    pub experiment: String,
    /// The trial as stored.
    pub trial: TrialRow,
    /// Whether it is running (registered on the push endpoint).
    pub running: bool,
}

/// What a caller wants to do with a trial's observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `GetObservationLog`.
    Read,
    /// `DeleteObservationLog`.
    Delete,
}

/// Decides whether the peer may act for a trial, and which trial a name
/// means. Implementations must answer quickly and bound their own work
/// per request (a flood of requests calls them as often).
pub trait CallerGate: Send + Sync + fmt::Debug + 'static {
    /// A report from `peer` for `trial`: the trial's key on the push
    /// endpoint, where the reports go.
    fn admit<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<String, Refusal>>;

    /// A read or a delete from `peer`: the stored trial `trial` names.
    fn locate<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
        access: Access,
    ) -> BoxFuture<'a, Result<StoredTrial, Refusal>>;
}

/// The gate of `ktune run`: one experiment, its running trials on `push`,
/// callers on this machine (loopback) only.
#[derive(Debug, Clone)]
pub struct LocalGate {
    push: Arc<PushServer>,
    store: SqlStore,
    experiment: String,
}

impl LocalGate {
    /// The gate of the run of `experiment`, whose trials register on `push`
    /// and are stored in `store`.
    #[must_use]
    pub fn new(push: Arc<PushServer>, store: SqlStore, experiment: &str) -> Self {
        Self {
            push,
            store,
            experiment: experiment.to_owned(),
        }
    }
}

/// Refuses a peer that is not on this machine.
///
/// # Errors
/// [`Refusal::PermissionDenied`] for any address but loopback.
pub fn loopback_only(peer: SocketAddr) -> Result<(), Refusal> {
    if peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(Refusal::PermissionDenied(format!(
            "{} is not on this machine: ktune run accepts reports from local trials only",
            peer.ip()
        )))
    }
}

impl CallerGate for LocalGate {
    fn admit<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<String, Refusal>> {
        Box::pin(async move {
            loopback_only(peer)?;
            if self.push.is_registered(trial) {
                Ok(trial.to_owned())
            } else {
                Err(Refusal::NotFound(format!(
                    "no trial named {trial:?} is running in this run of {:?}",
                    self.experiment
                )))
            }
        })
    }

    fn locate<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
        _access: Access,
    ) -> BoxFuture<'a, Result<StoredTrial, Refusal>> {
        Box::pin(async move {
            loopback_only(peer)?;
            let not_found = || {
                Refusal::NotFound(format!(
                    "experiment {:?} has no trial named {trial:?}",
                    self.experiment
                ))
            };
            let record = self
                .store
                .experiment(&self.experiment)
                .await?
                .ok_or_else(not_found)?;
            let row = self
                .store
                .trial_named(record.id, trial)
                .await?
                .ok_or_else(not_found)?;
            Ok(StoredTrial {
                experiment: self.experiment.clone(),
                trial: row,
                running: self.push.is_registered(trial),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_callers_pass_locally() {
        for ok in [
            "127.0.0.1:5",
            "127.0.0.77:5",
            "[::1]:5",
            "[::ffff:127.0.0.1]:5",
        ] {
            assert!(loopback_only(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in [
            "10.0.0.1:5",
            "192.168.1.2:5",
            "[2001:db8::1]:5",
            "0.0.0.0:5",
        ] {
            let e = loopback_only(refused.parse().unwrap()).unwrap_err();
            assert!(matches!(e, Refusal::PermissionDenied(_)), "{refused}");
        }
    }

    #[test]
    fn refusals_become_their_grpc_codes() {
        use tonic::Code;
        for (refusal, code) in [
            (Refusal::NotFound("a".into()), Code::NotFound),
            (
                Refusal::PermissionDenied("a".into()),
                Code::PermissionDenied,
            ),
            (
                Refusal::FailedPrecondition("a".into()),
                Code::FailedPrecondition,
            ),
            (Refusal::Unavailable("a".into()), Code::Unavailable),
        ] {
            let status = tonic::Status::from(refusal);
            assert_eq!((status.code(), status.message()), (code, "a"));
        }
    }

    #[tokio::test]
    async fn local_reports_need_a_running_trial_and_reads_a_stored_one() {
        let push = Arc::new(
            PushServer::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let gate = LocalGate::new(Arc::clone(&push), store, "exp");
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        assert!(matches!(
            gate.admit("t1", local).await,
            Err(Refusal::NotFound(_))
        ));
        push.register("t1").unwrap();
        assert_eq!(gate.admit("t1", local).await.unwrap(), "t1");
        assert!(matches!(
            gate.admit("t1", remote).await,
            Err(Refusal::PermissionDenied(_))
        ));
        assert!(matches!(
            gate.locate("t1", remote, Access::Read).await,
            Err(Refusal::PermissionDenied(_))
        ));
        // Not stored (no experiment yet): not found.
        assert!(matches!(
            gate.locate("t1", local, Access::Read).await,
            Err(Refusal::NotFound(_))
        ));
    }
}
