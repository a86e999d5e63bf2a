//! The push endpoint of the Push collector (katib-reference.md §6.7;
//! [`super::kinds::push`]): trials send their metrics to ktune instead of
//! ktune reading them from the trial.
//!
//! Katib's `report_metrics` speaks gRPC to its DB manager; a local trial has
//! no DB manager to reach, so ktune listens on a loopback HTTP endpoint and
//! gives each trial, in its environment, the URL to POST to
//! ([`PUSH_URL_ENV`]) and a token of its own ([`PUSH_TOKEN_ENV`]). The token
//! keeps one trial (or any other local process) from writing another
//! trial's metrics.
//!
//! # Wire format
//!
//! `POST /v1/trials/{trial}/metrics` with `Authorization: Bearer <token>`.
//! The body is either
//!
//! * JSON (any Content-Type but `text/plain`): one object of metric name →
//!   number or string, with an optional `"timestamp"` (RFC 3339 text or
//!   epoch seconds, as in JSON metrics files), e.g.
//!   `{"loss": 0.3, "accuracy": 0.9, "timestamp": 1711111111.5}`, or an
//!   array of such objects sent as one batch;
//! * or, with `Content-Type: text/plain`, Katib TEXT lines read with
//!   Katib's default filter (`loss=0.3 accuracy=0.9`, an optional leading
//!   RFC 3339 timestamp per line).
//!
//! Reports without a timestamp are stamped with their arrival time, as
//! Katib's SDK stamps them with the time of the call. Every metric name is
//! kept; choosing the experiment's metrics is the caller's business.
//!
//! # Kubeflow Trainer's progress route
//!
//! `POST /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status`,
//! Trainer's own path (KEP-2779), so `kubeflow.trainer.update_trainjob_status`
//! reports to ktune unchanged: `{name}` is the trial, the bearer token is
//! the trial's push token, the body is Trainer's `{"trainerStatus": …}`
//! ([`super::trainer_status`]), and its numeric metrics land in the same
//! per-trial queue as the route above. On ktune's shared cluster endpoint
//! the trial is keyed `{namespace}.{name}`; on a local run's endpoint, whose
//! trials are keyed by name alone, the namespace is only the path's shape.
//! Success is 200 (what the SDK checks) with `{"metrics": <queued>,
//! "skipped": [<names whose value is not a number>]}`; refusals are as
//! below.
//!
//! Replies: 204 stored; 400 malformed body; 401 missing or wrong token;
//! 404 unknown trial; 408 the body did not arrive in time; 413 body over
//! [`PushLimits::max_body`]; 429 the trial's queue would exceed
//! [`PushLimits::max_queued`]. Error replies are JSON
//! `{"error": "<what is wrong>"}`. A request is stored whole or not at all.
//!
//! The endpoint is served by [`crate::serve`]: connections are capped and
//! deadlined, so strangers holding connections open cannot keep a trial's
//! reports out.
//!
//! Reports stamped on arrival are stamped while the trial's queue is
//! locked, so a trial's queue is always in the order of those stamps, even
//! when requests run concurrently.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jiff::Timestamp;
use regex::Regex;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::MetricLog;
use super::filter::{DEFAULT_FILTER, FilterError, compile_filter};
use super::json::timestamp;
use super::trainer_status;

/// Environment variable holding the full URL a trial POSTs its metrics to.
pub const PUSH_URL_ENV: &str = "KTUNE_PUSH_URL";

/// Environment variable holding the trial's bearer token.
pub const PUSH_TOKEN_ENV: &str = "KTUNE_PUSH_TOKEN";

/// Limits on what trials may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Largest request body in bytes (default 1 MiB: thousands of reports,
    /// far more than a training step produces).
    pub max_body: usize,
    /// Most reports queued for one trial between two [`PushServer::take`]s
    /// (default 100 000): a runaway trial gets 429 instead of growing
    /// ktune's memory without bound.
    pub max_queued: usize,
}

impl Default for PushLimits {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            max_queued: 100_000,
        }
    }
}

/// Why the push endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The address could not be listened on.
    #[error("cannot listen on {addr} for pushed metrics: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// No randomness for a trial's token.
    #[error("cannot read /dev/urandom for a push token: {0}")]
    Token(#[source] std::io::Error),
    /// Katib's default filter did not compile (a bug).
    #[error("the TEXT filter for pushed metrics: {0}")]
    Filter(#[from] FilterError),
}

/// What a trial needs to push: put [`Self::env`] in its environment.
#[derive(Clone, PartialEq, Eq)]
pub struct PushCredentials {
    /// The full URL to POST to.
    pub url: String,
    /// The bearer token (32 hex characters).
    pub token: String,
    /// Kubeflow Trainer's status URL for the trial on the same endpoint,
    /// where the trial is handed it (locally:
    /// [`super::trainer_status::SERVER_URL_ENV`]); the same token holds.
    pub trainer_url: Option<String>,
}

impl PushCredentials {
    /// The environment variables that hand these to a trial.
    #[must_use]
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [(PUSH_URL_ENV, &self.url), (PUSH_TOKEN_ENV, &self.token)]
    }
}

/// Keeps the token out of logs.
impl fmt::Debug for PushCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushCredentials")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("trainer_url", &self.trainer_url)
            .finish()
    }
}

/// The push endpoint: an axum router served by [`crate::serve`] on a tokio
/// task, and the reports received per registered trial. Dropping it stops the server.
#[derive(Debug)]
pub struct PushServer {
    addr: SocketAddr,
    /// The base URL trials reach it at (by default the bound address).
    public: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What the request handler and the owner share.
#[derive(Debug)]
struct Shared {
    inboxes: Mutex<HashMap<String, Inbox>>,
    limits: PushLimits,
    text_filter: Regex,
}

/// One registered trial.
#[derive(Debug)]
struct Inbox {
    token: String,
    logs: Vec<MetricLog>,
    /// The label selector of the trial's pods, in a cluster (what
    /// Katib's gRPC caller rule checks a caller's address against).
    pods: Option<String>,
}

impl Shared {
    /// The trials; a panic elsewhere while holding the lock leaves the map
    /// consistent (every update is a single insert, remove or extend), so a
    /// poisoned lock is used as is.
    fn inboxes(&self) -> MutexGuard<'_, HashMap<String, Inbox>> {
        self.inboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PushServer {
    /// Listens on `addr` (ktune uses 127.0.0.1:0: loopback only, any free
    /// port) with the default [`PushLimits`]. Must be called within a tokio
    /// runtime, which then runs the server.
    ///
    /// # Errors
    /// [`PushError::Bind`] when the address cannot be listened on.
    pub async fn bind(addr: SocketAddr) -> Result<Self, PushError> {
        Self::bind_with_limits(addr, PushLimits::default()).await
    }

    /// [`Self::bind`] with other limits.
    ///
    /// # Errors
    /// As [`Self::bind`].
    pub async fn bind_with_limits(addr: SocketAddr, limits: PushLimits) -> Result<Self, PushError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| PushError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| PushError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            inboxes: Mutex::new(HashMap::new()),
            limits,
            text_filter: compile_filter(DEFAULT_FILTER)?,
        });
        let router = Router::new()
            .route("/v1/trials/{trial}/metrics", post(receive))
            .route(trainer_status::ROUTE, post(receive_trainer_status))
            .fallback(|| async { reply(StatusCode::NOT_FOUND, "no such endpoint") })
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(crate::serve::serve(
            listener,
            router,
            crate::serve::Limits::default(),
            shutdown,
        ));
        tracing::debug!(addr = %local, "push endpoint listening");
        Ok(Self {
            addr: local,
            public: format!("http://{local}"),
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address listened on (the actual port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base URL as trials reach it: `http://ip:port` of the
    /// bound address unless [`Self::set_public_url`] said otherwise.
    #[must_use]
    pub fn url(&self) -> String {
        self.public.clone()
    }

    /// Says where trials reach the server (e.g. a Service's
    /// `http://ktune-controller.ktune-system:8081` in front of it); the
    /// trials' URLs are under it from now on.
    pub fn set_public_url(&mut self, url: &str) {
        url.trim_end_matches('/').clone_into(&mut self.public);
    }

    /// The URL `trial` POSTs to.
    #[must_use]
    pub fn trial_url(&self, trial: &str) -> String {
        format!("{}/v1/trials/{}/metrics", self.url(), path_segment(trial))
    }

    /// Kubeflow Trainer's status URL of the TrainJob `name` in `namespace`
    /// on this endpoint: where `update_trainjob_status` reaches the trial
    /// registered as `{namespace}.{name}` or, failing that, as `name`.
    #[must_use]
    pub fn trainer_url(&self, namespace: &str, name: &str) -> String {
        let path = trainer_status::status_path(&path_segment(namespace), &path_segment(name));
        format!("{}{path}", self.url())
    }

    /// Lets `trial` push, with a fresh token. Registering a trial again
    /// replaces its token (the old one stops working) and keeps the reports
    /// not yet taken.
    ///
    /// # Errors
    /// [`PushError::Token`] when /dev/urandom cannot be read.
    pub fn register(&self, trial: &str) -> Result<PushCredentials, PushError> {
        let token = new_token().map_err(PushError::Token)?;
        Ok(self.register_token(trial, token))
    }

    /// Lets `trial` push with a token it already holds (a controller that
    /// restarted takes back the token a running trial was given); like
    /// [`Self::register`] otherwise.
    pub fn register_token(&self, trial: &str, token: String) -> PushCredentials {
        self.shared
            .inboxes()
            .entry(trial.to_owned())
            .and_modify(|inbox| inbox.token.clone_from(&token))
            .or_insert_with(|| Inbox {
                token: token.clone(),
                logs: Vec::new(),
                pods: None,
            });
        PushCredentials {
            url: self.trial_url(trial),
            token,
            trainer_url: None,
        }
    }

    /// The reports `trial` pushed since the last call, in arrival order
    /// (empty for a trial that is not registered).
    #[must_use]
    pub fn take(&self, trial: &str) -> Vec<MetricLog> {
        self.shared
            .inboxes()
            .get_mut(trial)
            .map(|inbox| std::mem::take(&mut inbox.logs))
            .unwrap_or_default()
    }

    /// A handle on `trial`'s reports for its reader (a [`super::collector::TrialMetrics`]
    /// implementation), which can then drain them without holding the server.
    #[must_use]
    pub fn inbox(&self, trial: &str) -> PushInbox {
        PushInbox {
            shared: self.shared.clone(),
            trial: trial.to_owned(),
        }
    }

    /// Notes the label selector of a registered trial's pods (in a
    /// cluster), for the caller rule of Katib's gRPC API.
    pub fn set_pod_selector(&self, trial: &str, selector: String) {
        if let Some(inbox) = self.shared.inboxes().get_mut(trial) {
            inbox.pods = Some(selector);
        }
    }

    /// The label selector [`Self::set_pod_selector`] noted for `trial`.
    #[must_use]
    pub fn pod_selector(&self, trial: &str) -> Option<String> {
        self.shared
            .inboxes()
            .get(trial)
            .and_then(|inbox| inbox.pods.clone())
    }

    /// The registered trials whose key passes `keep` (at most `limit`).
    #[must_use]
    pub fn registered_where(&self, limit: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
        self.shared
            .inboxes()
            .keys()
            .filter(|key| keep(key))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Whether `trial` is registered: running, and accepting reports.
    #[must_use]
    pub fn is_registered(&self, trial: &str) -> bool {
        self.shared.inboxes().contains_key(trial)
    }

    /// Queues reports that reached ktune another way (Katib's gRPC
    /// `ReportObservationLog`, whose caller its transport checked) for a
    /// registered `trial`, exactly as an HTTP push is queued: whole or not
    /// at all, under [`PushLimits::max_queued`], stamped on arrival when
    /// they carry no time.
    ///
    /// # Errors
    /// [`QueueRefusal`] when the trial is not registered or its queue is full.
    pub fn offer(&self, trial: &str, logs: Vec<MetricLog>) -> Result<(), QueueRefusal> {
        enqueue(&mut self.shared.inboxes(), self.shared.limits, trial, logs)
    }

    /// The limits reports are held to.
    #[must_use]
    pub fn limits(&self) -> PushLimits {
        self.shared.limits
    }

    /// Stops accepting pushes for `trial` (they get 404) and returns the
    /// reports it pushed that were not taken yet, so none is lost.
    pub fn unregister(&self, trial: &str) -> Vec<MetricLog> {
        self.shared
            .inboxes()
            .remove(trial)
            .map(|inbox| inbox.logs)
            .unwrap_or_default()
    }

    /// Stops the server: no new connections, requests in progress are
    /// answered (for at most 5 s, then they are dropped).
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

/// One trial's reports on a [`PushServer`], cheap to clone and to move
/// into a per-trial reader.
#[derive(Debug, Clone)]
pub struct PushInbox {
    shared: Arc<Shared>,
    trial: String,
}

impl PushInbox {
    /// The trial's name.
    #[must_use]
    pub fn trial(&self) -> &str {
        &self.trial
    }

    /// As [`PushServer::take`]: the reports since the last take, in arrival
    /// order (empty once the trial is unregistered).
    #[must_use]
    pub fn take(&self) -> Vec<MetricLog> {
        self.shared
            .inboxes()
            .get_mut(&self.trial)
            .map(|inbox| std::mem::take(&mut inbox.logs))
            .unwrap_or_default()
    }
}

impl Drop for PushServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// 16 random bytes as 32 hex characters. The root package has no `rand`
/// dependency and a token needs OS randomness anyway.
fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `text` as one URL path segment (percent-encoding all but unreserved
/// characters), so any trial name gives a URL that routes back to it.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Compares in time independent of where the first difference is, so the
/// token cannot be guessed byte by byte from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// An error reply with a JSON body saying what is wrong.
fn reply(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (status, [(CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Checks that `trial` is registered and `token` is its token; the
/// refusal's status and message otherwise.
fn authorize(
    inboxes: &HashMap<String, Inbox>,
    trial: &str,
    token: Option<&str>,
) -> Result<(), Refusal> {
    let Some(inbox) = inboxes.get(trial) else {
        return Err((StatusCode::NOT_FOUND, format!("unknown trial {trial:?}")));
    };
    match token {
        Some(token) if constant_time_eq(token.as_bytes(), inbox.token.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong token".to_owned())),
        None => Err((
            StatusCode::UNAUTHORIZED,
            format!(
                "missing `Authorization: Bearer <token>` (the token is in ${PUSH_TOKEN_ENV}, \
                 and in the file at ${})",
                trainer_status::SERVER_TOKEN_ENV
            ),
        )),
    }
}

/// A refused request: its status and what is wrong, answered by [`reply`].
type Refusal = (StatusCode, String);

/// Answers a refusal, noting it for whoever debugs a trial's reporting.
fn refused(trial: &str, (status, message): Refusal) -> Response {
    tracing::debug!(trial, %status, message, "push refused");
    reply(status, &message)
}

/// `POST /v1/trials/{trial}/metrics`.
async fn receive(
    State(shared): State<Arc<Shared>>,
    trial: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path(trial)) = trial else {
        return reply(StatusCode::NOT_FOUND, "not a trial name");
    };
    let token = bearer(&headers);
    let stored = async {
        // Refuse strangers before reading what they send.
        authorize(&shared.inboxes(), &trial, token)?;
        let bytes = read_body(&shared, &headers, body).await?;
        let logs = parse_reports(&shared, &headers, &bytes)?;
        queue(&shared, &trial, token, logs)
    }
    .await;
    match stored {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refusal) => refused(&trial, refusal),
    }
}

/// `POST /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status`:
/// Kubeflow Trainer's progress protocol into the same queue as [`receive`].
async fn receive_trainer_status(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path((namespace, name))) = path else {
        return reply(StatusCode::NOT_FOUND, "not a TrainJob's namespace and name");
    };
    // The shared cluster endpoint keys trials `<namespace>.<trial>`, a
    // local run's endpoint by name alone.
    let namespaced = format!("{namespace}.{name}");
    let trial = if shared.inboxes().contains_key(&namespaced) {
        namespaced
    } else {
        name
    };
    let token = bearer(&headers);
    let stored = async {
        // Refuse strangers before reading what they send.
        authorize(&shared.inboxes(), &trial, token)?;
        let bytes = read_body(&shared, &headers, body).await?;
        let update =
            trainer_status::parse(&bytes).map_err(|message| (StatusCode::BAD_REQUEST, message))?;
        for (metric, value) in &update.skipped {
            tracing::warn!(
                trial,
                metric,
                value,
                "a Trainer status metric that is not a number was skipped"
            );
        }
        let queued = queue(&shared, &trial, token, update.logs)?;
        let skipped: Vec<&str> = update.skipped.iter().map(|(n, _)| n.as_str()).collect();
        Ok(serde_json::json!({ "metrics": queued, "skipped": skipped }).to_string())
    }
    .await;
    match stored {
        // The SDK counts 200, and only 200, as success.
        Ok(body) => (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response(),
        Err(refusal) => refused(&trial, refusal),
    }
}

/// A request's body, at most [`PushLimits::max_body`] bytes; the refusal
/// when it is larger or cannot be read.
async fn read_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Refusal> {
    let limit = shared.limits.max_body;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over {limit} bytes; send fewer reports per request"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("could not read the body: {e}"),
        )),
    }
}

/// The reports in a body of [`receive`]: JSON or (`text/plain`) Katib's
/// TEXT lines; 400 when it is not reports.
fn parse_reports(
    shared: &Shared,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Vec<MetricLog>, Refusal> {
    let is_text = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    let parsed = if is_text {
        parse_text_body(bytes, &shared.text_filter)
    } else {
        parse_json_body(bytes)
    };
    parsed.map_err(|message| (StatusCode::BAD_REQUEST, message))
}

/// Queues a trial's reports, stamped with the time they arrived when they
/// carry none, and says how many; refused when the trial is gone, its
/// token changed, or its queue is full.
fn queue(
    shared: &Shared,
    trial: &str,
    token: Option<&str>,
    logs: Vec<MetricLog>,
) -> Result<usize, Refusal> {
    let mut inboxes = shared.inboxes();
    // The trial may have been unregistered or given a new token meanwhile.
    authorize(&inboxes, trial, token)?;
    let count = logs.len();
    match enqueue(&mut inboxes, shared.limits, trial, logs) {
        Ok(()) => Ok(count),
        Err(QueueRefusal::UnknownTrial) => {
            Err((StatusCode::NOT_FOUND, format!("unknown trial {trial:?}")))
        }
        Err(full @ QueueRefusal::Full { .. }) => {
            Err((StatusCode::TOO_MANY_REQUESTS, full.to_string()))
        }
    }
}

/// Why reports were not queued for a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefusal {
    /// The trial is not registered (not running, or unknown).
    #[error("unknown trial")]
    UnknownTrial,
    /// The trial's queue would exceed [`PushLimits::max_queued`].
    #[error("more than {max} reports waiting for ktune to read them; retry later")]
    Full {
        /// The limit.
        max: usize,
    },
}

/// Queues a registered trial's reports whole or not at all (under the
/// inboxes' lock held by the caller), stamping those without a time with
/// their arrival: the one queue every transport of the Push collector
/// (HTTP here, Katib's gRPC in [`super::katib_grpc`]) writes to.
fn enqueue(
    inboxes: &mut HashMap<String, Inbox>,
    limits: PushLimits,
    trial: &str,
    mut logs: Vec<MetricLog>,
) -> Result<(), QueueRefusal> {
    let inbox = inboxes.get_mut(trial).ok_or(QueueRefusal::UnknownTrial)?;
    let max = limits.max_queued;
    if inbox.logs.len().saturating_add(logs.len()) > max {
        tracing::debug!(trial, queued = inbox.logs.len(), "push queue full");
        return Err(QueueRefusal::Full { max });
    }
    tracing::trace!(trial, reports = logs.len(), "metrics pushed");
    // Stamped under the lock: the queue stays in stamp order.
    let received = Timestamp::now();
    for log in &mut logs {
        log.time.get_or_insert(received);
    }
    inbox.logs.extend(logs);
    Ok(())
}

/// A JSON body: one report object or an array of them (reports without a
/// timestamp get none; the caller stamps them).
fn parse_json_body(body: &[u8]) -> Result<Vec<MetricLog>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    match value {
        Value::Object(report) => parse_report(&report),
        Value::Array(reports) => {
            let mut logs = Vec::new();
            for (i, report) in reports.iter().enumerate() {
                let Value::Object(report) = report else {
                    return Err(format!(
                        "element {i} of the array is not an object of metric name → value"
                    ));
                };
                logs.extend(parse_report(report).map_err(|e| format!("element {i}: {e}"))?);
            }
            Ok(logs)
        }
        _ => Err(
            "body must be a JSON object of metric name → number or string, or an array of them"
                .to_owned(),
        ),
    }
}

/// One report object: metric name → number or string, and `timestamp`.
fn parse_report(report: &Map<String, Value>) -> Result<Vec<MetricLog>, String> {
    let time = match report.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(value) => Some(timestamp(value).ok_or_else(|| {
            format!("\"timestamp\" must be RFC 3339 text or epoch seconds, not {value}")
        })?),
    };
    let mut logs = Vec::with_capacity(report.len());
    for (name, value) in report {
        if name == "timestamp" {
            continue;
        }
        let value = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_owned(),
            other => {
                return Err(format!(
                    "metric {name:?}: the value must be a number or a string, not {}",
                    kind(other)
                ));
            }
        };
        logs.push(MetricLog {
            name: name.clone(),
            value,
            time,
        });
    }
    if logs.is_empty() {
        return Err("the report has no metrics".to_owned());
    }
    Ok(logs)
}

/// What kind of JSON value `value` is, for error messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A text/plain body: Katib TEXT lines under Katib's default filter, each
/// with an optional leading RFC 3339 timestamp (as the StdOut collector
/// reads them, but keeping every name: the server does not know which
/// metrics the experiment wants). Lines without a timestamp get none; the
/// caller stamps them.
fn parse_text_body(body: &[u8], filter: &Regex) -> Result<Vec<MetricLog>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut logs = Vec::new();
    for line in text.lines() {
        let time = line
            .split_whitespace()
            .next()
            .and_then(|token| token.parse::<Timestamp>().ok());
        for caps in filter.captures_iter(line) {
            let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            let value = value.as_str().trim();
            if value.is_empty() {
                continue;
            }
            logs.push(MetricLog {
                name: name.as_str().trim().to_owned(),
                value: value.to_owned(),
                time,
            });
        }
    }
    if logs.is_empty() {
        return Err("no `name=value` metrics in the text".to_owned());
    }
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    use super::*;

    async fn server(limits: PushLimits) -> PushServer {
        PushServer::bind_with_limits("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap()
    }

    /// POSTs `body`; returns the status and the reply body.
    async fn post(
        url: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> (u16, String) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut request = hyper::Request::post(url).header(CONTENT_TYPE, content_type);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = client
            .request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn pairs(logs: &[MetricLog]) -> Vec<(&str, &str)> {
        logs.iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    const JSON: &str = "application/json";

    #[tokio::test]
    async fn pushes_are_queued_per_trial_in_arrival_order() {
        let push = server(PushLimits::default()).await;
        let a = push.register("trial-a").unwrap();
        let b = push.register("trial-b").unwrap();
        assert_eq!(a.token.len(), 32);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.token, b.token);
        assert_eq!(a.url, format!("{}/v1/trials/trial-a/metrics", push.url()));
        assert_eq!(a.env()[0], (PUSH_URL_ENV, a.url.as_str()));
        assert!(!format!("{a:?}").contains(&a.token));

        let (status, _) = post(
            &a.url,
            Some(&a.token),
            JSON,
            r#"{"loss": 0.5, "accuracy": "0.7"}"#,
        )
        .await;
        assert_eq!(status, 204);
        let batch = r#"[{"loss": 0.4, "timestamp": 1711111111.5},
                        {"loss": 0.3, "timestamp": "2024-05-01T10:00:00Z"}]"#;
        assert_eq!(post(&a.url, Some(&a.token), JSON, batch).await.0, 204);
        let text = "2024-05-01T10:00:01Z loss=0.2 accuracy=0.9\nepoch 3 loss=.1\n";
        assert_eq!(
            post(&a.url, Some(&a.token), "text/plain; charset=utf-8", text)
                .await
                .0,
            204
        );
        assert_eq!(
            post(&b.url, Some(&b.token), JSON, r#"{"loss": 9}"#).await.0,
            204
        );

        let logs = push.take("trial-a");
        assert_eq!(
            pairs(&logs),
            [
                ("loss", "0.5"),
                ("accuracy", "0.7"),
                ("loss", "0.4"),
                ("loss", "0.3"),
                ("loss", "0.2"),
                ("accuracy", "0.9"),
                ("loss", ".1"),
            ]
        );
        assert!(logs.iter().all(|l| l.time.is_some()));
        assert_eq!(
            logs[2].time,
            Some(Timestamp::from_millisecond(1_711_111_111_500).unwrap())
        );
        assert_eq!(logs[3].time, Some("2024-05-01T10:00:00Z".parse().unwrap()));
        assert_eq!(logs[4].time, Some("2024-05-01T10:00:01Z".parse().unwrap()));
        assert!(push.take("trial-a").is_empty(), "take drains");
        let inbox = push.inbox("trial-b");
        assert_eq!(inbox.trial(), "trial-b");
        assert_eq!(pairs(&inbox.take()), [("loss", "9")]);
        assert!(push.take("trial-b").is_empty());
        push.shutdown().await;
    }

    /// Concurrent pushes without timestamps: the queue is in the order of
    /// the arrival stamps (they used to be taken before the queue's lock,
    /// so a later stamp could be queued first).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pushes_are_queued_in_stamp_order() {
        let push = server(PushLimits::default()).await;
        let a = push.register("a").unwrap();
        let mut pushes = tokio::task::JoinSet::new();
        // Bodies big enough that parsing them takes a while: the window
        // in which the old code could stamp one request and queue another.
        const REQUESTS: usize = 300;
        const REPORTS: usize = 40;
        for i in 0..REQUESTS {
            let (url, token) = (a.url.clone(), a.token.clone());
            let one = format!(r#"{{"loss": {i}, "accuracy": {i}}}"#);
            let body = format!("[{}]", vec![one; REPORTS].join(","));
            pushes.spawn(async move { post(&url, Some(&token), JSON, body).await.0 });
        }
        while let Some(status) = pushes.join_next().await {
            assert_eq!(status.unwrap(), 204);
        }
        let logs = push.take("a");
        assert_eq!(logs.len(), REQUESTS * REPORTS * 2);
        let times: Vec<Timestamp> = logs.iter().map(|l| l.time.unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of stamp order");
        // One request's reports stay together, in their order.
        assert!(
            logs.chunks(REPORTS * 2)
                .all(|request| request.iter().all(|l| l.value == request[0].value))
        );
    }

    #[tokio::test]
    async fn strangers_and_unknown_trials_are_refused() {
        let push = server(PushLimits::default()).await;
        let a = push.register("a").unwrap();
        let body = r#"{"loss": 1}"#;
        let (status, reply) =
            post(&a.url, Some("0123456789abcdef0123456789abcdef"), JSON, body).await;
        assert_eq!(
            (status, reply.as_str()),
            (401, r#"{"error":"wrong token"}"#)
        );
        assert_eq!(post(&a.url, None, JSON, body).await.0, 401);
        assert_eq!(post(&a.url, Some(""), JSON, body).await.0, 401);
        let other = push.trial_url("b");
        assert_eq!(post(&other, Some(&a.token), JSON, body).await.0, 404);
        let (status, _) = post(
            &format!("{}/v1/other", push.url()),
            Some(&a.token),
            JSON,
            body,
        )
        .await;
        assert_eq!(status, 404);
        assert!(push.take("a").is_empty());

        // A new registration replaces the token.
        let again = push.register("a").unwrap();
        assert_eq!(post(&a.url, Some(&a.token), JSON, body).await.0, 401);
        assert_eq!(post(&a.url, Some(&again.token), JSON, body).await.0, 204);
        // Unregistering hands back what was not taken, then refuses.
        assert_eq!(pairs(&push.unregister("a")), [("loss", "1")]);
        assert_eq!(post(&a.url, Some(&again.token), JSON, body).await.0, 404);
        assert!(push.unregister("a").is_empty());
    }

    #[tokio::test]
    async fn malformed_bodies_are_400_and_store_nothing() {
        let push = server(PushLimits::default()).await;
        let a = push.register("a").unwrap();
        for (content_type, body, says) in [
            (JSON, "", "not JSON"),
            (JSON, "loss=1", "not JSON"),
            (JSON, "[1, 2]", "element 0"),
            (JSON, "42", "must be a JSON object"),
            (JSON, "{}", "no metrics"),
            (JSON, r#"{"timestamp": 5}"#, "no metrics"),
            (JSON, r#"{"loss": null}"#, "\\\"loss\\\""),
            (JSON, r#"{"loss": {"a": 1}}"#, "an object"),
            (
                JSON,
                r#"{"loss": 1, "timestamp": "yesterday"}"#,
                "timestamp",
            ),
            (JSON, r#"[{"loss": 1}, {"loss": true}]"#, "element 1"),
            (JSON, &"[".repeat(10_000), "not JSON"),
            ("text/plain", "hello world", "no `name=value`"),
            ("text/plain", "loss=abc", "no `name=value`"),
        ] {
            let (status, reply) = post(&a.url, Some(&a.token), content_type, body.to_owned()).await;
            assert_eq!(status, 400, "{body}: {reply}");
            assert!(reply.contains(says), "{body}: {reply}");
            let _: Value = serde_json::from_str(&reply).unwrap();
        }
        let (status, _) = post(&a.url, Some(&a.token), "text/plain", vec![0xff, 0xfe, b'=']).await;
        assert_eq!(status, 400);
        assert!(push.take("a").is_empty());
    }

    #[tokio::test]
    async fn oversized_bodies_and_full_queues_are_refused() {
        let push = server(PushLimits {
            max_body: 1024,
            max_queued: 3,
        })
        .await;
        let a = push.register("a").unwrap();
        let big = format!(r#"{{"loss": "{}"}}"#, "1".repeat(2000));
        let (status, reply) = post(&a.url, Some(&a.token), JSON, big).await;
        assert_eq!(status, 413, "{reply}");
        let two = r#"[{"loss": 1}, {"loss": 2}]"#;
        assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 204);
        // Two more would make four: refused whole.
        assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 429);
        assert_eq!(
            post(&a.url, Some(&a.token), JSON, r#"{"loss": 3}"#).await.0,
            204
        );
        assert_eq!(push.take("a").len(), 3);
        assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 204);
    }

    #[tokio::test]
    async fn the_default_body_limit_is_one_mebibyte() {
        let push = server(PushLimits::default()).await;
        let a = push.register("a").unwrap();
        let report = r#"{"loss": 0.125},"#;
        let n = 1024 * 1024 / report.len() + 1;
        let big = format!("[{}{{\"loss\": 1}}]", report.repeat(n));
        assert_eq!(post(&a.url, Some(&a.token), JSON, big).await.0, 413);
        let fits = format!("[{}{{\"loss\": 1}}]", report.repeat(n / 2));
        assert_eq!(post(&a.url, Some(&a.token), JSON, fits).await.0, 204);
        assert_eq!(push.take("a").len(), n / 2 + 1);
    }

    #[tokio::test]
    async fn odd_trial_names_route_back_and_shutdown_stops_listening() {
        let push = server(PushLimits::default()).await;
        let odd = push.register("trial with/slash%").unwrap();
        assert!(
            odd.url
                .ends_with("/v1/trials/trial%20with%2Fslash%25/metrics"),
            "{}",
            odd.url
        );
        assert_eq!(
            post(&odd.url, Some(&odd.token), JSON, r#"{"x": 1}"#)
                .await
                .0,
            204
        );
        assert_eq!(push.take("trial with/slash%").len(), 1);

        let addr = push.local_addr();
        push.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    const TRAINER: &str = "/apis/trainer.kubeflow.org/v1alpha1/namespaces";

    /// The body `kubeflow.trainer.update_trainjob_status(metrics=…)` sends.
    fn trainer_body(metrics: &[(&str, &str)]) -> String {
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
            .collect();
        serde_json::json!({"trainerStatus": {
            "lastUpdatedTime": Timestamp::now().to_string(),
            "progressPercentage": 50,
            "metrics": metrics,
        }})
        .to_string()
    }

    #[tokio::test]
    async fn trainer_status_updates_join_the_trials_push_queue() {
        let push = server(PushLimits::default()).await;
        let a = push.register("trial-a").unwrap();
        let url = push.trainer_url("default", "trial-a");
        assert_eq!(
            url,
            format!("{}{TRAINER}/default/trainjobs/trial-a/status", push.url())
        );
        assert_eq!(
            post(&a.url, Some(&a.token), JSON, r#"{"loss": 0.5}"#)
                .await
                .0,
            204
        );
        let (status, reply) = post(
            &url,
            Some(&a.token),
            JSON,
            trainer_body(&[("loss", "0.25"), ("phase", "warmup"), ("accuracy", "0.8")]),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            reply,
            serde_json::json!({"metrics": 2, "skipped": ["phase"]})
        );
        // A local endpoint keys trials by name: any namespace reaches them.
        let elsewhere = push.trainer_url("team-x", "trial-a");
        let progress_only = r#"{"trainerStatus": {"progressPercentage": 100}}"#;
        let (status, reply) = post(&elsewhere, Some(&a.token), JSON, progress_only).await;
        assert_eq!(
            (status, reply.as_str()),
            (200, r#"{"metrics":0,"skipped":[]}"#)
        );
        let logs = push.take("trial-a");
        assert_eq!(
            pairs(&logs),
            [("loss", "0.5"), ("loss", "0.25"), ("accuracy", "0.8")]
        );
        assert!(logs.iter().all(|l| l.time.is_some()));
    }

    #[tokio::test]
    async fn trainer_status_on_a_shared_endpoint_is_keyed_by_namespace() {
        let push = server(PushLimits::default()).await;
        let one = push.register("ns1.t1").unwrap();
        let two = push.register("ns2.t1").unwrap();
        let body = trainer_body(&[("loss", "1")]);
        let url = push.trainer_url("ns2", "t1");
        assert_eq!(
            post(&url, Some(&two.token), JSON, body.clone()).await.0,
            200
        );
        assert_eq!(
            post(&url, Some(&one.token), JSON, body.clone()).await.0,
            401
        );
        let unknown = push.trainer_url("ns3", "t1");
        assert_eq!(post(&unknown, Some(&two.token), JSON, body).await.0, 404);
        assert_eq!(push.take("ns2.t1").len(), 1);
        assert!(push.take("ns1.t1").is_empty());
    }

    #[tokio::test]
    async fn trainer_status_refuses_as_the_push_route_does() {
        let push = server(PushLimits {
            max_body: 1024,
            max_queued: 3,
        })
        .await;
        let a = push.register("a").unwrap();
        let url = push.trainer_url("default", "a");
        let body = trainer_body(&[("loss", "1")]);
        let (status, reply) = post(
            &url,
            Some("0123456789abcdef0123456789abcdef"),
            JSON,
            body.clone(),
        )
        .await;
        assert_eq!(
            (status, reply.as_str()),
            (401, r#"{"error":"wrong token"}"#)
        );
        let (status, reply) = post(&url, None, JSON, body.clone()).await;
        assert_eq!(status, 401);
        assert!(reply.contains("KUBEFLOW_TRAINER_SERVER_TOKEN"), "{reply}");
        let other = push.trainer_url("default", "b");
        assert_eq!(
            post(&other, Some(&a.token), JSON, body.clone()).await.0,
            404
        );
        let wrong_verb = format!("{}{TRAINER}/default/trainjobs/a", push.url());
        assert_eq!(
            post(&wrong_verb, Some(&a.token), JSON, body.clone())
                .await
                .0,
            404
        );
        for (bad, says) in [
            ("{", "not JSON"),
            (r#"{"loss": 1}"#, "trainerStatus: missing"),
            (
                r#"{"trainerStatus": {"metrics": [{"name": "loss", "value": 1}]}}"#,
                "trainerStatus.metrics[0].value",
            ),
        ] {
            let (status, reply) = post(&url, Some(&a.token), JSON, bad).await;
            assert_eq!(status, 400, "{bad}: {reply}");
            assert!(reply.contains(says), "{bad}: {reply}");
        }
        let big = trainer_body(&[("loss", &"1".repeat(2000))]);
        assert_eq!(post(&url, Some(&a.token), JSON, big).await.0, 413);
        let two = trainer_body(&[("loss", "1"), ("loss", "2")]);
        assert_eq!(post(&url, Some(&a.token), JSON, two.clone()).await.0, 200);
        assert_eq!(post(&url, Some(&a.token), JSON, two).await.0, 429);
        assert_eq!(push.take("a").len(), 2);
    }

    #[test]
    fn handles_can_live_in_the_engine() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PushServer>();
        send_sync::<PushInbox>();
        send_sync::<PushCredentials>();
    }

    #[test]
    fn helpers() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "bearer  tok ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("tok"));
        headers.insert(AUTHORIZATION, "Basic tok".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
