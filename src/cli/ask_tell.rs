//! `ktune ask-tell --algorithm NAME`: drives one suggester over JSON lines,
//! so that programs in other languages (the peer regret benchmark in
//! `benches/peers/`, notebooks) can use ktune's algorithms as an ask/tell
//! optimizer without an experiment file.
//!
//! One request per line on stdin, one reply per line on stdout, flushed after
//! each reply:
//!
//! | request | reply |
//! |---|---|
//! | `{"op":"init","seed":0,"goal":"minimize","space":[…]}` | `{"ok":true}` |
//! | `{"op":"ask"}` | `{"params":{…},"cpu_seconds":…}` |
//! | `{"op":"tell","params":{…},"value":0.25}` | `{"ok":true,"cpu_seconds":…}` |
//! | `{"op":"close"}` | none; the process exits 0 (as at end of input) |
//!
//! A `tell` may also carry `"state"`: `"succeeded"` (the default; a missing
//! or non-finite value makes it `"failed"`), `"failed"`, `"pruned"` (stopped
//! early; its `value`, when finite, is the last intermediate value, which
//! the algorithms read as an early-stopped trial's objective) or `"killed"`
//! (never evaluated: an asked configuration the caller dropped, which the
//! algorithms ignore). With `"external":true` the told configuration need
//! not have been asked: it is added to the history as a new trial (Optuna's
//! `enqueue_trial`, or a history replayed into a fresh `init`).
//!
//! Space entries are `{"name","type":"double"|"int","min","max","log","step"}`
//! (`log` and `step` optional), `{"name","type":"categorical","choices":[…]}`
//! or `{"name","type":"discrete","values":[…]}`. `init` may also carry
//! `function` and `budget`, which only label the session. Every asked
//! configuration is a pending trial of the history until a `tell` with the
//! same parameters reports its value; a `null`, `NaN` or infinite value marks
//! it failed. Anything that goes wrong with one request (bad JSON, `ask`
//! before `init`, unknown parameters, a suggester error, an exhausted search)
//! is answered with `{"error":"…"}` and the session goes on.
//!
//! `cpu_seconds` is the wall-clock time of the suggester's own work for the
//! request (the `suggest` call for `ask`; matching the pending trial for
//! `tell`), measured with [`Instant`]. True thread CPU time would need
//! `clock_gettime` through `unsafe`, which the workspace forbids; on an idle
//! machine the two agree for this single-threaded work.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use ktune_algorithms::history::{Direction, Objective, Observation, TrialRecord, TrialState};
use ktune_algorithms::settings::{self, Settings};
use ktune_algorithms::space::{Assignment, Distribution, ParamValue, ParameterSpec, SearchSpace};
use ktune_algorithms::suggest::{AlgorithmState, SuggestRequest, Suggester, build_suggester};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Arguments of `ktune ask-tell`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Katib algorithm name (random, grid, sobol, tpe, multivariate-tpe, cmaes, bayesianoptimization, …).
    #[arg(long, value_name = "NAME")]
    algorithm: String,
    /// An algorithm setting, as in `spec.algorithm.algorithmSettings` (repeatable).
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let settings = parse_settings(&args.algorithm, &args.settings)?;
    serve(
        &args.algorithm,
        &settings,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Parses `KEY=VALUE` settings against Katib's catalog, so that a misspelt
/// setting fails the command at once rather than every `init`.
fn parse_settings(algorithm: &str, given: &[String]) -> anyhow::Result<Settings> {
    let spec = settings::algorithm(algorithm)
        .with_context(|| format!("unknown algorithm `{algorithm}`"))?;
    let mut pairs = Vec::with_capacity(given.len());
    for item in given {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("setting `{item}` is not KEY=VALUE"))?;
        pairs.push((key.trim(), value));
    }
    spec.parse(pairs).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow!("{algorithm}: {}", list.join("; "))
    })
}

/// Answers requests from `input` on `output` until `close` or end of input.
///
/// # Errors
/// Only when `input` cannot be read or `output` cannot be written; problems
/// with a request are answered with `{"error":…}` and the loop goes on.
pub fn serve(
    algorithm: &str,
    settings: &Settings,
    mut input: impl BufRead,
    mut output: impl Write,
) -> anyhow::Result<()> {
    let mut session: Option<Session> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("reading a request")?
            == 0
        {
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line) {
            Err(_) => Some(error_reply(&anyhow!("the request is not UTF-8"))),
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => match parse_request(text) {
                Err(e) => Some(error_reply(&e)),
                Ok(Request::Close) => return Ok(()),
                Ok(request) => Some(
                    answer(algorithm, settings, &mut session, request)
                        .unwrap_or_else(|e| error_reply(&e)),
                ),
            },
        };
        if let Some(reply) = reply {
            serde_json::to_writer(&mut output, &reply).context("writing a reply")?;
            output.write_all(b"\n").context("writing a reply")?;
            output.flush().context("writing a reply")?;
        }
    }
}

fn error_reply(error: &anyhow::Error) -> Value {
    json!({ "error": format!("{error:#}") })
}

/// One request line.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Init(Init),
    Ask,
    Tell(Tell),
    Close,
}

#[derive(Debug, Deserialize)]
struct Init {
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    goal: Goal,
    space: Vec<ParamDef>,
    // `function`, `budget` and any other field only label the caller's logs
    // and are ignored (serde's default).
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Goal {
    #[default]
    Minimize,
    Maximize,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ParamDef {
    Double {
        name: String,
        min: f64,
        max: f64,
        #[serde(default)]
        log: bool,
        step: Option<f64>,
    },
    Int {
        name: String,
        min: i64,
        max: i64,
        #[serde(default)]
        log: bool,
        step: Option<i64>,
    },
    Categorical {
        name: String,
        choices: Vec<String>,
    },
    Discrete {
        name: String,
        values: Vec<serde_json::Number>,
    },
}

#[derive(Debug, Deserialize)]
struct Tell {
    params: Map<String, Value>,
    /// `None` for `null` (and for `NaN`, rewritten to `null` by [`parse_request`]).
    #[serde(default)]
    value: Option<TellValue>,
    /// How the trial ended; `None` means succeeded when the value is finite.
    #[serde(default)]
    state: Option<TellState>,
    /// The configuration was not asked: add it rather than match a pending one.
    #[serde(default)]
    external: bool,
}

/// How a told trial ended (see the module docs).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TellState {
    Succeeded,
    Failed,
    Pruned,
    Killed,
}

/// A reported value: a number, or a string such as `"nan"` from callers that
/// cannot write non-finite numbers in JSON.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TellValue {
    Number(f64),
    Text(String),
}

impl TellValue {
    fn finite(&self) -> Option<f64> {
        match self {
            Self::Number(v) => Some(*v),
            Self::Text(t) => t.trim().parse::<f64>().ok(),
        }
        .filter(|v| v.is_finite())
    }
}

/// Parses a request; Python's `json.dumps` writes `NaN` and `Infinity`,
/// which are not JSON, so a line that fails to parse is retried with those
/// words (outside strings) read as `null`.
fn parse_request(text: &str) -> anyhow::Result<Request> {
    match serde_json::from_str(text) {
        Ok(request) => Ok(request),
        Err(first) => match non_finite_as_null(text) {
            Some(rewritten) => serde_json::from_str(&rewritten)
                .map_err(|_| anyhow!(first))
                .context("bad request"),
            None => Err(anyhow!(first).context("bad request")),
        },
    }
}

/// `text` with the bare words `NaN`, `Infinity` and `-Infinity` replaced by
/// `null`; `None` when there are none.
fn non_finite_as_null(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            out.push_str("null");
            rest = &rest[word.len()..];
            changed = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

/// What `init` sets up; replaced by a later `init`.
#[derive(Debug)]
struct Session {
    space: SearchSpace,
    objective: Objective,
    suggester: Box<dyn Suggester>,
    seed: u64,
    history: Vec<TrialRecord>,
    state: Option<AlgorithmState>,
}

fn answer(
    algorithm: &str,
    settings: &Settings,
    session: &mut Option<Session>,
    request: Request,
) -> anyhow::Result<Value> {
    match request {
        Request::Init(init) => {
            // A failed init ends the previous session too: asks after it
            // must not quietly continue a search the caller meant to replace.
            *session = None;
            *session = Some(Session::new(algorithm, settings, init)?);
            Ok(json!({ "ok": true }))
        }
        Request::Ask => session
            .as_mut()
            .context("ask before init")
            .and_then(Session::ask),
        Request::Tell(tell) => session
            .as_mut()
            .context("tell before init")
            .and_then(|s| s.tell(&tell)),
        // `serve` ends the loop before asking for an answer.
        Request::Close => Ok(Value::Null),
    }
}

impl Session {
    fn new(algorithm: &str, settings: &Settings, init: Init) -> anyhow::Result<Self> {
        let params = init
            .space
            .into_iter()
            .map(ParamDef::into_spec)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let space = SearchSpace::new(params)?;
        let direction = match init.goal {
            Goal::Minimize => Direction::Minimize,
            Goal::Maximize => Direction::Maximize,
        };
        let suggester = build_suggester(algorithm, settings, &space)?;
        Ok(Self {
            space,
            objective: Objective::new("objective", direction),
            suggester,
            seed: init.seed,
            history: Vec::new(),
            state: None,
        })
    }

    fn ask(&mut self) -> anyhow::Result<Value> {
        let request = SuggestRequest {
            space: &self.space,
            objective: &self.objective,
            history: &self.history,
            count: 1,
            seed: self.seed,
            state: self.state.as_ref(),
        };
        let started = Instant::now();
        let result = self.suggester.suggest(&request);
        let seconds = started.elapsed().as_secs_f64();
        let suggestions = result?;
        let Some(suggestion) = suggestions.suggestions.into_iter().next() else {
            if suggestions.exhausted {
                bail!(
                    "exhausted: {} has nothing more to suggest",
                    self.suggester.name()
                );
            }
            bail!(
                "{} has no suggestion until a pending trial is told",
                self.suggester.name()
            );
        };
        self.state = suggestions.state;
        let params = assignment_json(&suggestion.assignment)?;
        let mut trial = TrialRecord::new(
            format!("trial-{:05}", self.history.len() + 1),
            suggestion.assignment,
        );
        trial.labels = suggestion.labels;
        self.history.push(trial);
        Ok(json!({ "params": params, "cpu_seconds": seconds }))
    }

    fn tell(&mut self, tell: &Tell) -> anyhow::Result<Value> {
        let started = Instant::now();
        let assignment = self.parse_params(&tell.params)?;
        let trial = if tell.external {
            let name = format!("trial-{:05}", self.history.len() + 1);
            self.history.push(TrialRecord::new(name, assignment));
            self.history
                .last_mut()
                .context("the history is empty after a push")?
        } else {
            self.history
                .iter_mut()
                .find(|t| {
                    t.state == TrialState::Pending && same_assignment(&t.assignment, &assignment)
                })
                .context(
                    "no pending trial has these params (ask first; each ask is told once; \
                     `\"external\":true` adds a configuration that was not asked)",
                )?
        };
        let value = tell.value.as_ref().and_then(TellValue::finite);
        let (state, value) = match (tell.state, value) {
            (None | Some(TellState::Succeeded), Some(v)) => (TrialState::Succeeded, Some(v)),
            (None | Some(TellState::Succeeded | TellState::Failed), _) => {
                (TrialState::Failed, None)
            }
            (Some(TellState::Pruned), v) => (TrialState::EarlyStopped, v),
            (Some(TellState::Killed), _) => (TrialState::Killed, None),
        };
        trial.objective = value;
        trial.state = state;
        if let Some(value) = value {
            trial.observations.push(Observation { step: 1, value });
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(json!({ "ok": true, "cpu_seconds": seconds }))
    }

    /// The told params as an assignment, refusing names the space lacks and
    /// requiring every parameter.
    fn parse_params(&self, params: &Map<String, Value>) -> anyhow::Result<Assignment> {
        if let Some(unknown) = params.keys().find(|k| self.space.get(k).is_none()) {
            bail!("unknown parameter `{unknown}`");
        }
        let mut assignment = Assignment::new();
        for spec in self.space.params() {
            let value = params
                .get(spec.name())
                .with_context(|| format!("parameter `{}` is missing", spec.name()))?;
            let value = match value {
                Value::String(text) => ParamValue::Text(text.clone()),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => ParamValue::Int(i),
                    None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => bail!("parameter `{}`: {other} is not a value", spec.name()),
            };
            assignment.set(spec.name(), value);
        }
        Ok(assignment)
    }
}

impl ParamDef {
    fn into_spec(self) -> anyhow::Result<ParameterSpec> {
        let scale = |log: bool| {
            if log {
                Distribution::LogUniform
            } else {
                Distribution::Uniform
            }
        };
        Ok(match self {
            Self::Double {
                name,
                min,
                max,
                log,
                step,
            } => ParameterSpec::double(name, min, max, step, scale(log))?,
            Self::Int {
                name,
                min,
                max,
                log,
                step,
            } => ParameterSpec::int(name, min, max, step, scale(log))?,
            Self::Categorical { name, choices } => ParameterSpec::categorical(name, choices)?,
            Self::Discrete { name, values } => {
                let values = values
                    .iter()
                    .map(|n| match n.as_i64() {
                        Some(i) => ParamValue::Int(i),
                        None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                    })
                    .collect();
                ParameterSpec::discrete(name, values)?
            }
        })
    }
}

/// Parameter values as JSON: ints as integers, doubles as numbers,
/// categories as strings.
fn assignment_json(assignment: &Assignment) -> anyhow::Result<Map<String, Value>> {
    assignment
        .iter()
        .map(|(name, value)| {
            let json = match value {
                ParamValue::Int(i) => Value::from(*i),
                ParamValue::Float(f) => serde_json::Number::from_f64(*f)
                    .map(Value::Number)
                    .with_context(|| format!("parameter `{name}`: suggested {f}"))?,
                ParamValue::Text(t) => Value::from(t.clone()),
            };
            Ok((name.to_owned(), json))
        })
        .collect()
}

/// Whether a told assignment is the asked one. Numbers compare as numbers
/// (`3` and `3.0` are equal) and doubles within a few ulps, since the caller
/// may have parsed and re-printed them.
fn same_assignment(asked: &Assignment, told: &Assignment) -> bool {
    asked.len() == told.len()
        && asked
            .iter()
            .all(|(name, a)| told.get(name).is_some_and(|b| same_value(a, b)))
}

fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Text(a), ParamValue::Text(b)) => a == b,
        (ParamValue::Int(a), ParamValue::Int(b)) => a == b,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => {
                a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = r#"[{"name":"lr","type":"double","min":1e-05,"max":1.0,"log":true},{"name":"layers","type":"int","min":1,"max":8,"log":false},{"name":"optimizer","type":"categorical","choices":["sgd","adam"]}]"#;

    fn init_line(seed: u64) -> String {
        format!(
            r#"{{"op":"init","function":"test","seed":{seed},"budget":5,"goal":"minimize","space":{SPACE}}}"#
        )
    }

    /// Runs `lines` through `serve` and returns the parsed replies.
    fn session(algorithm: &str, settings: &[&str], lines: &[String]) -> Vec<Value> {
        let owned: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
        let settings = parse_settings(algorithm, &owned).unwrap();
        let input = lines.join("\n") + "\n";
        let mut output = Vec::new();
        serve(algorithm, &settings, input.as_bytes(), &mut output).unwrap();
        String::from_utf8(output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn tell_line(params: &Value, value: &str) -> String {
        format!(r#"{{"op":"tell","params":{params},"value":{value}}}"#)
    }

    #[test]
    fn init_ask_tell_round_trips_values_of_every_type_inside_their_bounds() {
        let mut lines = vec![init_line(7)];
        let first = session("random", &[], &[init_line(7), r#"{"op":"ask"}"#.into()]);
        assert_eq!(first[0], json!({"ok": true}));
        let params = first[1]["params"].clone();
        let lr = params["lr"].as_f64().unwrap();
        assert!((1e-5..=1.0).contains(&lr), "{params}");
        let layers = params["layers"].as_i64().unwrap();
        assert!((1..=8).contains(&layers), "{params}");
        assert!(["sgd", "adam"].contains(&params["optimizer"].as_str().unwrap()));
        assert!(first[1]["cpu_seconds"].as_f64().unwrap() >= 0.0);

        lines.push(r#"{"op":"ask"}"#.into());
        lines.push(tell_line(&params, "0.25"));
        let replies = session("random", &[], &lines);
        assert_eq!(replies[2]["ok"], json!(true), "{replies:?}");
        assert!(replies[2]["cpu_seconds"].as_f64().unwrap() >= 0.0);
    }

    #[test]
    fn the_same_seed_gives_the_same_asks_and_another_seed_does_not() {
        let asks = |seed| {
            let mut lines = vec![init_line(seed)];
            lines.extend((0..3).map(|_| r#"{"op":"ask"}"#.to_owned()));
            session("random", &[], &lines)
        };
        let params = |replies: Vec<Value>| -> Vec<Value> {
            replies.into_iter().map(|r| r["params"].clone()).collect()
        };
        assert_eq!(params(asks(1)), params(asks(1)));
        assert_ne!(params(asks(1)), params(asks(2)));
    }

    #[test]
    fn problems_with_a_request_are_answered_with_an_error_and_the_session_goes_on() {
        let replies = session(
            "sobol",
            &[],
            &[
                "{not json".into(),
                r#"{"op":"ask"}"#.into(),
                r#"{"op":"fly"}"#.into(),
                init_line(0),
                tell_line(&json!({"lr": 0.5, "layers": 2, "optimizer": "sgd"}), "1.0"),
                tell_line(
                    &json!({"lr": 0.5, "layers": 2, "optimizer": "sgd", "x": 1}),
                    "1.0",
                ),
                r#"{"op":"ask"}"#.into(),
            ],
        );
        assert_eq!(replies.len(), 7, "{replies:?}");
        for (i, needle) in [
            (0, "bad request"),
            (1, "ask before init"),
            (2, "bad request"),
            (4, "no pending trial"),
            (5, "unknown parameter `x`"),
        ] {
            let error = replies[i]["error"].as_str().unwrap_or_default();
            assert!(error.contains(needle), "reply {i}: {}", replies[i]);
        }
        assert_eq!(replies[3], json!({"ok": true}));
        assert!(replies[6]["params"].is_object(), "{}", replies[6]);
    }

    #[test]
    fn a_failed_init_ends_the_previous_session() {
        let bad_init = r#"{"op":"init","seed":0,"goal":"minimize","space":[{"name":"lr","type":"double","min":1.0,"max":0.5,"log":false}]}"#;
        let replies = session(
            "random",
            &[],
            &[init_line(0), bad_init.into(), r#"{"op":"ask"}"#.into()],
        );
        assert_eq!(replies[0], json!({"ok": true}));
        assert!(replies[1]["error"].is_string(), "{}", replies[1]);
        let error = replies[2]["error"].as_str().unwrap_or_default();
        assert!(error.contains("ask before init"), "{}", replies[2]);
    }

    #[test]
    fn a_told_trial_is_no_longer_pending_and_nan_marks_it_failed() {
        let mut lines = vec![init_line(3), r#"{"op":"ask"}"#.into()];
        let asked = session("random", &[], &lines)[1]["params"].clone();
        lines.push(tell_line(&asked, "NaN"));
        lines.push(tell_line(&asked, "1.0"));
        let replies = session("random", &[], &lines);
        assert_eq!(replies[2]["ok"], json!(true), "{}", replies[2]);
        assert!(
            replies[3]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no pending trial")),
            "{}",
            replies[3]
        );
    }

    #[test]
    fn external_tells_join_the_history_and_states_are_kept() {
        let lines = vec![init_line(5), r#"{"op":"ask"}"#.into()];
        let asked = session("random", &[], &lines)[1]["params"].clone();
        let outside = json!({"lr": 0.5, "layers": 2, "optimizer": "sgd"});
        let mut lines = lines;
        lines.push(format!(
            r#"{{"op":"tell","params":{outside},"value":1.0,"external":true}}"#
        ));
        lines.push(format!(
            r#"{{"op":"tell","params":{asked},"value":2.0,"state":"pruned"}}"#
        ));
        lines.push(format!(r#"{{"op":"tell","params":{outside},"value":1.0}}"#));
        lines.push(format!(
            r#"{{"op":"tell","params":{outside},"state":"bogus","external":true}}"#
        ));
        let replies = session("random", &[], &lines);
        assert_eq!(replies[2]["ok"], json!(true), "{}", replies[2]);
        assert_eq!(replies[3]["ok"], json!(true), "{}", replies[3]);
        // Not asked and not external: still refused.
        assert!(
            replies[4]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no pending trial")),
            "{}",
            replies[4]
        );
        assert!(replies[5]["error"].is_string(), "{}", replies[5]);
    }

    #[test]
    fn told_states_map_to_trial_states() {
        let settings = parse_settings("random", &[]).unwrap();
        let init: Init = serde_json::from_value(json!({
            "space": [{"name": "x", "type": "double", "min": 0.0, "max": 1.0}]
        }))
        .unwrap();
        let mut s = Session::new("random", &settings, init).unwrap();
        let cases = [
            (
                json!({"x": 0.1, "value": 1.0}),
                TrialState::Succeeded,
                Some(1.0),
            ),
            (json!({"x": 0.2, "value": null}), TrialState::Failed, None),
            (
                json!({"x": 0.3, "value": 1.0, "state": "failed"}),
                TrialState::Failed,
                None,
            ),
            (
                json!({"x": 0.4, "value": 3.0, "state": "pruned"}),
                TrialState::EarlyStopped,
                Some(3.0),
            ),
            (
                json!({"x": 0.5, "state": "pruned"}),
                TrialState::EarlyStopped,
                None,
            ),
            (
                json!({"x": 0.6, "value": 1.0, "state": "killed"}),
                TrialState::Killed,
                None,
            ),
        ];
        for (case, state, objective) in cases {
            let mut tell = json!({"params": {"x": case["x"]}, "external": true});
            for key in ["value", "state"] {
                if let Some(v) = case.get(key) {
                    tell[key] = v.clone();
                }
            }
            let tell: Tell = serde_json::from_value(tell).unwrap();
            s.tell(&tell).unwrap();
            let last = s.history.last().unwrap();
            assert_eq!(last.state, state, "{case}");
            assert_eq!(last.objective, objective, "{case}");
        }
        assert_eq!(s.history.len(), 6);
    }

    #[test]
    fn close_ends_the_session_without_a_reply() {
        let replies = session(
            "random",
            &[],
            &[
                init_line(0),
                r#"{"op":"close"}"#.into(),
                r#"{"op":"ask"}"#.into(),
            ],
        );
        assert_eq!(replies, vec![json!({"ok": true})]);
    }

    #[test]
    fn an_exhausted_grid_says_so() {
        let init =
            r#"{"op":"init","space":[{"name":"o","type":"categorical","choices":["a","b"]}]}"#;
        let mut lines = vec![init.to_owned()];
        let mut replies = Vec::new();
        for _ in 0..3 {
            lines.push(r#"{"op":"ask"}"#.into());
            replies = session("grid", &[], &lines);
            if let Some(params) = replies.last().and_then(|r| r.get("params")) {
                lines.push(tell_line(params, "1.0"));
            }
        }
        let last = replies.last().unwrap();
        assert!(
            last["error"]
                .as_str()
                .is_some_and(|e| e.contains("exhausted")),
            "{replies:?}"
        );
    }

    #[test]
    fn unknown_algorithms_and_settings_are_refused_before_reading_input() {
        assert!(parse_settings("bogus", &[]).is_err());
        assert!(parse_settings("random", &["nokey".into()]).is_err());
        assert!(parse_settings("random", &["seed=1".into()]).is_err());
        assert!(parse_settings("random", &["random_state=1".into()]).is_ok());
    }

    #[test]
    fn python_style_nan_is_read_as_null_outside_strings_only() {
        assert_eq!(
            non_finite_as_null(r#"{"value":NaN,"s":"NaN","t":-Infinity}"#).as_deref(),
            Some(r#"{"value":null,"s":"NaN","t":null}"#)
        );
        assert_eq!(non_finite_as_null(r#"{"value":1}"#), None);
    }

    #[test]
    fn a_suggester_that_cannot_be_built_for_the_space_is_an_error_reply_at_init() {
        // Grid needs a step on every double; `lr` has none. Not-implemented
        // algorithms are refused the same way.
        let replies = session("grid", &[], &[init_line(0), r#"{"op":"ask"}"#.into()]);
        assert!(
            replies[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("step")),
            "{}",
            replies[0]
        );
        assert!(replies[1]["error"].is_string(), "{}", replies[1]);
    }
}
