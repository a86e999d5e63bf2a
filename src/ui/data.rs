//! The dashboard's view data: pure functions from stored rows to what the
//! pages draw (history, best-so-far, parameter importance, paging). No I/O
//! here, so every number a page shows is unit-tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use ktune_algorithms::history::{Objective, TrialState};

use super::brush::Brush;
use crate::store::{ExperimentRecord, TrialQuery, TrialRow, TrialSort, state_from_str};

/// The experiment's algorithm name, or `-` when the spec names none.
#[must_use]
pub fn algorithm_of(e: &ExperimentRecord) -> &str {
    e.spec
        .pointer("/spec/algorithm/algorithmName")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
}

/// One trial in the optimisation history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// The trial number.
    pub seq: i64,
    /// The trial's name (for hover and links).
    pub name: String,
    /// Its state.
    pub state: TrialState,
    /// Its objective, when it has a finite one.
    pub objective: Option<f64>,
    /// The best objective of the trials up to and including this one.
    pub best_so_far: Option<f64>,
}

/// Every trial in number order with the best-so-far value at each.
#[must_use]
pub fn history(trials: &[TrialRow], objective: &Objective) -> Vec<HistoryPoint> {
    let mut ordered: Vec<&TrialRow> = trials.iter().collect();
    ordered.sort_by_key(|t| t.seq);
    let mut best: Option<f64> = None;
    ordered
        .into_iter()
        .map(|t| {
            if t.counts_for_best() && (best.is_none() || objective.is_better(t.objective, best)) {
                best = t.objective;
            }
            HistoryPoint {
                seq: t.seq,
                name: t.name.clone(),
                state: t.state,
                objective: t.objective.filter(|v| v.is_finite()),
                best_so_far: best,
            }
        })
        .collect()
}

/// How important one parameter looks.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The parameter.
    pub parameter: String,
    /// The share of the objective's variance explained by the parameter's
    /// bins (η², 0 to 1).
    pub score: f64,
    /// How many bins its values fell into.
    pub bins: usize,
}

/// The name of the method [`importance`] uses, shown beside its numbers.
pub const IMPORTANCE_METHOD: &str = "correlation ratio η² over binned values: the share of the \
    objective's variance between the bins of one parameter (numbers in up to 8 equal-count \
    bins, other values one bin each); succeeded trials only; each parameter on its own, so \
    interactions are not counted and small samples overstate scores";

/// Numeric parameters with more distinct values than this are binned.
const MAX_BINS: usize = 8;
/// Fewer scored trials than this give no importance at all.
const MIN_TRIALS: usize = 4;

/// Per-parameter variance decomposition ([`IMPORTANCE_METHOD`]), most
/// important first; empty with fewer than 4 scored trials or when the
/// objective does not vary.
#[must_use]
pub fn importance(trials: &[TrialRow]) -> Vec<Importance> {
    let scored: Vec<&TrialRow> = trials.iter().filter(|t| t.counts_for_best()).collect();
    if scored.len() < MIN_TRIALS {
        return Vec::new();
    }
    let ys: Vec<f64> = scored.iter().map(|t| t.objective.unwrap_or(0.0)).collect();
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let total: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= 0.0 || !total.is_finite() {
        return Vec::new();
    }
    let mut names: Vec<&str> = Vec::new();
    for t in &scored {
        for (k, _) in &t.assignment {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    let mut out: Vec<Importance> = names
        .into_iter()
        .map(|name| {
            let values: Vec<Option<&str>> = scored.iter().map(|t| t.parameter(name)).collect();
            let bins = bin_values(&values);
            let mut groups: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
            for (bin, y) in bins.iter().zip(&ys) {
                let g = groups.entry(*bin).or_insert((0.0, 0));
                g.0 += y;
                g.1 += 1;
            }
            let between: f64 = groups
                .values()
                .map(|(sum, n)| {
                    let m = sum / *n as f64;
                    *n as f64 * (m - mean).powi(2)
                })
                .sum();
            Importance {
                parameter: name.to_owned(),
                score: (between / total).clamp(0.0, 1.0),
                bins: groups.len(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// A bin number per value: equal-count bins by rank when every value is a
/// number with more than [`MAX_BINS`] distinct values, else one bin per
/// distinct text (a missing value is its own bin).
fn bin_values(values: &[Option<&str>]) -> Vec<usize> {
    let numbers: Option<Vec<f64>> = values
        .iter()
        .map(|v| {
            v.and_then(|v| v.parse::<f64>().ok())
                .filter(|n| n.is_finite())
        })
        .collect();
    let mut distinct: Vec<Option<&str>> = values.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    match numbers {
        Some(numbers) if distinct.len() > MAX_BINS => {
            let mut order: Vec<usize> = (0..numbers.len()).collect();
            order.sort_by(|&a, &b| numbers[a].total_cmp(&numbers[b]));
            let mut bins = vec![0; numbers.len()];
            for (rank, &i) in order.iter().enumerate() {
                bins[i] = rank * MAX_BINS / numbers.len();
            }
            bins
        }
        _ => values
            .iter()
            .map(|v| distinct.iter().position(|d| d == v).unwrap_or(0))
            .collect(),
    }
}

/// At most this many learning curves on the experiment page.
pub const MAX_CURVES: usize = 200;
/// At most this many lines in the parallel coordinates.
pub const MAX_LINES: usize = 1000;

/// Which trials a crowded chart draws, as store ids: every running trial
/// first (they are what a person watches), then the best by objective,
/// then the most recent, up to `max`. Thousands of curves would make a
/// page of megabytes and a chart nobody can read.
#[must_use]
pub fn shown_trials<'a>(
    trials: impl IntoIterator<Item = &'a TrialRow>,
    objective: &Objective,
    max: usize,
) -> BTreeSet<i64> {
    let mut order: Vec<&TrialRow> = trials.into_iter().collect();
    order.sort_by(|a, b| {
        let running = |t: &TrialRow| t.state != TrialState::Running;
        running(a)
            .cmp(&running(b))
            .then_with(|| {
                objective.cmp_best_first(
                    a.objective.filter(|v| v.is_finite()),
                    b.objective.filter(|v| v.is_finite()),
                )
            })
            .then_with(|| b.seq.cmp(&a.seq))
    });
    order.into_iter().take(max).map(|t| t.id).collect()
}

/// Rows per page when the URL names none, and the most it may ask for.
pub const DEFAULT_PER_PAGE: i64 = 50;
/// The largest page a URL may ask for.
pub const MAX_PER_PAGE: i64 = 1000;

/// The trial table's query string: what a link or form asks for. Unknown
/// or invalid values fall back to defaults rather than failing the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct TableParams {
    /// Page number, from 1 (text: a bad number falls back to 1).
    pub page: Option<String>,
    /// Rows per page (text: a bad number falls back to the default).
    pub per: Option<String>,
    /// `seq`, `name`, `state`, `objective` or `completed`.
    pub sort: Option<String>,
    /// `desc` for largest first.
    pub dir: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Name contains.
    pub q: Option<String>,
    /// `1`: the history on a log scale.
    pub log: Option<String>,
    /// The parallel-coordinates selection as JSON (see [`Brush`]).
    pub brush: Option<String>,
}

impl TableParams {
    /// The page number, from 1.
    #[must_use]
    pub fn page(&self) -> i64 {
        self.page
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// Rows per page, within 1..=[`MAX_PER_PAGE`].
    #[must_use]
    pub fn per(&self) -> i64 {
        self.per
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE)
    }

    /// The sort column.
    #[must_use]
    pub fn sort(&self) -> TrialSort {
        match self.sort.as_deref() {
            Some("name") => TrialSort::Name,
            Some("state") => TrialSort::State,
            Some("objective") => TrialSort::Objective,
            Some("completed") => TrialSort::Completed,
            _ => TrialSort::Seq,
        }
    }

    /// The store query for this page (or, with `all`, every matching row).
    #[must_use]
    pub fn query(&self, all: bool) -> TrialQuery {
        let per = self.per();
        TrialQuery {
            state: self
                .state
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| state_from_str(s).ok()),
            name_contains: self.q.clone().filter(|q| !q.is_empty()),
            sort: self.sort(),
            descending: self.dir.as_deref() == Some("desc"),
            limit: if all { i64::MAX } else { per },
            offset: if all {
                0
            } else {
                (self.page() - 1).saturating_mul(per)
            },
        }
    }

    /// The parallel-coordinates selection, when one is given and well formed.
    #[must_use]
    pub fn brush(&self) -> Option<Brush> {
        self.brush.as_deref().and_then(Brush::parse)
    }

    /// Whether the history is drawn on a log scale.
    #[must_use]
    pub fn log_scale(&self) -> bool {
        self.log.as_deref() == Some("1")
    }

    /// The query string with some keys replaced (`None` removes one), for
    /// links that change one thing and keep the rest.
    #[must_use]
    pub fn with(&self, changes: &[(&str, Option<String>)]) -> String {
        let mut pairs: Vec<(&str, Option<String>)> = vec![
            ("page", self.page.clone()),
            ("per", self.per.clone()),
            ("sort", self.sort.clone()),
            ("dir", self.dir.clone()),
            ("state", self.state.clone()),
            ("q", self.q.clone()),
            ("log", self.log.clone()),
            ("brush", self.brush.clone()),
        ];
        for (key, value) in changes {
            if let Some(slot) = pairs.iter_mut().find(|(k, _)| k == key) {
                slot.1.clone_from(value);
            }
        }
        let parts: Vec<String> = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                v.filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={}", url_encode(&v)))
            })
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// How many pages `total` rows fill at `per` a page (at least 1).
#[must_use]
pub fn page_count(total: i64, per: i64) -> i64 {
    if per <= 0 {
        return 1;
    }
    ((total + per - 1) / per).max(1)
}

/// Percent-encodes all but unreserved characters, for query values and
/// path segments built from stored names.
#[must_use]
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// "12 s", "5 min", "3 h", "2 d": how long ago `then` was, for people.
#[must_use]
pub fn age(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A Unix-ms time as `YYYY-MM-DD HH:MM:SS` UTC, or `-`.
#[must_use]
pub fn time_text(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// Which parameters the spec declares log-distributed (drawn on log axes).
#[must_use]
pub fn log_parameters(e: &ExperimentRecord) -> Vec<String> {
    e.spec
        .pointer("/spec/parameters")
        .and_then(serde_json::Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter(|p| {
                    p.pointer("/feasibleSpace/distribution")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|d| d.to_ascii_lowercase().starts_with("log"))
                })
                .filter_map(|p| p.get("name").and_then(serde_json::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::best_trial;
    use ktune_algorithms::history::Direction;

    fn trial(seq: i64, state: TrialState, objective: Option<f64>, x: &str) -> TrialRow {
        TrialRow {
            name: format!("t-{seq}"),
            assignment: vec![
                ("x".into(), x.into()),
                ("noise".into(), (seq % 2).to_string()),
            ],
            objective,
            ..TrialRow::example(seq, state)
        }
    }

    fn minimize() -> Objective {
        Objective::new("loss", Direction::Minimize)
    }

    #[test]
    fn best_so_far_ignores_failed_and_early_stopped_trials() {
        let trials = [
            trial(1, TrialState::Succeeded, Some(3.0), "1"),
            trial(2, TrialState::Failed, Some(0.1), "2"),
            trial(3, TrialState::EarlyStopped, Some(0.2), "3"),
            trial(4, TrialState::Succeeded, Some(2.0), "4"),
            trial(5, TrialState::Succeeded, Some(2.5), "5"),
            trial(6, TrialState::Running, None, "6"),
        ];
        let h = history(&trials, &minimize());
        let best: Vec<Option<f64>> = h.iter().map(|p| p.best_so_far).collect();
        assert_eq!(
            best,
            [
                Some(3.0),
                Some(3.0),
                Some(3.0),
                Some(2.0),
                Some(2.0),
                Some(2.0)
            ]
        );
        assert_eq!(
            h[1].objective,
            Some(0.1),
            "failed trials keep their value for the plot"
        );
        assert_eq!(best_trial(&trials, &minimize()).map(|t| t.seq), Some(4));
        let max = Objective::new("acc", Direction::Maximize);
        assert_eq!(best_trial(&trials, &max).map(|t| t.seq), Some(1));
    }

    #[test]
    fn history_is_in_trial_order_whatever_the_input_order() {
        let trials = [
            trial(2, TrialState::Succeeded, Some(1.0), "1"),
            trial(1, TrialState::Succeeded, Some(2.0), "1"),
        ];
        let h = history(&trials, &minimize());
        assert_eq!(h.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(h[0].best_so_far, Some(2.0));
        assert_eq!(h[1].best_so_far, Some(1.0));
    }

    #[test]
    fn importance_ranks_the_parameter_that_drives_the_objective_first() {
        // The objective is x²; `noise` alternates independently of it.
        let trials: Vec<TrialRow> = (1..=40)
            .map(|i| {
                let x = f64::from(i32::try_from(i).unwrap_or(0)) / 10.0;
                trial(i, TrialState::Succeeded, Some(x * x), &x.to_string())
            })
            .collect();
        let imp = importance(&trials);
        assert_eq!(imp[0].parameter, "x");
        assert!(imp[0].score > 0.9, "{imp:?}");
        assert_eq!(imp[0].bins, 8);
        assert_eq!(imp[1].parameter, "noise");
        assert!(imp[1].score < 0.1, "{imp:?}");
        assert_eq!(imp[1].bins, 2);
    }

    #[test]
    fn importance_needs_enough_varied_trials() {
        let few = [
            trial(1, TrialState::Succeeded, Some(1.0), "1"),
            trial(2, TrialState::Succeeded, Some(2.0), "2"),
        ];
        assert!(importance(&few).is_empty());
        let flat: Vec<TrialRow> = (1..=10)
            .map(|i| trial(i, TrialState::Succeeded, Some(1.0), &i.to_string()))
            .collect();
        assert!(importance(&flat).is_empty());
    }

    #[test]
    fn table_params_page_in_bounds_and_keep_other_keys_in_links() {
        let p = TableParams {
            page: Some("3".into()),
            per: Some("20".into()),
            sort: Some("objective".into()),
            dir: Some("desc".into()),
            state: Some("Succeeded".into()),
            q: Some("a b".into()),
            log: None,
            brush: Some(r#"{"params":{"x":[1,2]}}"#.into()),
        };
        let q = p.query(false);
        assert_eq!((q.limit, q.offset), (20, 40));
        assert_eq!(q.sort, TrialSort::Objective);
        assert!(q.descending);
        assert_eq!(q.state, Some(TrialState::Succeeded));
        assert_eq!(
            p.with(&[("page", Some("4".into()))]),
            "?page=4&per=20&sort=objective&dir=desc&state=Succeeded&q=a%20b\
             &brush=%7B%22params%22%3A%7B%22x%22%3A%5B1%2C2%5D%7D%7D"
        );
        assert!(p.brush().is_some());
        let bad = TableParams {
            page: Some("-5".into()),
            per: Some("1000000".into()),
            sort: Some("drop table".into()),
            state: Some("Nope".into()),
            ..TableParams::default()
        };
        let q = bad.query(false);
        assert_eq!(
            (q.limit, q.offset, q.sort, q.state),
            (MAX_PER_PAGE, 0, TrialSort::Seq, None)
        );
        let junk = TableParams {
            page: Some("abc".into()),
            per: Some(String::new()),
            ..TableParams::default()
        };
        assert_eq!((junk.page(), junk.per()), (1, DEFAULT_PER_PAGE));
        assert_eq!(page_count(0, 50), 1);
        assert_eq!(page_count(101, 50), 3);
    }

    #[test]
    fn crowded_charts_show_running_trials_then_the_best() {
        let trials = [
            trial(1, TrialState::Succeeded, Some(3.0), "1"),
            trial(2, TrialState::Succeeded, Some(1.0), "2"),
            trial(3, TrialState::Running, None, "3"),
            trial(4, TrialState::Failed, None, "4"),
            trial(5, TrialState::Succeeded, Some(2.0), "5"),
        ];
        let shown = shown_trials(&trials, &minimize(), 3);
        assert_eq!(shown, BTreeSet::from([3, 2, 5]));
        assert_eq!(shown_trials(&trials, &minimize(), 10).len(), 5);
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(13_000, 1_000), "12 s");
        assert_eq!(age(0, 1_000), "0 s");
        assert_eq!(age(7_200_000, 0), "2 h");
    }
}
