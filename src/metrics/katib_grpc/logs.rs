//! Katib's observation logs to and from ktune's reports: the checks a
//! reported log must pass before anything of it is queued, and the
//! filtering and formatting of `GetObservationLog`, as Katib's DB manager
//! does them (`pkg/db/v1beta1/mysql/mysql.go`: empty filters select
//! everything, the time range is inclusive, rows come oldest first,
//! timestamps are RFC 3339 in UTC with as many fractional digits as needed).

use jiff::Timestamp;

use super::messages::{Metric, MetricLog, ObservationLog};
use crate::metrics;
use crate::store::ObservationRow;

/// Why a reported log was refused (`INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLog {
    /// A metric log without its metric.
    #[error("metric log {0} has no metric")]
    NoMetric(usize),
    /// A metric without a name.
    #[error("metric log {0} has an empty metric name")]
    NoName(usize),
    /// A value that is not a finite number.
    #[error(
        "metric log {index}: the value {value:?} of {name:?} is not a finite number (report numbers, as katib.report_metrics does)"
    )]
    NotANumber {
        /// Which log.
        index: usize,
        /// The metric.
        name: String,
        /// What was sent (cut to 64 characters).
        value: String,
    },
    /// A timestamp that is not RFC 3339.
    #[error("metric log {index}: time_stamp {value:?} is not RFC 3339")]
    Time {
        /// Which log.
        index: usize,
        /// What was sent (cut to 64 characters).
        value: String,
    },
    /// No metric logs at all.
    #[error("the observation log has no metric logs")]
    Empty,
}

/// A report's metric logs as ktune's reports, all or none: every value a
/// finite number, every timestamp RFC 3339 or empty (then the report is
/// stamped with its arrival when queued).
///
/// # Errors
/// The first [`BadLog`].
pub fn reports(log: &ObservationLog) -> Result<Vec<metrics::MetricLog>, BadLog> {
    if log.metric_logs.is_empty() {
        return Err(BadLog::Empty);
    }
    log.metric_logs
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let metric = entry.metric.as_ref().ok_or(BadLog::NoMetric(index))?;
            let name = metric.name.trim();
            if name.is_empty() {
                return Err(BadLog::NoName(index));
            }
            let value = metric.value.trim();
            if !metrics::parse_number(value).is_some_and(f64::is_finite) {
                return Err(BadLog::NotANumber {
                    index,
                    name: cut(name),
                    value: cut(value),
                });
            }
            Ok(metrics::MetricLog {
                name: name.to_owned(),
                value: value.to_owned(),
                time: time(&entry.time_stamp).map_err(|()| BadLog::Time {
                    index,
                    value: cut(&entry.time_stamp),
                })?,
            })
        })
        .collect()
}

/// An RFC 3339 time, or none for empty text.
fn time(text: &str) -> Result<Option<Timestamp>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Timestamp>().map(Some).map_err(|_| ())
}

/// At most 64 characters of what a caller sent, for a message.
fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

/// `GetObservationLog`'s filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this metric.
    pub metric: Option<String>,
    /// Reports at or after this time (Unix ms).
    pub start: Option<i64>,
    /// Reports at or before this time (Unix ms).
    pub end: Option<i64>,
}

impl Filter {
    /// The filters of a request: empty text is no filter.
    ///
    /// # Errors
    /// Which time is not RFC 3339.
    pub fn new(metric: &str, start: &str, end: &str) -> Result<Self, String> {
        let bound = |what: &str, text: &str| {
            time(text)
                .map(|t| t.map(|t| t.as_millisecond()))
                .map_err(|()| format!("{what} {:?} is not RFC 3339", cut(text)))
        };
        Ok(Self {
            metric: Some(metric.trim())
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            start: bound("start_time", start)?,
            end: bound("end_time", end)?,
        })
    }

    /// Whether a stored row passes. A row without a time passes only when
    /// no time bound is set.
    fn passes(&self, row: &ObservationRow) -> bool {
        if self.metric.as_ref().is_some_and(|m| *m != row.metric) {
            return false;
        }
        match row.time {
            Some(t) => self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e),
            None => self.start.is_none() && self.end.is_none(),
        }
    }
}

/// The stored rows that pass `filter` as Katib's observation log, oldest
/// first (rows of one time in the store's order: by metric, then step).
#[must_use]
pub fn observation_log(mut rows: Vec<ObservationRow>, filter: &Filter) -> ObservationLog {
    rows.retain(|row| filter.passes(row));
    rows.sort_by_key(|row| row.time.unwrap_or(i64::MIN));
    ObservationLog {
        metric_logs: rows
            .into_iter()
            .map(|row| MetricLog {
                time_stamp: row
                    .time
                    .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                metric: Some(Metric {
                    name: row.metric,
                    value: row.value,
                }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: &str, name: &str, value: &str) -> MetricLog {
        MetricLog {
            time_stamp: time.into(),
            metric: Some(Metric {
                name: name.into(),
                value: value.into(),
            }),
        }
    }

    fn log(entries: Vec<MetricLog>) -> ObservationLog {
        ObservationLog {
            metric_logs: entries,
        }
    }

    #[test]
    fn numbers_and_rfc3339_times_are_accepted() {
        let got = reports(&log(vec![
            entry("2024-05-01T10:00:00Z", "loss", "0.5"),
            entry("", "accuracy", " 1e-3 "),
            entry("2024-05-01T12:00:00.25+02:00", "loss", "-3"),
        ]))
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].time, Some("2024-05-01T10:00:00Z".parse().unwrap()));
        assert_eq!((got[1].value.as_str(), got[1].time), ("1e-3", None));
        assert_eq!(
            got[2].time,
            Some("2024-05-01T10:00:00.25Z".parse().unwrap())
        );
    }

    #[test]
    fn garbage_is_refused_whole() {
        let ok = entry("", "loss", "1");
        for (bad, says) in [
            (entry("", "loss", "abc"), "not a finite number"),
            (entry("", "loss", "NaN"), "not a finite number"),
            (entry("", "loss", "inf"), "not a finite number"),
            (entry("", "loss", ""), "not a finite number"),
            (entry("", " ", "1"), "empty metric name"),
            (entry("yesterday", "loss", "1"), "not RFC 3339"),
            (entry("2024-05-01 10:00", "loss", "1"), "not RFC 3339"),
            (
                MetricLog {
                    time_stamp: String::new(),
                    metric: None,
                },
                "no metric",
            ),
        ] {
            let e = reports(&log(vec![ok.clone(), bad])).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert!(e.to_string().starts_with("metric log 1"), "{e}");
        }
        assert_eq!(reports(&log(vec![])), Err(BadLog::Empty));
        let long = "x".repeat(1000);
        let e = reports(&log(vec![entry("", "loss", &long)])).unwrap_err();
        assert!(e.to_string().len() < 300, "messages stay short");
    }

    fn row(metric: &str, step: i64, value: &str, time: Option<i64>) -> ObservationRow {
        ObservationRow {
            metric: metric.into(),
            step,
            value: value.into(),
            number: value.parse().ok(),
            time,
        }
    }

    #[test]
    fn reads_filter_like_katib_and_come_oldest_first() {
        let t0 = 1_714_557_600_000; // 2024-05-01T10:00:00Z
        let rows = vec![
            row("accuracy", 0, "0.8", Some(t0 + 1000)),
            row("loss", 0, "0.5", Some(t0)),
            row("loss", 1, "0.4", Some(t0 + 1500)),
            row("loss", 2, "0.3", None),
        ];
        let all = observation_log(rows.clone(), &Filter::new("", "", "").unwrap());
        let shown: Vec<(&str, &str)> = all
            .metric_logs
            .iter()
            .map(|l| {
                (
                    l.time_stamp.as_str(),
                    l.metric.as_ref().unwrap().value.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("", "0.3"),
                ("2024-05-01T10:00:00Z", "0.5"),
                ("2024-05-01T10:00:01Z", "0.8"),
                ("2024-05-01T10:00:01.5Z", "0.4"),
            ]
        );
        let loss = observation_log(rows.clone(), &Filter::new("loss", "", "").unwrap());
        assert_eq!(loss.metric_logs.len(), 3);
        // Inclusive bounds; rows without a time drop out of a range.
        let range = Filter::new("", "2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z").unwrap();
        let ranged = observation_log(rows, &range);
        let values: Vec<&str> = ranged
            .metric_logs
            .iter()
            .map(|l| l.metric.as_ref().unwrap().value.as_str())
            .collect();
        assert_eq!(values, ["0.5", "0.8"]);
        assert!(
            Filter::new("", "soon", "")
                .unwrap_err()
                .contains("start_time")
        );
        assert!(
            Filter::new("", "", "later")
                .unwrap_err()
                .contains("end_time")
        );
    }
}
