//! Search spaces, suggesters and early-stopping rules for ktune.
//!
//! Everything here is a pure function of its inputs: a suggester gets the
//! search space, its settings, a seed and the full trial history, and returns
//! new configurations; an early-stopping rule gets a trial's observations and
//! the history, and returns a decision. No I/O, no async, no clock, no
//! Kubernetes: the same inputs give the same outputs, bit for bit, so a
//! process killed at any moment resumes from stored history alone.
//!
//! Entry points: [`space::SearchSpace`] (built from [`space::ParameterSpec`]s),
//! [`history::TrialRecord`] and [`history::Objective`],
//! [`suggest::build_suggester`] → [`suggest::Suggester`], and
//! [`stopping::build_early_stopping`] → [`stopping::EarlyStoppingRule`].
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod error;
pub mod history;
pub mod rng;
pub mod settings;
pub mod space;
pub mod stopping;
pub mod suggest;
pub mod testfns;

pub use error::{AlgorithmError, ParameterProblem};
