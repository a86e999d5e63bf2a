//! The backend-independent experiment loop.
//!
//! - [`decide`]: the pure decisions — how many trials to start, whether
//!   and why the experiment is complete — as Katib makes them.
//! - [`core`]: the [`Engine`], which applies them over a store, a runner
//!   and a collector given as traits; its work is split by job into
//!   `open` (store or resume the experiment), `round` (one step),
//!   `suggest` (new trials, and their names: [`trial_name`]), `launch`,
//!   `watch` (running trials' reports and early stopping), `record` (how
//!   trials end), `history` (the trials as the algorithms see them) and
//!   `live` (what is held of a running trial).
//! - [`resume`]: what may change when an existing experiment runs again.
//! - [`tail`]: the end of a failed trial's stderr, for its failure message.
//! - [`driver`]: `ktune run`'s loop around the engine (local processes,
//!   wake-ups, Ctrl-C).

pub mod core;
pub mod decide;
pub mod driver;
pub mod events;
mod history;
mod launch;
mod live;
mod open;
mod record;
pub mod resume;
mod round;
mod suggest;
pub mod tail;
mod watch;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use core::{Engine, EngineError, EngineOptions};
pub use events::{BestTrial, Event, RunSummary};
pub use suggest::trial_name;
