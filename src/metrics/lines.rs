//! Metrics read line by line from a file a trial writes: how lines become
//! reports ([`LineFormat`]: Katib's TEXT with the experiment's filters, or
//! JSON lines) and how a growing file is followed ([`Tail`]). `ktune run`'s
//! StdOut and File collectors read the trial's files with them
//! ([`LineReader`]); the File collector's sidecar in a cluster
//! ([`super::stream`]) reads the shared metrics file with the same two.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use super::MetricLog;
use super::collector::TrialMetrics;
use super::filter::FilterError;
use super::json::parse_json_line;
use super::text::TextParser;
use crate::api::enums::FileFormat;

/// Longest metrics line kept; longer lines are cut (a trial printing
/// megabytes without a newline must not exhaust memory).
const MAX_LINE: usize = 64 * 1024;

/// Most bytes read from a file in one poll.
const MAX_READ: u64 = 4 * 1024 * 1024;

/// How lines of a trial's output become reports.
#[derive(Debug)]
pub enum LineFormat {
    /// Katib's TEXT format with the experiment's filters.
    Text(TextParser),
    /// JSON lines, reading these metrics.
    Json(Vec<String>),
}

impl LineFormat {
    /// The format `format` names (JSON, or TEXT for anything else, as Katib
    /// reads it), reading `metrics`; `filters` are the TEXT filters (empty:
    /// Katib's default `name=value`).
    ///
    /// # Errors
    /// [`FilterError`] when a TEXT filter is not a regex with two groups.
    pub fn new(
        format: &FileFormat,
        metrics: &[String],
        filters: &[String],
    ) -> Result<Self, FilterError> {
        Ok(if *format == FileFormat::Json {
            Self::Json(metrics.to_vec())
        } else {
            Self::Text(TextParser::new(metrics.iter().cloned(), filters)?)
        })
    }

    /// Every report in one line.
    #[must_use]
    pub fn parse(&self, line: &str) -> Vec<MetricLog> {
        match self {
            Self::Text(parser) => parser.parse_line(line),
            Self::Json(metrics) => parse_json_line(line, metrics),
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
    /// Follows `path` from its start (it need not exist yet).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines; with `last` (the writer is gone), also a final
    /// line without a newline. A file that does not exist yet has none; a
    /// file shorter than what was read (truncated and rewritten) is read
    /// again from its start. Lines longer than 64 KiB are cut, and an
    /// unterminated line longer than that is dropped.
    pub fn new_lines(&mut self, last: bool) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.metadata().is_ok_and(|m| m.len() < self.offset) {
            self.offset = 0;
            self.partial.clear();
        }
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
            lines.push(cut(&line));
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
        if last && !self.partial.is_empty() {
            lines.push(cut(&self.partial));
            self.partial.clear();
        }
        lines
    }
}

/// A line as text, at most [`MAX_LINE`] bytes of it, without its end.
fn cut(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)])
        .trim_end()
        .to_owned()
}

/// One trial's reports from a file on this machine.
#[derive(Debug)]
pub struct LineReader {
    format: Arc<LineFormat>,
    /// The file, when the trial has one.
    tail: Option<Tail>,
}

impl LineReader {
    /// Reads `path` (none: the trial reports nothing) in `format`.
    #[must_use]
    pub fn new(format: Arc<LineFormat>, path: Option<PathBuf>) -> Self {
        Self {
            format,
            tail: path.map(Tail::new),
        }
    }
}

impl TrialMetrics for LineReader {
    // Only complete lines, also at the end: the runner may still be
    // copying the last one. A file is read from its start, so an adopted
    // trial's file replays what was stored before (the default).
    async fn poll(&mut self) -> Vec<MetricLog> {
        let Some(tail) = &mut self.tail else {
            return Vec::new();
        };
        tail.new_lines(false)
            .iter()
            .flat_map(|line| self.format.parse(line))
            .collect()
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
        assert!(
            tail.new_lines(false).is_empty(),
            "missing file has no lines"
        );
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "loss=1\nloss=").unwrap();
        assert_eq!(tail.new_lines(false), vec!["loss=1"]);
        writeln!(f, "2").unwrap();
        assert_eq!(tail.new_lines(false), vec!["loss=2"]);
        assert!(tail.new_lines(false).is_empty());
        let long = "x".repeat(MAX_LINE * 2);
        writeln!(f, "{long}").unwrap();
        assert_eq!(tail.new_lines(false)[0].len(), MAX_LINE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn following_yields_complete_lines_and_the_last_on_stop() {
        let dir = std::env::temp_dir().join(format!("ktune-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.log");
        let mut f = Tail::new(path.clone());
        assert!(f.new_lines(false).is_empty(), "no file yet");
        std::fs::write(&path, "loss=1\nloss=").unwrap();
        assert_eq!(f.new_lines(false), ["loss=1"]);
        std::fs::write(&path, "loss=1\nloss=0.5").unwrap();
        assert!(f.new_lines(false).is_empty());
        assert_eq!(f.new_lines(true), ["loss=0.5"]);
        // Truncated and rewritten: read again from the start.
        std::fs::write(&path, "a=1\n").unwrap();
        assert_eq!(f.new_lines(false), ["a=1"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn formats_follow_the_spec_word() {
        let metrics = ["loss".to_owned()];
        let json = LineFormat::new(&FileFormat::Json, &metrics, &[]).unwrap();
        assert_eq!(json.parse(r#"{"loss": 0.5}"#)[0].value, "0.5");
        assert!(json.parse("loss=0.5").is_empty());
        for text in [FileFormat::Text, FileFormat::Other("yaml".into())] {
            let text = LineFormat::new(&text, &metrics, &[]).unwrap();
            assert_eq!(text.parse("loss=0.5")[0].value, "0.5");
        }
        let bad = LineFormat::new(&FileFormat::Text, &metrics, &["(".to_owned()]);
        assert!(bad.is_err());
    }
}
