//! The search space: validated parameters, their values, and the three views
//! every suggester needs — random sampling ([`sample`]), the unit cube
//! ([`encode`]) and the grid ([`grid`]).
//!
//! The main crate converts Katib's `spec.parameters` into a [`SearchSpace`]
//! with the [`ParameterSpec`] constructors; from then on a space is known to
//! be valid, so nothing downstream re-checks bounds or lists.

pub mod encode;
pub mod grid;
pub mod nas;
mod param;
pub mod sample;
mod value;

pub use grid::Grid;
pub use param::{Distribution, Domain, MAX_POINTS, ParameterSpec};
pub use value::{Assignment, ParamValue};

use crate::error::AlgorithmError;

/// An ordered list of uniquely named parameters, or a NAS graph.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    params: Vec<ParameterSpec>,
    /// Set for a NAS space (then `params` is empty): the algorithm writes
    /// the [`NAS_PARAMETERS`] as text.
    nas: Option<nas::NasGraph>,
}

/// The two parameters every ENAS trial gets (Katib's names), which a NAS
/// space accepts as text in [`SearchSpace::parse_assignment`].
pub const NAS_PARAMETERS: [&str; 2] = ["architecture", "nn_config"];

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
        Ok(Self { params, nas: None })
    }

    /// A NAS space: no hyperparameters, the `graph` to search.
    #[must_use]
    pub fn nas(graph: nas::NasGraph) -> Self {
        Self {
            params: Vec::new(),
            nas: Some(graph),
        }
    }

    /// The NAS graph of a space built with [`Self::nas`].
    #[must_use]
    pub fn nas_graph(&self) -> Option<&nas::NasGraph> {
        self.nas.as_ref()
    }

    /// The parameters in order (none for a NAS space).
    #[must_use]
    pub fn params(&self) -> &[ParameterSpec] {
        &self.params
    }

    /// The number of parameters (the dimension of the unit cube).
    #[must_use]
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the space has no parameters: only a NAS space.
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
    /// names are ignored); for a NAS space, whether it has both
    /// [`NAS_PARAMETERS`] as text (their content is the algorithm's).
    #[must_use]
    pub fn contains(&self, assignment: &Assignment) -> bool {
        if self.nas.is_some() {
            return NAS_PARAMETERS
                .iter()
                .all(|n| matches!(assignment.get(n), Some(ParamValue::Text(_))));
        }
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
        if self.nas.is_some() {
            for (name, text) in pairs {
                if !NAS_PARAMETERS.contains(&name) {
                    return Err(AlgorithmError::UnknownParameter {
                        name: name.to_owned(),
                    });
                }
                given.set(name, ParamValue::Text(text.to_owned()));
            }
            return Ok(NAS_PARAMETERS
                .iter()
                .filter_map(|n| given.get(n).map(|v| (*n, v.clone())))
                .collect());
        }
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
