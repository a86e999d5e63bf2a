//! The backend-independent experiment loop.
//!
//! - [`decide`]: the pure decisions — how many trials to start, whether
//!   and why the experiment is complete — as Katib makes them.
//! - [`core`]: the [`Engine`], which applies them over a store, a runner
//!   and a collector given as traits.
//! - [`resume`]: what may change when an existing experiment runs again.
//! - [`tail`]: the end of a failed trial's stderr, for its failure message.
//! - [`driver`]: `ktune run`'s loop around the engine (local processes,
//!   wake-ups, Ctrl-C).

pub mod core;
pub mod decide;
pub mod driver;
pub mod events;
pub mod resume;
pub mod tail;

pub use core::{Engine, EngineError, EngineOptions};
pub use events::{BestTrial, Event, RunSummary};
