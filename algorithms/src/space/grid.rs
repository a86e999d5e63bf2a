//! The grid view of a space: every combination of points, addressed by an
//! ordinal, never materialised.
//!
//! Ordinals are mixed-radix numbers with the first parameter as the most
//! significant digit, so ordinal order is the order of nested loops over the
//! parameters in space order. Sizes are `u128` with `None` for "more than
//! `u128::MAX`" (50 parameters of 10 points already overflow `u64`): a grid
//! that large is still enumerable from the start, it simply never ends.

use super::{Assignment, ParamValue, SearchSpace};
use crate::error::AlgorithmError;

/// The grid of a space whose parameters are all quantised.
#[derive(Debug, Clone)]
pub struct Grid<'a> {
    space: &'a SearchSpace,
    counts: Vec<u64>,
    size: Option<u128>,
}

impl<'a> Grid<'a> {
    /// The grid of `space`.
    ///
    /// # Errors
    /// [`AlgorithmError::GridNeedsStep`] names the first `double` parameter
    /// without a step.
    pub fn new(space: &'a SearchSpace) -> Result<Self, AlgorithmError> {
        let mut counts = Vec::with_capacity(space.len());
        for p in space.params() {
            let n = p.points().ok_or_else(|| AlgorithmError::GridNeedsStep {
                name: p.name().to_owned(),
            })?;
            counts.push(n);
        }
        let size = counts
            .iter()
            .try_fold(1u128, |acc, &n| acc.checked_mul(u128::from(n)));
        Ok(Self {
            space,
            counts,
            size,
        })
    }

    /// The number of grid points; `None` when it exceeds `u128::MAX`.
    #[must_use]
    pub fn size(&self) -> Option<u128> {
        self.size
    }

    /// The number of points of each parameter, in space order.
    #[must_use]
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The point at `ordinal`; `None` when `ordinal >= size`.
    #[must_use]
    pub fn point(&self, ordinal: u128) -> Option<Assignment> {
        let mut rest = ordinal;
        let mut values: Vec<(&str, ParamValue)> = Vec::with_capacity(self.counts.len());
        for (p, &n) in self.space.params().iter().zip(&self.counts).rev() {
            let n = u128::from(n);
            let k = u64::try_from(rest % n).ok()?;
            rest /= n;
            values.push((p.name(), p.point(k)?));
        }
        if rest != 0 {
            return None;
        }
        Some(values.into_iter().rev().collect())
    }

    /// The ordinal of `assignment`; `None` if it is not a grid point (or its
    /// ordinal does not fit in `u128`).
    #[must_use]
    pub fn ordinal_of(&self, assignment: &Assignment) -> Option<u128> {
        let mut ordinal = 0u128;
        for (p, &n) in self.space.params().iter().zip(&self.counts) {
            let k = p.index_of(assignment.get(p.name())?)?;
            ordinal = ordinal
                .checked_mul(u128::from(n))?
                .checked_add(u128::from(k))?;
        }
        Some(ordinal)
    }
}
