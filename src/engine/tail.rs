//! The end of a failed trial's stderr, for its failure message: the cause
//! of most first failures (a wrong script path, a Python traceback) is in
//! the last lines, and users should not have to dig for it.
//!
//! The log may be huge (up to the run's log limit), so only its last
//! [`TAIL_BYTES`] are read; every line is made printable (control
//! characters escaped) and cut to [`LINE_CHARS`] characters.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

/// How many of the log's last bytes are read.
pub const TAIL_BYTES: u64 = 8 * 1024;
/// How many lines are kept.
pub const TAIL_LINES: usize = 3;
/// Longest a kept line is, in characters.
pub const LINE_CHARS: usize = 200;

/// The last `TAIL_LINES` non-blank lines of the file at `path`, printable
/// and cut; empty when it cannot be read or holds nothing.
#[must_use]
pub fn last_lines(path: &Path) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(TAIL_BYTES).read_to_end(&mut bytes).is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split(['\n', '\r']).collect();
    if start > 0 && lines.len() > 1 {
        lines.remove(0); // a line cut by the read's start
    }
    // Only the lines kept are made printable.
    let mut kept: Vec<String> = lines
        .into_iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(TAIL_LINES)
        .map(printable_line)
        .collect();
    kept.reverse();
    kept
}

/// One log line as it may be shown: cut to [`LINE_CHARS`] characters, tabs
/// as spaces, every other control character escaped.
fn printable_line(line: &str) -> String {
    let mut cut: String = line.trim_end().replace('\t', " ");
    if let Some((at, _)) = cut.char_indices().nth(LINE_CHARS) {
        cut.truncate(at);
        cut.push('…');
    }
    crate::cli::printable::escape_controls(&cut).into_owned()
}

/// A failure message: `reason`, then the stderr's last lines (`stderr: …`)
/// and the command that shows all of it; just `reason` when there are none.
#[must_use]
pub fn with_stderr(reason: &str, trial: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return reason.to_owned();
    }
    let mut message = reason.to_owned();
    for line in lines {
        message.push_str("\nstderr: ");
        message.push_str(line);
    }
    message.push_str(&format!(
        "\n(all of its stderr: ktune logs {trial} --stderr)"
    ));
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ktune-tail-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stderr.log");
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn the_last_lines_are_kept_printable_and_cut() {
        let long = "x".repeat(500);
        let content = format!("one\ntwo\n\nthree \u{1b}[31mred\u{7}\n{long}\n\n");
        let lines = last_lines(&file("basic", content.as_bytes()));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "two");
        assert_eq!(lines[1], "three \\u{1b}[31mred\\u{7}");
        assert_eq!(lines[2].chars().count(), LINE_CHARS + 1);
        assert!(lines[2].ends_with('…'));
        assert!(last_lines(Path::new("/nonexistent/stderr.log")).is_empty());
    }

    #[test]
    fn only_the_end_of_a_huge_log_is_read() {
        let mut content = "early line\n".repeat(100_000).into_bytes();
        content.extend_from_slice(b"Traceback\nValueError: bad lr\n");
        let lines = last_lines(&file("huge", &content));
        assert_eq!(lines, ["early line", "Traceback", "ValueError: bad lr"]);
    }

    #[test]
    fn a_message_lists_the_lines_and_where_to_read_more() {
        assert_eq!(with_stderr("ExitCode2", "t", &[]), "ExitCode2");
        assert_eq!(
            with_stderr("ExitCode2", "t", &["no such file".to_owned()]),
            "ExitCode2\nstderr: no such file\n(all of its stderr: ktune logs t --stderr)"
        );
    }
}
