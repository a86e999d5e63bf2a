//! From a metric's many reports to one value (katib-reference.md §4, §6.8):
//! each metric keeps `min`, `max` and `latest` (as text, `unavailable` when
//! never reported); the objective value is the strategy's field, falling back
//! to `latest` when the strategy's field is unavailable.

use crate::api::enums::MetricStrategyType;
use crate::api::experiment::Metric;

use super::{MetricLog, parse_number};

/// Katib's sentinel for a metric that was never reported.
pub const UNAVAILABLE: &str = "unavailable";

/// Reduces the reports of metric `name` (in the order they were read).
///
/// Non-numeric values and NaN never update `min`/`max`; `latest` is the
/// report with the greatest timestamp, a report without one counting as the
/// earliest time, and ties going to the later report.
#[must_use]
pub fn reduce(name: &str, logs: &[MetricLog]) -> Metric {
    let mut min: Option<(f64, &str)> = None;
    let mut max: Option<(f64, &str)> = None;
    let mut latest: Option<&MetricLog> = None;
    for log in logs.iter().filter(|l| l.name == name) {
        if let Some(v) = parse_number(&log.value).filter(|v| !v.is_nan()) {
            if min.is_none_or(|(m, _)| v < m) {
                min = Some((v, &log.value));
            }
            if max.is_none_or(|(m, _)| v > m) {
                max = Some((v, &log.value));
            }
        }
        if latest.is_none_or(|l| log.time >= l.time) {
            latest = Some(log);
        }
    }
    let text = |v: Option<&str>| v.unwrap_or(UNAVAILABLE).to_owned();
    Metric {
        name: name.to_owned(),
        min: text(min.map(|(_, t)| t)),
        max: text(max.map(|(_, t)| t)),
        latest: text(latest.map(|l| l.value.as_str())),
    }
}

/// The value a strategy picks from a reduced metric, as text, with Katib's
/// fallback to `latest`; `None` when the metric is unavailable.
#[must_use]
pub fn strategy_value<'a>(metric: &'a Metric, strategy: &MetricStrategyType) -> Option<&'a str> {
    let field = match strategy {
        MetricStrategyType::Min => metric.min.as_str(),
        MetricStrategyType::Max => metric.max.as_str(),
        MetricStrategyType::Latest | MetricStrategyType::Other(_) => metric.latest.as_str(),
    };
    let chosen = if field == UNAVAILABLE {
        metric.latest.as_str()
    } else {
        field
    };
    (chosen != UNAVAILABLE).then_some(chosen)
}

/// The objective value as a number, for the algorithms: `None` when the
/// metric is unavailable or its value is not a number.
#[must_use]
pub fn objective_value(metric: &Metric, strategy: &MetricStrategyType) -> Option<f64> {
    strategy_value(metric, strategy).and_then(parse_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, value: &str, time: Option<&str>) -> MetricLog {
        MetricLog {
            name: name.into(),
            value: value.into(),
            time: time.map(|t| t.parse().unwrap()),
        }
    }

    #[test]
    fn min_max_latest_follow_katib() {
        let logs = [
            log("loss", "0.5", None),
            log("loss", "0.2", None),
            log("loss", "nan", None),
            log("loss", "high", None),
            log("acc", "0.9", None),
            log("loss", "0.3", None),
        ];
        let m = reduce("loss", &logs);
        assert_eq!(
            (m.min.as_str(), m.max.as_str(), m.latest.as_str()),
            ("0.2", "0.5", "0.3")
        );
        assert_eq!(objective_value(&m, &MetricStrategyType::Min), Some(0.2));
        assert_eq!(objective_value(&m, &MetricStrategyType::Latest), Some(0.3));
    }

    #[test]
    fn latest_is_by_timestamp_and_ties_go_to_the_later_line() {
        let logs = [
            log("loss", "1", Some("2024-01-01T00:00:02Z")),
            log("loss", "2", Some("2024-01-01T00:00:01Z")),
            log("loss", "3", Some("2024-01-01T00:00:02Z")),
        ];
        assert_eq!(reduce("loss", &logs).latest, "3");
    }

    #[test]
    fn missing_metrics_are_unavailable_and_text_values_fall_back_to_latest() {
        let m = reduce("loss", &[]);
        assert_eq!(m.latest, UNAVAILABLE);
        assert_eq!(strategy_value(&m, &MetricStrategyType::Max), None);
        let genotype = reduce(
            "Best-Genotype",
            &[log("Best-Genotype", "Genotype(normal=[...])", None)],
        );
        assert_eq!(genotype.max, UNAVAILABLE);
        assert_eq!(
            strategy_value(&genotype, &MetricStrategyType::Max),
            Some("Genotype(normal=[...])")
        );
        assert_eq!(objective_value(&genotype, &MetricStrategyType::Max), None);
    }
}
