//! One hardened way to serve HTTP, for every listener ktune opens: the push
//! endpoint trials report to, the dashboard of `ktune ui`, and the
//! controller's operations port (health, metrics and the dashboard).
//!
//! `axum::serve` sets no deadline at all: a connection that sends nothing,
//! or a request whose body never comes, holds a file descriptor for ever,
//! and enough of them take every descriptor of the process, so real
//! trials' pushes wait in the backlog and new trials cannot start ("Too
//! many open files"). [`serve`] runs hyper's HTTP/1 server itself, with:
//!
//! * a **header deadline** ([`Limits::header_timeout`]): a connection must
//!   send a complete request head within it of opening or of its previous
//!   response (so it also bounds keep-alive idleness and slowloris clients);
//! * a **body deadline** ([`Limits::body_timeout`]): a request whose body has
//!   not fully arrived within it of its head gets 408 and its connection is
//!   closed;
//! * a **cap on open connections** per listener ([`Limits::max_connections`],
//!   sized from `RLIMIT_NOFILE` so that a reserve of descriptors stays for
//!   trials and the store). At the cap, a newly accepted connection waits
//!   (and the others in the kernel's backlog, holding no descriptor of
//!   ours) while an open one is closed to make room: an idle one that
//!   never got a successful answer, else an idle one that did, else one
//!   still writing a response (an event stream, which browsers reopen),
//!   oldest first; never one whose request is being handled (a push being
//!   read and stored). A crowd of idle strangers cannot keep a real trial
//!   (or a health probe) out: each newcomer costs the oldest of them its
//!   place;
//! * `X-Content-Type-Options: nosniff` on every response, and a strict
//!   Content-Security-Policy ([`API_CSP`]) on those that do not set their
//!   own (the dashboard sets one that lets its own assets through).
//!
//! Graceful shutdown works as with `axum::serve`: the listener closes,
//! connections finish their request in progress and close, and whatever is
//! still open after [`Limits::shutdown_grace`] (an event stream) is dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    CONNECTION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The Content-Security-Policy of responses that are not pages (JSON, text,
/// metrics): nothing may load, run or frame them.
pub const API_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Descriptors kept free of listeners' connections whatever the limit:
/// trials' pipes, the store's files, the runtime's own.
const RESERVE_AT_LEAST: u64 = 64;

/// Listeners one process may run at once (push endpoint, dashboard,
/// operations port, one spare): each gets this share of what is left.
const LISTENERS: u64 = 4;

/// The range a listener's connection cap is kept in.
const CAP_RANGE: (u64, u64) = (8, 1024);

/// Largest request head hyper buffers (its default is 400 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How a listener bounds what clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once; at the cap, the oldest idle one is
    /// closed to make room (see the module documentation).
    pub max_connections: usize,
    /// How long a connection may take to send a whole request head, from
    /// its opening or from the end of its previous response.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive after its head.
    pub body_timeout: Duration,
    /// On shutdown, how long requests in progress get to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// 5 s deadlines, and the connection cap for this process's descriptor
    /// limit ([`connection_cap`] of [`descriptor_limit`]).
    fn default() -> Self {
        Self {
            max_connections: connection_cap(descriptor_limit()),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The process's descriptor limit (soft `RLIMIT_NOFILE`), raised to the
/// hard limit the first time it is asked for, where the system allows: the
/// soft limit is often 1024 while the hard one is far higher.
pub fn descriptor_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(raise_descriptor_limit)
}

fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "raised the descriptor limit");
                hard
            }
            Err(error) => {
                tracing::debug!(%error, soft, hard, "cannot raise the descriptor limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!(%error, "cannot read the descriptor limit; assuming 1024");
            1024
        }
    }
}

/// A listener's connection cap under a limit of `descriptors`: half of
/// them (at least [`RESERVE_AT_LEAST`]) stay for everything else, and the
/// rest is shared by up to [`LISTENERS`] listeners, each within
/// [`CAP_RANGE`]. 1024 descriptors give 128 connections per listener.
#[must_use]
pub fn connection_cap(descriptors: u64) -> usize {
    let reserve = (descriptors / 2).max(RESERVE_AT_LEAST);
    let share = descriptors.saturating_sub(reserve) / LISTENERS;
    usize::try_from(share.clamp(CAP_RANGE.0, CAP_RANGE.1)).unwrap_or(usize::MAX)
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves
/// (then gracefully, see the module documentation). Accept errors (a full
/// descriptor table) are logged and retried after closing an idle
/// connection; nothing ends the loop but `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    let cap = limits.max_connections.max(1);
    loop {
        while connections.try_join_next().is_some() {}
        // At the cap, the new connection waits for room (and nothing else
        // is accepted meanwhile): at most `cap + 1` descriptors.
        let next = async {
            let accepted = listener.accept().await;
            if accepted.is_ok() {
                registry.room(cap).await;
            }
            accepted
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = next => match accepted {
                Ok((stream, _)) => {
                    let conn = registry.admit();
                    let task = connection(stream, router.clone(), conn, Arc::clone(&registry), limits, stopping.clone());
                    connections.spawn(task);
                }
                Err(error) => accept_failed(&error, &registry, &mut last_warning).await,
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            open = connections.len(),
            "closing connections still open after the grace period"
        );
    }
}

/// After a failed accept: a reset connection is nothing; anything else (a
/// full descriptor table) frees a descriptor by closing an idle connection
/// and waits a moment, warning at most once a second.
async fn accept_failed(
    error: &std::io::Error,
    registry: &Registry,
    last_warning: &mut Option<Instant>,
) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    registry.evict();
    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
        tracing::warn!(%error, "cannot accept a connection");
        *last_warning = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// One open connection, as the registry sees it.
#[derive(Debug)]
struct Conn {
    /// Accept order: the oldest is evicted first.
    id: u64,
    /// Requests whose handler runs (such a connection is never evicted).
    handling: AtomicU32,
    /// Requests whose response is not fully written yet.
    responding: AtomicU32,
    /// Whether it got a successful (< 400) answer: such a client is
    /// evicted only after those that never did.
    served: AtomicBool,
    /// Whether it was told to close (it holds its descriptor, and its
    /// place, until its task has ended).
    leaving: AtomicBool,
    /// Wakes the connection's task to close it.
    evicted: Notify,
    /// The registry's [`Registry::changed`].
    changed: Arc<Notify>,
}

/// The open connections of one listener.
#[derive(Debug, Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    /// Signalled when a connection closes or finishes handling a request:
    /// room may have been made.
    changed: Arc<Notify>,
}

impl Registry {
    /// The map; every update is one insert or remove, so a lock poisoned
    /// by a panic elsewhere is still consistent.
    fn open(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once fewer than `cap` connections are open, telling one to
    /// close when none is closing yet (see [`Self::evict_from`]); when
    /// every one is handling a request, waits for one to finish.
    async fn room(&self, cap: usize) {
        loop {
            let changed = self.changed.notified();
            let mut changed = pin!(changed);
            // Registered before looking, so no change is missed.
            changed.as_mut().enable();
            {
                let mut open = self.open();
                if open.len() < cap {
                    return;
                }
                if !open.values().any(|c| c.leaving.load(Ordering::SeqCst)) {
                    Self::evict_from(&mut open);
                }
            }
            changed.await;
        }
    }

    /// Registers a newly accepted connection.
    fn admit(&self) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            handling: AtomicU32::new(0),
            responding: AtomicU32::new(0),
            served: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            evicted: Notify::new(),
            changed: Arc::clone(&self.changed),
        });
        self.open().insert(id, Arc::clone(&conn));
        conn
    }

    /// Closes one connection (as [`Self::room`] does at the cap), if any
    /// is not handling a request.
    fn evict(&self) {
        Self::evict_from(&mut self.open());
    }

    /// Tells the connection to lose first to close: idle before
    /// responding, never served before served, oldest first; never one
    /// handling a request or already closing.
    fn evict_from(open: &mut BTreeMap<u64, Arc<Conn>>) {
        let victim = open
            .values()
            .filter(|c| c.handling.load(Ordering::SeqCst) == 0)
            .filter(|c| !c.leaving.load(Ordering::SeqCst))
            .min_by_key(|c| {
                let responding = c.responding.load(Ordering::SeqCst) > 0;
                (responding, c.served.load(Ordering::SeqCst), c.id)
            });
        if let Some(conn) = victim {
            conn.leaving.store(true, Ordering::SeqCst);
            conn.evicted.notify_one();
        }
    }

    /// Forgets a connection whose task has ended (its descriptor is closed).
    fn leave(&self, id: u64) {
        self.open().remove(&id);
        self.changed.notify_waiters();
    }
}

/// Takes a connection out of the registry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.leave(self.id);
    }
}

/// Serves one connection until it closes, is evicted, or the server
/// stops (then its request in progress is finished first).
async fn connection(
    stream: TcpStream,
    router: Router,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let _registered = Registered {
        registry,
        id: conn.id,
    };
    let _ = stream.set_nodelay(true);
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |request| {
            respond(
                router.clone(),
                Arc::clone(&conn),
                limits.body_timeout,
                request,
            )
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let mut served = pin!(http.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended");
            }
        }
        () = conn.evicted.notified() => {
            if conn.handling.load(Ordering::SeqCst) > 0 {
                // A request came in after this one was chosen: it is
                // answered, then the connection closes.
                served.as_mut().graceful_shutdown();
                let _ = served.await;
            } else {
                tracing::debug!("closed an idle connection to make room");
            }
        }
        () = stopped(&mut stopping) => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

/// Resolves once the server stops (or is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A stage of a request on its connection.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Its handler runs.
    Handling,
    /// Its response is not fully written (the guard rides in its body).
    Responding,
}

/// Counts a request in a [`Stage`] on its connection while it lives.
struct InProgress {
    conn: Arc<Conn>,
    stage: Stage,
}

impl InProgress {
    fn new(conn: &Arc<Conn>, stage: Stage) -> Self {
        let this = Self {
            conn: Arc::clone(conn),
            stage,
        };
        this.counter().fetch_add(1, Ordering::SeqCst);
        this
    }

    fn counter(&self) -> &AtomicU32 {
        match self.stage {
            Stage::Handling => &self.conn.handling,
            Stage::Responding => &self.conn.responding,
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::SeqCst);
        // The connection may be evictable now.
        self.conn.changed.notify_waiters();
    }
}

/// Runs one request through `router`: 408 when its body is not complete
/// `body_timeout` after its head, the security headers on every answer.
async fn respond(
    router: Router,
    conn: Arc<Conn>,
    body_timeout: Duration,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let responding = InProgress::new(&conn, Stage::Responding);
    let handling = InProgress::new(&conn, Stage::Handling);
    let deadline = Instant::now() + body_timeout;
    let waiting = !request.body().is_end_stream();
    let complete = Arc::new(AtomicBool::new(!waiting));
    let request = request.map(|body| {
        Body::new(Watched {
            body,
            complete: Arc::clone(&complete),
        })
    });
    let call = router.oneshot(request);
    let mut response = if waiting {
        tokio::select! {
            biased;
            () = body_overdue(&complete, deadline) => body_timed_out(body_timeout),
            response = call => response.unwrap_or_else(|never| match never {}),
        }
    } else {
        call.await.unwrap_or_else(|never| match never {})
    };
    drop(handling);
    secure(response.headers_mut());
    if response.status().as_u16() < 400 {
        conn.served.store(true, Ordering::SeqCst);
    }
    Ok(response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _ = &responding;
            frame
        }))
    }))
}

/// Resolves at `deadline` unless the body is complete by then.
async fn body_overdue(complete: &AtomicBool, deadline: Instant) {
    tokio::time::sleep_until(deadline).await;
    if complete.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

/// 408, closing the connection (the rest of the body is not waited for).
fn body_timed_out(after: Duration) -> Response<Body> {
    let message = format!(
        "the request body did not arrive within {} s",
        after.as_secs_f64()
    );
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `nosniff` always; [`API_CSP`] unless the route set its own policy.
fn secure(headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_CSP));
}

/// A request body that records when it has been read to its end.
struct Watched {
    body: Incoming,
    complete: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        // An error ends the body too: the handler answers it at once.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.body.is_end_stream() {
            self.complete.store(true, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn the_cap_leaves_half_the_descriptors_and_stays_in_range() {
        assert_eq!(connection_cap(1024), 128);
        assert_eq!(connection_cap(128), 16);
        assert_eq!(connection_cap(16), 8);
        assert_eq!(connection_cap(20_000), 1024);
        assert_eq!(connection_cap(u64::MAX), 1024);
        assert!(descriptor_limit() >= 16);
    }

    #[test]
    fn eviction_takes_idle_strangers_first_and_never_a_request_being_handled() {
        let registry = Registry::default();
        let [a, b, c, d] = [(); 4].map(|()| registry.admit());
        a.served.store(true, Ordering::SeqCst);
        b.responding.store(1, Ordering::SeqCst);
        c.handling.store(1, Ordering::SeqCst);
        let leaving = || {
            let open = registry.open();
            let ids = open.values().filter(|c| c.leaving.load(Ordering::SeqCst));
            ids.map(|c| c.id).collect::<Vec<_>>()
        };
        // d (idle, never served), then a (idle, served), then b (writing a
        // response); never c (being handled).
        for expected in [vec![d.id], vec![a.id, d.id], vec![a.id, b.id, d.id]] {
            registry.evict();
            assert_eq!(leaving(), expected);
        }
        registry.evict();
        assert_eq!(leaving(), [a.id, b.id, d.id]);
        registry.leave(d.id);
        assert_eq!(registry.open().len(), 3);
    }

    /// A task waiting for room for one more connection under `cap`.
    fn wait_for_room(registry: &Arc<Registry>, cap: usize) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(registry);
        tokio::spawn(async move { registry.room(cap).await })
    }

    /// Waits (up to 2 s) until `condition` holds.
    async fn eventually(condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !condition() {
            assert!(Instant::now() < deadline, "not within 2 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn room_is_made_by_closing_one_connection_at_a_time() {
        let registry = Arc::new(Registry::default());
        let a = registry.admit();
        let b = registry.admit();
        let _handling_a = InProgress::new(&a, Stage::Handling);
        let waiting = wait_for_room(&registry, 2);
        eventually(|| b.leaving.load(Ordering::SeqCst)).await;
        assert!(!waiting.is_finished(), "b holds its place until it is gone");
        registry.leave(b.id);
        eventually(|| waiting.is_finished()).await;
        // All handling: room comes when a request ends and its connection
        // can be closed.
        let c = registry.admit();
        let handling_c = InProgress::new(&c, Stage::Handling);
        let waiting = wait_for_room(&registry, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!c.leaving.load(Ordering::SeqCst) && !waiting.is_finished());
        drop(handling_c);
        eventually(|| c.leaving.load(Ordering::SeqCst)).await;
        registry.leave(c.id);
        eventually(|| waiting.is_finished()).await;
    }

    /// A server on a free port with small limits; the sender stops it.
    async fn server(limits: Limits) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let router = Router::new()
            .route("/", get(|| async { "hello" }))
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/stream",
                get(|| async {
                    let head =
                        futures::stream::iter([Ok::<_, Infallible>(Bytes::from("data: hi\n\n"))]);
                    Body::from_stream(futures::StreamExt::chain(head, futures::stream::pending()))
                }),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    const SHORT: Limits = Limits {
        max_connections: 4,
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(1),
    };

    /// Reads until the peer closes; the text read.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply));
        let _ = read.await.expect("closed within 5 s");
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// Sends `request` on a new connection; what came back until it closed.
    async fn send(addr: &str, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        read_to_close(&mut s).await
    }

    async fn get_root(addr: &str) -> String {
        send(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
    }

    #[tokio::test]
    async fn idle_connections_over_the_cap_are_evicted_and_real_requests_answered() {
        let (addr, _stop) = server(SHORT).await;
        let mut idle = Vec::new();
        for _ in 0..20 {
            idle.push(TcpStream::connect(&addr).await.unwrap());
        }
        let started = Instant::now();
        let reply = get_root(&addr).await;
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
        assert!(reply.ends_with("hello"));
        assert!(started.elapsed() < Duration::from_secs(2));
        // The first 16 idle ones were closed to make room, oldest first.
        let mut first = idle.remove(0);
        assert_eq!(read_to_close(&mut first).await, "");
    }

    #[tokio::test]
    async fn open_streams_filling_the_cap_do_not_keep_a_request_out() {
        let (addr, _stop) = server(SHORT).await;
        let mut streams = Vec::new();
        for _ in 0..SHORT.max_connections {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            streams.push(s);
        }
        let reply = get_root(&addr).await;
        assert!(reply.ends_with("hello"), "{reply}");
        // The oldest stream made room.
        assert!(read_to_close(&mut streams[0]).await.contains("data: hi"));
    }

    #[tokio::test]
    async fn a_missing_body_is_408_and_closes_the_connection() {
        let (addr, _stop) = server(SHORT).await;
        let started = Instant::now();
        let reply = send(
            &addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
        assert!(reply.contains("connection: close"), "{reply}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A body that does arrive is echoed, with the security headers.
        let reply = send(
            &addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
        assert!(reply.contains("x-content-type-options: nosniff"), "{reply}");
        assert!(reply.contains(&format!("content-security-policy: {API_CSP}")));
        assert!(reply.ends_with("abc"));
    }

    #[tokio::test]
    async fn slow_headers_and_idle_keep_alive_are_cut_off() {
        let (addr, _stop) = server(SHORT).await;
        let mut slow = TcpStream::connect(&addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut kept = TcpStream::connect(&addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(read_to_close(&mut slow).await, "");
        assert!(read_to_close(&mut kept).await.ends_with("hello"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener_and_finishes_requests_in_progress() {
        let (addr, stop) = server(Limits {
            body_timeout: Duration::from_secs(5),
            ..SHORT
        })
        .await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\na",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        // The listener closes…
        let deadline = Instant::now() + Duration::from_secs(2);
        while TcpStream::connect(&addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // … and the request in progress is still answered.
        s.write_all(b"bc").await.unwrap();
        assert!(read_to_close(&mut s).await.ends_with("abc"));
    }
}
