//! `random`: independent draws from each parameter's distribution.
//!
//! Katib serves `random` with hyperopt's `rand.suggest`; ktune keeps its
//! distribution semantics but never leaves `[min, max]` (see
//! [`crate::space::sample`]). The `k`-th suggestion of the whole experiment
//! is drawn from a generator keyed by `(seed, k)`, where `k` is the history
//! length plus the position in the batch, so asking for three at once or one
//! at a time gives the same three configurations.

use crate::error::AlgorithmError;
use crate::rng::derive_rng;
use crate::settings::Settings;

use super::{SuggestRequest, Suggester, Suggestion, Suggestions, random_state};

/// Random search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RandomSuggester {
    seed: Option<u64>,
}

impl RandomSuggester {
    /// Random search with an optional fixed seed (overrides the request's).
    #[must_use]
    pub fn new(seed: Option<u64>) -> Self {
        Self { seed }
    }

    /// Reads `random_state`.
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(random_state(settings))
    }
}

impl Suggester for RandomSuggester {
    fn name(&self) -> &'static str {
        "random"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        let seed = self.seed.unwrap_or(req.seed);
        let start = req.history.len() as u64;
        let suggestions = (0..req.count as u64)
            .map(|i| {
                let mut rng = derive_rng(seed, start.wrapping_add(i), "random");
                Suggestion::new(req.space.sample(&mut rng))
            })
            .collect();
        Ok(Suggestions {
            suggestions,
            state: None,
            exhausted: false,
        })
    }
}
