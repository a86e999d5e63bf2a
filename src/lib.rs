//! ktune: hyperparameter tuning and AutoML as one fast Rust program.
//!
//! ktune reads Kubeflow Katib's `Experiment` YAML and runs it locally (trials
//! as processes, state in SQLite) or on Kubernetes as a controller. This
//! crate holds the service: the Katib-compatible API ([`api`]) and the
//! command line ([`cli`]). The search algorithms live in the
//! `ktune-algorithms` crate, which is pure and has no I/O.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod metrics;
pub mod runner;
pub mod serve;
pub mod store;
pub mod ui;
