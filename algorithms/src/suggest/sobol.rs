//! `sobol`: a scrambled Sobol low-discrepancy sequence.
//!
//! Point `k` of the experiment (history length plus position in the batch)
//! is point `k` of an Owen-scrambled Sobol sequence (Burley 2020, through
//! `sobol_burley`, random access, 256 dimensions), decoded from the unit cube
//! (see [`crate::space::encode`]: log distributions are honoured through the
//! encoding, normal shapes are not — as in Katib's goptuna service, which
//! ignores distributions entirely). The seed (`random_state`, else the
//! request's) picks the scramble, so different seeds give independent
//! sequences and the same seed gives the same one after a restart.
//!
//! `sobol_burley` addresses 2^16 points per sequence; point `k` uses sequence
//! `k >> 16` (a fresh scramble) at index `k & 0xFFFF`, so long runs continue
//! with new, still stratified blocks. Its 32-bit output is widened to a full
//! double with a seeded jitter below 2^-32, so continuous parameters get
//! every bit of precision.

use sobol_burley::parts::{hash, owen_scramble_rev, sobol_rev};

use crate::error::AlgorithmError;
use crate::rng::{derive_rng, mix64};
use crate::settings::Settings;
use crate::space::SearchSpace;
use crate::space::sample::unit_f64;

use super::{SuggestRequest, Suggester, Suggestion, Suggestions, random_state};

/// The most parameters the sequence supports.
pub const MAX_DIMENSIONS: usize = sobol_burley::NUM_DIMENSIONS as usize;

/// Quasi-random search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SobolSuggester {
    seed: Option<u64>,
}

impl SobolSuggester {
    /// Reads `random_state` and checks the dimension.
    ///
    /// # Errors
    /// [`AlgorithmError::TooManyDimensions`] above [`MAX_DIMENSIONS`] parameters.
    pub fn from_settings(settings: &Settings, space: &SearchSpace) -> Result<Self, AlgorithmError> {
        check_dimensions(space)?;
        Ok(Self {
            seed: random_state(settings),
        })
    }
}

fn check_dimensions(space: &SearchSpace) -> Result<(), AlgorithmError> {
    if space.len() > MAX_DIMENSIONS {
        return Err(AlgorithmError::TooManyDimensions {
            algorithm: "sobol",
            dimensions: space.len(),
            max: MAX_DIMENSIONS,
        });
    }
    Ok(())
}

/// One coordinate of point `index` in dimension `dim` as a `u32` (what
/// `sobol_burley::sample` computes before narrowing to `f32`).
fn sobol_u32(index: u32, dim: u32, seed: u32) -> u32 {
    let shuffled = owen_scramble_rev(index.reverse_bits(), hash(seed ^ 0x79c6_8e4a));
    let raw = sobol_rev(shuffled, dim);
    let scramble = {
        let seed = seed.wrapping_mul(0x9c8f_2d3b);
        let lanes = [0x912f_69ba, 0x174f_18ab, 0x691e_72ca, 0xb40c_c1b8];
        (dim >> 2) ^ seed ^ lanes.get(dim as usize & 3).copied().unwrap_or(0)
    };
    owen_scramble_rev(raw, hash(scramble)).reverse_bits()
}

/// The unit-cube point `k` of the sequence for `seed`.
pub(crate) fn sobol_point(seed: u64, k: u64, dims: usize) -> Vec<f64> {
    let block = k >> 16;
    let (index, block_seed) = (
        (k & 0xFFFF) as u32,
        (mix64(seed ^ mix64(block)) >> 32) as u32,
    );
    let mut jitter = derive_rng(seed, k, "sobol-jitter");
    (0..dims)
        .map(|d| {
            let dim = u32::try_from(d).unwrap_or(0);
            let x = f64::from(sobol_u32(index, dim, block_seed)) + unit_f64(&mut jitter);
            (x / 4_294_967_296.0).min(1.0)
        })
        .collect()
}

impl Suggester for SobolSuggester {
    fn name(&self) -> &'static str {
        "sobol"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        check_dimensions(req.space)?;
        let seed = self.seed.unwrap_or(req.seed);
        let start = req.history.len() as u64;
        let suggestions = (0..req.count as u64)
            .map(|i| {
                let u = sobol_point(seed, start.wrapping_add(i), req.space.len());
                Suggestion::new(req.space.decode(&u))
            })
            .collect();
        Ok(Suggestions {
            suggestions,
            state: None,
            exhausted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sobol_burley_to_f32_precision() {
        for k in [0u32, 1, 7, 1000] {
            for d in [0u32, 1, 5, 255] {
                let ours = f64::from(sobol_u32(k, d, 42)) / 4_294_967_296.0;
                let theirs = f64::from(sobol_burley::sample(k, d, 42));
                assert!((ours - theirs).abs() < 1e-6, "{k} {d}: {ours} {theirs}");
            }
        }
    }

    #[test]
    fn first_points_stratify_each_dimension() {
        // The first 2^m points of a scrambled Sobol sequence put exactly one
        // point in each of the 2^m equal intervals of every dimension.
        let points: Vec<Vec<f64>> = (0..16).map(|k| sobol_point(7, k, 4)).collect();
        for d in 0..4 {
            let mut bins: Vec<usize> = points.iter().map(|p| (p[d] * 16.0) as usize).collect();
            bins.sort_unstable();
            assert_eq!(bins, (0..16).collect::<Vec<_>>(), "dimension {d}");
        }
    }
}
