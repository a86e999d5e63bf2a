//! Reading an `OptimizationJob` document field by field, with Kubeflow
//! Trainer's schema and CEL rules (`optimizationjob_types.go`): every
//! violation becomes an [`Issue`] naming the field, and reading goes on, so
//! one pass reports everything. What is read is kept in [`Job`], the
//! job's own shape, for [`super::map`] to turn into an Experiment.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use super::{
    ALGORITHM_ANNOTATION, ALGORITHM_SETTINGS_ANNOTATION, EARLY_STOPPING_ANNOTATION,
    EARLY_STOPPING_SETTINGS_ANNOTATION,
};
use crate::api::validate::{Issue, Report};

/// Most parameters, choices, trials and parallel trials the API takes.
pub const MAX_ITEMS: usize = 100;
/// Longest parameter name, metric name, choice and number text.
pub const MAX_NAME_LEN: usize = 64;

/// Which way the objective goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better (the API's default).
    Minimize,
}

/// `searchAlgorithm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// `random: {seed}` (the API's default, without a seed).
    Random {
        /// The seed, if given.
        seed: Option<i64>,
    },
    /// `grid: {}`.
    Grid,
}

/// `uniform.type` / `logUniform.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    /// Whole numbers.
    Int,
    /// Real numbers (the API's default).
    Float,
}

/// One parameter's `searchSpace`.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// `uniform` or `logUniform` (`log`) over `[min, max]`; the bounds are
    /// the text written, or for `Int` the whole number it denotes.
    Range {
        /// Whether the distribution is log-uniform.
        log: bool,
        /// Lower bound, as text.
        min: String,
        /// Upper bound, as text.
        max: String,
        /// Int or Float.
        number: NumberType,
    },
    /// `categorical.choices`.
    Categorical(Vec<String>),
}

/// One `parameters[]` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Its name (handed to trials verbatim).
    pub name: String,
    /// Its search space.
    pub space: Space,
}

/// A ktune algorithm or early-stopping rule chosen by annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The ktune (Katib) name, e.g. `bayesianoptimization`.
    pub name: String,
    /// Its settings, name → value as text.
    pub settings: Vec<(String, String)>,
}

/// An OptimizationJob as read (fields that failed to read are left at
/// their defaults: the report says what is wrong).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's metadata.
    pub metadata: ObjectMeta,
    /// The objective metric.
    pub metric: String,
    /// Its direction.
    pub direction: Direction,
    /// The API's search algorithm.
    pub search: Search,
    /// The search space.
    pub parameters: Vec<Parameter>,
    /// `numTrials`.
    pub num_trials: i32,
    /// `parallelTrials`.
    pub parallel_trials: i32,
    /// `trainJobTemplate.metadata`.
    pub template_metadata: Map<String, Value>,
    /// `trainJobTemplate.spec` (a TrainJobSpec).
    pub template_spec: Map<String, Value>,
    /// `ktune.dev/algorithm` (with its settings annotation).
    pub algorithm: Option<Choice>,
    /// `ktune.dev/early-stopping` (with its settings annotation).
    pub early_stopping: Option<Choice>,
}

/// Collects issues while reading.
#[derive(Debug, Default)]
pub(super) struct Reader {
    pub(super) report: Report,
}

impl Reader {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.report.errors.push(Issue {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn warn_unknown(&mut self, map: &Map<String, Value>, path: &str, known: &[&str]) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.report.warnings.push(Issue {
                path: join(path, key),
                message: "unknown field, ignored".to_owned(),
            });
        }
    }

    /// `map[key]` as a mapping; `None` (with an error if it has another type)
    /// when absent, null or not a mapping.
    fn object<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.error(
                    &join(path, key),
                    format!("expected a mapping, got {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn list<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'a Vec<Value>> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.error(
                    &join(path, key),
                    format!("expected a list, got {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// A required string of `1..=max` characters.
    fn name(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> String {
        let path = join(path, key);
        match map.get(key) {
            None | Some(Value::Null) => self.error(&path, "required"),
            Some(Value::String(s)) if s.is_empty() => self.error(&path, "required (empty)"),
            Some(Value::String(s)) if s.chars().count() > MAX_NAME_LEN => {
                self.error(&path, format!("longer than {MAX_NAME_LEN} characters"));
            }
            Some(Value::String(s)) => return s.clone(),
            Some(other) => self.error(&path, format!("expected a string, got {}", kind_of(other))),
        }
        String::new()
    }

    /// An optional integer in `1..=100`, `1` when absent.
    fn count(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> i32 {
        let path = join(path, key);
        match map.get(key) {
            None | Some(Value::Null) => 1,
            Some(v) => match v.as_i64().map(i32::try_from) {
                Some(Ok(n)) if (1..=100).contains(&n) => n,
                Some(_) => {
                    self.error(&path, format!("must be between 1 and {MAX_ITEMS}, got {v}"));
                    1
                }
                None => {
                    self.error(&path, format!("expected an integer, got {}", kind_of(v)));
                    1
                }
            },
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Whether `text` matches the API's number pattern
/// `^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`.
#[must_use]
pub fn is_api_number(text: &str) -> bool {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    let s = text.strip_prefix('-').unwrap_or(text);
    let int = match s.as_bytes().first() {
        Some(b'0') => 1,
        Some(b'1'..=b'9') => digits(s),
        _ => return false,
    };
    let mut rest = &s[int..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let n = digits(exponent);
        if n == 0 {
            return false;
        }
        rest = &exponent[n..];
    }
    rest.is_empty()
}

/// Reads the whole job (the document is known to be a mapping).
pub(super) fn read_job(doc: &Map<String, Value>, metadata: ObjectMeta, reader: &mut Reader) -> Job {
    reader.warn_unknown(
        doc,
        "",
        &["apiVersion", "kind", "metadata", "spec", "status"],
    );
    let (algorithm, early_stopping) = read_annotations(&metadata, reader);
    let mut job = Job {
        metadata,
        metric: String::new(),
        direction: Direction::Minimize,
        search: Search::Random { seed: None },
        parameters: Vec::new(),
        num_trials: 1,
        parallel_trials: 1,
        template_metadata: Map::new(),
        template_spec: Map::new(),
        algorithm,
        early_stopping,
    };
    let Some(spec) = reader.object(doc, "spec", "") else {
        if doc.get("spec").is_none_or(Value::is_null) {
            reader.error("spec", "required");
        }
        return job;
    };
    let path = "spec";
    reader.warn_unknown(
        spec,
        path,
        &[
            "objectives",
            "searchAlgorithm",
            "parameters",
            "numTrials",
            "parallelTrials",
            "trainJobTemplate",
        ],
    );
    read_objectives(spec, reader, &mut job);
    job.search = read_search(spec, reader);
    read_parameters(spec, reader, &mut job);
    job.num_trials = reader.count(spec, "numTrials", path);
    job.parallel_trials = reader.count(spec, "parallelTrials", path);
    if job.parallel_trials > job.num_trials {
        reader.error(
            "spec.parallelTrials",
            format!(
                "parallelTrials cannot exceed numTrials ({} > {})",
                job.parallel_trials, job.num_trials
            ),
        );
    }
    if job.search == Search::Grid {
        for (i, p) in job.parameters.iter().enumerate() {
            if let Space::Range { log, .. } = p.space {
                let kind = if log { "logUniform" } else { "uniform" };
                reader.error(
                    &format!("spec.parameters[{i}].searchSpace.{kind}"),
                    "grid search (spec.searchAlgorithm.grid) requires every parameter to be categorical",
                );
            }
        }
    }
    read_template(spec, reader, &mut job);
    job
}

fn read_objectives(spec: &Map<String, Value>, reader: &mut Reader, job: &mut Job) {
    let Some(items) = reader.list(spec, "objectives", "spec") else {
        if spec.get("objectives").is_none_or(Value::is_null) {
            reader.error("spec.objectives", "required: one objective");
        }
        return;
    };
    if items.len() != 1 {
        reader.error(
            "spec.objectives",
            format!("must have exactly 1 item, has {}", items.len()),
        );
    }
    let Some(first) = items.first() else {
        return;
    };
    let path = "spec.objectives[0]";
    let Some(objective) = first.as_object() else {
        reader.error(path, format!("expected a mapping, got {}", kind_of(first)));
        return;
    };
    reader.warn_unknown(objective, path, &["metric", "direction"]);
    job.metric = reader.name(objective, "metric", path);
    job.direction = match objective.get("direction") {
        None | Some(Value::Null) => Direction::Minimize,
        Some(Value::String(s)) if s == "Minimize" => Direction::Minimize,
        Some(Value::String(s)) if s == "Maximize" => Direction::Maximize,
        Some(other) => {
            reader.error(
                &format!("{path}.direction"),
                format!("must be Maximize or Minimize, got {other}"),
            );
            Direction::Minimize
        }
    };
}

fn read_search(spec: &Map<String, Value>, reader: &mut Reader) -> Search {
    let path = "spec.searchAlgorithm";
    let Some(search) = reader.object(spec, "searchAlgorithm", "spec") else {
        return Search::Random { seed: None };
    };
    reader.warn_unknown(search, path, &["random", "grid"]);
    let random = reader.object(search, "random", path);
    let grid = reader.object(search, "grid", path);
    let set = |k: &str| search.get(k).is_some_and(|v| !v.is_null());
    match (set("random"), set("grid")) {
        (true, true) => {
            reader.error(path, "exactly one of random or grid may be set, not both");
        }
        (false, false) => reader.error(path, "exactly one of random or grid must be set"),
        _ => {}
    }
    if let Some(grid) = grid {
        reader.warn_unknown(grid, &format!("{path}.grid"), &[]);
        return Search::Grid;
    }
    let Some(random) = random else {
        return Search::Random { seed: None };
    };
    reader.warn_unknown(random, &format!("{path}.random"), &["seed"]);
    let seed = match random.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let seed = v.as_i64();
            if seed.is_none() {
                reader.error(
                    &format!("{path}.random.seed"),
                    format!("expected a 64-bit integer, got {v}"),
                );
            }
            seed
        }
    };
    Search::Random { seed }
}

fn read_parameters(spec: &Map<String, Value>, reader: &mut Reader, job: &mut Job) {
    let Some(items) = reader.list(spec, "parameters", "spec") else {
        if spec.get("parameters").is_none_or(Value::is_null) {
            reader.error("spec.parameters", "required: at least one parameter");
        }
        return;
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        reader.error(
            "spec.parameters",
            format!("must have 1 to {MAX_ITEMS} items, has {}", items.len()),
        );
    }
    let mut first_index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.parameters[{i}]");
        let Some(parameter) = item.as_object() else {
            reader.error(&path, format!("expected a mapping, got {}", kind_of(item)));
            continue;
        };
        reader.warn_unknown(parameter, &path, &["name", "searchSpace"]);
        let name = reader.name(parameter, "name", &path);
        if !name.is_empty() {
            if let Some(first) = first_index.get(&name) {
                reader.error(
                    &format!("{path}.name"),
                    format!("{name:?} is already the name of spec.parameters[{first}]"),
                );
            } else {
                first_index.insert(name.clone(), i);
            }
        }
        if let Some(space) = read_space(parameter, &path, reader) {
            job.parameters.push(Parameter { name, space });
        }
    }
}

fn read_space(parameter: &Map<String, Value>, path: &str, reader: &mut Reader) -> Option<Space> {
    let Some(space) = reader.object(parameter, "searchSpace", path) else {
        if parameter.get("searchSpace").is_none_or(Value::is_null) {
            reader.error(&format!("{path}.searchSpace"), "required");
        }
        return None;
    };
    let path = format!("{path}.searchSpace");
    reader.warn_unknown(space, &path, &["uniform", "logUniform", "categorical"]);
    let set: Vec<&str> = ["uniform", "logUniform", "categorical"]
        .into_iter()
        .filter(|k| space.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if set.len() != 1 {
        reader.error(
            &path,
            format!(
                "exactly one of uniform, logUniform or categorical must be set, found {}",
                if set.is_empty() {
                    "none".to_owned()
                } else {
                    set.join(", ")
                }
            ),
        );
    }
    let first = *set.first()?;
    let body = reader.object(space, first, &path)?;
    let path = format!("{path}.{first}");
    if first == "categorical" {
        return read_choices(body, &path, reader).map(Space::Categorical);
    }
    read_range(body, &path, first == "logUniform", reader)
}

fn read_choices(body: &Map<String, Value>, path: &str, reader: &mut Reader) -> Option<Vec<String>> {
    reader.warn_unknown(body, path, &["choices"]);
    let Some(items) = reader.list(body, "choices", path) else {
        if body.get("choices").is_none_or(Value::is_null) {
            reader.error(&format!("{path}.choices"), "required: 1 to 100 strings");
        }
        return None;
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        reader.error(
            &format!("{path}.choices"),
            format!("must have 1 to {MAX_ITEMS} items, has {}", items.len()),
        );
    }
    let mut choices: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.choices[{i}]");
        match item {
            Value::String(s) if s.chars().count() > MAX_NAME_LEN => {
                reader.error(&at, format!("longer than {MAX_NAME_LEN} characters"));
            }
            Value::String(s) if choices.contains(s) => {
                reader.error(&at, format!("{s:?} is listed twice"));
            }
            Value::String(s) => choices.push(s.clone()),
            other => reader.error(
                &at,
                format!(
                    "expected a string, got {} (quote it: \"{other}\")",
                    kind_of(other)
                ),
            ),
        }
    }
    Some(choices)
}

fn read_range(
    body: &Map<String, Value>,
    path: &str,
    log: bool,
    reader: &mut Reader,
) -> Option<Space> {
    reader.warn_unknown(body, path, &["min", "max", "type"]);
    let number = match body.get("type") {
        None | Some(Value::Null) => NumberType::Float,
        Some(Value::String(s)) if s == "Float" => NumberType::Float,
        Some(Value::String(s)) if s == "Int" => NumberType::Int,
        Some(other) => {
            reader.error(
                &format!("{path}.type"),
                format!("must be Int or Float, got {other}"),
            );
            NumberType::Float
        }
    };
    let min = read_bound(body, "min", path, number, reader);
    let max = read_bound(body, "max", path, number, reader);
    let ((min_text, min), (max_text, max)) = (min?, max?);
    if log && min <= 0.0 {
        reader.error(
            &format!("{path}.min"),
            format!("must be strictly greater than 0 for logUniform, got {min_text}"),
        );
    }
    if min >= max {
        reader.error(
            &format!("{path}.min"),
            format!("must be strictly less than max ({min_text} >= {max_text})"),
        );
    }
    Some(Space::Range {
        log,
        min: min_text,
        max: max_text,
        number,
    })
}

/// One bound: its text (for Int, the whole number it denotes) and value.
fn read_bound(
    body: &Map<String, Value>,
    key: &str,
    path: &str,
    number: NumberType,
    reader: &mut Reader,
) -> Option<(String, f64)> {
    let path = join(path, key);
    let text = match body.get(key) {
        None | Some(Value::Null) => {
            reader.error(&path, "required");
            return None;
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            reader.error(
                &path,
                format!(
                    "expected a string, got {}: write it quoted, \"{other}\"",
                    kind_of(other)
                ),
            );
            return None;
        }
    };
    if text.is_empty() || text.len() > MAX_NAME_LEN || !is_api_number(text) {
        reader.error(
            &path,
            format!("{text:?} is not a number of the form -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? of at most {MAX_NAME_LEN} characters"),
        );
        return None;
    }
    let value = match text.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => {
            reader.error(&path, format!("{text} is out of range"));
            return None;
        }
    };
    if number == NumberType::Float {
        return Some((text.clone(), value));
    }
    // ktune's Int parameters take whole bounds; `1e2` is written `100`.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let whole = (value.fract() == 0.0 && value.abs() < 9.0e15).then_some(value as i64);
    match whole {
        Some(n) => Some((n.to_string(), value)),
        None => {
            reader.error(
                &path,
                format!("{text} is not a whole number, as type Int needs"),
            );
            None
        }
    }
}

fn read_template(spec: &Map<String, Value>, reader: &mut Reader, job: &mut Job) {
    let path = "spec.trainJobTemplate";
    let Some(template) = reader.object(spec, "trainJobTemplate", "spec") else {
        if spec.get("trainJobTemplate").is_none_or(Value::is_null) {
            reader.error(path, "required: a TrainJob's metadata and spec");
        }
        return;
    };
    reader.warn_unknown(template, path, &["metadata", "spec"]);
    if let Some(metadata) = reader.object(template, "metadata", path) {
        for field in ["name", "namespace"] {
            if metadata.contains_key(field) {
                reader.error(
                    &format!("{path}.metadata.{field}"),
                    "name and namespace cannot be set in a template",
                );
            }
        }
        if let Err(e) = serde_json::from_value::<ObjectMeta>(Value::Object(metadata.clone())) {
            reader.error(
                &format!("{path}.metadata"),
                format!("not Kubernetes object metadata: {e}"),
            );
        }
        job.template_metadata = metadata.clone();
    }
    let Some(train) = reader.object(template, "spec", path) else {
        if template.get("spec").is_none_or(Value::is_null) {
            reader.error(&format!("{path}.spec"), "required: a TrainJob spec");
        }
        return;
    };
    let spec_path = format!("{path}.spec");
    match reader.object(train, "runtimeRef", &spec_path) {
        Some(runtime) => {
            if runtime
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                reader.error(
                    &format!("{spec_path}.runtimeRef.name"),
                    "required: the training runtime's name",
                );
            }
        }
        None => {
            if train.get("runtimeRef").is_none_or(Value::is_null) {
                reader.error(
                    &format!("{spec_path}.runtimeRef"),
                    "required: the training runtime",
                );
            }
        }
    }
    if let Some(trainer) = reader.object(train, "trainer", &spec_path) {
        reader.list(trainer, "env", &format!("{spec_path}.trainer"));
    }
    job.template_spec = train.clone();
}

/// The ktune extension annotations: a ktune algorithm or early-stopping
/// rule, each with its settings as a JSON object.
fn read_annotations(
    metadata: &ObjectMeta,
    reader: &mut Reader,
) -> (Option<Choice>, Option<Choice>) {
    let empty = BTreeMap::new();
    let annotations = metadata.annotations.as_ref().unwrap_or(&empty);
    // A misspelt extension would silently leave the API's algorithm in place.
    for key in annotations.keys().filter(|k| {
        k.starts_with("ktune.dev/") && !super::EXTENSION_ANNOTATIONS.contains(&k.as_str())
    }) {
        reader.report.warnings.push(Issue {
            path: annotation_path(key),
            message: format!(
                "not a ktune annotation of an OptimizationJob, ignored (known: {})",
                super::EXTENSION_ANNOTATIONS.join(", ")
            ),
        });
    }
    let mut choice = |name_key: &str, settings_key: &str| {
        let settings = annotations
            .get(settings_key)
            .map(|text| read_settings(text, settings_key, reader))
            .unwrap_or_default();
        match annotations.get(name_key).map(|n| n.trim()) {
            Some(name) if !name.is_empty() => Some(Choice {
                name: name.to_owned(),
                settings,
            }),
            Some(_) => {
                reader.error(&annotation_path(name_key), "empty: name a ktune algorithm");
                None
            }
            None => {
                if annotations.contains_key(settings_key) {
                    reader.error(
                        &annotation_path(settings_key),
                        format!("settings without the {name_key} annotation that they configure"),
                    );
                }
                None
            }
        }
    };
    let algorithm = choice(ALGORITHM_ANNOTATION, ALGORITHM_SETTINGS_ANNOTATION);
    let early = choice(
        EARLY_STOPPING_ANNOTATION,
        EARLY_STOPPING_SETTINGS_ANNOTATION,
    );
    (algorithm, early)
}

/// `metadata.annotations[key]`.
pub(super) fn annotation_path(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

fn read_settings(text: &str, key: &str, reader: &mut Reader) -> Vec<(String, String)> {
    let path = annotation_path(key);
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            reader.error(
                &path,
                format!(
                    "expected a JSON object of name → value, got {}",
                    kind_of(&other)
                ),
            );
            return Vec::new();
        }
        Err(e) => {
            reader.error(&path, format!("not JSON: {e}"));
            return Vec::new();
        }
    };
    let mut settings = Vec::new();
    for (name, value) in object {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                reader.error(
                    &path,
                    format!(
                        "setting {name:?}: expected a string, number or boolean, got {}",
                        kind_of(&other)
                    ),
                );
                continue;
            }
        };
        settings.push((name, text));
    }
    settings
}
