//! `ktune run FILE`: runs an experiment on this machine — trials as
//! processes, state in SQLite (or PostgreSQL) — and prints each trial as it
//! starts and ends, then the best trial. Running the same command again
//! resumes an interrupted experiment.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ktune_algorithms::history::TrialState;

use crate::engine::Event;
use crate::engine::driver::{self, RunOptions};
use crate::store::{ExperimentState, SqlStore};

use super::EXIT_INVALID;

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
    /// Print only the result.
    #[arg(short, long)]
    quiet: bool,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let super::Loaded {
        origin,
        configmaps,
        prepared,
    } = super::load_experiment(&args.files)?;
    let mut err = std::io::stderr().lock();
    if !prepared.report.is_valid() {
        writeln!(err, "{}: invalid experiment", origin)?;
        for issue in &prepared.report.errors {
            writeln!(err, "  error: {issue}")?;
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    drop(err);
    let options = RunOptions {
        trials_root: args.trials_dir.clone(),
        working_dir: std::env::current_dir()?,
        trial_timeout: args.timeout.map(Duration::from_secs),
        log_limit: Some(args.log_limit.saturating_mul(1024 * 1024)),
        stop_grace: Duration::from_secs(5),
        seed: args.seed,
        gpus: args.gpus.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let quiet = args.quiet;
    let summary = runtime.block_on(async {
        let store = SqlStore::connect(&args.db)
            .await
            .with_context(|| format!("opening {}", args.db))?;
        let mut print = |event: Event| {
            if quiet {
                return;
            }
            let mut out = std::io::stdout().lock();
            let _ = match event {
                Event::Started { trial, parameters } => {
                    let p: Vec<String> =
                        parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    writeln!(out, "started   {trial}  {}", p.join(" "))
                }
                Event::Progress { .. } | Event::Reported { .. } => Ok(()),
                Event::Finished {
                    trial,
                    state,
                    objective,
                    reason,
                } => {
                    let value = objective
                        .map(|v| format!("objective={v}"))
                        .unwrap_or_default();
                    let why = if state == TrialState::Succeeded {
                        String::new()
                    } else {
                        format!("  ({reason})")
                    };
                    writeln!(
                        out,
                        "{:<9} {trial}  {value}{why}",
                        format!("{state:?}").to_lowercase()
                    )
                }
            };
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        driver::run(
            &prepared,
            &configmaps,
            &store,
            &options,
            &mut print,
            shutdown,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    let mut out = std::io::stdout().lock();
    if summary.closed {
        writeln!(
            out,
            "experiment already finished; its resumePolicy (Never) keeps it closed. \
             To run more trials, set `resumePolicy: LongRunning` and raise maxTrialCount."
        )?;
    }
    let c = summary.counts;
    writeln!(
        out,
        "\nexperiment {}: {:?} {}\ntrials: {} succeeded, {} failed, {} early-stopped, {} metrics-unavailable, {} killed",
        prepared
            .experiment
            .metadata
            .name
            .as_deref()
            .unwrap_or_default(),
        summary.state,
        summary.reason,
        c.succeeded,
        c.failed,
        c.early_stopped,
        c.metrics_unavailable,
        c.killed
    )?;
    if let Some(best) = &summary.best {
        let (trial, value) = (&best.name, best.objective);
        let p: Vec<String> = best
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            out,
            "best trial: {trial}  objective={value}  {}",
            p.join(" ")
        )?;
    }
    Ok(match summary.state {
        ExperimentState::Succeeded => ExitCode::SUCCESS,
        ExperimentState::Failed => ExitCode::from(EXIT_INVALID),
        _ => {
            writeln!(out, "interrupted: run the same command again to resume")?;
            ExitCode::from(130)
        }
    })
}
