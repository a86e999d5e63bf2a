//! `ktune ask-tell` driven as the peer benchmark drives it: a child process
//! answering one JSON line per request, interactively.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A running `ktune ask-tell` with its pipes.
struct AskTell {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl AskTell {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ktune"))
            .arg("ask-tell")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one line and reads the one reply (the child flushes each).
    fn request(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
    }

    /// Sends `close` and returns the exit code.
    fn close(mut self) -> Option<i32> {
        writeln!(self.stdin, r#"{{"op":"close"}}"#).unwrap();
        drop(self.stdin);
        self.child.wait().unwrap().code()
    }
}

fn init() -> Value {
    json!({
        "op": "init", "function": "mixed", "seed": 0, "budget": 20, "goal": "minimize",
        "space": [
            {"name": "lr", "type": "double", "min": 1e-05, "max": 1.0, "log": true},
            {"name": "layers", "type": "int", "min": 1, "max": 8, "log": false},
            {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam"]},
            {"name": "dropout", "type": "double", "min": 0.0, "max": 0.5, "step": 0.1},
        ]
    })
}

fn check_params(params: &Value) {
    let lr = params["lr"].as_f64().unwrap();
    assert!((1e-5..=1.0).contains(&lr), "{params}");
    // An int parameter arrives as a JSON integer, not as 3.0.
    let layers = params["layers"].as_i64().unwrap();
    assert!((1..=8).contains(&layers), "{params}");
    assert!(
        ["sgd", "adam"].contains(&params["optimizer"].as_str().unwrap()),
        "{params}"
    );
    let dropout = params["dropout"].as_f64().unwrap();
    assert!((0.0..=0.5).contains(&dropout), "{params}");
    let k = dropout / 0.1;
    assert!(
        (k - k.round()).abs() < 1e-9,
        "dropout off its step: {params}"
    );
    assert_eq!(params.as_object().unwrap().len(), 4, "{params}");
}

fn drive(algorithm: &str) {
    let mut process = AskTell::start(&["--algorithm", algorithm]);
    assert_eq!(process.request(&init().to_string()), json!({"ok": true}));
    let mut seen = Vec::new();
    for i in 0..20 {
        let reply = process.request(r#"{"op":"ask"}"#);
        let params = &reply["params"];
        check_params(params);
        assert!(reply["cpu_seconds"].as_f64().unwrap() >= 0.0, "{reply}");
        let value = if i % 7 == 6 {
            Value::Null
        } else {
            json!(params["lr"].as_f64().unwrap() * f64::from(i))
        };
        let told =
            process.request(&json!({"op": "tell", "params": params, "value": value}).to_string());
        assert_eq!(told["ok"], json!(true), "{algorithm}: {told}");
        seen.push(params.clone());
    }
    seen.dedup();
    assert!(seen.len() > 10, "{algorithm} repeats itself: {seen:?}");
    // A request error is answered, and the session goes on.
    let error = process.request(r#"{"op":"tell","params":{"nope":1},"value":1}"#);
    assert!(
        error["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{error}"
    );
    let error = process.request("this is not json");
    assert!(error["error"].is_string(), "{error}");
    check_params(&process.request(r#"{"op":"ask"}"#)["params"]);
    assert_eq!(process.close(), Some(0));
}

#[test]
fn random_answers_twenty_asks_and_tells_inside_the_space() {
    drive("random");
}

#[test]
fn sobol_answers_twenty_asks_and_tells_inside_the_space() {
    drive("sobol");
}

#[test]
fn end_of_input_exits_0_and_an_unknown_algorithm_exits_2() {
    let mut process = AskTell::start(&["--algorithm", "random"]);
    assert!(process.request(r#"{"op":"ask"}"#)["error"].is_string());
    drop(process.stdin);
    assert_eq!(process.child.wait().unwrap().code(), Some(0));

    let out = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["ask-tell", "--algorithm", "bogus"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn the_readme_transcript_replays_as_printed() {
    // The README's session must be one a reader can paste: its requests,
    // sent to the command it names, give its answers (but for timings).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Ask and tell from any program")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let algorithm = section
        .split("--algorithm ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    let lines: Vec<&str> = section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .collect();
    assert!(lines.len() >= 6, "{lines:?}");
    let mut process = AskTell::start(&["--algorithm", algorithm]);
    let without_timing = |mut v: Value| {
        if let Some(map) = v.as_object_mut() {
            map.remove("cpu_seconds");
        }
        v
    };
    for pair in lines.chunks(2) {
        if pair.len() < 2 {
            assert_eq!(pair[0], r#"{"op":"close"}"#);
            break;
        }
        let printed: Value = serde_json::from_str(pair[1]).unwrap();
        let reply = process.request(pair[0]);
        assert_eq!(
            without_timing(reply),
            without_timing(printed),
            "after {}",
            pair[0]
        );
    }
    assert_eq!(process.close(), Some(0));
}
