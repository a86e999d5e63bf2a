//! The search space: validated parameters, their values, and the three views
//! every suggester needs — random sampling ([`sample`]), the unit cube
//! ([`encode`]) and the grid ([`grid`]).
//!
//! The main crate converts Katib's `spec.parameters` into a [`SearchSpace`]
//! with the [`ParameterSpec`] constructors; from then on a space is known to
//! be valid, so nothing downstream re-checks bounds or lists.

pub mod encode;
pub mod grid;
mod param;
pub mod sample;
mod value;

pub use grid::Grid;
pub use param::{Distribution, Domain, MAX_POINTS, ParameterSpec};
pub use value::{Assignment, ParamValue};

use crate::error::AlgorithmError;

/// An ordered list of uniquely named parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    params: Vec<ParameterSpec>,
}

impl SearchSpace {
    /// A space of `params`, in the order given (which is the order of every
    /// [`Assignment`] the suggesters produce and of the unit-cube coordinates).
    ///
    /// # Errors
    /// [`AlgorithmError::EmptySpace`] for no parameters,
    /// [`AlgorithmError::DuplicateParameter`] when two share a name.
    pub fn new(params: Vec<ParameterSpec>) -> Result<Self, AlgorithmError> {
        if params.is_empty() {
            return Err(AlgorithmError::EmptySpace);
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &params {
            if !seen.insert(p.name()) {
                return Err(AlgorithmError::DuplicateParameter {
                    name: p.name().to_owned(),
                });
            }
        }
        Ok(Self { params })
    }

    /// The parameters in order.
    #[must_use]
    pub fn params(&self) -> &[ParameterSpec] {
        &self.params
    }

    /// The number of parameters (the dimension of the unit cube).
    #[must_use]
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Always false: a space has at least one parameter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The parameter named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ParameterSpec> {
        self.params.iter().find(|p| p.name() == name)
    }

    /// Whether `assignment` gives every parameter a valid value (extra
    /// names are ignored).
    #[must_use]
    pub fn contains(&self, assignment: &Assignment) -> bool {
        self.params
            .iter()
            .all(|p| assignment.get(p.name()).is_some_and(|v| p.contains(v)))
    }

    /// Parses Katib `(name, value)` strings into an [`Assignment`] in space order.
    ///
    /// # Errors
    /// [`AlgorithmError::UnknownParameter`] for a name not in the space,
    /// [`AlgorithmError::InvalidValue`] for a value of the wrong type.
    pub fn parse_assignment<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Assignment, AlgorithmError> {
        let mut given = Assignment::new();
        for (name, text) in pairs {
            let p = self
                .get(name)
                .ok_or_else(|| AlgorithmError::UnknownParameter {
                    name: name.to_owned(),
                })?;
            given.set(name, p.parse_value(text)?);
        }
        // Re-order to the space's order; names the space lacks were refused above.
        Ok(self
            .params
            .iter()
            .filter_map(|p| given.get(p.name()).map(|v| (p.name(), v.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests;
