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
mod tests;
