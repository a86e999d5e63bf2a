//! Katib's gRPC metrics API, `api.v1.beta1.DBManager`: another transport
//! of the Push collector ([`super::kinds::push`]), for training code that
//! calls `kubeflow.katib.report_metrics(metrics, db_manager_address=…)`
//! (a direct gRPC `ReportObservationLog`) or
//! `KatibClient.get_trial_metrics(trial, db_manager_address=…)`
//! (`GetObservationLog`). See docs/katib-metrics-grpc.md.
//!
//! * [`messages`]: the protobuf messages, hand-written prost structs of
//!   `proto/katib_api.proto` (Katib's names and field numbers);
//! * [`service`]: the tonic service routing [`REPORT_PATH`], [`GET_PATH`]
//!   and [`DELETE_PATH`];
//! * [`gate`]: the caller rule ([`CallerGate`]; Katib accepts anyone, ktune
//!   does not);
//! * [`logs`]: checking reported logs, filtering and formatting stored ones;
//! * [`client`]: a small client with a chosen source address, for tests.
//!
//! A report for a trial the gate admits lands in the same per-trial queue
//! of the [`PushServer`] that an HTTP push lands in
//! ([`PushServer::offer`]), under the same [`super::push::PushLimits`], so
//! the Push collector drains and stores it exactly like an HTTP push.
//! Reads and deletes go to the store.
//!
//! Everything a caller can make ktune hold is bounded
//! ([`DbManagerLimits`]): the size of a message, the logs of one request,
//! the requests in flight per connection and their time, the connections
//! per peer address and in all, and a connection's age. A flood from one
//! address cannot take the places of another address's connections.

pub mod client;
pub mod gate;
pub mod logs;
pub mod messages;
mod service;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::server::{Connected, TcpConnectInfo};

pub use gate::{Access, CallerGate, LocalGate, Refusal, StoredTrial};

use super::push::PushServer;
use crate::store::SqlStore;

/// The gRPC path of `ReportObservationLog`.
pub const REPORT_PATH: &str = "/api.v1.beta1.DBManager/ReportObservationLog";
/// The gRPC path of `GetObservationLog`.
pub const GET_PATH: &str = "/api.v1.beta1.DBManager/GetObservationLog";
/// The gRPC path of `DeleteObservationLog`.
pub const DELETE_PATH: &str = "/api.v1.beta1.DBManager/DeleteObservationLog";

/// The environment variable holding the address (`host:port`) a local
/// trial passes to `katib.report_metrics(…, db_manager_address=…)`.
pub const DB_MANAGER_ADDRESS_ENV: &str = "KTUNE_DB_MANAGER_ADDRESS";

/// Bounds on what callers can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbManagerLimits {
    /// Largest request message (bytes, after decompression): the push
    /// endpoint's body limit, 1 MiB by default.
    pub max_message_bytes: usize,
    /// Largest reply (a `GetObservationLog` of a long trial), 64 MiB.
    pub max_reply_bytes: usize,
    /// Most metric logs in one report (10 000).
    pub max_logs_per_request: usize,
    /// Requests served at once on one connection (HTTP/2 streams, 16).
    pub max_streams_per_connection: u32,
    /// Connections open at once from one peer address (32).
    pub max_connections_per_peer: usize,
    /// Connections open at once in all (512).
    pub max_connections: usize,
    /// How long one request may take (10 s).
    pub request_timeout: Duration,
    /// How long a connection may live (10 min; then it is asked to close,
    /// and clients reconnect).
    pub max_connection_age: Duration,
}

impl Default for DbManagerLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_reply_bytes: 64 * 1024 * 1024,
            max_logs_per_request: 10_000,
            max_streams_per_connection: 16,
            max_connections_per_peer: 32,
            max_connections: 512,
            request_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(600),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DbManagerError {
    /// The address could not be listened on.
    #[error("cannot listen on {addr} for Katib's DBManager API: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

/// The DBManager server, serving on a tokio task until dropped or shut down.
#[derive(Debug)]
pub struct DbManagerServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DbManagerServer {
    /// Listens on `addr` and serves reports for the trials `gate` admits
    /// into `push`'s queues, and reads and deletes from `store`. Must be
    /// called within a tokio runtime.
    ///
    /// # Errors
    /// [`DbManagerError::Bind`] when `addr` cannot be listened on.
    pub async fn bind(
        addr: SocketAddr,
        gate: Arc<dyn CallerGate>,
        push: Arc<PushServer>,
        store: SqlStore,
        limits: DbManagerLimits,
    ) -> Result<Self, DbManagerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DbManagerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| DbManagerError::Bind { addr, source })?;
        let service = service::DbManagerService {
            handlers: Arc::new(service::Handlers {
                gate,
                push,
                store,
                limits,
            }),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .timeout(limits.request_timeout)
            .concurrency_limit_per_connection(limits.max_streams_per_connection as usize)
            .max_concurrent_streams(limits.max_streams_per_connection)
            .max_connection_age(limits.max_connection_age)
            .max_connection_age_grace(Duration::from_secs(10))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .http2_max_header_list_size(16 * 1024)
            .http2_max_pending_accept_reset_streams(Some(64))
            .serve_with_incoming_shutdown(service, incoming(listener, limits), async move {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!("Katib DBManager API stopped: {e}");
            }
        });
        tracing::debug!(addr = %local, "Katib DBManager API listening");
        Ok(Self {
            addr: local,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address listened on (the actual port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening; requests in progress are answered (for at most
    /// 5 s, then dropped).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for DbManagerServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct PerPeer(Mutex<HashMap<IpAddr, usize>>);

impl PerPeer {
    /// Counts a connection from `ip` unless it already has `max`.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: Arc::clone(self),
            ip,
        })
    }
}

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
struct PeerSlot {
    peers: Arc<PerPeer>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection holding its places under the caps.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    info: TcpConnectInfo,
    _slot: PeerSlot,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The accepted connections, under the caps: a peer address at its cap
/// has its new connection closed at once (it cannot crowd out other
/// addresses); at the overall cap, accepting waits until one closes.
/// Accept errors (out of descriptors) are logged and waited out, never
/// ending the server.
fn incoming(
    listener: TcpListener,
    limits: DbManagerLimits,
) -> impl futures::Stream<Item = Result<Conn, io::Error>> {
    let all = Arc::new(Semaphore::new(limits.max_connections));
    let peers = Arc::new(PerPeer::default());
    futures::stream::unfold(
        (listener, all, peers),
        move |(listener, all, peers)| async move {
            loop {
                let Ok(permit) = Arc::clone(&all).acquire_owned().await else {
                    return None;
                };
                let (io, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("DBManager accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = peers.enter(peer.ip(), limits.max_connections_per_peer) else {
                    tracing::debug!(%peer, "DBManager: too many connections from this address");
                    drop(io);
                    continue;
                };
                let _ = io.set_nodelay(true);
                let info = TcpConnectInfo {
                    local_addr: io.local_addr().ok(),
                    remote_addr: Some(peer),
                };
                let conn = Conn {
                    io,
                    info,
                    _slot: slot,
                    _permit: permit,
                };
                return Some((Ok(conn), (listener, all, peers)));
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_capped_one_address_at_a_time() {
        let peers = Arc::new(PerPeer::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.77".parse().unwrap();
        let first = peers.enter(a, 2).unwrap();
        let second = peers.enter(a, 2).unwrap();
        assert!(peers.enter(a, 2).is_none(), "a is at its cap");
        assert!(peers.enter(b, 2).is_some(), "b is not");
        drop(first);
        let third = peers.enter(a, 2);
        assert!(third.is_some(), "a closed one");
        drop((second, third));
        assert!(!peers.0.lock().unwrap().contains_key(&a), "forgotten at 0");
    }

    #[test]
    fn paths_are_katibs() {
        for path in [REPORT_PATH, GET_PATH, DELETE_PATH] {
            assert!(path.starts_with("/api.v1.beta1.DBManager/"), "{path}");
        }
    }
}
