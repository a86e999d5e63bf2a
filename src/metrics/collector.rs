//! Collectors: how a running trial's metric reports reach the engine. The
//! engine sees only [`Collector`] and [`TrialMetrics`]; [`LocalCollector`]
//! implements them for `ktune run`: Katib's StdOut and File collectors
//! (TEXT with the experiment's filters, or JSON lines) read while the trial
//! runs, so early stopping can act mid-training; PrometheusMetric (the
//! trial's endpoint scraped every [`SCRAPE_EVERY`] on the port in
//! `$KTUNE_METRICS_PORT`); and Push (an endpoint on 127.0.0.1 the trial
//! posts to with the URL and token in `$KTUNE_PUSH_URL` and
//! `$KTUNE_PUSH_TOKEN`).

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::MetricLog;
use super::filter::FilterError;
use super::json::parse_json_line;
use super::prometheus::{DEFAULT_PORT, PrometheusSource, Scraper, http_get_url};
use super::push::{PushError, PushInbox, PushServer};
use super::text::TextParser;
use crate::api::Experiment;
use crate::api::enums::{CollectorKind, FileFormat};
use crate::runner::Reporting;

/// Longest metrics line kept; longer lines are cut (a trial printing
/// megabytes without a newline must not exhaust memory).
const MAX_LINE: usize = 64 * 1024;

/// Most bytes read from a trial's output in one poll.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// Reads trials' metric reports.
pub trait Collector: Sync {
    /// One trial's reader.
    type Trial: TrialMetrics;

    /// What a trial needs to report (e.g. where to push); asked for before
    /// it starts, and handed to it by the runner.
    fn prepare(&self, trial: &str) -> Reporting;

    /// Starts reading a started trial; `stdout` is where the runner put its
    /// primary output, when it has one on this machine.
    fn attach(&self, trial: &str, stdout: Option<&Path>) -> Self::Trial;

    /// Forgets a trial that ended (after its last poll).
    fn detach(&self, trial: &str);
}

/// One trial's metric reader.
pub trait TrialMetrics: Send {
    /// The reports that arrived since the last poll, in order.
    fn poll(&mut self) -> impl Future<Output = Vec<MetricLog>> + Send;

    /// The last reports, once the trial has ended: a source that lags
    /// behind the trial (a log stream) waits for them here.
    fn finish(&mut self) -> impl Future<Output = Vec<MetricLog>> + Send {
        self.poll()
    }

    /// Whether, attached to a trial adopted after a restart, this source
    /// delivers again the reports stored before (a log or file read from
    /// its start does; pushes and scrapes only bring new ones), so the
    /// engine skips that many.
    fn replays(&self) -> bool {
        true
    }
}

/// Why a collector could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A metrics filter is not a usable regex.
    #[error("metrics filter: {0}")]
    Filter(#[from] FilterError),
    /// The kind cannot run on this machine.
    #[error("metrics collector {0} is not supported by `ktune run`")]
    Unsupported(String),
    /// The PrometheusMetric source has no usable port.
    #[error(
        "metricsCollectorSpec.source.httpGet.port {0} is not a port number (named ports cannot be resolved locally)"
    )]
    Port(String),
    /// The Push endpoint could not start.
    #[error("push endpoint: {0}")]
    Push(#[from] PushError),
    /// A File collector without a path.
    #[error("metricsCollectorSpec.source.fileSystemPath.path is required for the File collector")]
    NoPath,
}

/// How lines of a trial's output become reports.
#[derive(Debug)]
pub enum LineFormat {
    /// Katib's TEXT format with the experiment's filters.
    Text(TextParser),
    /// JSON lines, reading these metrics.
    Json(Vec<String>),
}

impl LineFormat {
    fn parse(&self, line: &str) -> Vec<MetricLog> {
        match self {
            Self::Text(parser) => parser.parse_line(line),
            Self::Json(metrics) => parse_json_line(line, metrics),
        }
    }
}

/// Where the lines come from.
#[derive(Debug, Clone)]
enum LineSource {
    /// The trial's standard output.
    Stdout,
    /// A file the trial writes (the collector spec's path, relative to the
    /// trials' working directory when not absolute).
    File(PathBuf),
}

/// The collectors `ktune run` supports.
#[derive(Debug)]
pub struct LocalCollector {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// StdOut, or File (TEXT or JSON lines).
    Lines {
        format: Arc<LineFormat>,
        source: LineSource,
    },
    /// PrometheusMetric: the trial's `/metrics` endpoint, scraped.
    Prometheus {
        path: String,
        /// The spec's port; with several trials at once each gets its own.
        port: u16,
        shared_port: bool,
        metrics: Arc<[String]>,
        scraper: Scraper,
        ports: Mutex<HashMap<String, u16>>,
    },
    /// Push: an HTTP endpoint on 127.0.0.1 the trials post to.
    Push {
        server: PushServer,
        metrics: Arc<[String]>,
    },
}

/// The variable naming the port a PrometheusMetric trial should serve
/// `/metrics` on.
pub const METRICS_PORT_ENV: &str = "KTUNE_METRICS_PORT";

/// Least time between two scrapes of one trial.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

impl LocalCollector {
    /// The collector an experiment asks for, reading `metrics` (the
    /// objective and additional metrics). A Push collector starts its
    /// endpoint on 127.0.0.1 here.
    ///
    /// # Errors
    /// [`CollectorError`] for a bad filter, a missing path or port, or an
    /// unsupported kind.
    pub async fn start(
        experiment: &Experiment,
        metrics: &[String],
    ) -> Result<Self, CollectorError> {
        let spec = experiment
            .spec
            .metrics_collector_spec
            .clone()
            .unwrap_or_default();
        let kind = spec
            .collector
            .and_then(|c| c.kind)
            .unwrap_or(CollectorKind::StdOut);
        let source = spec.source.unwrap_or_default();
        let filters = source.filter.map(|f| f.metrics_format).unwrap_or_default();
        let text = || TextParser::new(metrics.iter().cloned(), &filters).map(LineFormat::Text);
        let lines = |format, source| Kind::Lines {
            format: Arc::new(format),
            source,
        };
        let kind = match kind {
            CollectorKind::StdOut => lines(text()?, LineSource::Stdout),
            CollectorKind::File => {
                let path = source.file_system_path.ok_or(CollectorError::NoPath)?;
                if path.path.is_empty() {
                    return Err(CollectorError::NoPath);
                }
                let format = if path.format == Some(FileFormat::Json) {
                    LineFormat::Json(metrics.to_vec())
                } else {
                    text()?
                };
                lines(format, LineSource::File(PathBuf::from(path.path)))
            }
            CollectorKind::PrometheusMetric => {
                let get = source.http_get.unwrap_or_default();
                let port = match &get.port {
                    IntOrString::Int(p) => u16::try_from(*p).ok().filter(|p| *p > 0),
                    IntOrString::String(s) if s.is_empty() => Some(DEFAULT_PORT),
                    IntOrString::String(s) => s.parse().ok(),
                }
                .ok_or_else(|| CollectorError::Port(format!("{:?}", get.port)))?;
                Kind::Prometheus {
                    path: get.path.unwrap_or_default(),
                    port,
                    shared_port: experiment.spec.parallel_trial_count.unwrap_or(1) > 1,
                    metrics: metrics.into(),
                    scraper: Scraper::new(),
                    ports: Mutex::new(HashMap::new()),
                }
            }
            CollectorKind::Push => Kind::Push {
                server: PushServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
                metrics: metrics.into(),
            },
            other => return Err(CollectorError::Unsupported(other.to_string())),
        };
        Ok(Self { kind })
    }
}

impl Collector for LocalCollector {
    type Trial = LocalMetrics;

    fn prepare(&self, trial: &str) -> Reporting {
        match &self.kind {
            Kind::Lines { .. } => Reporting::default(),
            Kind::Prometheus {
                port,
                shared_port,
                ports,
                ..
            } => {
                // Trials running side by side cannot all listen on the
                // spec's port: each gets a free one of its own.
                let port = if *shared_port {
                    crate::runner::replicas::free_port()
                } else {
                    *port
                };
                if let Ok(mut ports) = ports.lock() {
                    ports.insert(trial.to_owned(), port);
                }
                Reporting {
                    push: None,
                    metrics_port: Some(port),
                }
            }
            Kind::Push { server, .. } => match server.register(trial) {
                Ok(credentials) => Reporting {
                    push: Some(credentials),
                    metrics_port: None,
                },
                Err(e) => {
                    tracing::warn!(trial, "cannot set up the push endpoint: {e}");
                    Reporting::default()
                }
            },
        }
    }

    fn attach(&self, trial: &str, stdout: Option<&Path>) -> LocalMetrics {
        match &self.kind {
            Kind::Lines { format, source } => {
                let path = match source {
                    LineSource::Stdout => stdout.map(Path::to_owned),
                    LineSource::File(path) => Some(path.clone()),
                };
                LocalMetrics::Lines {
                    format: Arc::clone(format),
                    tail: path.map(Tail::new),
                }
            }
            Kind::Prometheus {
                path,
                port,
                metrics,
                scraper,
                ports,
                ..
            } => {
                let port = ports
                    .lock()
                    .ok()
                    .and_then(|p| p.get(trial).copied())
                    .unwrap_or(*port);
                let url = http_get_url(None, port, path);
                LocalMetrics::Prometheus {
                    source: Box::new(PrometheusSource::new(
                        url,
                        metrics.iter().cloned(),
                        scraper.clone(),
                    )),
                    last: None,
                }
            }
            Kind::Push { server, metrics } => LocalMetrics::Push {
                inbox: server.inbox(trial),
                metrics: Arc::clone(metrics),
            },
        }
    }

    fn detach(&self, trial: &str) {
        match &self.kind {
            Kind::Lines { .. } => {}
            Kind::Prometheus { ports, .. } => {
                if let Ok(mut ports) = ports.lock() {
                    ports.remove(trial);
                }
            }
            Kind::Push { server, .. } => {
                let late = server.unregister(trial);
                if !late.is_empty() {
                    tracing::warn!(
                        trial,
                        "{} metric reports arrived after the trial ended and were dropped",
                        late.len()
                    );
                }
            }
        }
    }
}

/// One trial's metric reader for `ktune run`.
#[derive(Debug)]
pub enum LocalMetrics {
    /// Lines of its output or of a file it writes.
    Lines {
        /// How lines become reports.
        format: Arc<LineFormat>,
        /// The file, once known.
        tail: Option<Tail>,
    },
    /// Its Prometheus endpoint.
    Prometheus {
        /// The endpoint and what it showed last.
        source: Box<PrometheusSource>,
        /// When it was last scraped.
        last: Option<Instant>,
    },
    /// What it pushed.
    Push {
        /// Its reports on the endpoint.
        inbox: PushInbox,
        /// The metrics the experiment records (pushed others are ignored).
        metrics: Arc<[String]>,
    },
}

impl TrialMetrics for LocalMetrics {
    fn replays(&self) -> bool {
        // A file or output is read from its start; pushes and scrapes
        // bring only what is new.
        matches!(self, Self::Lines { .. })
    }

    async fn poll(&mut self) -> Vec<MetricLog> {
        match self {
            Self::Lines { format, tail } => {
                let Some(tail) = tail else {
                    return Vec::new();
                };
                tail.new_lines()
                    .iter()
                    .flat_map(|line| format.parse(line))
                    .collect()
            }
            Self::Prometheus { source, last } => {
                if last.is_some_and(|t| t.elapsed() < SCRAPE_EVERY) {
                    return Vec::new();
                }
                *last = Some(Instant::now());
                match source.poll().await {
                    Ok(logs) => logs,
                    // Not listening yet, or already gone: normal.
                    Err(e) if e.is_connect() => Vec::new(),
                    Err(e) => {
                        tracing::debug!("scraping {}: {e}", source.url());
                        Vec::new()
                    }
                }
            }
            Self::Push { inbox, metrics } => {
                let mut logs = inbox.take();
                logs.retain(|l| metrics.contains(&l.name));
                logs
            }
        }
    }
}

/// The complete lines appended to a file since the last read.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines; a file that does not exist yet has none. Lines
    /// longer than [`MAX_LINE`] are cut, and an unterminated line longer
    /// than that is dropped.
    fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = file.by_ref().take(MAX_READ).read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            let cut = &line[..line.len().min(MAX_LINE)];
            lines.push(String::from_utf8_lossy(cut).trim_end().to_owned());
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_returns_only_complete_new_lines() {
        let dir = std::env::temp_dir().join(format!("ktune-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        let mut tail = Tail::new(path.clone());
        assert!(tail.new_lines().is_empty(), "missing file has no lines");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "loss=1\nloss=").unwrap();
        assert_eq!(tail.new_lines(), vec!["loss=1"]);
        writeln!(f, "2").unwrap();
        assert_eq!(tail.new_lines(), vec!["loss=2"]);
        assert!(tail.new_lines().is_empty());
        let long = "x".repeat(MAX_LINE * 2);
        writeln!(f, "{long}").unwrap();
        assert_eq!(tail.new_lines()[0].len(), MAX_LINE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
