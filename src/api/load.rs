//! Reading Experiment YAML: one or more documents per file, Katib's
//! `kubeflow.org/v1beta1` or our `ktune.dev/v1beta1`, with hard limits so a
//! hostile file (a YAML bomb, deep nesting, a huge file) is refused with an
//! error instead of exhausting memory.
//!
//! Parsing is two-staged: YAML → JSON values (bounded by the parser's
//! budget), then each value → typed [`Experiment`] with the failing field's
//! path in the error and every ignored (unknown) field reported as a warning
//! — Katib silently drops misspelt fields such as `maxTrialCounts`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::experiment::Experiment;

/// Largest YAML file we read. Experiments are a few kilobytes; a trial
/// template with an embedded script might reach a few hundred.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest nesting accepted. Kubernetes objects nest about 15 levels.
const MAX_DEPTH: usize = 64;

/// The API versions an Experiment document may have.
pub const ACCEPTED_API_VERSIONS: [&str; 2] = ["ktune.dev/v1beta1", "kubeflow.org/v1beta1"];

/// Why a file or document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than the {limit}-byte limit for experiment files")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The text is not valid UTF-8 YAML, or exceeds the parser's limits.
    #[error("invalid YAML: {message}")]
    Yaml {
        /// The parser's message, with line and column where it has them.
        message: String,
    },
}

/// Why one document is not a usable Experiment.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The document is not a mapping.
    #[error("document is not a mapping")]
    NotAnObject,
    /// `apiVersion` is missing or not one we accept.
    #[error("apiVersion {found:?} is not supported: expected one of {expected}", expected = ACCEPTED_API_VERSIONS.join(", "))]
    ApiVersion {
        /// The apiVersion found (empty if missing).
        found: String,
    },
    /// A field has the wrong type.
    #[error("{path}: {message}")]
    Field {
        /// The field's path, e.g. `spec.parallelTrialCount`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One YAML document with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    /// Position of the document in its file, from 0.
    pub index: usize,
    /// The document as JSON.
    pub value: Value,
}

impl Document {
    /// The document's `kind`, if it has one.
    #[must_use]
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }

    /// A short description for messages: `file.yaml` or `file.yaml#2`.
    #[must_use]
    pub fn origin(&self) -> String {
        if self.index == 0 {
            self.file.display().to_string()
        } else {
            format!("{}#{}", self.file.display(), self.index + 1)
        }
    }
}

/// An Experiment read from a document, with the fields serde ignored.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    /// The experiment as written (not yet defaulted).
    pub experiment: Experiment,
    /// Paths of fields that are not part of the Experiment schema.
    pub unknown_fields: Vec<String>,
}

/// Parses YAML text holding one or more documents into JSON values.
/// Empty documents are skipped.
///
/// # Errors
/// [`LoadError::Yaml`] on a syntax error or when the parser's budget
/// (events, aliases, nesting, documents) is exceeded.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, LoadError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 500_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_documents: 1_000,
            max_nodes: 250_000,
            max_total_scalar_bytes: 16 * 1024 * 1024,
        },
    };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| LoadError::Yaml {
            message: e.to_string(),
        })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads a file (`-` for standard input) and parses its documents.
///
/// # Errors
/// [`LoadError`] when the file cannot be read, is too large, or is not YAML.
pub fn read_documents(path: &Path) -> Result<Vec<Document>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| LoadError::Yaml {
        message: format!("not UTF-8 text: {e}"),
    })?;
    let values = parse_yaml_documents(&text)?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Document {
            file: path.to_owned(),
            index,
            value,
        })
        .collect())
}

/// Turns one document whose `kind` is `Experiment` into a typed Experiment.
///
/// # Errors
/// [`DocumentError`] when the apiVersion is not accepted or a field has the
/// wrong type (the error names the field's path).
pub fn experiment_from_value(value: &Value) -> Result<LoadedExperiment, DocumentError> {
    let Value::Object(map) = value else {
        return Err(DocumentError::NotAnObject);
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !ACCEPTED_API_VERSIONS.contains(&api_version) {
        return Err(DocumentError::ApiVersion {
            found: api_version.to_owned(),
        });
    }
    let mut unknown_fields = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let path = field_path(&path);
        if path != "apiVersion" && path != "kind" {
            unknown_fields.push(path);
        }
    };
    let deserializer = serde_ignored::Deserializer::new(value, &mut record);
    let experiment: Experiment =
        serde_path_to_error::deserialize(deserializer).map_err(|e| DocumentError::Field {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    Ok(LoadedExperiment {
        experiment,
        unknown_fields,
    })
}

/// A path that serde ignored, written as `spec.parameters[0].min`
/// (serde_ignored's own Display puts `?` for every optional level).
pub(crate) fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Trial templates kept in ConfigMaps, by (namespace, name), then key.
///
/// Katib reads `trialTemplate.configMap` from the cluster; locally the
/// ConfigMaps are given as documents next to the experiment (same file or
/// another file on the command line).
#[derive(Debug, Clone, Default)]
pub struct ConfigMaps {
    maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl ConfigMaps {
    /// Collects every `v1` `ConfigMap` among the documents.
    #[must_use]
    pub fn from_documents<'a>(docs: impl IntoIterator<Item = &'a Document>) -> Self {
        let mut maps = BTreeMap::new();
        for doc in docs {
            if doc.kind() != Some("ConfigMap") {
                continue;
            }
            let meta = doc.value.get("metadata");
            let field = |name| {
                meta.and_then(|m| m.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let data = doc
                .value
                .get("data")
                .and_then(Value::as_object)
                .map(|d| {
                    d.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let namespace = match field("namespace") {
                ns if ns.is_empty() => "default".to_owned(),
                ns => ns,
            };
            maps.insert((namespace, field("name")), data);
        }
        Self { maps }
    }

    /// The value under `key` of ConfigMap `namespace/name`.
    #[must_use]
    pub fn get(&self, namespace: &str, name: &str, key: &str) -> Option<&str> {
        self.maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }

    /// Whether a ConfigMap `namespace/name` is known at all.
    #[must_use]
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.maps
            .contains_key(&(namespace.to_owned(), name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_documents_are_read_and_empty_ones_skipped() {
        let docs = parse_yaml_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn a_billion_laughs_is_refused() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            yaml.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(matches!(
            parse_yaml_documents(&yaml),
            Err(LoadError::Yaml { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let yaml = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_yaml_documents(&yaml).is_err());
        let yaml: String = (0..500)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        assert!(parse_yaml_documents(&yaml).is_err());
    }

    #[test]
    fn wrong_api_version_and_wrong_types_name_the_problem() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Experiment"});
        assert!(matches!(
            experiment_from_value(&v),
            Err(DocumentError::ApiVersion { .. })
        ));
        let v = serde_json::json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": "x"}, "spec": {"parallelTrialCount": "three"}});
        match experiment_from_value(&v) {
            Err(DocumentError::Field { path, .. }) => assert_eq!(path, "spec.parallelTrialCount"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_reported() {
        let v = serde_json::json!({"apiVersion": "ktune.dev/v1beta1", "kind": "Experiment",
            "metadata": {"name": "x"}, "spec": {"maxTrialCounts": 3}});
        let loaded = experiment_from_value(&v).unwrap();
        assert_eq!(loaded.unknown_fields, ["spec.maxTrialCounts"]);
    }
}
