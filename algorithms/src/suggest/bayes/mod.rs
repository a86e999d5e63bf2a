//! Gaussian-process Bayesian optimisation, Katib's `bayesianoptimization`.

use crate::error::AlgorithmError;
use crate::settings::Settings;
use crate::space::SearchSpace;

use super::Suggester;

/// Builds the suggester for `algorithm_name` (already looked up in the
/// settings catalog) from parsed settings.
///
/// # Errors
/// [`AlgorithmError::NotImplemented`] until the algorithm lands; then its
/// own checks of the settings against the space.
pub fn build(
    algorithm_name: &'static str,
    settings: &Settings,
    space: &SearchSpace,
) -> Result<Box<dyn Suggester>, AlgorithmError> {
    let _ = (settings, space);
    Err(AlgorithmError::NotImplemented {
        name: algorithm_name.to_owned(),
    })
}
