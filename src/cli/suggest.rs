//! `ktune suggest FILE`: a dry run of the search — the configurations the
//! algorithm would propose first, and the command each trial would run,
//! without running anything.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ktune_algorithms::suggest::SuggestRequest;
use serde_json::{Value, json};

use crate::api::plan::ExperimentPlan;
use crate::api::template::{render, resolve_template};
use crate::runner::replicas::plan as replica_plan;

use super::EXIT_INVALID;

/// How suggestions are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per trial: its parameters and its primary container's command.
    Table,
    /// A JSON array of trials with parameters, labels and the rendered workload.
    Json,
}

/// Arguments of `ktune suggest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (ConfigMaps for `trialTemplate.configMap` may follow).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// How many configurations to ask for (default: parallelTrialCount).
    #[arg(short = 'n', long)]
    count: Option<usize>,
    /// The experiment's seed (an algorithm's `random_state` setting overrides it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let super::Loaded {
        origin,
        configmaps,
        prepared,
    } = super::load_experiment(&args.files)?;
    let mut out = std::io::stdout().lock();
    let plan = match ExperimentPlan::new(&prepared.experiment, &prepared.report) {
        Ok(plan) => plan,
        Err(e) => {
            writeln!(std::io::stderr(), "{}: {e}", origin)?;
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let count = args.count.unwrap_or(plan.parallel_trial_count as usize);
    let request = SuggestRequest {
        space: &plan.space,
        objective: &plan.objective,
        history: &[],
        count,
        seed: args.seed,
        state: None,
    };
    let suggestions = plan.suggester.suggest(&request)?;
    let experiment = &prepared.experiment;
    let name = experiment.metadata.name.as_deref().unwrap_or("experiment");
    let namespace = experiment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    let template = experiment
        .spec
        .trial_template
        .as_ref()
        .context("no trial template")?;
    let workload = resolve_template(template, &configmaps)?;
    let trial_parameters = template.trial_parameters.as_deref().unwrap_or_default();
    let primary = template
        .primary_container_name
        .as_deref()
        .unwrap_or_default();
    let mut trials = Vec::new();
    for (i, suggestion) in suggestions.suggestions.iter().enumerate() {
        let values: BTreeMap<String, String> = suggestion
            .assignment
            .to_katib_strings()
            .into_iter()
            .collect();
        let trial_name = format!("{name}-{:04}", i + 1);
        let rendered = render(&workload, trial_parameters, &values, &trial_name, namespace)?;
        trials.push(json!({
            "name": trial_name,
            "parameters": values,
            "labels": suggestion.labels,
            "command": replica_plan(&rendered, primary, 0).first().map(|c| c.argv.clone()),
            "workload": rendered,
        }));
    }
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&trials)?)?,
        Output::Table => {
            for trial in &trials {
                let parameters = trial["parameters"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}  {parameters}",
                    trial["name"].as_str().unwrap_or_default()
                )?;
                if let Some(command) = trial["command"].as_array() {
                    let words: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
                    writeln!(out, "    $ {}", words.join(" "))?;
                }
            }
            if suggestions.exhausted {
                writeln!(out, "(the search space is exhausted after these)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
