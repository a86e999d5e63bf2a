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
