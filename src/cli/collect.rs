//! `ktune collect-file`: the File collector's sidecar in a trial's pod
//! (the controller adds it; see [`crate::metrics::stream`]).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::api::enums::FileFormat;
use crate::metrics::lines::LineFormat;
use crate::metrics::push::{PUSH_TOKEN_ENV, PUSH_URL_ENV};
use crate::metrics::stream::{self, StreamOptions};

/// Arguments of `ktune collect-file`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The metrics file the trial writes.
    #[arg(long)]
    path: std::path::PathBuf,
    /// `TEXT` (Katib's name=value lines) or `JSON` (one object per line).
    #[arg(long, default_value = "TEXT")]
    format: String,
    /// A metric to keep (repeat: the objective and the additional metrics).
    #[arg(long = "metric", required = true)]
    metrics: Vec<String>,
    /// A TEXT filter (Katib's metricsFormat regex; repeat; default Katib's).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Where to send the reports (the trial's push URL).
    #[arg(long, env = PUSH_URL_ENV)]
    url: String,
    /// The trial's token.
    #[arg(long, env = PUSH_TOKEN_ENV, hide_env_values = true)]
    token: String,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let format = FileFormat::from_word(&args.format.to_ascii_uppercase());
    let format = LineFormat::new(&format, &args.metrics, &args.filters).context("--filter")?;
    let options = StreamOptions {
        path: args.path.clone(),
        format,
        url: args.url.clone(),
        token: args.token.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // The kubelet stops a native sidecar with SIGTERM once the
        // training container ended.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        stream::run(options, stop)
            .await
            .context("streaming metrics")
    })?;
    Ok(ExitCode::SUCCESS)
}
