//! The `ktune` binary: parse the command line, set up logging, run, and map
//! the outcome to an exit status (0 ok, 1 invalid input, 2 usage error).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ktune::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("KTUNE_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::from(ktune::cli::EXIT_USAGE)
        }
    }
}
