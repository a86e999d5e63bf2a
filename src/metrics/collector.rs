//! Collectors: how a running trial's metric reports reach the engine. The
//! engine sees only [`Collector`] and [`TrialMetrics`]; [`LocalCollector`]
//! implements them for `ktune run` — Katib's StdOut and File collectors
//! (TEXT with the experiment's filters, or JSON lines) read while the trial
//! runs, so early stopping can act mid-training.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::MetricLog;
use super::filter::FilterError;
use super::json::parse_json_line;
use super::text::TextParser;
use crate::api::Experiment;
use crate::api::enums::{CollectorKind, FileFormat};

/// Longest metrics line kept; longer lines are cut (a trial printing
/// megabytes without a newline must not exhaust memory).
const MAX_LINE: usize = 64 * 1024;

/// Most bytes read from a trial's output in one poll.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// Reads trials' metric reports.
pub trait Collector: Sync {
    /// One trial's reader.
    type Trial: TrialMetrics;

    /// Environment variables a trial needs to report (e.g. where to push);
    /// asked for before it starts.
    fn prepare(&self, trial: &str) -> Vec<(String, String)>;

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
    /// A File collector without a path.
    #[error("metricsCollectorSpec.source.fileSystemPath.path is required for the File collector")]
    NoPath,
}

/// How lines of a trial's output become reports.
#[derive(Debug)]
enum LineFormat {
    Text(TextParser),
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
#[derive(Debug, Clone)]
pub struct LocalCollector {
    format: Arc<LineFormat>,
    source: LineSource,
}

impl LocalCollector {
    /// The collector an experiment asks for, reading `metrics` (the
    /// objective and additional metrics).
    ///
    /// # Errors
    /// [`CollectorError`] for a bad filter or an unsupported kind.
    pub fn new(experiment: &Experiment, metrics: &[String]) -> Result<Self, CollectorError> {
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
        let (format, source) = match kind {
            CollectorKind::StdOut => (text()?, LineSource::Stdout),
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
                (format, LineSource::File(PathBuf::from(path.path)))
            }
            other => return Err(CollectorError::Unsupported(other.to_string())),
        };
        Ok(Self {
            format: Arc::new(format),
            source,
        })
    }
}

impl Collector for LocalCollector {
    type Trial = LineReader;

    fn prepare(&self, _trial: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    fn attach(&self, _trial: &str, stdout: Option<&Path>) -> LineReader {
        let path = match &self.source {
            LineSource::Stdout => stdout.map(Path::to_owned),
            LineSource::File(path) => Some(path.clone()),
        };
        LineReader {
            format: Arc::clone(&self.format),
            tail: path.map(Tail::new),
        }
    }

    fn detach(&self, _trial: &str) {}
}

/// Reads a trial's metrics from the lines of a growing file.
#[derive(Debug)]
pub struct LineReader {
    format: Arc<LineFormat>,
    tail: Option<Tail>,
}

impl TrialMetrics for LineReader {
    async fn poll(&mut self) -> Vec<MetricLog> {
        let Some(tail) = &mut self.tail else {
            return Vec::new();
        };
        tail.new_lines()
            .iter()
            .flat_map(|line| self.format.parse(line))
            .collect()
    }
}

/// The complete lines appended to a file since the last read.
#[derive(Debug)]
struct Tail {
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
