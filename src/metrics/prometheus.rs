//! Parsing and scraping for the PrometheusMetric collector
//! (katib-reference.md §6.5; [`super::kinds::prometheus`]): the trial
//! serves its metrics in the Prometheus text exposition format over plain
//! HTTP (`source.httpGet`, default path `/metrics`, port 8080) and ktune
//! scrapes it while the trial runs and once more when it exits.
//!
//! Stock Katib ships no collector image for this kind, so there is no Katib
//! behaviour to copy; the rules here are ktune's own and are written down
//! where they are made:
//!
//! * [`parse_exposition`] picks one sample per wanted metric (the unlabelled
//!   one, else the first) and ignores histogram and summary series.
//! * [`Scraper`] is a plain-HTTP client with a per-request timeout and a cap
//!   on the response body, so a slow or hostile endpoint cannot stall the
//!   engine or exhaust its memory.
//! * [`PrometheusSource`] remembers what each metric last showed so that a
//!   gauge left unchanged between scrapes is reported once, not once per
//!   scrape.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::Uri;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_LENGTH};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jiff::Timestamp;
use prometheus_parse::{LineInfo, SampleType};

use super::{MetricLog, parse_number};
use crate::api::defaults::DEFAULT_PROMETHEUS_PATH;

/// The URL to scrape for a trial's `httpGet` source: `host` defaults to
/// 127.0.0.1 (local trials are processes on this machine), an empty `path`
/// to Katib's [`DEFAULT_PROMETHEUS_PATH`], and a path without its leading
/// `/` gets one.
#[must_use]
pub fn http_get_url(host: Option<&str>, port: u16, path: &str) -> String {
    let host = host.filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
    let path = if path.is_empty() {
        DEFAULT_PROMETHEUS_PATH
    } else {
        path
    };
    let slash = if path.starts_with('/') { "" } else { "/" };
    if host.contains(':') && !host.starts_with('[') {
        // An IPv6 literal needs brackets in a URL.
        format!("http://[{host}]:{port}{slash}{path}")
    } else {
        format!("http://{host}:{port}{slash}{path}")
    }
}

/// Every wanted metric's value in a Prometheus (or OpenMetrics) text
/// exposition, in the order of `metrics`; a metric the text does not show
/// is absent from the result.
///
/// Which sample is a metric's value:
///
/// * Samples are matched by their exact name; gauges, counters and untyped
///   samples are taken. Histogram buckets and summary quantiles are
///   ignored: they are distributions, not one number a trial can be judged
///   by. Their `_sum` and `_count` series are plain numbers and are taken
///   when asked for by name.
/// * When a name appears with several label sets, the unlabelled sample
///   wins, else the first in the text. A trial's objective is one number;
///   an exporter that publishes it next to labelled breakdowns almost
///   always publishes the overall value without labels, and "first" keeps
///   the choice stable from one scrape to the next (client libraries write
///   series in a fixed order).
/// * The value is kept as the text the exporter wrote (`NaN`, `+Inf` and
///   `-Inf` included, like every other collector's values); a sample whose
///   value is not a number at all is skipped, as Prometheus would refuse it.
/// * A sample's timestamp becomes `time`: milliseconds since the epoch in
///   the Prometheus format, seconds in OpenMetrics (recognised by its
///   mandatory `# EOF` line). No timestamp (or an unreadable one) gives
///   `None`; [`PrometheusSource`] then uses the scrape time.
///
/// Lines that are not samples are skipped; this never fails. (The parser,
/// prometheus-parse, reads names as `\w+`, so a recording-rule style name
/// with `:` is not found.)
#[must_use]
pub fn parse_exposition<S: AsRef<str>>(text: &str, metrics: &[S]) -> Vec<MetricLog> {
    let wanted: HashSet<&str> = metrics.iter().map(AsRef::as_ref).collect();
    let open_metrics = text.lines().any(|l| l.trim() == "# EOF");
    let mut distributions: HashSet<String> = HashSet::new();
    let mut chosen: HashMap<&str, Candidate> = HashMap::new();
    for line in text.lines() {
        let line = without_empty_braces(line);
        match LineInfo::parse(&line) {
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type: SampleType::Histogram | SampleType::Summary,
            } => {
                distributions.insert(metric_name);
                distributions.extend(metric_alias);
            }
            LineInfo::Sample {
                metric_name,
                labels,
                value,
                timestamp,
            } => {
                let Some(&name) = wanted.get(metric_name) else {
                    continue;
                };
                if distributions.contains(name) || parse_number(value).is_none() {
                    continue;
                }
                let labelled = labels.is_some_and(|l| !l.trim().is_empty());
                let replace = match chosen.get(name) {
                    None => true,
                    Some(current) => current.labelled && !labelled,
                };
                if replace {
                    chosen.insert(
                        name,
                        Candidate {
                            value: value.to_owned(),
                            time: timestamp.and_then(|t| sample_time(t, open_metrics)),
                            labelled,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    metrics
        .iter()
        .filter_map(|name| {
            let found = chosen.get(name.as_ref())?;
            Some(MetricLog {
                name: name.as_ref().to_owned(),
                value: found.value.clone(),
                time: found.time,
            })
        })
        .collect()
}

/// The sample picked so far for one metric.
struct Candidate {
    value: String,
    time: Option<Timestamp>,
    labelled: bool,
}

/// `name{} 1` is valid exposition text, but prometheus-parse's sample
/// pattern wants at least one character between the braces; drop them.
fn without_empty_braces(line: &str) -> Cow<'_, str> {
    let trimmed = line.trim_start();
    let name_end = trimmed
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    let (name, rest) = trimmed.split_at(name_end);
    match rest.strip_prefix("{}") {
        Some(rest) if !name.is_empty() => Cow::Owned(format!("{name}{rest}")),
        _ => Cow::Borrowed(line),
    }
}

/// A sample's timestamp: integer milliseconds (Prometheus) or decimal
/// seconds (OpenMetrics) since the epoch.
fn sample_time(text: &str, open_metrics: bool) -> Option<Timestamp> {
    if open_metrics {
        let seconds: f64 = text.parse().ok()?;
        if !seconds.is_finite() {
            return None;
        }
        // Microseconds: exact in an f64 for today's epoch seconds
        // (nanoseconds are not), and finer than the store keeps anyway.
        let micros = (seconds * 1e6).round();
        if micros.abs() >= 9.0e18 {
            return None;
        }
        Timestamp::from_microsecond(micros as i64).ok()
    } else {
        Timestamp::from_millisecond(text.parse().ok()?).ok()
    }
}

/// Why a scrape gave no metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// The URL is not an `http://host:port/path` URL (HTTPS is not
    /// supported: trials are local processes).
    #[error("cannot scrape {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing listens there (yet): normal while a trial starts up.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL scraped.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The connection broke or the answer was not HTTP.
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The URL scraped.
        url: String,
        /// The error.
        reason: String,
    },
    /// No full answer within the scraper's timeout.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL scraped.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered with a status other than 2xx.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL scraped.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The answer is bigger than the scraper's body cap.
    #[error("{url} sent more than {limit} bytes")]
    BodyTooLarge {
        /// The URL scraped.
        url: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The body could not be read to its end.
    #[error("reading the answer from {url} failed: {reason}")]
    Body {
        /// The URL scraped.
        url: String,
        /// The error.
        reason: String,
    },
}

impl ScrapeError {
    /// Whether the endpoint is simply not listening (yet). While the trial
    /// runs the caller ignores this; only a trial that exits without ever
    /// being scraped has a problem.
    #[must_use]
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// A plain-HTTP client for `/metrics` endpoints, with a timeout per request
/// and a cap on the response body. Cheap to clone (clones share one
/// connection pool); one is enough for all trials.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl Default for Scraper {
    fn default() -> Self {
        Self::new()
    }
}

impl Scraper {
    /// Per-request timeout of [`Scraper::new`]: a scrape is a few kilobytes
    /// from a local process; one that takes longer is stuck, and the next
    /// scrape comes in a few seconds anyway.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Response body cap of [`Scraper::new`]: far above any real exposition
    /// of a training job, far below what would hurt the engine.
    pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

    /// A scraper with [`Self::DEFAULT_TIMEOUT`] and [`Self::DEFAULT_MAX_BODY`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_TIMEOUT, Self::DEFAULT_MAX_BODY)
    }

    /// A scraper that gives up on a request after `timeout` (connecting,
    /// waiting and reading the body together) and refuses bodies over
    /// `max_body` bytes.
    #[must_use]
    pub fn with_limits(timeout: Duration, max_body: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            timeout,
            max_body,
        }
    }

    /// Scrapes `url` and reads `metrics` from it ([`parse_exposition`]).
    ///
    /// # Errors
    /// [`ScrapeError`] when there is no complete 2xx answer within the
    /// limits; [`ScrapeError::is_connect`] tells "not listening yet" apart.
    pub async fn scrape<S: AsRef<str>>(
        &self,
        url: &str,
        metrics: &[S],
    ) -> Result<Vec<MetricLog>, ScrapeError> {
        let text = self.fetch(url).await?;
        Ok(parse_exposition(&text, metrics))
    }

    /// The body `url` answers with, as text (invalid UTF-8 replaced, since
    /// only the ASCII metric names and numbers matter).
    ///
    /// # Errors
    /// As [`Self::scrape`].
    pub async fn fetch(&self, url: &str) -> Result<String, ScrapeError> {
        let uri = http_uri(url)?;
        match tokio::time::timeout(self.timeout, self.fetch_uri(url, uri)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    async fn fetch_uri(&self, url: &str, uri: Uri) -> Result<String, ScrapeError> {
        let request = hyper::Request::get(uri)
            .header(ACCEPT, "text/plain;version=0.0.4;q=1,*/*;q=0.1")
            .body(Empty::new())
            .map_err(|e| ScrapeError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let response = self.client.request(request).await.map_err(|e| {
            let reason = error_chain(&e);
            if e.is_connect() {
                ScrapeError::Connect {
                    url: url.to_owned(),
                    reason,
                }
            } else {
                ScrapeError::Request {
                    url: url.to_owned(),
                    reason,
                }
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ScrapeError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let too_large = || ScrapeError::BodyTooLarge {
            url: url.to_owned(),
            limit: self.max_body,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let body = Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    too_large()
                } else {
                    ScrapeError::Body {
                        url: url.to_owned(),
                        reason: error_chain(e.as_ref()),
                    }
                }
            })?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// `url` as an `http://` URI with a host, or why not.
fn http_uri(url: &str) -> Result<Uri, ScrapeError> {
    let invalid = |reason: &str| ScrapeError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// URLs can be scraped"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

/// An error and its sources, `: `-separated (hyper's own messages say only
/// "client error (Connect)"; the cause is further down).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One trial's Prometheus endpoint, scraped repeatedly, reporting each
/// observation once.
///
/// The rule: a metric's sample is reported when its value text or its
/// exposition timestamp differs from what the previous successful scrape
/// showed for that metric (the first sample of a metric is always new).
/// So an exporter that stamps its samples gets one report per new
/// timestamp, even when the value repeats; an exporter without timestamps
/// (the usual case: a gauge set after each epoch) gets one report per
/// change of value, and a value repeated in two consecutive epochs counts
/// once — use timestamps, or the Push collector, when that matters. A
/// metric missing from a scrape keeps its last value, so it is not
/// reported again if it comes back unchanged.
///
/// Reports without an exposition timestamp get the scrape time, which is
/// when Prometheus itself considers such a sample observed.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    url: String,
    metrics: Vec<String>,
    scraper: Scraper,
    last: HashMap<String, Seen>,
}

/// What a metric showed at the last scrape.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    value: String,
    time: Option<Timestamp>,
}

impl PrometheusSource {
    /// A source for one trial's endpoint (see [`http_get_url`]) and the
    /// experiment's metric names.
    #[must_use]
    pub fn new(
        url: impl Into<String>,
        metrics: impl IntoIterator<Item = impl Into<String>>,
        scraper: Scraper,
    ) -> Self {
        Self {
            url: url.into(),
            metrics: metrics.into_iter().map(Into::into).collect(),
            scraper,
            last: HashMap::new(),
        }
    }

    /// The URL scraped.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Scrapes once and returns the reports that are new since the last
    /// successful scrape (the rule is on [`PrometheusSource`]).
    ///
    /// # Errors
    /// [`ScrapeError`] from the scrape; what was seen before is kept, so a
    /// failed scrape loses nothing.
    pub async fn poll(&mut self) -> Result<Vec<MetricLog>, ScrapeError> {
        let logs = self.scraper.scrape(&self.url, &self.metrics).await?;
        Ok(self.fresh(logs, Timestamp::now()))
    }

    /// The reports of one scrape (taken at `now`) that are new, remembering
    /// them: [`Self::poll`] without the network.
    pub fn fresh(&mut self, logs: Vec<MetricLog>, now: Timestamp) -> Vec<MetricLog> {
        logs.into_iter()
            .filter_map(|log| {
                let seen = Seen {
                    value: log.value.clone(),
                    time: log.time,
                };
                if self.last.get(&log.name) == Some(&seen) {
                    return None;
                }
                self.last.insert(log.name.clone(), seen);
                Some(MetricLog {
                    time: log.time.or(Some(now)),
                    ..log
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    use tokio::net::TcpListener;

    use super::*;

    const EXPOSITION: &str = r#"# HELP accuracy Validation accuracy.
# TYPE accuracy gauge
accuracy{split="train"} 0.99
accuracy 0.91
accuracy{split="test"} 0.9
# HELP loss Training loss.
# TYPE loss gauge
loss{split="train"} NaN 1711111111500
loss{split="val"} 0.5
# TYPE steps_total counter
steps_total 1200
# TYPE score untyped
score +Inf
neg_score -Inf
# TYPE latency histogram
latency_bucket{le="0.1"} 3
latency_bucket{le="+Inf"} 5
latency_sum 0.7
latency_count 5
# TYPE quantiles summary
quantiles{quantile="0.5"} 0.2
quantiles_sum 1.5
broken not-a-number
empty_braces{} 7
"#;

    fn pairs(logs: &[MetricLog]) -> Vec<(&str, &str)> {
        logs.iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn exposition_gives_one_sample_per_wanted_metric() {
        let logs = parse_exposition(
            EXPOSITION,
            &[
                "loss",
                "accuracy",
                "steps_total",
                "score",
                "neg_score",
                "latency",
                "latency_bucket",
                "latency_count",
                "quantiles",
                "quantiles_sum",
                "broken",
                "empty_braces",
                "absent",
            ],
        );
        assert_eq!(
            pairs(&logs),
            [
                ("loss", "NaN"),
                ("accuracy", "0.91"),
                ("steps_total", "1200"),
                ("score", "+Inf"),
                ("neg_score", "-Inf"),
                ("latency_count", "5"),
                ("quantiles_sum", "1.5"),
                ("empty_braces", "7"),
            ]
        );
        assert!(logs[0].number().is_some_and(f64::is_nan));
        assert_eq!(logs[3].number(), Some(f64::INFINITY));
        assert_eq!(logs[4].number(), Some(f64::NEG_INFINITY));
        assert_eq!(
            logs[0].time,
            Some(Timestamp::from_millisecond(1_711_111_111_500).unwrap())
        );
        assert_eq!(logs[1].time, None);
    }

    #[test]
    fn open_metrics_timestamps_are_seconds() {
        let text = "# TYPE loss gauge\nloss 0.25 1711111111.25\n# EOF\n";
        let logs = parse_exposition(text, &["loss"]);
        assert_eq!(
            logs[0].time,
            Some(Timestamp::from_millisecond(1_711_111_111_250).unwrap())
        );
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "\n\n",
            "# TYPE",
            "loss",
            "loss{",
            "loss{a=\"}\"} 1",
            "loss 1 not-a-time",
            "loss 1 99999999999999999999",
            "loss 1 -9223372036854775808",
            "# EOF\nloss 1 1e308",
            "\u{0}\u{fffd} loss=1",
        ] {
            let _ = parse_exposition(text, &["loss"]);
        }
        assert_eq!(
            parse_exposition("loss 1 not-a-time", &["loss"])[0].time,
            None
        );
    }

    #[test]
    fn source_reports_changes_and_new_timestamps_only() {
        let mut source = PrometheusSource::new("http://127.0.0.1:1/metrics", ["a"], Scraper::new());
        let now = Timestamp::from_second(1_000).unwrap();
        let log = |value: &str, time: Option<i64>| MetricLog {
            name: "a".into(),
            value: value.into(),
            time: time.map(|ms| Timestamp::from_millisecond(ms).unwrap()),
        };
        let first = source.fresh(vec![log("1", None)], now);
        assert_eq!(
            first,
            [MetricLog {
                time: Some(now),
                ..log("1", None)
            }]
        );
        assert!(source.fresh(vec![log("1", None)], now).is_empty());
        assert_eq!(source.fresh(vec![log("2", None)], now).len(), 1);
        assert_eq!(
            source.fresh(vec![log("2", Some(5))], now),
            [log("2", Some(5))]
        );
        assert!(source.fresh(vec![log("2", Some(5))], now).is_empty());
        assert_eq!(source.fresh(vec![log("2", Some(6))], now).len(), 1);
        // A scrape without the metric forgets nothing.
        assert!(source.fresh(Vec::new(), now).is_empty());
        assert!(source.fresh(vec![log("2", Some(6))], now).is_empty());
    }

    #[test]
    fn sources_can_live_in_the_engine() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Scraper>();
        send_sync::<PrometheusSource>();
        let mut source = PrometheusSource::new("http://127.0.0.1:1/", ["a"], Scraper::new());
        send(&source.poll());
    }

    #[test]
    fn urls_for_http_get_sources() {
        assert_eq!(
            http_get_url(None, 8080, ""),
            "http://127.0.0.1:8080/metrics"
        );
        assert_eq!(
            http_get_url(Some("localhost"), 9, "stats"),
            "http://localhost:9/stats"
        );
        assert_eq!(http_get_url(Some("::1"), 9, "/m"), "http://[::1]:9/m");
        for bad in [
            "https://127.0.0.1/metrics",
            "not a url",
            "/metrics",
            "http:///x",
        ] {
            assert!(
                matches!(http_uri(bad), Err(ScrapeError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    type Page = Arc<Mutex<String>>;

    async fn metrics_page(State(page): State<Page>) -> String {
        page.lock().unwrap().clone()
    }

    async fn serve(router: Router) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn scraping_a_live_endpoint() {
        let page: Page = Arc::new(Mutex::new("# TYPE loss gauge\nloss 0.9\n".into()));
        let big = "x".repeat(Scraper::DEFAULT_MAX_BODY + 1);
        let router = Router::new()
            .route("/metrics", get(metrics_page))
            .with_state(page.clone())
            .route("/big", get(move || async move { big }));
        let base = serve(router).await;
        let mut source = PrometheusSource::new(
            format!("{base}/metrics"),
            ["loss", "accuracy"],
            Scraper::new(),
        );
        let first = source.poll().await.unwrap();
        assert_eq!(pairs(&first), [("loss", "0.9")]);
        assert!(first[0].time.is_some());
        assert!(source.poll().await.unwrap().is_empty(), "unchanged gauge");
        *page.lock().unwrap() = "loss 0.5\naccuracy 0.7\n".into();
        assert_eq!(
            pairs(&source.poll().await.unwrap()),
            [("loss", "0.5"), ("accuracy", "0.7")]
        );
        *page.lock().unwrap() = "loss 0.5\naccuracy 0.8\n".into();
        assert_eq!(pairs(&source.poll().await.unwrap()), [("accuracy", "0.8")]);

        let scraper = Scraper::new();
        let err = scraper
            .scrape(&format!("{base}/missing"), &["loss"])
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScrapeError::Status { status: 404, .. }),
            "{err}"
        );
        let err = scraper
            .scrape(&format!("{base}/big"), &["loss"])
            .await
            .unwrap_err();
        assert!(matches!(err, ScrapeError::BodyTooLarge { .. }), "{err}");
    }

    /// A body of `chunks` frames of 1 KiB with no length known in advance,
    /// so it is sent chunked.
    struct Chunked {
        chunks: usize,
    }

    impl hyper::body::Body for Chunked {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.chunks == 0 {
                return std::task::Poll::Ready(None);
            }
            self.chunks -= 1;
            let frame = hyper::body::Frame::data(Bytes::from(vec![b'#'; 1024]));
            std::task::Poll::Ready(Some(Ok(frame)))
        }
    }

    #[tokio::test]
    async fn oversized_chunked_bodies_are_refused_too() {
        // No Content-Length: the cap must hold while reading.
        let router = Router::new().route(
            "/metrics",
            get(|| async { axum::body::Body::new(Chunked { chunks: 64 }) }),
        );
        let base = serve(router).await;
        let scraper = Scraper::with_limits(Duration::from_secs(2), 16 * 1024);
        let err = scraper.fetch(&format!("{base}/metrics")).await.unwrap_err();
        assert!(
            matches!(err, ScrapeError::BodyTooLarge { limit: 16384, .. }),
            "{err}"
        );
        let ok = Scraper::with_limits(Duration::from_secs(2), 64 * 1024);
        assert_eq!(
            ok.fetch(&format!("{base}/metrics")).await.unwrap().len(),
            64 * 1024
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let scraper = Scraper::with_limits(Duration::from_millis(200), 1024);
        let err = scraper
            .fetch(&format!("http://{addr}/metrics"))
            .await
            .unwrap_err();
        assert!(matches!(err, ScrapeError::Timeout { .. }), "{err}");

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let err = scraper
            .fetch(&format!("http://{addr}/metrics"))
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err}");
    }
}
