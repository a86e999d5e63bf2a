//! `grid`: every combination of points, each exactly once.
//!
//! Points are handed out in ordinal order (nested loops over the parameters
//! in space order, the last one fastest; see [`crate::space::grid`]),
//! skipping every point already in the history whatever its state — so a
//! restart, or trials added by hand, never repeat a point. When no unvisited
//! point remains after a batch, the reply says `exhausted` (Katib never does
//! and instead stalls the experiment). `random_state` is accepted for Katib
//! compatibility; the order does not depend on it.
//!
//! Each call scans at most `history + count + 1` ordinals, so grids larger
//! than `u64` (or `u128`) cost nothing extra.

use std::collections::HashSet;

use crate::error::AlgorithmError;
use crate::settings::Settings;
use crate::space::{Grid, SearchSpace};

use super::{SuggestRequest, Suggester, Suggestion, Suggestions};

/// Exhaustive grid search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GridSuggester;

impl GridSuggester {
    /// Checks that `space` has a grid.
    ///
    /// # Errors
    /// [`AlgorithmError::GridNeedsStep`] for a double parameter without a step.
    pub fn from_settings(
        _settings: &Settings,
        space: &SearchSpace,
    ) -> Result<Self, AlgorithmError> {
        Grid::new(space)?;
        Ok(Self)
    }
}

impl Suggester for GridSuggester {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        let grid = Grid::new(req.space)?;
        let visited: HashSet<u128> = req
            .history
            .iter()
            .filter_map(|t| grid.ordinal_of(&t.assignment))
            .collect();
        let mut suggestions = Vec::with_capacity(req.count.min(1024));
        let mut ordinal = 0u128;
        let mut exhausted = true;
        loop {
            if grid.size().is_some_and(|size| ordinal >= size) {
                break;
            }
            if !visited.contains(&ordinal) {
                if suggestions.len() == req.count {
                    // One more unvisited point exists: not exhausted.
                    exhausted = false;
                    break;
                }
                if let Some(point) = grid.point(ordinal) {
                    suggestions.push(Suggestion::new(point));
                }
            }
            match ordinal.checked_add(1) {
                Some(next) => ordinal = next,
                None => {
                    exhausted = false;
                    break;
                }
            }
        }
        Ok(Suggestions {
            suggestions,
            state: None,
            exhausted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Direction, Objective, TrialRecord};
    use crate::space::{Distribution, ParameterSpec};

    fn drain(space: &SearchSpace, batch: usize) -> (Vec<crate::space::Assignment>, usize) {
        let objective = Objective::new("m", Direction::Maximize);
        let mut history: Vec<TrialRecord> = Vec::new();
        for calls in 1..1000 {
            let out = GridSuggester
                .suggest(&SuggestRequest {
                    space,
                    objective: &objective,
                    history: &history,
                    count: batch,
                    seed: 0,
                    state: None,
                })
                .unwrap();
            for s in out.suggestions {
                history.push(TrialRecord::new("t", s.assignment));
            }
            if out.exhausted {
                return (history.into_iter().map(|t| t.assignment).collect(), calls);
            }
        }
        panic!("grid never exhausted");
    }

    proptest::proptest! {
        #[test]
        fn grid_is_exhaustive_unique_and_reports_exhaustion(
            a in 1u64..5, b in 1i64..6, batch in 1usize..7
        ) {
            let space = SearchSpace::new(vec![
                ParameterSpec::double("x", 0.0, 0.1 * a as f64, Some(0.1), Distribution::Uniform).unwrap(),
                ParameterSpec::int("n", 0, b, None, Distribution::Uniform).unwrap(),
            ]).unwrap();
            let size = usize::try_from(Grid::new(&space).unwrap().size().unwrap()).unwrap();
            let (points, _) = drain(&space, batch);
            proptest::prop_assert_eq!(points.len(), size);
            let grid = Grid::new(&space).unwrap();
            let ordinals: std::collections::BTreeSet<u128> =
                points.iter().map(|p| grid.ordinal_of(p).unwrap()).collect();
            proptest::prop_assert_eq!(ordinals.len(), size);
        }
    }

    #[test]
    fn points_already_in_history_are_skipped_whatever_their_order() {
        let space = SearchSpace::new(vec![
            ParameterSpec::categorical("c", vec!["a".into(), "b".into(), "c".into()]).unwrap(),
        ])
        .unwrap();
        let objective = Objective::new("m", Direction::Maximize);
        let history = vec![TrialRecord::new(
            "by-hand",
            [("c", crate::space::ParamValue::Text("b".into()))]
                .into_iter()
                .collect(),
        )];
        let out = GridSuggester
            .suggest(&SuggestRequest {
                space: &space,
                objective: &objective,
                history: &history,
                count: 5,
                seed: 0,
                state: None,
            })
            .unwrap();
        let got: Vec<String> = out
            .suggestions
            .iter()
            .map(|s| s.assignment.get("c").unwrap().to_katib_string())
            .collect();
        assert_eq!(got, ["a", "c"]);
        assert!(out.exhausted);
    }
}
