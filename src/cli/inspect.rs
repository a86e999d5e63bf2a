//! Read-only views of the store for people and scripts: `ktune status`,
//! `ktune trials`, `ktune best` and `ktune logs`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::engine::decide::Counts;
use crate::store::{
    ExperimentRecord, SqlStore, Store as _, TrialRow, best_trial, without_password,
};

use super::EXIT_INVALID;
use super::printable::Printable;

/// Where the state is.
#[derive(Debug, clap::Args)]
pub struct Db {
    /// `sqlite:PATH` or `postgres://…`.
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune.db")]
    db: String,
}

/// Arguments of `ktune status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One experiment (default: all).
    experiment: Option<String>,
    #[command(flatten)]
    db: Db,
}

/// How `ktune trials` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrialsOutput {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// Comma-separated values with a header.
    Csv,
}

/// Arguments of `ktune trials`.
#[derive(Debug, clap::Args)]
pub struct TrialsArgs {
    /// The experiment.
    experiment: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TrialsOutput::Table)]
    output: TrialsOutput,
    #[command(flatten)]
    db: Db,
}

/// Arguments of `ktune best`.
#[derive(Debug, clap::Args)]
pub struct BestArgs {
    /// The experiment.
    experiment: String,
    #[command(flatten)]
    db: Db,
}

/// Arguments of `ktune logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The trial.
    trial: String,
    /// Keep printing while the trial runs.
    #[arg(short, long)]
    follow: bool,
    /// The folder `ktune run` kept trials in.
    #[arg(long, default_value = ".ktune/trials")]
    trials_dir: PathBuf,
    /// Print standard error instead of standard output.
    #[arg(long)]
    stderr: bool,
    #[command(flatten)]
    db: Db,
}

async fn open(db: &Db) -> anyhow::Result<SqlStore> {
    // Looking never creates or upgrades a store.
    SqlStore::open_for_reading(&db.db)
        .await
        .with_context(|| format!("opening {}", without_password(&db.db)))
}

/// The experiment `name` in `store` (whose address is `db`), or an error
/// naming the store and what it holds.
async fn experiment(store: &SqlStore, db: &str, name: &str) -> anyhow::Result<ExperimentRecord> {
    if let Some(e) = store.experiment(name).await? {
        return Ok(e);
    }
    let names: Vec<String> = store
        .experiments()
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let held = if names.is_empty() {
        "it holds no experiments".to_owned()
    } else {
        format!("it holds {}", names.join(", "))
    };
    bail!("no experiment named {name:?} in {db} ({held}; --db or KTUNE_DB names another store)")
}

/// The latest value of each metric a stored trial reported (its last step
/// of each), by metric name; empty when the trial is not in the store.
pub(super) async fn latest_metrics(
    store: &SqlStore,
    experiment_name: &str,
    trial: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(e) = store.experiment(experiment_name).await? else {
        bail!("experiment {experiment_name:?} is no longer in the store");
    };
    let trials = store.trials(e.id).await?;
    let Some(row) = trials.iter().find(|t| t.name == trial) else {
        return Ok(Vec::new());
    };
    // By metric then step: the last row of each metric is its latest.
    let mut latest: Vec<(String, String)> = Vec::new();
    for o in store.observations(row.id).await? {
        match latest.last_mut() {
            Some((metric, value)) if *metric == o.metric => *value = o.value,
            _ => latest.push((o.metric, o.value)),
        }
    }
    Ok(latest)
}
fn params(t: &TrialRow) -> String {
    t.assignment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let experiments = match &args.experiment {
            Some(name) => vec![experiment(&store, &without_password(&args.db.db), name).await?],
            None => store.experiments().await?,
        };
        let mut out = Printable(std::io::stdout().lock());
        if experiments.is_empty() {
            writeln!(out, "no experiments in {}", without_password(&args.db.db))?;
        }
        for e in experiments {
            let trials = store.trials(e.id).await?;
            let objective = e.objective();
            let metric = &objective.metric;
            let c = Counts::from_states(trials.iter().map(|t| t.state));
            writeln!(
                out,
                "{}  {} {}  trials: {} ({} running, {} succeeded, {} failed, {} early-stopped, {} killed)",
                e.name,
                e.state.as_str(),
                e.reason,
                c.total(),
                c.active(),
                c.succeeded,
                c.failed.saturating_add(c.metrics_unavailable),
                c.early_stopped,
                c.killed
            )?;
            if let Some(best) = best_trial(&trials, &objective) {
                writeln!(
                    out,
                    "  best: {}  {metric}={}  {}",
                    best.name,
                    best.objective.unwrap_or_default(),
                    params(best)
                )?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn trials(args: &TrialsArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let e = experiment(&store, &without_password(&args.db.db), &args.experiment).await?;
        let trials = store.trials(e.id).await?;
        let mut out = Printable(std::io::stdout().lock());
        let names: Vec<String> = trials
            .first()
            .map(|t| t.assignment.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        match args.output {
            TrialsOutput::Json => {
                let rows: Vec<_> = trials
                    .iter()
                    .map(|t| {
                        json!({"name": t.name, "state": t.state.as_str(), "reason": t.reason,
                               "message": t.message, "objective": t.objective,
                               "parameters": t.assignment.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                               "labels": t.labels, "createdAt": t.created_at,
                               "startedAt": t.started_at, "completedAt": t.completed_at})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            }
            TrialsOutput::Csv => {
                let csv = |s: &str| {
                    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
                };
                let header: Vec<String> = ["name", "state", "objective"].iter().map(|s| (*s).to_owned()).chain(names.iter().cloned()).collect();
                writeln!(out, "{}", header.iter().map(|h| csv(h)).collect::<Vec<_>>().join(","))?;
                for t in &trials {
                    let mut cells = vec![csv(&t.name), t.state.as_str().to_owned(), t.objective.map(|v| v.to_string()).unwrap_or_default()];
                    cells.extend(t.assignment.iter().map(|(_, v)| csv(v)));
                    writeln!(out, "{}", cells.join(","))?;
                }
            }
            TrialsOutput::Table => {
                writeln!(out, "{:<28} {:<18} {:>12}  PARAMETERS", "NAME", "STATE", "OBJECTIVE")?;
                for t in &trials {
                    let objective = t.objective.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".to_owned());
                    writeln!(out, "{:<28} {:<18} {:>12}  {}", t.name, t.state.as_str(), objective, params(t))?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn best(args: &BestArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let e = experiment(&store, &without_password(&args.db.db), &args.experiment).await?;
        let trials = store.trials(e.id).await?;
        let objective = e.objective();
        let metric = &objective.metric;
        let mut out = std::io::stdout().lock();
        let Some(best) = best_trial(&trials, &objective) else {
            writeln!(std::io::stderr(), "no succeeded trial with an objective yet")?;
            return Ok(ExitCode::from(EXIT_INVALID));
        };
        let parameters: std::collections::BTreeMap<_, _> = best.assignment.iter().cloned().collect();
        let body = json!({"trial": best.name, "objective": {"name": metric, "value": best.objective}, "parameters": parameters});
        writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let Some((experiment, trial)) = store.find_trial(&args.trial).await? else {
            bail!(
                "no trial named {:?} in {} (`ktune trials EXPERIMENT` lists an experiment's trials)",
                args.trial,
                without_password(&args.db.db)
            );
        };
        let file = args
            .trials_dir
            .join(&experiment)
            .join(&trial.name)
            .join(if args.stderr {
                "stderr.log"
            } else {
                "stdout.log"
            });
        let mut out = std::io::stdout().lock();
        let mut offset = 0u64;
        loop {
            if let Ok(mut f) = std::fs::File::open(&file) {
                f.seek(SeekFrom::Start(offset))?;
                let mut buf = Vec::new();
                offset += f.read_to_end(&mut buf)? as u64;
                out.write_all(&buf)?;
                out.flush()?;
            } else if !args.follow {
                bail!("no log at {}", file.display());
            }
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            let done = store
                .find_trial(&args.trial)
                .await?
                .is_some_and(|(_, t)| t.state.is_terminal());
            if done {
                // One last read after the trial ended.
                if let Ok(mut f) = std::fs::File::open(&file) {
                    f.seek(SeekFrom::Start(offset))?;
                    std::io::copy(&mut f, &mut out)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
