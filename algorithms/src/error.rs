//! The one error type of the algorithm library.
//!
//! Every fallible constructor and every suggester returns [`AlgorithmError`],
//! so the caller (validation in the main crate, the engine loop) can match on
//! the variant and point the user at the offending parameter or setting.
//! Problems with one parameter's definition are described by
//! [`ParameterProblem`], which keeps the numbers for the message.

/// Why a parameter definition was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParameterProblem {
    /// The name is empty.
    #[error("the parameter name is empty")]
    EmptyName,
    /// `min`, `max` or `step` is NaN or infinite.
    #[error("{field} must be a finite number, got {value}")]
    NotFinite {
        /// Which field (`min`, `max`, `step`, `list`).
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// `min` is greater than `max`.
    #[error("min ({min}) is greater than max ({max})")]
    MinAboveMax {
        /// The lower bound, as given.
        min: String,
        /// The upper bound, as given.
        max: String,
    },
    /// The step is zero or negative.
    #[error("step must be greater than zero, got {step}")]
    StepNotPositive {
        /// The step, as given.
        step: String,
    },
    /// A log-scaled distribution needs a positive lower bound.
    #[error("distribution {distribution} needs min > 0, got {min}")]
    LogNeedsPositiveMin {
        /// The distribution's Katib name.
        distribution: &'static str,
        /// The lower bound, as given.
        min: String,
    },
    /// The quantised range has more points than [`crate::space::MAX_POINTS`] (2^48)
    /// (beyond that the unit-cube encoding can no longer tell neighbouring
    /// points apart exactly).
    #[error("the range has more than 2^48 points; use a larger step or a double parameter")]
    TooManyPoints,
    /// A `discrete` or `categorical` list is empty.
    #[error("the list of values is empty")]
    EmptyList,
    /// A value appears twice in a `discrete` or `categorical` list.
    #[error("the value {value:?} appears more than once in the list")]
    DuplicateValue {
        /// The repeated value.
        value: String,
    },
}

/// Everything that can go wrong when building a space, a suggester or a
/// stopping rule, or when asking for suggestions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgorithmError {
    /// One parameter's definition is invalid.
    #[error("parameter `{name}`: {problem}")]
    InvalidParameter {
        /// The parameter's name.
        name: String,
        /// What is wrong.
        problem: ParameterProblem,
    },
    /// Two parameters have the same name.
    #[error("parameter `{name}` is defined more than once")]
    DuplicateParameter {
        /// The repeated name.
        name: String,
    },
    /// A search space needs at least one parameter.
    #[error("the search space has no parameters")]
    EmptySpace,
    /// A name does not belong to any parameter of the space.
    #[error("unknown parameter `{name}`")]
    UnknownParameter {
        /// The name looked up.
        name: String,
    },
    /// A text value cannot be a value of the named parameter.
    #[error("parameter `{name}`: {value:?} is not {expected}")]
    InvalidValue {
        /// The parameter.
        name: String,
        /// The text given.
        value: String,
        /// What the parameter accepts, in words.
        expected: &'static str,
    },
    /// The name is neither a search algorithm nor an early-stopping rule ktune knows.
    #[error("unknown algorithm `{name}`")]
    UnknownAlgorithm {
        /// The name given.
        name: String,
    },
    /// The algorithm is in Katib's catalog but ktune does not implement it yet.
    #[error("algorithm `{name}` is not implemented in ktune yet")]
    NotImplemented {
        /// The algorithm's Katib name.
        name: String,
    },
    /// A required setting is absent from the parsed settings.
    #[error("{algorithm} requires the setting `{setting}`")]
    MissingSetting {
        /// The algorithm.
        algorithm: &'static str,
        /// The setting.
        setting: &'static str,
    },
    /// Grid search needs every `double` parameter to have a `step`.
    #[error("grid needs a step on double parameter `{name}` (Katib requires it too)")]
    GridNeedsStep {
        /// The parameter without a step.
        name: String,
    },
    /// Hyperband's `resource_name` does not name a parameter of the space.
    #[error("hyperband setting resource_name = `{name}` does not name a parameter")]
    ResourceParameterMissing {
        /// The value of `resource_name`.
        name: String,
    },
    /// Hyperband's resource parameter must be `int` or `double`.
    #[error("hyperband resource parameter `{name}` must be an int or double parameter")]
    ResourceParameterNotNumeric {
        /// The value of `resource_name`.
        name: String,
    },
    /// Hyperband's `r_l` and `eta` give more brackets or configurations than
    /// any experiment can run (more than 64 brackets or 2^32 configurations
    /// in one bracket), typically `eta` barely above 1.
    #[error(
        "hyperband with r_l = {r_l} and eta = {eta} needs {brackets} brackets; use a larger eta or a smaller r_l"
    )]
    HyperbandTooLarge {
        /// The `r_l` setting.
        r_l: f64,
        /// The `eta` setting.
        eta: f64,
        /// The number of brackets it would need (`s_max + 1`, saturated).
        brackets: u64,
    },
    /// The space has more dimensions than the algorithm supports.
    #[error("{algorithm} supports at most {max} parameters, the space has {dimensions}")]
    TooManyDimensions {
        /// The algorithm.
        algorithm: &'static str,
        /// The number of parameters in the space.
        dimensions: usize,
        /// The supported maximum.
        max: usize,
    },
    /// The algorithm cannot search this space at all.
    #[error("{algorithm} cannot search this space: {reason}")]
    UnsupportedSpace {
        /// The algorithm.
        algorithm: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
    /// A NAS graph (`spec.nasConfig`) that cannot be searched.
    #[error("the nasConfig cannot be searched: {reason}")]
    InvalidNasGraph {
        /// Why, in words.
        reason: String,
    },
}
