//! The backend-independent experiment loop. So far: the pure decisions
//! ([`decide`]) — how many trials to start, and whether and why the
//! experiment is complete — that both `ktune run` and the controller use.

pub mod decide;
pub mod driver;
