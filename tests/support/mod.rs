//! Shared fixtures for the integration tests: where `../shared` is, the
//! `ktune` binary, Katib's example files, scratch folders, experiments whose
//! trials are shell scripts, and (in [`cluster`]) a fake Kubernetes cluster.
#![allow(dead_code)]

pub mod cluster;
pub mod dashboard;
pub mod runs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root. The runtime `CARGO_MANIFEST_DIR` (set by cargo and
/// nextest) comes first: a test binary reused from a build of another
/// checkout must not read that checkout's files.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
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

/// A fresh, empty folder for one test (unique per test binary run).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktune-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `<dir>/<name>.yaml`: a grid experiment over one categorical
/// `mode` whose trial is the shell `script` (`$1` is the mode), minimising
/// `loss` two trials at a time unless `extra` (spec lines, indented by two)
/// says otherwise.
pub fn shell_experiment(
    dir: &Path,
    name: &str,
    script: &str,
    modes: &[&str],
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, shell_experiment_yaml(name, script, modes, extra)).unwrap();
    path
}

/// The text of [`shell_experiment`]'s Experiment (in namespace `default`,
/// so a cluster test can submit it as it is).
pub fn shell_experiment_yaml(name: &str, script: &str, modes: &[&str], extra: &str) -> String {
    let list = modes
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let objective = if extra.contains("objective:") {
        ""
    } else {
        "  objective: {type: minimize, objectiveMetricName: loss}"
    };
    let parallel = if extra.contains("parallelTrialCount") {
        ""
    } else {
        "  parallelTrialCount: 2"
    };
    format!(
        r#"
apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: {name}, namespace: default}}
spec:
{objective}
  algorithm: {{algorithmName: grid}}
{parallel}
{extra}
  parameters:
    - {{name: mode, parameterType: categorical, feasibleSpace: {{list: [{list}]}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: mode, reference: mode}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]
"#
    )
}

/// An Experiment in namespace `default` for a cluster test: grid over a
/// categorical `mode` of "2" and "1", both trials at once, minimising
/// `loss`. `spec_extra` adds spec fields (lines indented by 2, e.g. the
/// metrics collector), `container` is the primary container,
/// `template_extra` adds trialTemplate fields (indented by 4) and
/// `trial_spec` is the trial's resource (indented by 6; the trial sees its
/// mode as `${trialParameters.mode}`).
pub fn two_mode_experiment(
    name: &str,
    spec_extra: &str,
    container: &str,
    template_extra: &str,
    trial_spec: &str,
) -> String {
    format!(
        r#"apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: {name}, namespace: default}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
{spec_extra}
  parameters:
    - {{name: mode, parameterType: categorical, feasibleSpace: {{list: ["2", "1"]}}}}
  trialTemplate:
    primaryContainerName: {container}
    trialParameters: [{{name: mode, reference: mode}}]
{template_extra}
    trialSpec:
{trial_spec}
"#
    )
}
