//! `ktune controller`: runs the Kubernetes controller against the cluster
//! of the current kubeconfig (or in-cluster config), state in `--db`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::controller::{self, ControllerOptions};
use crate::store::SqlStore;

/// Arguments of `ktune controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where observations and algorithm state are kept: `sqlite:PATH` or `postgres://…`.
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune-controller.db")]
    db: String,
    /// Watch only this namespace (all namespaces by default).
    #[arg(long, short)]
    namespace: Option<String>,
    /// Milliseconds between two steps of one experiment.
    #[arg(long, default_value_t = 500)]
    tick_ms: u64,
    /// Seed of the searches (an algorithm's `random_state` overrides it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`off`: nowhere).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: Listen,
}

/// `--listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct Listen(Option<std::net::SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|addr| Listen(Some(addr)))
        .map_err(|e| format!("{e}: expected HOST:PORT or `off`"))
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = SqlStore::connect(&args.db)
            .await
            .with_context(|| format!("opening {}", args.db))?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG, or the in-cluster config)")?;
        let options = ControllerOptions {
            namespace: args.namespace.clone(),
            tick: std::time::Duration::from_millis(args.tick_ms.max(10)),
            seed: args.seed,
            listen: args.listen.0,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        controller::run(client, store, options, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
