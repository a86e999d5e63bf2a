//! `ktune collect-file`: the File and TensorFlowEvent collectors' sidecar
//! in a trial's pod (the controller adds it; see [`crate::metrics::stream`]).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::api::enums::FileFormat;
use crate::metrics::kinds::file::TFEVENT_FORMAT;
use crate::metrics::lines::{LineFormat, Tail};
use crate::metrics::push::{PUSH_TOKEN_ENV, PUSH_URL_ENV};
use crate::metrics::stream::{self, Source, StreamOptions};
use crate::metrics::tfevent::EventFiles;

/// Arguments of `ktune collect-file`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The metrics file the trial writes (with `--format TFEVENT`: the
    /// folder of its TensorBoard event files).
    #[arg(long)]
    path: std::path::PathBuf,
    /// `TEXT` (Katib's name=value lines), `JSON` (one object per line) or
    /// `TFEVENT` (TensorBoard event files below `--path`).
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
    let word = args.format.to_ascii_uppercase();
    let source = if word == TFEVENT_FORMAT {
        Source::Events(EventFiles::new(args.path.clone(), args.metrics.clone()))
    } else {
        let format = FileFormat::from_word(&word);
        let format = LineFormat::new(&format, &args.metrics, &args.filters).context("--filter")?;
        Source::Lines(Tail::new(args.path.clone()), format)
    };
    let options = StreamOptions {
        source,
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
