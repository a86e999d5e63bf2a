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

use super::Experiment;

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
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not a `source`: printed once).
        cause: std::io::Error,
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
        // `.inf`, `.nan` and overflowing numbers stay text: the typed
        // parse or validation then names the field they are in, where a
        // parse error could only give a line and column.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
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
    let io = |cause| LoadError::Io {
        path: path.to_owned(),
        cause,
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
            message: plain_type_words(&e.inner().to_string()),
        })?;
    Ok(LoadedExperiment {
        experiment,
        unknown_fields,
    })
}

/// A serde message in the words of a YAML user: `expected i32` is
/// `expected an integer`, `a sequence` is `a list`, `a map` is `a mapping`.
fn plain_type_words(message: &str) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("expected i32", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected u32", "expected a whole number of at least 0"),
        ("expected u64", "expected a whole number of at least 0"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("invalid type: map", "invalid type: mapping"),
        ("invalid type: sequence", "invalid type: list"),
    ];
    let mut out = message.to_owned();
    for (serde_word, plain) in WORDS {
        out = out.replace(serde_word, plain);
    }
    if let Some(at) = out.find("expected struct ") {
        out.truncate(at);
        out.push_str("expected a mapping");
    }
    out
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
    fn non_finite_numbers_are_refused_by_their_field_path() {
        for (yaml, path) in [
            ("spec: {maxTrialCount: .inf}", "spec.maxTrialCount"),
            ("spec: {objective: {goal: -.inf}}", "spec.objective.goal"),
            (
                "spec: {parallelTrialCount: 1e999}",
                "spec.parallelTrialCount",
            ),
        ] {
            let text = format!("apiVersion: ktune.dev/v1beta1\nkind: Experiment\n{yaml}\n");
            let doc = parse_yaml_documents(&text).unwrap().remove(0);
            match experiment_from_value(&doc) {
                Err(DocumentError::Field { path: found, .. }) => assert_eq!(found, path),
                other => panic!("{yaml}: {other:?}"),
            }
        }
    }

    #[test]
    fn type_errors_speak_yaml_not_rust() {
        for (spec, words) in [
            (
                serde_json::json!({"maxTrialCount": "two"}),
                "expected an integer",
            ),
            (
                serde_json::json!({"parameters": {"a": 1}}),
                "invalid type: mapping, expected a list",
            ),
            (
                serde_json::json!({"objective": "min"}),
                "expected a mapping",
            ),
        ] {
            let v = serde_json::json!({"apiVersion": "ktune.dev/v1beta1", "kind": "Experiment",
                "metadata": {"name": "x"}, "spec": spec});
            let message = experiment_from_value(&v).unwrap_err().to_string();
            assert!(message.contains(words), "{message}");
            assert!(
                !message.contains("i32") && !message.contains("struct"),
                "{message}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_reported() {
        let v = serde_json::json!({"apiVersion": "ktune.dev/v1beta1", "kind": "Experiment",
            "metadata": {"name": "x"}, "spec": {"maxTrialCounts": 3}});
        let loaded = experiment_from_value(&v).unwrap();
        assert_eq!(loaded.unknown_fields, ["spec.maxTrialCounts"]);
    }

    /// Every path of the CRD schema's properties below `schema`, with
    /// whether the schema requires it (a required field keeps Go's type
    /// error for null, as Katib does).
    fn property_paths(schema: &serde_json::Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, sub) in properties {
                let mut path = prefix.to_vec();
                path.push(name.clone());
                if !required.contains(&name.as_str()) {
                    out.push(path.clone());
                }
                property_paths(sub, &path, out);
            }
        }
        if schema["items"].is_object() {
            let mut path = prefix.to_vec();
            path.push("[0]".to_owned());
            property_paths(&schema["items"], &path, out);
        }
    }

    /// A value of `schema`'s type (its first enum value for a string).
    fn sample(schema: &serde_json::Value) -> serde_json::Value {
        if let Some(first) = schema["enum"].get(0) {
            return first.clone();
        }
        if schema["x-kubernetes-int-or-string"] == true {
            return 1.into();
        }
        match schema["type"].as_str() {
            Some("string") => "x".into(),
            Some("integer" | "number") => 1.into(),
            Some("boolean") => false.into(),
            Some("array") => serde_json::json!([]),
            _ => filled(schema),
        }
    }

    /// An object of `schema` with its required properties filled.
    fn filled(schema: &serde_json::Value) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            map.insert(name.to_owned(), sample(&schema["properties"][name]));
        }
        serde_json::Value::Object(map)
    }

    /// `doc` with `null` at `path`; parents are created as objects of
    /// their schema (or one-item lists for `[0]`) with their required
    /// properties filled, so null is the only thing tried.
    fn with_null_at(
        mut doc: serde_json::Value,
        root: &serde_json::Value,
        path: &[String],
    ) -> serde_json::Value {
        let mut at = &mut doc;
        let mut schema = root;
        for (i, key) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            if key == "[0]" {
                schema = &schema["items"];
                if at.as_array().is_none_or(Vec::is_empty) {
                    *at = serde_json::Value::Array(vec![filled(schema)]);
                }
                at = &mut at[0];
                continue;
            }
            schema = &schema["properties"][key];
            let map = at.as_object_mut().unwrap();
            let fresh = if last {
                serde_json::Value::Null
            } else if path.get(i + 1).is_some_and(|k| k == "[0]") {
                serde_json::json!([])
            } else {
                filled(schema)
            };
            if last || !map.get(key).is_some_and(|v| v.is_object() || v.is_array()) {
                map.insert(key.clone(), fresh);
            }
            at = map.get_mut(key).unwrap();
        }
        doc
    }

    #[test]
    fn null_reads_as_absent_for_every_optional_field_of_both_kinds() {
        // Katib's types are Go structs: `algorithmSettings:` with no value
        // (YAML null) is an empty list there. Generated over the CRD
        // schema, so a field added later is covered too.
        let mut checked = 0;
        for (_, crd) in crate::api::crd::all(crate::api::ApiGroup::Ktune) {
            let kind = crd.spec.names.kind.clone();
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let mut paths = Vec::new();
            property_paths(&schema["openAPIV3Schema"], &[], &mut paths);
            let root = &schema["openAPIV3Schema"];
            let mut base = serde_json::json!({"apiVersion": "ktune.dev/v1beta1", "kind": kind,
                "metadata": {"name": "x"}});
            base["spec"] = filled(&root["properties"]["spec"]);
            for path in paths {
                if path[0] != "spec" && path[0] != "status" {
                    continue;
                }
                let doc = with_null_at(base.clone(), root, &path);
                let read = if kind == "Experiment" {
                    experiment_from_value(&doc)
                        .map(drop)
                        .map_err(|e| e.to_string())
                } else {
                    serde_json::from_value::<crate::api::Trial>(doc.clone())
                        .map(drop)
                        .map_err(|e| e.to_string())
                };
                assert!(read.is_ok(), "{kind} {}: {read:?}\n{doc}", path.join("."));
                checked += 1;
            }
        }
        assert!(checked > 80, "only {checked} fields were generated");
    }

    #[test]
    fn null_settings_are_an_empty_list() {
        let v = serde_json::json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": "x"},
            "spec": {"algorithm": {"algorithmName": "random", "algorithmSettings": null},
                     "objective": {"additionalMetricNames": null, "metricStrategies": null}}});
        let loaded = experiment_from_value(&v).unwrap();
        let spec = loaded.experiment.spec;
        assert_eq!(spec.algorithm.unwrap().algorithm_settings, []);
        assert!(
            loaded.unknown_fields.is_empty(),
            "{:?}",
            loaded.unknown_fields
        );
    }
}
