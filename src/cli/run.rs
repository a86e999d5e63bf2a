//! `ktune run FILE`: runs an experiment on this machine — trials as
//! processes, state in SQLite (or PostgreSQL) — and shows it as it runs
//! (see [`super::view`]), then the best trial. Running the same command again
//! resumes an interrupted experiment.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::engine::Event;
use crate::engine::driver::{self, RunOptions};
use crate::store::{ExperimentState, SqlStore};
use anyhow::Context as _;

use super::printable::Printable;
use super::view::{Mode, Output, View};
use super::{EXIT_INVALID, EXIT_RETRY};

/// Arguments of `ktune run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (ConfigMaps for `trialTemplate.configMap` may follow).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Where state is kept: `sqlite:PATH` or `postgres://…`.
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune.db")]
    db: String,
    /// Folder for the trials' logs and outputs.
    #[arg(long, default_value = ".ktune/trials")]
    trials_dir: PathBuf,
    /// Wall-clock limit per trial, in seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Most output per trial, in MiB; a trial writing more fails.
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    log_limit: u64,
    /// Seed of the search (an algorithm's `random_state` setting overrides it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GPU ids to share out among concurrent trials, one each, as
    /// CUDA_VISIBLE_DEVICES (e.g. `--gpus 0,1`).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    gpus: Vec<String>,
    /// How long this run's hold on the experiment outlives it if it dies
    /// without releasing it, in seconds (renewed every third). A second run
    /// of the experiment is refused meanwhile; on this machine, a dead
    /// run's hold ends at once.
    #[arg(long, value_name = "SECONDS", default_value_t = driver::LEASE_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(3..))]
    lease_seconds: u64,
    /// How long trials keep running while the database cannot be reached,
    /// in seconds; then they are stopped (rerun to resume).
    #[arg(long, value_name = "SECONDS", default_value_t = driver::OUTAGE_LIMIT.as_secs())]
    db_outage_limit: u64,
    /// Print only the result.
    #[arg(short, long)]
    quiet: bool,
    /// Output format: `text` (a live view on a terminal, one line per trial
    /// started and ended elsewhere) or `json` (one JSON object per line per
    /// event, then a summary).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// The signals that stop a run cleanly (trials stopped, the experiment
/// resumable): Ctrl-C (SIGINT), SIGTERM and SIGHUP. Installed before the
/// run starts, so none arriving early kills ktune outright; one whose
/// handler cannot be installed is simply not waited for. Needs a runtime.
fn stop_signals() -> Vec<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .into_iter()
    .filter_map(|kind| signal(kind).ok())
    .collect()
}

/// Resolves at the first of `signals` (each can be waited for again).
async fn stop_signal(signals: &mut [tokio::signal::unix::Signal]) {
    if signals.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(signals.iter_mut().map(|s| Box::pin(s.recv()))).await;
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let super::Loaded {
        origin,
        configmaps,
        prepared,
    } = super::load_experiment(&args.files)?;
    if !prepared.report.is_valid() {
        // Names and values come from the file: printed escaped.
        let mut err = Printable(std::io::stderr().lock());
        writeln!(err, "{origin}: invalid experiment")?;
        for issue in &prepared.report.errors {
            writeln!(err, "  error: {issue}")?;
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let options = run_options(args)?;
    let runtime = super::runtime()?;
    let mode = Mode::choose(args.output, args.quiet, std::io::stdout().is_terminal());
    let max_trials = prepared
        .experiment
        .spec
        .max_trial_count
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    let name = prepared.name().to_owned();
    runtime.block_on(async {
        let store = SqlStore::connect(&args.db)
            .await
            .with_context(|| format!("opening {}", crate::store::without_password(&args.db)))?;
        let mut view = View::new(mode, max_trials);
        let mut show = |event: Event| view.event(&event);
        let shutdown = until_stopped(stop_signals());
        // Katib's gRPC metrics API of a Push experiment reads this store.
        let options = RunOptions {
            db_manager_store: Some(store.clone()),
            ..options
        };
        let summary = driver::run(
            &prepared,
            &configmaps,
            &store,
            &options,
            &mut show,
            shutdown,
        )
        .await;
        let summary = match summary {
            Ok(s) => s,
            Err(
                e @ (driver::DriverError::Held { .. }
                | driver::DriverError::LeaseLost { .. }
                | driver::DriverError::Unreachable { .. }),
            ) => {
                view.abandon();
                writeln!(std::io::stderr(), "error: {e}")?;
                return Ok(ExitCode::from(EXIT_RETRY));
            }
            Err(e) => {
                view.abandon();
                return Err(anyhow::Error::from(e));
            }
        };
        let metrics = best_metrics(&view, &store, &name, &summary).await;
        view.finish(&name, &summary, &metrics)?;
        Ok(match summary.state {
            ExperimentState::Succeeded => ExitCode::SUCCESS,
            ExperimentState::Failed => ExitCode::from(EXIT_INVALID),
            _ => ExitCode::from(130),
        })
    })
}

/// The driver's options from the command line.
fn run_options(args: &Args) -> anyhow::Result<RunOptions> {
    Ok(RunOptions {
        trials_root: args.trials_dir.clone(),
        working_dir: std::env::current_dir()?,
        trial_timeout: args.timeout.map(Duration::from_secs),
        log_limit: Some(args.log_limit.saturating_mul(1024 * 1024)),
        stop_grace: Duration::from_secs(5),
        seed: args.seed,
        gpus: args.gpus.clone(),
        lease_ttl: Duration::from_secs(args.lease_seconds),
        outage_limit: Duration::from_secs(args.db_outage_limit),
        db_manager_store: None,
    })
}

/// Completes at the first stop signal. A second one while the trials are
/// being stopped ends ktune at once: what was not recorded runs again on
/// resume, as after a crash.
async fn until_stopped(mut signals: Vec<tokio::signal::unix::Signal>) {
    stop_signal(&mut signals).await;
    tokio::spawn(async move {
        stop_signal(&mut signals).await;
        let _ = writeln!(
            std::io::stderr(),
            "\ninterrupted again: exiting now; the trials not yet recorded run again when you rerun the command"
        );
        std::process::exit(130);
    });
}

/// The best trial's metrics for the summary: as reported in this run,
/// else (a trial of an earlier, resumed run) as stored.
async fn best_metrics(
    view: &View,
    store: &SqlStore,
    name: &str,
    summary: &crate::engine::RunSummary,
) -> Vec<(String, String)> {
    let Some(best) = &summary.best else {
        return Vec::new();
    };
    if let Some(m) = view.metrics_of(&best.name) {
        return m;
    }
    super::inspect::latest_metrics(store, name, &best.name)
        .await
        .unwrap_or_else(|e| {
            let _ = writeln!(
                std::io::stderr(),
                "warning: the best trial's metrics: {e:#}"
            );
            Vec::new()
        })
}
