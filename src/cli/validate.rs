//! `ktune validate FILE…`: reads every document of every file, applies
//! Katib's defaults to each Experiment, validates it, and prints a summary
//! (or the whole defaulted object) with every error and warning.
//!
//! A Kubeflow Trainer `OptimizationJob` is validated against Trainer's
//! rules, then as the Experiment it maps to (`-o yaml` prints that).
//!
//! ConfigMaps among the documents serve `trialTemplate.configMap`
//! references, as the cluster would.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::load::{ConfigMaps, Document, read_documents};
use crate::api::optimization_job;
use crate::api::validate::{Context, Report};
use crate::api::{Experiment, PreparedExperiment, prepare};

use super::printable::Printable;
use super::{EXIT_INVALID, EXIT_USAGE};

/// How each experiment is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per experiment, then its errors and warnings.
    Summary,
    /// The defaulted experiment as YAML (problems go to standard error).
    Yaml,
    /// The defaulted experiment as JSON (problems go to standard error).
    Json,
}

/// Arguments of `ktune validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment files (YAML, one or more documents each; `-` reads standard input).
    /// ConfigMaps among the documents serve `trialTemplate.configMap`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// What to print for each experiment.
    #[arg(short, long, value_enum, default_value_t = Output::Summary)]
    output: Output,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Names and values come from the files: printed with their control
    // characters escaped.
    let mut out = Printable(std::io::stdout().lock());
    let mut err = Printable(std::io::stderr().lock());
    let (documents, unreadable) = read_all(&args.files, &mut err)?;
    let mut invalid = false;
    let configmaps = ConfigMaps::from_documents(&documents);
    let context = Context {
        configmaps: &configmaps,
        require_configmaps: false,
    };
    let mut experiments = 0usize;
    let mut printed = 0usize;
    for doc in &documents {
        match doc.kind() {
            Some("Experiment" | optimization_job::KIND) => {}
            Some("ConfigMap") => continue,
            other => {
                writeln!(
                    err,
                    "{}: skipping a document of kind {}",
                    doc.origin(),
                    other.unwrap_or("(none)")
                )?;
                continue;
            }
        }
        experiments += 1;
        let prepared = match prepare(&doc.value, context) {
            Ok(p) => p,
            Err(e) => {
                writeln!(out, "{}: invalid: {e}", doc.origin())?;
                invalid = true;
                continue;
            }
        };
        invalid |= !print_prepared(args, &mut out, &mut err, doc, &prepared, printed)?;
        printed += 1;
    }
    if experiments == 0 && !unreadable {
        writeln!(err, "error: {}", super::no_experiment(&args.files))?;
        invalid = true;
    }
    Ok(if unreadable {
        ExitCode::from(EXIT_USAGE)
    } else if invalid {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

/// Every document of every file, and whether a file could not be read
/// (said on `err`).
pub(super) fn read_all(
    files: &[PathBuf],
    err: &mut impl Write,
) -> std::io::Result<(Vec<Document>, bool)> {
    let mut documents = Vec::new();
    let mut unreadable = false;
    for file in files {
        match read_documents(file) {
            Ok(docs) => documents.extend(docs),
            Err(e) => {
                writeln!(err, "{}: error: {e}", file.display())?;
                unreadable = true;
            }
        }
    }
    Ok((documents, unreadable))
}

/// One experiment's verdict and report, or its defaulted form (YAML or
/// JSON, after `printed` others) with the report on `err`; whether it is
/// valid (without warnings under `--strict`).
fn print_prepared(
    args: &Args,
    out: &mut impl Write,
    err: &mut impl Write,
    doc: &Document,
    prepared: &PreparedExperiment,
    printed: usize,
) -> anyhow::Result<bool> {
    let report = &prepared.report;
    let valid = report.is_valid() && (!args.strict || report.warnings.is_empty());
    match args.output {
        Output::Summary => {
            let verdict = if valid { "valid" } else { "invalid" };
            writeln!(
                out,
                "{}: {verdict}: {}",
                doc.origin(),
                summary(&prepared.experiment)
            )?;
            write_report(out, report)?;
        }
        Output::Yaml | Output::Json => {
            if args.output == Output::Yaml {
                if printed > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(serde_saphyr::to_string(&prepared.experiment)?.as_bytes())?;
            } else {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&prepared.experiment)?
                )?;
            }
            if !report.errors.is_empty() || !report.warnings.is_empty() {
                writeln!(err, "{}:", doc.origin())?;
                write_report(err, report)?;
            }
        }
    }
    Ok(valid)
}

fn write_report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for issue in &report.errors {
        writeln!(out, "  error: {issue}")?;
    }
    for issue in &report.warnings {
        writeln!(out, "  warning: {issue}")?;
    }
    Ok(())
}

/// `kubeflow/random: random over 2 parameters, minimize loss, 12 trials (3 at a time)`.
fn summary(experiment: &Experiment) -> String {
    let spec = &experiment.spec;
    let name = format!(
        "{}/{}",
        experiment
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default"),
        experiment.metadata.name.as_deref().unwrap_or("(unnamed)")
    );
    let algorithm = spec
        .algorithm
        .as_ref()
        .map_or("(no algorithm)", |a| a.algorithm_name.as_str());
    let parameters = spec.parameters.as_ref().map_or(0, Vec::len);
    let objective = spec.objective.as_ref().map_or_else(
        || "(no objective)".to_owned(),
        |o| {
            let direction = o.type_.as_ref().map_or("optimise", |t| t.as_str());
            let goal = o.goal.map(|g| format!(" to {g}")).unwrap_or_default();
            format!("{direction} {}{goal}", o.objective_metric_name)
        },
    );
    let budget = spec
        .max_trial_count
        .map_or_else(|| "unbounded trials".to_owned(), |n| format!("{n} trials"));
    let parallel = spec.parallel_trial_count.unwrap_or(1);
    let early = spec
        .early_stopping
        .as_ref()
        .map(|e| format!(", early stopping {}", e.algorithm_name))
        .unwrap_or_default();
    format!(
        "{name}: {algorithm} over {parameters} parameters, {objective}, {budget} ({parallel} at a time){early}"
    )
}
