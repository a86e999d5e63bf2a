//! A neural-architecture search space (Katib's `spec.nasConfig`) as ENAS
//! searches it: the graph's shape and the operations to choose from.
//!
//! Unlike a hyperparameter space, a NAS space has no parameters of its
//! own: the algorithm writes two text values per trial (ENAS's
//! `architecture` and `nn_config`), so a [`SearchSpace`](super::SearchSpace)
//! built with [`SearchSpace::nas`](super::SearchSpace::nas) holds a
//! [`NasGraph`] instead of [`ParameterSpec`](super::ParameterSpec)s.

use crate::error::AlgorithmError;

/// The most operations an expanded NAS space may hold: the controller keeps
/// an embedding row and a softmax column per operation.
pub const MAX_OPERATIONS: usize = 10_000;

/// The values one operation parameter takes, as Katib's ENAS service
/// expands them (`pkg/suggestion/v1beta1/nas/enas/Operation.py`).
#[derive(Debug, Clone, PartialEq)]
pub enum NasValues {
    /// `categorical` (and `discrete`, which Katib's service cannot expand:
    /// ktune treats its list like a categorical one): the list's strings.
    List(Vec<String>),
    /// `int`: Python's `range(min, max + 1, step)`.
    Int {
        /// First value.
        min: i64,
        /// Last value, inclusive.
        max: i64,
        /// Step, > 0.
        step: i64,
    },
    /// `double`: numpy's `arange(min, max + step, step)` without values past `max`.
    Double {
        /// First value.
        min: f64,
        /// Last value, inclusive.
        max: f64,
        /// Step, > 0.
        step: f64,
    },
}

/// One value of an operation parameter, typed as Katib's JSON writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum NasValue {
    /// A string (categorical lists stay strings: `"3"`).
    Text(String),
    /// An integer (`int` ranges).
    Int(i64),
    /// A float (`double` ranges).
    Float(f64),
}

impl NasValues {
    /// Every value, in Katib's order (none for a step that is not > 0).
    #[must_use]
    pub fn values(&self) -> Vec<NasValue> {
        if !self.step_is_positive() {
            return Vec::new();
        }
        match self {
            Self::List(list) => list.iter().cloned().map(NasValue::Text).collect(),
            Self::Int { min, max, step } => {
                let mut out = Vec::new();
                let mut v = *min;
                while v <= *max {
                    out.push(NasValue::Int(v));
                    match v.checked_add(*step) {
                        Some(next) => v = next,
                        None => break,
                    }
                }
                out
            }
            // numpy's values are `min + k*step`; one past `max` by float
            // noise only (`0.1 * 3`) is kept, as numpy keeps it.
            Self::Double { min, max, step } => (0_u32..)
                .map(|k| min + f64::from(k) * step)
                .take_while(|v| *v <= max + step * 1e-9)
                .map(NasValue::Float)
                .collect(),
        }
    }

    fn step_is_positive(&self) -> bool {
        match self {
            Self::List(_) => true,
            Self::Int { step, .. } => *step > 0,
            Self::Double { step, .. } => *step > 0.0 && step.is_finite(),
        }
    }

    /// How many values, without listing them.
    fn count(&self) -> u128 {
        if !self.step_is_positive() {
            return 0;
        }
        match self {
            Self::List(list) => list.len() as u128,
            Self::Int { min, max, step } if max >= min => {
                ((i128::from(*max) - i128::from(*min)) / i128::from(*step)) as u128 + 1
            }
            Self::Double { min, max, step } if max >= min => {
                if (max - min) / step < 1e7 {
                    self.values().len() as u128
                } else {
                    u128::MAX
                }
            }
            _ => 0,
        }
    }
}

/// One named operation parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct NasParameter {
    /// The parameter's name (`filter_size`).
    pub name: String,
    /// Its values.
    pub values: NasValues,
}

/// One operation type with its parameters (Katib's `operations[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NasOperation {
    /// `operationType`, e.g. `convolution`.
    pub operation_type: String,
    /// Its parameters, in the order given.
    pub parameters: Vec<NasParameter>,
}

/// The network's shape and its operations (Katib's `graphConfig` and
/// `operations`), checked so that the expanded space is usable.
#[derive(Debug, Clone, PartialEq)]
pub struct NasGraph {
    num_layers: usize,
    input_sizes: Vec<i64>,
    output_sizes: Vec<i64>,
    operations: Vec<NasOperation>,
}

impl NasGraph {
    /// A graph of `num_layers` layers choosing among `operations`.
    ///
    /// # Errors
    /// [`AlgorithmError::InvalidNasGraph`] for no layers, no operations, a
    /// parameter without values, or more than [`MAX_OPERATIONS`] operations
    /// once every combination of parameter values is one operation.
    pub fn new(
        num_layers: usize,
        input_sizes: Vec<i64>,
        output_sizes: Vec<i64>,
        operations: Vec<NasOperation>,
    ) -> Result<Self, AlgorithmError> {
        let refuse = |reason: String| AlgorithmError::InvalidNasGraph { reason };
        if num_layers == 0 {
            return Err(refuse("graphConfig.numLayers must be at least 1".into()));
        }
        if operations.is_empty() {
            return Err(refuse("there are no operations".into()));
        }
        let mut total: u128 = 0;
        for op in &operations {
            let mut combinations: u128 = 1;
            for p in &op.parameters {
                let n = p.values.count();
                if n == 0 {
                    return Err(refuse(format!(
                        "parameter `{}` of operation `{}` has no values",
                        p.name, op.operation_type
                    )));
                }
                combinations = combinations.saturating_mul(n);
            }
            total = total.saturating_add(combinations);
        }
        if total > MAX_OPERATIONS as u128 {
            return Err(refuse(format!(
                "the operations expand to {total} combinations; at most {MAX_OPERATIONS} are supported"
            )));
        }
        Ok(Self {
            num_layers,
            input_sizes,
            output_sizes,
            operations,
        })
    }

    /// The number of layers.
    #[must_use]
    pub fn num_layers(&self) -> usize {
        self.num_layers
    }

    /// `graphConfig.inputSizes`.
    #[must_use]
    pub fn input_sizes(&self) -> &[i64] {
        &self.input_sizes
    }

    /// `graphConfig.outputSizes`.
    #[must_use]
    pub fn output_sizes(&self) -> &[i64] {
        &self.output_sizes
    }

    /// The operations as given.
    #[must_use]
    pub fn operations(&self) -> &[NasOperation] {
        &self.operations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_as_python_range_and_numpy_arange() {
        let ints = NasValues::Int {
            min: 2,
            max: 7,
            step: 2,
        };
        assert_eq!(
            ints.values(),
            [2, 4, 6].map(NasValue::Int).to_vec(),
            "range(2, 8, 2)"
        );
        assert_eq!(ints.count(), 3);
        let doubles = NasValues::Double {
            min: 0.5,
            max: 1.6,
            step: 0.5,
        };
        assert_eq!(
            doubles.values(),
            [0.5, 1.0, 1.5].map(NasValue::Float).to_vec()
        );
        assert_eq!(doubles.count(), 3);
    }

    #[test]
    fn empty_and_huge_spaces_are_refused() {
        let op = |values| NasOperation {
            operation_type: "conv".into(),
            parameters: vec![NasParameter {
                name: "f".into(),
                values,
            }],
        };
        let list = |n: usize| NasValues::List((0..n).map(|i| i.to_string()).collect());
        assert!(NasGraph::new(1, vec![], vec![], vec![op(list(3))]).is_ok());
        assert!(NasGraph::new(0, vec![], vec![], vec![op(list(3))]).is_err());
        assert!(NasGraph::new(1, vec![], vec![], vec![]).is_err());
        assert!(NasGraph::new(1, vec![], vec![], vec![op(list(0))]).is_err());
        let empty_range = NasValues::Int {
            min: 3,
            max: 2,
            step: 1,
        };
        assert!(NasGraph::new(1, vec![], vec![], vec![op(empty_range)]).is_err());
        for bad_step in [
            NasValues::Int {
                min: 1,
                max: 2,
                step: 0,
            },
            NasValues::Double {
                min: 1.0,
                max: 2.0,
                step: -0.5,
            },
            NasValues::Double {
                min: 1.0,
                max: 2.0,
                step: f64::NAN,
            },
        ] {
            assert!(bad_step.values().is_empty());
            assert!(NasGraph::new(1, vec![], vec![], vec![op(bad_step)]).is_err());
        }
        let big = NasOperation {
            operation_type: "conv".into(),
            parameters: (0..3)
                .map(|i| NasParameter {
                    name: format!("p{i}"),
                    values: list(30),
                })
                .collect(),
        };
        assert!(NasGraph::new(1, vec![], vec![], vec![big]).is_err());
    }
}
