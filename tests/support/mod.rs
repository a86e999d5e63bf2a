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

/// A PBT Experiment (namespace `default`) over one `lr` whose trial is a
/// shell script that continues the step count in its checkpoint folder
/// (`suggestion_trial_dir`, `/var/log/katib/checkpoints`): it prints
/// `from=<trial>` naming whoever wrote the checkpoint it starts from, then
/// `epoch=N` for two more steps and `accuracy=…` (best near lr 0.05,
/// growing with the steps), and signs the checkpoint with its own name.
/// Five members, three generations, three trials at a time.
pub fn pbt_experiment_yaml(name: &str) -> String {
    let script = r#"sleep 0.3; ck=/var/log/katib/checkpoints; step=0
if [ -f "$ck/step" ]; then step=$(cat "$ck/step"); echo "from=$(cat "$ck/owner")"; fi
for _ in 1 2; do step=$((step + 1)); echo "epoch=$step"; done
awk -v lr="$1" -v s="$step" 'BEGIN { printf "accuracy=%.6f\n", s / 10 - (lr - 0.05) ^ 2 * 100 }'
echo "$step" > "$ck/step"; echo "$2" > "$ck/owner""#;
    format!(
        r#"
apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: {name}, namespace: default}}
spec:
  objective: {{type: maximize, objectiveMetricName: accuracy, additionalMetricNames: [epoch]}}
  algorithm:
    algorithmName: pbt
    algorithmSettings:
      - {{name: suggestion_trial_dir, value: /var/log/katib/checkpoints/}}
      - {{name: n_population, value: "5"}}
      - {{name: truncation_threshold, value: "0.4"}}
      - {{name: random_state, value: "3"}}
  resumePolicy: FromVolume
  parallelTrialCount: 3
  maxTrialCount: 15
  parameters:
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.01", max: "0.1", step: "0.001"}}}}
  trialTemplate:
    primaryContainerName: main
    retain: true
    trialParameters:
      - {{name: lr, reference: lr}}
      - {{name: trialName, reference: "${{trialSpec.Name}}"}}
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
                command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.lr}}", "${{trialParameters.trialName}}"]
"#
    )
}

/// What a PBT trial of [`pbt_experiment_yaml`] printed: whose checkpoint
/// it started from, and its first and last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbtSteps {
    /// The `from=` line: the trial that wrote the checkpoint it started from.
    pub from: Option<String>,
    /// Its first `epoch=`.
    pub first: u64,
    /// Its last `epoch=`.
    pub last: u64,
}

/// Reads a [`pbt_experiment_yaml`] trial's output.
pub fn pbt_steps(output: &str) -> PbtSteps {
    let value = |key: &'static str| {
        output
            .lines()
            .filter_map(move |l| l.trim().strip_prefix(key))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let epochs: Vec<u64> = value("epoch=")
        .iter()
        .filter_map(|e| e.parse().ok())
        .collect();
    PbtSteps {
        from: value("from=").into_iter().next(),
        first: epochs.first().copied().unwrap_or_default(),
        last: epochs.last().copied().unwrap_or_default(),
    }
}

/// Checks a finished run of [`pbt_experiment_yaml`]: three generations of
/// five; every child names its parent in Katib's label, starts from the
/// parent's checkpoint (its `from=`) and continues the parent's steps;
/// at least one member was exploited (its parent is another member's).
/// `trials` holds each trial's name, labels and output.
pub fn check_pbt_run(trials: &[(String, std::collections::BTreeMap<String, String>, String)]) {
    const GENERATION: &str = "pbt.suggestion.katib.kubeflow.org/generation";
    const PARENT: &str = "pbt.suggestion.katib.kubeflow.org/parent";
    const MEMBER: &str = "pbt.ktune.dev/member";
    assert_eq!(trials.len(), 15, "{trials:#?}");
    let steps: std::collections::BTreeMap<&str, PbtSteps> = trials
        .iter()
        .map(|(name, _, out)| (name.as_str(), pbt_steps(out)))
        .collect();
    let slot = |generation: &str, member: &str| {
        trials
            .iter()
            .find(|(_, l, _)| {
                l.get(GENERATION).map(String::as_str) == Some(generation)
                    && l.get(MEMBER).map(String::as_str) == Some(member)
            })
            .map(|(n, _, _)| n.clone())
    };
    let mut exploited = 0;
    for (name, labels, out) in trials {
        let generation: u64 = labels[GENERATION].parse().unwrap();
        let s = &steps[name.as_str()];
        let Some(parent) = labels.get(PARENT) else {
            assert_eq!(generation, 0, "{name}: no parent");
            if s.from.as_deref() != Some(name.as_str()) {
                assert_eq!((s.from.as_deref(), s.first), (None, 1), "{name}: {out}");
            }
            continue;
        };
        let p = &steps[parent.as_str()];
        // A trial run again after a crash resumes from its own checkpoint
        // when it had written one.
        if s.from.as_deref() != Some(name.as_str()) {
            assert_eq!(
                s.from.as_deref(),
                Some(parent.as_str()),
                "{name}'s checkpoint: {out}"
            );
            assert_eq!(s.first, p.last + 1, "{name} continues {parent}'s steps");
        }
        let own_line = slot(&(generation - 1).to_string(), &labels[MEMBER]);
        if own_line.as_deref() != Some(parent.as_str()) {
            exploited += 1;
        }
    }
    let last_generation = trials
        .iter()
        .filter(|(_, l, _)| l[GENERATION] == "2")
        .count();
    assert_eq!(last_generation, 5, "three generations of five");
    assert!(exploited > 0, "no member copied another's checkpoint");
}
