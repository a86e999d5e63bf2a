//! The `ktune` binary: parse the command line, set up logging, run, and map
//! the outcome to an exit status (0 ok, 1 invalid input or a failed
//! experiment, 2 usage error or anything else that kept the command from
//! working, 130 interrupted).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ktune::cli::Cli::parse();
    let requested = std::env::var("KTUNE_LOG").ok();
    let mut filter = requested
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(cli.default_log_filter()));
    // kube's client logs an ERROR line per failed request (its trace
    // layer): an API server outage would flood the log. The controller
    // reports outages itself, once per interval; `KTUNE_LOG` naming
    // kube_client brings these lines back.
    if !requested
        .as_deref()
        .is_some_and(|f| f.contains("kube_client"))
        && let Ok(quiet) = "kube_client::client::builder=off".parse()
    {
        filter = filter.add_directive(quiet);
    }
    // Colours only for a person at a terminal: never into files or pipes,
    // and never when NO_COLOR (https://no-color.org) is set to anything.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cli.log_format {
        ktune::cli::LogFormat::Text => logs.init(),
        // Each line carries the current span and the whole span list, so
        // a log collector can select one experiment's or trial's lines.
        ktune::cli::LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    // Raise the soft descriptor limit to the hard one before anything
    // opens files (listeners size their connection caps from it).
    ktune::serve::descriptor_limit();
    match ktune::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // A closed pipe (`ktune validate … | head`) is not an error.
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let message = format!("{error:#}");
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                ktune::cli::printable::escape_controls(&message)
            );
            ExitCode::from(ktune::cli::exit_status_for(&error))
        }
    }
}
