//! TEXT metrics (StdOut and File collectors), exactly as Katib's collector
//! reads them (katib-reference.md §6.2): a line is considered only if it
//! contains one of the metric names; its first whitespace-separated token is
//! its timestamp if it parses as RFC 3339; every match of every filter gives
//! a (name, value) pair, kept when the name is one of the metrics.

use std::collections::BTreeSet;

use jiff::Timestamp;
use regex::Regex;

use super::MetricLog;
use super::filter::{DEFAULT_FILTER, FilterError, compile_filter};

/// Reads metrics from text lines.
#[derive(Debug, Clone)]
pub struct TextParser {
    names: BTreeSet<String>,
    filters: Vec<Regex>,
}

impl TextParser {
    /// A parser for `metrics` with Katib's filters (`filter.metricsFormat`;
    /// empty means Katib's default `name=value` filter).
    ///
    /// # Errors
    /// [`FilterError`] when a filter is not a regex with two groups.
    pub fn new(
        metrics: impl IntoIterator<Item = impl Into<String>>,
        filters: &[String],
    ) -> Result<Self, FilterError> {
        let filters = if filters.is_empty() {
            vec![compile_filter(DEFAULT_FILTER)?]
        } else {
            filters
                .iter()
                .map(|f| compile_filter(f))
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            names: metrics.into_iter().map(Into::into).collect(),
            filters,
        })
    }

    /// Every metric report in one line (no trailing newline needed).
    #[must_use]
    pub fn parse_line(&self, line: &str) -> Vec<MetricLog> {
        if !self.names.iter().any(|n| line.contains(n.as_str())) {
            return Vec::new();
        }
        let time = line
            .split_whitespace()
            .next()
            .and_then(|token| token.parse::<Timestamp>().ok());
        let mut logs = Vec::new();
        for filter in &self.filters {
            for caps in filter.captures_iter(line) {
                let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                let name = name.as_str().trim();
                if self.names.contains(name) {
                    logs.push(MetricLog {
                        name: name.to_owned(),
                        value: value.as_str().trim().to_owned(),
                        time,
                    });
                }
            }
        }
        logs
    }

    /// Every metric report in a block of text, line by line.
    #[must_use]
    pub fn parse_text(&self, text: &str) -> Vec<MetricLog> {
        text.lines().flat_map(|l| self.parse_line(l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(filters: &[&str]) -> TextParser {
        let filters: Vec<String> = filters.iter().map(|s| (*s).to_owned()).collect();
        TextParser::new(["loss", "accuracy", "Validation-accuracy"], &filters).unwrap()
    }

    #[test]
    fn katibs_default_filter_reads_name_value_pairs() {
        let logs = parser(&[]).parse_line("epoch 3: loss=0.25 accuracy=.98 other=1");
        let pairs: Vec<_> = logs
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(pairs, [("loss", "0.25"), ("accuracy", ".98")]);
        assert_eq!(logs[1].number(), Some(0.98));
        assert_eq!(
            parser(&[]).parse_line("Score=-7.53e-05 loss=1E0")[0].value,
            "1E0"
        );
    }

    #[test]
    fn a_leading_rfc3339_token_is_the_timestamp() {
        let logs = parser(&[]).parse_line("2024-05-01T10:00:00.5Z loss=0.1");
        assert_eq!(
            logs[0].time,
            Some("2024-05-01T10:00:00.5Z".parse().unwrap())
        );
        assert_eq!(parser(&[]).parse_line("step 1 loss=0.1")[0].time, None);
    }

    #[test]
    fn lines_without_a_metric_name_and_other_names_are_skipped() {
        assert!(parser(&[]).parse_line("lr=0.1 momentum=0.9").is_empty());
        // "accuracy" is a substring of "Validation-accuracy" but names match exactly.
        let logs = parser(&[]).parse_line("Validation-accuracy=0.9");
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].name, "Validation-accuracy");
    }

    #[test]
    fn custom_filters_and_non_numeric_values_are_kept_as_text() {
        let logs = parser(&[r"([\w-]+)\s*:\s*(\S+)"]).parse_line("loss: nan accuracy: high");
        let values: Vec<_> = logs.iter().map(|l| l.value.as_str()).collect();
        assert_eq!(values, ["nan", "high"]);
        assert!(logs[0].number().is_some_and(f64::is_nan));
        assert_eq!(logs[1].number(), None);
    }
}
