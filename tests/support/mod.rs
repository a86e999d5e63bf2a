//! Shared fixtures for the integration tests: where `../shared` is, the
//! `ktune` binary, and Katib's example files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/katib-examples`, or `None` (with a visible message) where it
/// is absent. Under `CI=true` its absence fails the test instead.
pub fn katib_examples() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/katib-examples");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing, and CI=true requires it",
        dir.display()
    );
    eprintln!(
        "SKIPPED: {} not found; Katib example tests did not run",
        dir.display()
    );
    None
}

/// Every Experiment YAML under `dir` (recursively), sorted; `_extra/` is left out.
pub fn experiment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "_extra") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs the `ktune` binary with `args` in the repository root.
pub fn ktune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

/// Standard output and error of a run, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
