//! JSON-lines metrics (File collector, `format: JSON`; katib-reference.md
//! §6.3): one JSON object per line, metric values under their names, and an
//! optional `timestamp` (RFC 3339 text, or epoch seconds).
//!
//! Katib takes a value only when it is a JSON string and aborts on a line
//! that is not JSON. ktune also takes numbers (what every training script
//! writes) and skips a garbage line instead of losing the whole trial.

use jiff::Timestamp;
use serde_json::Value;

use super::MetricLog;

/// Every report of `metrics` in one line; empty for blank or non-JSON lines.
#[must_use]
pub fn parse_json_line<S: AsRef<str>>(line: &str, metrics: &[S]) -> Vec<MetricLog> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line.trim()) else {
        return Vec::new();
    };
    let time = object.get("timestamp").and_then(timestamp);
    metrics
        .iter()
        .filter_map(|name| {
            let value = match object.get(name.as_ref())? {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(MetricLog {
                name: name.as_ref().to_owned(),
                value,
                time,
            })
        })
        .collect()
}

/// A report's `timestamp`: RFC 3339 text, or (fractional) epoch seconds.
/// Shared with the Push collector, which takes the same objects over HTTP.
pub(crate) fn timestamp(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            if !seconds.is_finite() {
                return None;
            }
            let nanos = (seconds * 1e9).round() as i128;
            Timestamp::from_nanosecond(nanos).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_are_read_with_their_timestamp() {
        let logs = parse_json_line(
            r#"{"accuracy": "0.98", "loss": 0.1, "timestamp": 1711111111.5, "epoch": 3}"#,
            &["accuracy", "loss", "missing"],
        );
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].value, "0.98");
        assert_eq!(logs[1].value, "0.1");
        assert_eq!(
            logs[0].time,
            Some(Timestamp::from_millisecond(1_711_111_111_500).unwrap())
        );
        let logs = parse_json_line(
            r#"{"loss": "1", "timestamp": "2024-01-01T00:00:00Z"}"#,
            &["loss"],
        );
        assert!(logs[0].time.is_some());
    }

    #[test]
    fn garbage_lines_give_nothing() {
        for line in [
            "",
            "not json",
            "[1,2]",
            r#"{"loss": {"a": 1}}"#,
            r#"{"loss": null}"#,
        ] {
            assert!(parse_json_line(line, &["loss"]).is_empty(), "{line}");
        }
    }
}
