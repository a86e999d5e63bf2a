//! `ktune ui`: serves the read-only dashboard ([`crate::ui`]) over the
//! store `ktune run` writes.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::store::SqlStore;

/// Arguments of `ktune ui`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sqlite:PATH` or `postgres://…`.
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune.db")]
    db: String,
    /// Address to listen on (port 0: a free one, printed); not `ktune controller`'s 8080.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Prefix of every URL, for serving behind a reverse proxy (e.g. `/ktune`).
    #[arg(long, default_value = "")]
    base_path: String,
    /// The folder `ktune run` kept trials in (for their output).
    #[arg(long, default_value = ".ktune/trials")]
    trials_dir: PathBuf,
    /// How often the store is polled for live updates, in milliseconds.
    #[arg(long, default_value_t = crate::ui::DEFAULT_POLL.as_millis() as u64)]
    poll_ms: u64,
}

/// A base path is `""` or `/` followed by URL-safe segments: it is written
/// into every link unescaped.
fn valid_base(base: &str) -> bool {
    base.is_empty()
        || (base.starts_with('/')
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')))
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let base = args.base_path.trim_end_matches('/').to_owned();
    if !valid_base(&base) {
        bail!(
            "--base-path {:?}: use / followed by letters, digits, '-', '_', '.' and '/'",
            args.base_path
        );
    }
    // The dashboard only reads: refuse to create an empty SQLite file.
    if let Some(rest) = args.db.strip_prefix("sqlite:") {
        let path = rest.split('?').next().unwrap_or_default();
        if !path.contains(":memory:") && !std::path::Path::new(path).exists() {
            bail!("no database at {path} (give --db as for `ktune run`)");
        }
    }
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = SqlStore::connect(&args.db)
            .await
            .with_context(|| format!("opening {}", crate::store::without_password(&args.db)))?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ktune ui: http://{addr}{base}/")?;
        out.flush()?;
        drop(out);
        let config = crate::ui::Config {
            base_path: base,
            trials_dir: Some(args.trials_dir.clone()),
            poll: Duration::from_millis(args.poll_ms.max(50)),
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        crate::ui::serve(listener, store, config, shutdown).await;
        Ok(ExitCode::SUCCESS)
    })
}
