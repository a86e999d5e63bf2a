//! `ktune suggest FILE`: a dry run of the search — the configurations the
//! algorithm would propose first, and the command each trial would run,
//! without running anything.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ktune_algorithms::suggest::{SuggestRequest, Suggestion};
use serde_json::{Value, json};

use crate::api::plan::ExperimentPlan;
use crate::api::template::ResolvedTemplate;
use crate::engine::trial_name;
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
    let loaded = super::load_experiment(&args.files)?;
    let plan = match ExperimentPlan::new(&loaded.prepared.experiment, &loaded.prepared.report) {
        Ok(plan) => plan,
        Err(e) => {
            writeln!(std::io::stderr(), "{}: {e}", loaded.origin)?;
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let request = SuggestRequest {
        space: &plan.space,
        objective: &plan.objective,
        history: &[],
        count: args.count.unwrap_or(plan.parallel_trial_count as usize),
        seed: args.seed,
        state: None,
    };
    let suggestions = plan.suggester.suggest(&request)?;
    let trials = dry_trials(&loaded, &suggestions.suggestions)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&trials)?)?,
        Output::Table => {
            print_table(&mut out, &trials)?;
            if suggestions.exhausted {
                writeln!(out, "(the search space is exhausted after these)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The trials the suggestions would become, named and rendered as the
/// engine names and renders them: name, parameters, labels, the primary
/// container's command and the workload.
fn dry_trials(loaded: &super::Loaded, suggestions: &[Suggestion]) -> anyhow::Result<Vec<Value>> {
    let experiment = &loaded.prepared.experiment;
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
    let resolved = ResolvedTemplate::new(template, namespace, &loaded.configmaps)?;
    let primary = template
        .primary_container_name
        .as_deref()
        .unwrap_or_default();
    let mut trials = Vec::new();
    for (i, suggestion) in suggestions.iter().enumerate() {
        let assignment = suggestion.assignment.to_katib_strings();
        let trial_name = trial_name(name, i + 1);
        let rendered = resolved.render(&trial_name, &assignment)?;
        let values: BTreeMap<String, String> = assignment.into_iter().collect();
        trials.push(json!({
            "name": trial_name,
            "parameters": values,
            "labels": suggestion.labels,
            "command": replica_plan(&rendered, primary, 0).first().map(|c| c.argv.clone()),
            "workload": rendered,
        }));
    }
    Ok(trials)
}

/// One line per trial (its name and parameters), then its command.
fn print_table(out: &mut impl Write, trials: &[Value]) -> std::io::Result<()> {
    for trial in trials {
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
    Ok(())
}
