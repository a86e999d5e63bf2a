//! `ktune convert FILE…`: turns Katib Experiments (`kubeflow.org/v1beta1`)
//! into ktune ones (`ktune.dev/v1beta1`), so Katib users can run
//! `ktune convert x.yaml | kubectl apply -f -`.
//!
//! Each Experiment is validated first (an invalid one is reported, not
//! converted). The document is kept as written — only `apiVersion`
//! changes, and what the API server sets (`status`, `uid`,
//! `resourceVersion` …) is dropped — unless `--defaults` asks for the
//! fully defaulted object. ConfigMaps (a `trialTemplate.configMap` source)
//! are passed through, so one apply creates everything.
//!
//! A Kubeflow Trainer `OptimizationJob` becomes the ktune Experiment it
//! means (see `crate::api::optimization_job`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::api::load::{ConfigMaps, Document};
use crate::api::validate::Context;
use crate::api::{optimization_job, prepare};

use super::{EXIT_INVALID, EXIT_USAGE};

/// The API version ktune's controller serves.
const KTUNE_API_VERSION: &str = "ktune.dev/v1beta1";

/// Metadata fields the API server owns: a manifest must not carry them.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// How converted documents are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// YAML documents separated by `---`.
    Yaml,
    /// One JSON object per document (a `List` when there are several).
    Json,
}

/// Arguments of `ktune convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment files (`-` reads standard input); ConfigMaps among
    /// the documents are passed through.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print each Experiment with every default spelled out.
    #[arg(long)]
    defaults: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut err = std::io::stderr().lock();
    let (documents, unreadable) = super::validate::read_all(&args.files, &mut err)?;
    if unreadable {
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let configmaps = ConfigMaps::from_documents(&documents);
    let context = Context {
        configmaps: &configmaps,
        require_configmaps: false,
    };
    let mut converted = Vec::new();
    let mut invalid = false;
    let mut experiments = 0usize;
    for doc in &documents {
        match doc.kind() {
            Some("Experiment" | optimization_job::KIND) => {}
            Some("ConfigMap") => {
                converted.push(without_server_fields(doc.value.clone()));
                continue;
            }
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
        match convert(args.defaults, doc, context, &mut err)? {
            Some(value) => converted.push(value),
            None => invalid = true,
        }
    }
    if experiments == 0 {
        writeln!(err, "error: {}", super::no_experiment(&args.files))?;
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if invalid {
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    write_all(&mut std::io::stdout().lock(), args.output, converted)?;
    Ok(ExitCode::SUCCESS)
}

/// One valid Experiment as a ktune one (with its defaults spelled out when
/// `defaults`); `None`, with the reasons on `err`, when it is invalid.
fn convert(
    defaults: bool,
    doc: &Document,
    context: Context<'_>,
    err: &mut impl Write,
) -> anyhow::Result<Option<Value>> {
    let prepared = match prepare(&doc.value, context) {
        Ok(p) if p.report.is_valid() => p,
        Ok(p) => {
            writeln!(err, "{}: invalid, not converted:", doc.origin())?;
            for issue in &p.report.errors {
                writeln!(err, "  error: {issue}")?;
            }
            return Ok(None);
        }
        Err(e) => {
            writeln!(err, "{}: invalid, not converted: {e}", doc.origin())?;
            return Ok(None);
        }
    };
    for issue in &prepared.report.warnings {
        writeln!(err, "{}: warning: {issue}", doc.origin())?;
    }
    let value = if defaults {
        serde_json::to_value(&prepared.experiment)?
    } else if optimization_job::is_optimization_job(&doc.value) {
        // The Experiment it means, before Katib's defaults.
        serde_json::to_value(optimization_job::load(&doc.value)?.experiment)?
    } else {
        doc.value.clone()
    };
    Ok(Some(to_ktune(value)))
}

/// The converted documents as one YAML stream, or one JSON document (a
/// `List` when there are several).
fn write_all(out: &mut impl Write, output: Output, converted: Vec<Value>) -> anyhow::Result<()> {
    match output {
        Output::Yaml => {
            for (i, value) in converted.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(serde_saphyr::to_string(value)?.as_bytes())?;
            }
        }
        Output::Json => {
            let value = match <[Value; 1]>::try_from(converted) {
                Ok([one]) => one,
                Err(many) => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
    }
    Ok(())
}

/// A Katib Experiment as a ktune one.
fn to_ktune(value: Value) -> Value {
    let mut value = without_server_fields(value);
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".to_owned(),
            Value::String(KTUNE_API_VERSION.to_owned()),
        );
    }
    value
}

/// The document without `status` and the metadata the API server sets.
fn without_server_fields(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for field in SERVER_METADATA {
                metadata.remove(*field);
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_api_version_changes_and_server_fields_go() {
        let katib = json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "x", "namespace": "ns", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"}},
            "spec": {"maxTrialCount": 3},
            "status": {"trialsSucceeded": 1}
        });
        let converted = to_ktune(katib);
        assert_eq!(
            converted,
            json!({
                "apiVersion": "ktune.dev/v1beta1",
                "kind": "Experiment",
                "metadata": {"name": "x", "namespace": "ns", "labels": {"a": "b"}},
                "spec": {"maxTrialCount": 3}
            })
        );
    }
}
