//! `ktune delete NAME`: removes an experiment from the store — its trials,
//! their reports, its saved algorithm state and its lease — and its trial
//! folder. It asks first on a terminal, refuses without `--yes` anywhere
//! else, refuses while a run holds the experiment, and never creates a
//! database.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{EXIT_INVALID, EXIT_RETRY, EXIT_USAGE};
use crate::engine::driver::LEASE_TTL;
use crate::store::{LeaseHolder, SqlStore, Store as _, StoreError};

/// Arguments of `ktune delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment.
    name: String,
    /// Where state is kept: `sqlite:PATH` or `postgres://…` (never created).
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune.db")]
    db: String,
    /// The folder `ktune run` kept trials in; the experiment's folder in it
    /// is removed.
    #[arg(long, default_value = ".ktune/trials")]
    trials_dir: PathBuf,
    /// Delete without asking (required when standard input is not a terminal).
    #[arg(short, long)]
    yes: bool,
}

/// Writes one line on standard error (messages for the person at the terminal).
fn say(message: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stderr().lock(), "{message}")
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    if !args.yes && !interactive {
        say(format_args!(
            "error: not deleting {:?}: standard input is not a terminal, so nobody can confirm; pass --yes",
            args.name
        ))?;
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let runtime = super::runtime()?;
    runtime.block_on(delete(args))
}

async fn delete(args: &Args) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    let store = SqlStore::connect_existing(&args.db)
        .await
        .with_context(|| {
            format!(
                "opening {} (ktune delete never creates a database)",
                crate::store::without_password(&args.db)
            )
        })?;
    let Some(record) = store.experiment(name).await? else {
        say(format_args!(
            "error: no experiment named {name:?} in {}",
            crate::store::without_password(&args.db)
        ))?;
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    // Held from before the question until the rows are gone: no run can
    // start meanwhile, and none is running now.
    let me = LeaseHolder::this_process();
    if let Some(lease) = store.acquire_lease(name, &me, LEASE_TTL).await? {
        say(format_args!(
            "error: not deleting {name:?}: it is being run by another ktune ({}); stop that run first",
            lease.describe()
        ))?;
        return Ok(ExitCode::from(EXIT_RETRY));
    }
    let folder = trial_folder(&args.trials_dir, name);
    // Counted only for the question: `--yes` reads no trial.
    if !args.yes
        && !confirm(
            name,
            store.trials(record.id).await?.len(),
            folder.as_deref(),
        )?
    {
        store.release_lease(name, &me.token).await?;
        say(format_args!("nothing deleted"))?;
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let deleted = match store.delete_experiment(name, &me.token).await {
        Ok(deleted) => deleted,
        Err(StoreError::LeaseNotHeld(_)) => {
            say(format_args!(
                "error: not deleting {name:?}: another ktune took it over meanwhile"
            ))?;
            return Ok(ExitCode::from(EXIT_RETRY));
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    match deleted {
        Some(d) => writeln!(
            out,
            "deleted experiment {name:?}: {} trials, {} reports",
            d.trials, d.observations
        )?,
        None => writeln!(out, "experiment {name:?} was already gone")?,
    }
    if let Some(folder) = folder
        && remove_folder(&folder)?
    {
        writeln!(out, "removed {}", folder.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The experiment's trial folder under `root`, when `name` is one plain
/// path component (a name with `/` or `..` never leads outside `root`).
fn trial_folder(root: &Path, name: &str) -> Option<PathBuf> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(part)), None) => Some(root.join(part)),
        _ => None,
    }
}

/// Asks on the terminal; true for "y" or "yes".
fn confirm(name: &str, trials: usize, folder: Option<&Path>) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    let folder = folder
        .filter(|f| f.symlink_metadata().is_ok())
        .map(|f| format!(" and the folder {}", f.display()))
        .unwrap_or_default();
    write!(
        err,
        "Delete experiment {name:?} ({trials} trials with their reports){folder}? [y/N] "
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Removes the trial folder (a symbolic link itself, never what it points
/// to); returns whether there was one.
fn remove_folder(folder: &Path) -> anyhow::Result<bool> {
    let Ok(meta) = folder.symlink_metadata() else {
        return Ok(false);
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(folder)
    } else {
        std::fs::remove_file(folder)
    }
    .with_context(|| format!("removing {}", folder.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_name_has_a_trial_folder() {
        let root = Path::new("/t");
        assert_eq!(trial_folder(root, "e1"), Some(PathBuf::from("/t/e1")));
        assert_eq!(trial_folder(root, "../e1"), None);
        assert_eq!(trial_folder(root, "ns/e1/uid"), None);
        assert_eq!(trial_folder(root, "/etc"), None);
        assert_eq!(trial_folder(root, ".."), None);
        assert_eq!(trial_folder(root, ""), None);
    }
}
