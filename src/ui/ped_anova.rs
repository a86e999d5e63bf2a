//! PED-ANOVA (Watanabe, Bansal and Hutter, IJCAI 2023): which parameters
//! set the best trials apart. For each parameter, the Pearson divergence
//! between the distribution of its values among the top 10 % of trials and
//! among all of them — a parameter whose good values are spread like all
//! values scores 0, one the best trials agree on scores high. Marginal
//! densities are Gaussian kernel estimates on a 50-point grid of the
//! parameter's range (log-scaled for log parameters) or smoothed category
//! frequencies; shares are normalised to sum to 1, as Optuna's
//! `PedAnovaImportanceEvaluator` reports them.
//!
//! Where η² (the other column) answers "how much of the objective's
//! variance follows this parameter", this answers "what do the best
//! configurations have in common", which is what a person choosing the
//! next search space wants.

use ktune_algorithms::history::Objective;

use crate::store::TrialRow;

/// The quantile of trials counted as "top".
const TOP_QUANTILE: f64 = 0.1;
/// At least this many top trials (and so at least 10× as many in all).
const MIN_TOP: usize = 2;
/// Grid points over a numeric parameter's range.
const GRID: usize = 50;

/// The method's name and settings, shown beside its numbers.
pub const METHOD: &str = "PED-ANOVA (Watanabe et al. 2023): Pearson divergence between each \
    parameter's distribution among the top 10 % of succeeded trials and among all of them, \
    as shares summing to 1";

/// Each parameter's share (summing to 1), in `names`' order; empty with
/// fewer than 20 scored trials or when no parameter sets the top apart.
#[must_use]
pub fn shares(
    trials: &[TrialRow],
    objective: &Objective,
    names: &[String],
    log_parameters: &[String],
) -> Vec<(String, f64)> {
    let mut scored: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.counts_for_best() && t.objective.is_some_and(f64::is_finite))
        .collect();
    let top_count = ((scored.len() as f64) * TOP_QUANTILE).ceil() as usize;
    if top_count < MIN_TOP || scored.len() < MIN_TOP * 10 {
        return Vec::new();
    }
    scored.sort_by(|a, b| objective.cmp_best_first(a.objective, b.objective));
    let divergences: Vec<f64> = names
        .iter()
        .map(|name| {
            let values: Vec<Option<&str>> = scored.iter().map(|t| t.parameter(name)).collect();
            divergence(&values, top_count, log_parameters.contains(name))
        })
        .collect();
    let total: f64 = divergences.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Vec::new();
    }
    names
        .iter()
        .zip(divergences)
        .map(|(n, d)| (n.clone(), d / total))
        .collect()
}

/// Pearson divergence of the first `top` values' distribution from all
/// values' distribution (values ordered best first).
fn divergence(values: &[Option<&str>], top: usize, log: bool) -> f64 {
    let numbers: Option<Vec<f64>> = values
        .iter()
        .map(|v| {
            v.and_then(|v| v.trim().parse::<f64>().ok())
                .map(|x| if log && x > 0.0 { x.ln() } else { x })
                .filter(|x| x.is_finite())
        })
        .collect();
    let (p_top, p_all) = match numbers {
        Some(xs) => {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if hi - lo <= 0.0 {
                return 0.0;
            }
            let unit: Vec<f64> = xs.iter().map(|x| (x - lo) / (hi - lo)).collect();
            (kde_on_grid(&unit[..top]), kde_on_grid(&unit))
        }
        None => {
            let mut categories: Vec<Option<&str>> = values.to_vec();
            categories.sort_unstable();
            categories.dedup();
            (
                frequencies(&values[..top], &categories),
                frequencies(values, &categories),
            )
        }
    };
    p_all
        .iter()
        .zip(&p_top)
        .map(|(a, t)| {
            if *a > 0.0 {
                a * (t / a - 1.0).powi(2)
            } else {
                0.0
            }
        })
        .sum()
}

/// A Gaussian kernel density of points in [0, 1] on [`GRID`] points,
/// normalised to sum to 1; Scott's bandwidth, at least one grid step.
fn kde_on_grid(xs: &[f64]) -> Vec<f64> {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let step = 1.0 / (GRID - 1) as f64;
    let h = (1.06 * sd * n.powf(-0.2)).max(step);
    let mut p: Vec<f64> = (0..GRID)
        .map(|g| {
            let at = g as f64 * step;
            xs.iter()
                .map(|x| (-0.5 * ((at - x) / h).powi(2)).exp())
                .sum()
        })
        .collect();
    normalise(&mut p);
    p
}

/// Category frequencies with one pseudo-count each, summing to 1.
fn frequencies(values: &[Option<&str>], categories: &[Option<&str>]) -> Vec<f64> {
    let mut p: Vec<f64> = categories
        .iter()
        .map(|c| 1.0 + values.iter().filter(|v| *v == c).count() as f64)
        .collect();
    normalise(&mut p);
    p
}

fn normalise(p: &mut [f64]) {
    let sum: f64 = p.iter().sum();
    if sum > 0.0 {
        p.iter_mut().for_each(|v| *v /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_algorithms::history::{Direction, TrialState};

    fn trial(i: i64, x: f64, c: &str, objective: f64) -> TrialRow {
        TrialRow {
            assignment: vec![
                ("x".into(), x.to_string()),
                ("noise".into(), ((i * 7919) % 97).to_string()),
                ("c".into(), c.into()),
            ],
            objective: Some(objective),
            ..TrialRow::example(i, TrialState::Succeeded)
        }
    }

    fn names() -> Vec<String> {
        ["x", "noise", "c"].map(String::from).to_vec()
    }

    #[test]
    fn the_parameter_the_best_trials_share_gets_the_largest_share() {
        // The objective is (x − 0.3)²: the best trials all have x near 0.3,
        // while their noise and category are spread like everyone's.
        let trials: Vec<TrialRow> = (0..200)
            .map(|i| {
                let x = (i as f64 * 0.618_034) % 1.0;
                trial(i, x, ["a", "b"][i as usize % 2], (x - 0.3).powi(2))
            })
            .collect();
        let min = Objective::new("loss", Direction::Minimize);
        let s = shares(&trials, &min, &names(), &[]);
        assert_eq!(s.len(), 3);
        assert!((s.iter().map(|(_, v)| v).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(s[0].0, "x");
        assert!(s[0].1 > 0.8, "{s:?}");
        // Maximising the same numbers: the top is now x far from 0.3.
        let max = Objective::new("loss", Direction::Maximize);
        let s = shares(&trials, &max, &names(), &[]);
        assert!(s[0].1 > 0.5, "{s:?}");
    }

    #[test]
    fn a_category_the_best_trials_agree_on_is_found() {
        let trials: Vec<TrialRow> = (0..100)
            .map(|i| {
                let c = ["good", "bad", "ugly"][i as usize % 3];
                let x = (i as f64 * 0.618_034) % 1.0;
                // Ties among the good ones broken by something no parameter follows.
                let tie = ((i * 31) % 17) as f64 * 1e-4;
                trial(i, x, c, if c == "good" { 0.0 } else { 1.0 } + tie)
            })
            .collect();
        let min = Objective::new("loss", Direction::Minimize);
        let s = shares(&trials, &min, &names(), &[]);
        let best = s
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, _)| n.as_str());
        assert_eq!(best, Some("c"), "{s:?}");
    }

    #[test]
    fn too_few_trials_or_a_constant_space_give_nothing() {
        let min = Objective::new("loss", Direction::Minimize);
        let few: Vec<TrialRow> = (0..19).map(|i| trial(i, i as f64, "a", i as f64)).collect();
        assert!(shares(&few, &min, &names(), &[]).is_empty());
        let flat: Vec<TrialRow> = (0..40)
            .map(|i| TrialRow {
                assignment: vec![("x".into(), "1".into())],
                ..trial(i, 1.0, "a", i as f64)
            })
            .collect();
        assert!(shares(&flat, &min, &["x".to_owned()], &[]).is_empty());
    }

    #[test]
    fn log_parameters_are_compared_on_a_log_scale() {
        // lr spans 1e-5..1 and the best trials sit in one decade (1e-3..1e-2):
        // on a linear scale they would all be squeezed into the first grid cell
        // with most other values, on a log scale they stand apart.
        let trials: Vec<TrialRow> = (0..200)
            .map(|i| {
                let lr = 10f64.powf(-5.0 + 5.0 * ((i as f64 * 0.618_034) % 1.0));
                let loss = (lr.log10() + 2.5).powi(2);
                TrialRow {
                    assignment: vec![("lr".into(), lr.to_string()), ("c".into(), "a".into())],
                    ..trial(i, 0.0, "a", loss)
                }
            })
            .collect();
        let min = Objective::new("loss", Direction::Minimize);
        let names = ["lr".to_owned(), "c".to_owned()];
        let log = shares(&trials, &min, &names, &["lr".to_owned()]);
        assert!(log[0].1 > 0.9, "{log:?}");
    }
}
