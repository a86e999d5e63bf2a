//! The File and TensorFlowEvent collectors' sidecar (`ktune
//! collect-file`): follows what a trial writes into the emptyDir it shares
//! with the sidecar — a metrics file, each complete line parsed as the
//! experiment says (Katib TEXT with its filters, or JSON lines), or a
//! folder of TensorBoard event files ([`super::tfevent`]) — and streams the
//! reports to the controller's push endpoint with the trial's token
//! ([`super::push`]'s JSON wire format).
//!
//! It runs as a native sidecar (an init container with `restartPolicy:
//! Always`): the kubelet starts it before the training container and
//! stops it with SIGTERM once the training container ended, so the pod
//! still completes — Katib's sidecar instead waits for the training
//! process and can hang the trial. On that signal it reads the file to its
//! end (a last line without a newline included), sends what is left and
//! exits. Reports are sent while training runs, so early stopping sees
//! them; a failed send is retried with the next batch.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use super::MetricLog;
use super::lines::{LineFormat, Tail};
use super::tfevent::EventFiles;

/// How often the file is read.
const EVERY: Duration = Duration::from_millis(250);

/// Most reports kept while the endpoint cannot be reached; older ones are
/// dropped first.
const MAX_PENDING: usize = 100_000;

/// What the trial writes, and how far it was read.
#[derive(Debug)]
pub enum Source {
    /// A metrics file, followed line by line and read in this format.
    Lines(Tail, LineFormat),
    /// A folder of TensorBoard event files.
    Events(EventFiles),
}

impl Source {
    /// The reports written since the last read (`last`: the trial ended,
    /// so a line without its newline counts).
    fn read(&mut self, last: bool) -> Vec<MetricLog> {
        match self {
            Self::Lines(tail, format) => tail
                .new_lines(last)
                .iter()
                .flat_map(|line| format.parse(line))
                .collect(),
            Self::Events(files) => files.poll(),
        }
    }
}

/// Where to read and where to send.
#[derive(Debug)]
pub struct StreamOptions {
    /// What the trial writes.
    pub source: Source,
    /// The trial's push URL.
    pub url: String,
    /// The trial's bearer token.
    pub token: String,
}

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The URL is not an `http://` URL.
    #[error("push URL {0:?} is not an http:// URL")]
    Url(String),
    /// The endpoint refused the reports for good (a wrong token, an
    /// unknown trial).
    #[error("the push endpoint refused the reports: HTTP {status}: {body}")]
    Refused {
        /// The status code.
        status: u16,
        /// What it said.
        body: String,
    },
}

/// The push body for some reports: one JSON object per report.
fn body(logs: &[MetricLog]) -> Value {
    Value::Array(
        logs.iter()
            .map(|l| {
                let mut m = Map::new();
                m.insert(l.name.clone(), json!(l.value));
                if let Some(t) = l.time {
                    m.insert("timestamp".into(), json!(t.to_string()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Follows the source and sends its reports until `stop` resolves, then
/// sends the rest and returns.
///
/// # Errors
/// [`StreamError`] when the URL is unusable or the endpoint refuses the
/// token or the trial (retrying would not help).
pub async fn run(
    mut options: StreamOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), StreamError> {
    if !options.url.starts_with("http://") {
        return Err(StreamError::Url(options.url));
    }
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut pending: Vec<MetricLog> = Vec::new();
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            () = &mut stop, if !stopping => stopping = true,
            () = tokio::time::sleep(EVERY) => {}
        }
        pending.extend(options.source.read(stopping));
        if pending.len() > MAX_PENDING {
            let excess = pending.len() - MAX_PENDING;
            pending.drain(..excess);
        }
        if !pending.is_empty() {
            match send(&client, &options, &pending).await {
                Ok(()) => pending.clear(),
                Err(Some(e)) => return Err(e),
                Err(None) => {} // unreachable now: retried with the next batch
            }
        }
        if stopping {
            if !pending.is_empty() {
                tracing::warn!("{} reports could not be sent", pending.len());
            }
            return Ok(());
        }
    }
}

/// Sends reports; `Err(None)` when worth retrying.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    options: &StreamOptions,
    logs: &[MetricLog],
) -> Result<(), Option<StreamError>> {
    let request = hyper::Request::post(options.url.as_str())
        .header(AUTHORIZATION, format!("Bearer {}", options.token))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body(logs).to_string())))
        .map_err(|_| Some(StreamError::Url(options.url.clone())))?;
    let reply = match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            tracing::debug!("sending reports: {e}");
            return Err(None);
        }
        Err(_) => return Err(None),
    };
    let status = reply.status().as_u16();
    if reply.status().is_success() {
        return Ok(());
    }
    let text = reply
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if matches!(status, 401 | 404) {
        return Err(Some(StreamError::Refused { status, body: text }));
    }
    tracing::debug!("the push endpoint answered {status}: {text}");
    Err(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_pushed_as_one_object_each() {
        let logs = vec![MetricLog {
            name: "loss".into(),
            value: "0.5".into(),
            time: None,
        }];
        assert_eq!(body(&logs), json!([{"loss": "0.5"}]));
    }
}
