//! Trial templates: finding the workload (inline or in a ConfigMap), the
//! `${trialParameters.x}` placeholders in it, the `${trialSpec.Name}`-style
//! meta references, and rendering a trial's workload.
//!
//! Katib substitutes by plain text replacement on the serialised template,
//! so a value containing a quote breaks the JSON. We substitute inside each
//! JSON string (keys and values) instead: every value stays a well-formed
//! string, whatever it contains.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::experiment::{TrialParameterSpec, TrialTemplate};
use super::load::{ConfigMaps, parse_yaml_documents};

const PARAMETER_OPEN: &str = "${trialParameters.";
const META_OPEN: &str = "${trialSpec.";

/// Why a template could not be found or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Neither or both of `trialSpec` and `configMap` are given.
    #[error("exactly one of trialSpec and configMap must be given")]
    NoSingleSource,
    /// The ConfigMap or its key is not available.
    #[error("ConfigMap {namespace}/{name} with key {key:?} was not found")]
    ConfigMapMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
    /// The ConfigMap's template is not one YAML mapping.
    #[error("the template in ConfigMap {name} is not a YAML object: {message}")]
    ConfigMapTemplate {
        /// The ConfigMap's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A `${trialSpec.X}` reference names an unknown key.
    #[error(
        "unknown meta reference {reference:?}: use Name, Namespace, Kind, APIVersion, Labels[key] or Annotations[key]"
    )]
    UnknownMetaReference {
        /// The reference as written.
        reference: String,
    },
    /// A `${trialSpec.Labels[k]}` reference names a label the template does not have.
    #[error("the template's metadata has no {what} {key:?}")]
    MissingMetadata {
        /// `label` or `annotation`.
        what: &'static str,
        /// The key.
        key: String,
    },
    /// A trial parameter has no value in the assignment.
    #[error("trial parameter {name:?} references {reference:?}, which has no value")]
    MissingValue {
        /// The trial parameter.
        name: String,
        /// What it references.
        reference: String,
    },
    /// A placeholder remains after rendering.
    #[error("placeholder ${{trialParameters.{name}}} has no trialParameter")]
    UndeclaredPlaceholder {
        /// The name in the placeholder.
        name: String,
    },
}

/// What a `${trialSpec.X}` reference reads from the trial or its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaReference {
    /// The trial's (and workload's) name.
    Name,
    /// The experiment's namespace.
    Namespace,
    /// The template's `kind`.
    Kind,
    /// The template's `apiVersion`.
    ApiVersion,
    /// A label of the template's metadata.
    Label(String),
    /// An annotation of the template's metadata.
    Annotation(String),
}

impl MetaReference {
    /// Parses a trial parameter's `reference`: `Ok(None)` for a plain
    /// parameter name, `Ok(Some(..))` for `${trialSpec.X}`.
    ///
    /// # Errors
    /// [`TemplateError::UnknownMetaReference`] for `${trialSpec.X}` with an unknown X.
    pub fn parse(reference: &str) -> Result<Option<Self>, TemplateError> {
        let Some(inner) = reference
            .strip_prefix(META_OPEN)
            .and_then(|r| r.strip_suffix('}'))
        else {
            return Ok(None);
        };
        let unknown = || TemplateError::UnknownMetaReference {
            reference: reference.to_owned(),
        };
        let bracketed = |prefix: &str| {
            inner
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        };
        let meta = match inner {
            "Name" => Self::Name,
            "Namespace" => Self::Namespace,
            "Kind" => Self::Kind,
            "APIVersion" => Self::ApiVersion,
            _ => {
                if let Some(key) = bracketed("Labels") {
                    Self::Label(key)
                } else if let Some(key) = bracketed("Annotations") {
                    Self::Annotation(key)
                } else {
                    return Err(unknown());
                }
            }
        };
        Ok(Some(meta))
    }

    /// The value this reference takes for a trial of `template`.
    ///
    /// # Errors
    /// [`TemplateError::MissingMetadata`] when a label or annotation is absent.
    pub fn resolve(
        &self,
        template: &Value,
        trial_name: &str,
        namespace: &str,
    ) -> Result<String, TemplateError> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let metadata = |section: &str, key: &str, what| {
            template
                .pointer(&format!("/metadata/{section}"))
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| TemplateError::MissingMetadata {
                    what,
                    key: key.to_owned(),
                })
        };
        match self {
            Self::Name => Ok(trial_name.to_owned()),
            Self::Namespace => Ok(namespace.to_owned()),
            Self::Kind => Ok(text(template.get("kind"))),
            Self::ApiVersion => Ok(text(template.get("apiVersion"))),
            Self::Label(key) => metadata("labels", key, "label"),
            Self::Annotation(key) => metadata("annotations", key, "annotation"),
        }
    }
}

/// Finds the trial's workload template: inline, or in a known ConfigMap.
///
/// # Errors
/// [`TemplateError`] when there is no single source, or the ConfigMap or
/// its key is unknown, or its text is not one YAML object.
pub fn resolve_template(
    template: &TrialTemplate,
    configmaps: &ConfigMaps,
) -> Result<Value, TemplateError> {
    match (&template.trial_spec, &template.config_map) {
        (Some(spec), None) => Ok(spec.clone()),
        (None, Some(source)) => {
            let missing = || TemplateError::ConfigMapMissing {
                namespace: source.config_map_namespace.clone(),
                name: source.config_map_name.clone(),
                key: source.template_path.clone(),
            };
            let text = configmaps
                .get(
                    &source.config_map_namespace,
                    &source.config_map_name,
                    &source.template_path,
                )
                .ok_or_else(missing)?;
            let bad = |message: String| TemplateError::ConfigMapTemplate {
                name: source.config_map_name.clone(),
                message,
            };
            let mut docs = parse_yaml_documents(text).map_err(|e| bad(e.to_string()))?;
            match (docs.pop(), docs.is_empty()) {
                (Some(value @ Value::Object(_)), true) => Ok(value),
                _ => Err(bad("expected exactly one mapping".to_owned())),
            }
        }
        _ => Err(TemplateError::NoSingleSource),
    }
}

/// Calls `f` with every string in a JSON value: object keys and string values.
fn for_each_string<'a>(value: &'a Value, f: &mut impl FnMut(&'a str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => {
            for (k, v) in map {
                f(k);
                for_each_string(v, f);
            }
        }
        _ => {}
    }
}

/// One `${trialParameters.x}` found in a text: its byte range and `x`.
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

/// Every `${trialParameters.x}` in `text`, left to right, not overlapping.
/// Katib's regex is `\$\{trialParameters\..+?\}`: the name has at least
/// one character and runs to the next `}` after it.
fn placeholders(text: &str) -> impl Iterator<Item = Placeholder<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text.get(from..)?.find(PARAMETER_OPEN)?;
        let name_start = start + PARAMETER_OPEN.len();
        let after = text.get(name_start..)?;
        let first = after.chars().next()?.len_utf8();
        let close = after.get(first..)?.find('}')? + first;
        let end = name_start + close + 1;
        from = end;
        Some(Placeholder {
            start,
            end,
            name: &after[..close],
        })
    })
}

/// The names `x` of every `${trialParameters.x}` in the template.
#[must_use]
pub fn placeholder_names(template: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for_each_string(template, &mut |s| {
        names.extend(placeholders(s).map(|p| p.name.to_owned()));
    });
    names
}

/// Replaces every placeholder of `text` in one pass over the text: a value
/// is inserted as it is and never scanned again, so a value that itself
/// reads `${trialParameters.y}` stays that text.
///
/// # Errors
/// [`TemplateError::UndeclaredPlaceholder`] for a placeholder with no value.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for p in placeholders(text) {
        let value = values
            .get(p.name)
            .ok_or_else(|| TemplateError::UndeclaredPlaceholder {
                name: p.name.to_owned(),
            })?;
        out.push_str(&text[copied..p.start]);
        out.push_str(value);
        copied = p.end;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

fn substitute_all(
    value: &Value,
    values: &BTreeMap<String, String>,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(substitute(s, values)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute_all(v, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((substitute(k, values)?, substitute_all(v, values)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// A trial template found once (its ConfigMap read) and rendered for each
/// trial: what `ktune run`, the controller and `ktune suggest` share, so a
/// trial's workload is made one way everywhere.
#[derive(Debug, Clone)]
pub struct ResolvedTemplate {
    workload: Value,
    trial_parameters: Vec<TrialParameterSpec>,
    namespace: String,
}

impl ResolvedTemplate {
    /// Finds the workload of `template` (see [`resolve_template`]) for
    /// trials in `namespace`.
    ///
    /// # Errors
    /// [`TemplateError`] when the workload cannot be found.
    pub fn new(
        template: &TrialTemplate,
        namespace: &str,
        configmaps: &ConfigMaps,
    ) -> Result<Self, TemplateError> {
        Ok(Self {
            workload: resolve_template(template, configmaps)?,
            trial_parameters: template.trial_parameters.clone().unwrap_or_default(),
            namespace: namespace.to_owned(),
        })
    }

    /// The workload of trial `trial` with these parameter assignments
    /// (see [`render`]).
    ///
    /// # Errors
    /// [`TemplateError`] when a referenced value is missing or a reference
    /// is invalid.
    pub fn render(
        &self,
        trial: &str,
        assignment: &[(String, String)],
    ) -> Result<Value, TemplateError> {
        let values: BTreeMap<String, String> = assignment.iter().cloned().collect();
        render(
            &self.workload,
            &self.trial_parameters,
            &values,
            trial,
            &self.namespace,
        )
    }
}

/// Renders a trial's workload: every `${trialParameters.x}` is replaced by
/// the value of what trial parameter `x` references (an assignment by
/// parameter name, or trial metadata), and `metadata.name` /
/// `metadata.namespace` are set to the trial's.
///
/// # Errors
/// [`TemplateError`] when a referenced value is missing, a meta reference
/// is invalid, or a placeholder has no trial parameter.
pub fn render(
    template: &Value,
    trial_parameters: &[TrialParameterSpec],
    assignments: &BTreeMap<String, String>,
    trial_name: &str,
    namespace: &str,
) -> Result<Value, TemplateError> {
    let mut values = BTreeMap::new();
    for parameter in trial_parameters {
        let value = match MetaReference::parse(&parameter.reference)? {
            Some(meta) => meta.resolve(template, trial_name, namespace)?,
            None => assignments
                .get(&parameter.reference)
                .cloned()
                .ok_or_else(|| TemplateError::MissingValue {
                    name: parameter.name.clone(),
                    reference: parameter.reference.clone(),
                })?,
        };
        values.insert(parameter.name.clone(), value);
    }
    let mut rendered = substitute_all(template, &values)?;
    if let Value::Object(map) = &mut rendered {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(meta) = metadata {
            meta.insert("name".to_owned(), Value::String(trial_name.to_owned()));
            meta.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
        }
    }
    Ok(rendered)
}

/// The first container named `name` that has a `command` or `args`,
/// anywhere in the workload (a Job's pod template, a PyTorchJob's Master …).
#[must_use]
pub fn primary_container<'a>(workload: &'a Value, name: &str) -> Option<&'a Value> {
    match workload {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some(name)
                && (map.contains_key("command") || map.contains_key("args"))
            {
                return Some(workload);
            }
            map.values().find_map(|v| primary_container(v, name))
        }
        Value::Array(items) => items.iter().find_map(|v| primary_container(v, name)),
        _ => None,
    }
}

/// A container's `command` followed by its `args`, as one argv (numbers
/// and booleans written as text, as Kubernetes would refuse but users write).
#[must_use]
pub fn container_argv(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|key| container.get(key).and_then(Value::as_array))
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// A container's literal `env` entries (`valueFrom` entries need a cluster
/// and are left out).
#[must_use]
pub fn container_env(container: &Value) -> Vec<(String, String)> {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?;
            let value = e.get("value")?.as_str()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_primary_containers_argv_and_env_are_found_in_any_kind() {
        let job = json!({"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [
            {"name": "sidecar", "command": ["x"]},
            {"name": "pytorch", "command": ["python3", "train.py"], "args": ["--lr", 0.1],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {}}]}]}}}}}});
        let c = primary_container(&job, "pytorch").unwrap();
        assert_eq!(container_argv(c), ["python3", "train.py", "--lr", "0.1"]);
        assert_eq!(container_env(c), [("A".to_owned(), "1".to_owned())]);
        assert!(primary_container(&job, "missing").is_none());
    }

    fn tp(name: &str, reference: &str) -> TrialParameterSpec {
        TrialParameterSpec {
            name: name.into(),
            description: String::new(),
            reference: reference.into(),
        }
    }

    #[test]
    fn placeholders_are_found_in_keys_and_values() {
        let t = json!({"a": ["--lr=${trialParameters.lr} --m=${trialParameters.m}"], "${trialParameters.k}": 1, "b": "${trialParameters.}"});
        let names: Vec<_> = placeholder_names(&t).into_iter().collect();
        assert_eq!(names, ["k", "lr", "m"]);
    }

    #[test]
    fn rendering_substitutes_values_and_meta_and_sets_the_name() {
        let t = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"labels": {"team": "ml"}},
            "spec": {"args": ["--lr=${trialParameters.lr}", "${trialParameters.n}", "${trialParameters.t}", "${trialParameters.k}"]}});
        let params = [
            tp("lr", "lr"),
            tp("n", "${trialSpec.Name}"),
            tp("t", "${trialSpec.Labels[team]}"),
            tp("k", "${trialSpec.Kind}"),
        ];
        let values = BTreeMap::from([("lr".to_owned(), "0.1\"quoted".to_owned())]);
        let r = render(&t, &params, &values, "exp-abc", "ns").unwrap();
        assert_eq!(
            r["spec"]["args"],
            json!(["--lr=0.1\"quoted", "exp-abc", "ml", "Job"])
        );
        assert_eq!(r["metadata"]["name"], "exp-abc");
        assert_eq!(r["metadata"]["namespace"], "ns");
    }

    #[test]
    fn a_value_that_reads_like_a_placeholder_is_inserted_as_it_is() {
        let t = json!({"args": ["--a=${trialParameters.a}", "--b=${trialParameters.b}"]});
        let values = BTreeMap::from([
            ("a".to_owned(), "${trialParameters.b}".to_owned()),
            ("b".to_owned(), "${trialParameters.zzz}".to_owned()),
        ]);
        let r = render(&t, &[tp("a", "a"), tp("b", "b")], &values, "n", "ns").unwrap();
        assert_eq!(
            r["args"],
            json!(["--a=${trialParameters.b}", "--b=${trialParameters.zzz}"])
        );
    }

    #[test]
    fn placeholders_with_multibyte_names_are_found() {
        let t = json!({"x": "${trialParameters.é}/${trialParameters.b}"});
        let names: Vec<_> = placeholder_names(&t).into_iter().collect();
        assert_eq!(names, ["b", "é"]);
    }

    #[test]
    fn rendering_errors_are_named() {
        let t = json!({"x": "${trialParameters.a}${trialParameters.b}"});
        let err = render(
            &t,
            &[tp("a", "lr")],
            &BTreeMap::from([("lr".into(), "1".into())]),
            "n",
            "ns",
        );
        assert_eq!(
            err,
            Err(TemplateError::UndeclaredPlaceholder { name: "b".into() })
        );
        assert!(MetaReference::parse("${trialSpec.Bogus}").is_err());
        assert_eq!(MetaReference::parse("lr"), Ok(None));
        assert_eq!(
            MetaReference::parse("${trialSpec.Annotations[a/b]}"),
            Ok(Some(MetaReference::Annotation("a/b".into())))
        );
    }
}
