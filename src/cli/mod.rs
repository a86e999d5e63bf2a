//! The `ktune` command line: one module per subcommand. This is the only
//! place (with `main.rs`) where `anyhow` is used and where output is
//! written for humans.

mod ask_tell;
mod checkpoint;
mod collect;
mod controller;
mod convert;
mod crds;
mod delete;
mod inspect;
pub mod printable;
mod run;
mod suggest;
mod ui;
mod validate;
mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hyperparameter tuning and AutoML: runs Kubeflow Katib Experiment YAML.
#[derive(Debug, Parser)]
#[command(name = "ktune", version, about, long_about = None)]
pub struct Cli {
    /// Log lines on stderr as text, or as JSON objects (one per line, with
    /// the spans they happened in: experiment, trial) for log collectors.
    /// Levels: `KTUNE_LOG` (e.g. `info`, `ktune=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KTUNE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter when `KTUNE_LOG` is unset: warnings only, so that
    /// `ktune run`'s terminal stays quiet; but the controller, a service
    /// whose log is all its operator sees, also says (at info, ktune's own
    /// lines only) how it started and when each experiment starts and ends.
    #[must_use]
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Controller(_) => "warn,ktune=info",
            _ => "warn",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment on this machine (trials as processes, state in SQLite); rerun to resume.
    Run(run::Args),
    /// Experiments in the store: state, trial counts, best trial.
    Status(inspect::StatusArgs),
    /// An experiment's trials as a table, JSON or CSV.
    Trials(inspect::TrialsArgs),
    /// The best trial's parameters as JSON (for scripts).
    Best(inspect::BestArgs),
    /// A trial's output (`-f` follows it while it runs).
    Logs(inspect::LogsArgs),
    /// Check experiment files: print each with Katib's defaults applied, and every error.
    Validate(validate::Args),
    /// Dry run: the first configurations the algorithm proposes, and each trial's command.
    Suggest(suggest::Args),
    /// Print the CustomResourceDefinitions ktune serves (or write them to a folder).
    Crds(crds::Args),
    /// Print the controller's RBAC rules (deploy/rbac.yaml), every trial kind granted.
    Rbac(crds::RbacArgs),
    /// Drive one algorithm over JSON lines on stdin/stdout (init, ask, tell, close).
    AskTell(ask_tell::Args),
    /// Turn Katib Experiments into ktune ones (for `kubectl apply`).
    Convert(convert::Args),
    /// Run the Kubernetes controller for Experiments and Trials.
    Controller(controller::Args),
    /// The File metrics collector's sidecar: stream a trial's metrics file to the controller.
    #[command(hide = true)]
    CollectFile(collect::Args),
    /// A PBT trial's init container: start its checkpoint folder as a copy of its parent's.
    #[command(hide = true)]
    CopyCheckpoint(checkpoint::Args),
    /// Serve a read-only web dashboard over the store.
    Ui(ui::Args),
    /// Delete an experiment: its trials, reports and trial folder.
    Delete(delete::Args),
}

/// Exit status for "the input is invalid" (an experiment file, a field in
/// it) and for an experiment that ended Failed.
pub const EXIT_INVALID: u8 = 1;
/// Exit status for usage errors (clap's too), unreadable files and
/// anything else that kept a command from doing its work.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for "try again later" (sysexits' EX_TEMPFAIL): nothing is
/// wrong with the input, but another run holds the experiment (or took it
/// over), or the database stayed unreachable; rerunning the same command
/// later resumes.
pub const EXIT_RETRY: u8 = 75;

/// The input (not the command line or the machine) is what is wrong: a
/// document that is not an Experiment, a file without one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// The exit status for a command that failed with `error`: [`EXIT_INVALID`]
/// when the error is about the input's content (every command agrees),
/// [`EXIT_USAGE`] otherwise.
#[must_use]
pub fn exit_status_for(error: &anyhow::Error) -> u8 {
    use crate::api::load::{DocumentError, LoadError};
    let invalid = error.chain().any(|e| {
        e.is::<DocumentError>()
            || e.is::<InvalidInput>()
            || e.downcast_ref::<LoadError>()
                .is_some_and(|l| !matches!(l, LoadError::Io { .. }))
    });
    if invalid { EXIT_INVALID } else { EXIT_USAGE }
}

/// The async runtime a command runs its work on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// An experiment read from the command line's files, defaulted and validated.
struct Loaded {
    /// Where the Experiment document came from, for messages.
    origin: String,
    /// ConfigMaps given alongside, for `trialTemplate.configMap`.
    configmaps: crate::api::load::ConfigMaps,
    /// The experiment and its validation report.
    prepared: crate::api::PreparedExperiment,
}

/// Why `files` give nothing to run, naming them (an empty file included).
fn no_experiment(files: &[std::path::PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "no Experiment document in {} (a document with `kind: Experiment` or `kind: OptimizationJob` is needed)",
        names.join(", ")
    )
}

/// Reads the files, takes the first Experiment (or OptimizationJob)
/// document, and prepares it
/// (ConfigMap templates must be resolvable: the experiment is about to run).
fn load_experiment(files: &[std::path::PathBuf]) -> anyhow::Result<Loaded> {
    use anyhow::Context as _;
    let mut documents = Vec::new();
    for file in files {
        documents.extend(crate::api::load::read_documents(file)?);
    }
    let configmaps = crate::api::load::ConfigMaps::from_documents(&documents);
    let Some(doc) = documents.iter().find(|d| {
        matches!(
            d.kind(),
            Some("Experiment" | crate::api::optimization_job::KIND)
        )
    }) else {
        return Err(InvalidInput(no_experiment(files)).into());
    };
    let context = crate::api::validate::Context {
        configmaps: &configmaps,
        require_configmaps: true,
    };
    let origin = doc.origin();
    let prepared = crate::api::prepare(&doc.value, context).with_context(|| origin.clone())?;
    Ok(Loaded {
        origin,
        configmaps,
        prepared,
    })
}

/// Runs a parsed command line.
///
/// # Errors
/// When output cannot be written or a file cannot be created.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Status(args) => inspect::status(&args),
        Command::Trials(args) => inspect::trials(&args),
        Command::Best(args) => inspect::best(&args),
        Command::Logs(args) => inspect::logs(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Suggest(args) => suggest::run(&args),
        Command::Crds(args) => crds::run(&args),
        Command::Rbac(args) => crds::rbac(&args),
        Command::AskTell(args) => ask_tell::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Controller(args) => controller::run(&args),
        Command::CollectFile(args) => collect::run(&args),
        Command::CopyCheckpoint(args) => checkpoint::run(&args),
        Command::Ui(args) => ui::run(&args),
        Command::Delete(args) => delete::run(&args),
    }
}
