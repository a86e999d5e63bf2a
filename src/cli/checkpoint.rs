//! `ktune copy-checkpoint`: the init container the controller adds to a
//! PBT trial's pod, which starts the trial's checkpoint folder on the
//! experiment's volume as a copy of its parent's
//! ([`crate::runner::checkpoint::start_from`]).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `ktune copy-checkpoint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The parent trial's checkpoint folder.
    #[arg(long)]
    from: PathBuf,
    /// The trial's checkpoint folder (kept when it holds a checkpoint already).
    #[arg(long)]
    to: PathBuf,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    crate::runner::checkpoint::start_from(&args.to, Some(&args.from))?;
    tracing::info!(from = %args.from.display(), to = %args.to.display(), "checkpoint folder ready");
    Ok(ExitCode::SUCCESS)
}
