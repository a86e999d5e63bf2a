//! The `ktune` binary, driven as a user would: exit statuses, output modes,
//! and refusal of bad files without panics.

mod support;

use std::io::Write;

use support::{describe, ktune};

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ktune-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

#[test]
fn help_lists_the_commands() {
    let out = ktune(&["--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["validate", "suggest", "crds"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn the_project_examples_are_valid() {
    let root = support::repo_root().join("examples");
    let examples: Vec<String> = [root.clone(), root.join("python")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        examples.iter().any(|e| e.contains("python/lora")),
        "{examples:?}"
    );
    let mut args = vec!["validate", "--strict"];
    args.extend(examples.iter().map(String::as_str));
    let out = ktune(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn an_invalid_experiment_exits_1_and_names_every_field() {
    let path = write_temp(
        "bad.yaml",
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: bad}
spec:
  objective: {type: minimise, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: -1
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.5", max: "0.1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: main, image: x, command: ["t", "${trialParameters.lr}"]}]}}}
"#,
    );
    let out = ktune(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "spec.objective.type",
        "spec.parallelTrialCount",
        "spec.parameters[0].feasibleSpace.min",
    ] {
        assert!(text.contains(field), "{field} missing in\n{text}");
    }
}

#[test]
fn usage_errors_and_unreadable_files_exit_2() {
    assert_eq!(ktune(&["validate"]).status.code(), Some(2));
    assert_eq!(ktune(&["frobnicate"]).status.code(), Some(2));
    let out = ktune(&["validate", "/no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn every_command_exits_1_for_a_field_of_the_wrong_type_or_no_experiment() {
    // `run` used to exit 2 (a usage error) where `validate` said 1.
    let wrong = write_temp(
        "wrong-type.yaml",
        "apiVersion: ktune.dev/v1beta1\nkind: Experiment\nmetadata: {name: x}\nspec: {maxTrialCount: many}\n",
    );
    let empty = write_temp("empty.yaml", "");
    for file in [&wrong, &empty] {
        let file = file.to_str().unwrap();
        for command in ["validate", "suggest", "run"] {
            let out = ktune(
                &[command, file, "--db", "sqlite::memory:"][..if command == "run" { 4 } else { 2 }],
            );
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command} {file}: {}",
                describe(&out)
            );
        }
        let out = ktune(&["run", file, "--db", "sqlite::memory:"]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("spec.maxTrialCount") || text.contains("empty.yaml"),
            "{text}"
        );
    }
}

#[test]
fn names_from_a_file_are_printed_with_control_characters_escaped() {
    let file = write_temp(
        "escape.yaml",
        "apiVersion: ktune.dev/v1beta1\nkind: Experiment\nmetadata: {name: \"a\\e]0;pwned\\a\\rb\"}\nspec: {maxTrialCount: 1}\n",
    );
    let out = ktune(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a\\u{1b}]0;pwned\\u{7}\\u{d}b"), "{text}");
    assert!(
        !out.stdout
            .iter()
            .any(|b| *b == 0x1b || *b == 0x07 || *b == b'\r')
    );
}

#[test]
fn commands_that_only_look_never_create_a_database() {
    let dir = support::scratch("read-only");
    let path = dir.join("nothere.db");
    let db = format!("sqlite:{}", path.display());
    for args in [
        vec!["status"],
        vec!["trials", "x"],
        vec!["best", "x"],
        vec!["logs", "x-0001"],
    ] {
        let mut args = args;
        args.extend(["--db", &db]);
        let out = ktune(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("no database at"), "{args:?}: {text}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

#[test]
fn garbage_files_are_refused_without_a_panic() {
    let cases = [
        ("binary.yaml", "\u{0}\u{1}\u{2}garbage: [unclosed".to_owned()),
        ("list.yaml", "- a\n- b\n".to_owned()),
        ("deep.yaml", format!("{}x{}", "[".repeat(5000), "]".repeat(5000))),
        ("wrongtype.yaml", "apiVersion: ktune.dev/v1beta1\nkind: Experiment\nmetadata: {name: x}\nspec: {maxTrialCount: many}\n".to_owned()),
        ("version.yaml", "apiVersion: kubeflow.org/v1alpha3\nkind: Experiment\nmetadata: {name: x}\n".to_owned()),
    ];
    for (name, text) in cases {
        let path = write_temp(name, &text);
        let out = ktune(&["validate", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {}", describe(&out));
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{name}: {}",
            describe(&out)
        );
    }
}

#[test]
fn yaml_output_is_the_defaulted_experiment_and_validates_again() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let random = dir.join("hp-tuning/random.yaml");
    let out = ktune(&["validate", "-o", "yaml", random.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let yaml = String::from_utf8(out.stdout).unwrap();
    // The input's group is kept: Katib's YAML stays Katib's (the
    // controller serves either group; `ktune convert` makes ktune's).
    assert!(yaml.contains("apiVersion: kubeflow.org/v1beta1"), "{yaml}");
    assert!(
        yaml.contains("metricStrategies"),
        "defaults are applied: {yaml}"
    );
    let path = write_temp("defaulted.yaml", &yaml);
    let again = ktune(&["validate", "--strict", path.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
}

#[test]
fn configmap_templates_resolve_from_files_given_alongside() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let experiment = dir.join("trial-template/trial-configmap-source.yaml");
    let configmap = dir.join("_extra/trial-templates-configmap.yaml");
    let alone = ktune(&["validate", experiment.to_str().unwrap()]);
    assert_eq!(
        alone.status.code(),
        Some(0),
        "unresolved ConfigMaps only warn: {}",
        describe(&alone)
    );
    let together = ktune(&[
        "validate",
        experiment.to_str().unwrap(),
        configmap.to_str().unwrap(),
    ]);
    // Katib's example template uses ${trialParameters.momentum}, which the experiment does not declare.
    assert_eq!(together.status.code(), Some(1), "{}", describe(&together));
    assert!(String::from_utf8_lossy(&together.stdout).contains("momentum"));
}

#[test]
fn crds_command_prints_both_definitions() {
    let out = ktune(&["crds"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name: experiments.ktune.dev"));
    assert!(text.contains("name: trials.ktune.dev"));
}

#[test]
fn suggest_renders_each_trials_command_from_the_algorithm() {
    let out = ktune(&["suggest", "examples/grid.yaml", "-n", "4", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 4);
    assert_eq!(trials[0]["parameters"]["lr"], "0.01");
    assert_eq!(
        trials[0]["workload"]["metadata"]["name"],
        "grid-quadratic-0001"
    );
    let command: Vec<&str> = trials[1]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command,
        [
            "python3",
            "examples/trials/quadratic.py",
            "--lr=0.01",
            "--momentum=0.65"
        ]
    );
}

#[test]
fn suggest_is_deterministic_for_a_seed_and_grid_reports_exhaustion() {
    let a = ktune(&["suggest", "examples/random.yaml", "-n", "5", "--seed", "7"]);
    let b = ktune(&["suggest", "examples/random.yaml", "-n", "5", "--seed", "7"]);
    assert_eq!(a.stdout, b.stdout);
    let all = ktune(&["suggest", "examples/grid.yaml", "-n", "1000"]);
    let text = String::from_utf8_lossy(&all.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("grid-quadratic-"))
            .count(),
        20,
        "{text}"
    );
    assert!(text.contains("exhausted"), "{text}");
}

#[test]
fn suggest_refuses_an_experiment_katib_refuses_naming_the_field() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let out = ktune(&[
        "suggest",
        dir.join("hp-tuning/simple-pbt.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.maxFailedTrialCount"),
        "{}",
        describe(&out)
    );
}

/// Katib's DARTS examples: every trial gets the same three parameters in
/// Katib's formats (the settings over DARTS's defaults, the operations
/// expanded by filter size, the layer count).
#[test]
fn darts_examples_suggest_katib_shaped_assignments() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    for (file, space, layers) in [
        ("nas/darts-cpu.yaml", "['max_pooling_3x3']", "1"),
        (
            "nas/darts-gpu.yaml",
            "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', \
             'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']",
            "3",
        ),
    ] {
        let path = dir.join(file);
        let out = ktune(&["suggest", path.to_str().unwrap(), "-n", "2", "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", describe(&out));
        let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let trials = trials.as_array().unwrap();
        assert_eq!(trials.len(), 2);
        assert_eq!(trials[0]["parameters"], trials[1]["parameters"], "{file}");
        let parameters = &trials[0]["parameters"];
        assert_eq!(parameters["search-space"], space, "{file}");
        assert_eq!(parameters["num-layers"], layers, "{file}");
        let settings = parameters["algorithm-settings"].as_str().unwrap();
        assert!(settings.starts_with("{'num_epochs': "), "{settings}");
        assert!(
            settings.contains("'w_lr': 0.025, 'w_lr_min': 0.001"),
            "{settings}"
        );
    }
}

/// Writes `yaml` as `<dir>/<name>.yaml`, runs it with `-o json` and
/// returns the output and its summary (the last line), once it succeeded.
fn run_json(
    dir: &std::path::Path,
    name: &str,
    yaml: &str,
) -> (std::process::Output, serde_json::Value) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = support::runs::run_in(dir, &file, &["-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    (out, summary)
}

/// Katib's PBT example (its one defect mended: it allows more failed trials
/// than trials, which Katib's webhook refuses too) suggests a first
/// generation from the space, with Katib's generation label.
#[test]
fn the_pbt_example_suggests_a_first_generation() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("hp-tuning/simple-pbt.yaml")).unwrap();
    let scratch = support::scratch("pbt-suggest");
    let path = scratch.join("simple-pbt.yaml");
    std::fs::write(
        &path,
        text.replace("maxFailedTrialCount: 3", "maxFailedTrialCount: 2"),
    )
    .unwrap();
    let out = ktune(&["suggest", path.to_str().unwrap(), "-n", "2", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, trial) in trials.as_array().unwrap().iter().enumerate() {
        let lr: f64 = trial["parameters"]["lr"].as_str().unwrap().parse().unwrap();
        assert!((0.0001..=0.02).contains(&lr), "{trial}");
        let labels = &trial["labels"];
        assert_eq!(labels["pbt.suggestion.katib.kubeflow.org/generation"], "0");
        assert_eq!(labels["pbt.ktune.dev/member"], i.to_string());
        assert!(
            labels
                .get("pbt.suggestion.katib.kubeflow.org/parent")
                .is_none()
        );
    }
}

/// Katib's ENAS examples: each trial gets `architecture` (a list per layer:
/// op id, then a skip bit per earlier layer) and `nn_config` (the graph
/// and the operations the architecture uses), in Katib's quoting, with op
/// ids numbered as Katib's service numbers every combination of an
/// operation's parameter values.
#[test]
fn enas_examples_suggest_katib_shaped_assignments() {
    let Some(dir) = support::katib_examples() else {
        return;
    };
    for (file, layers) in [("nas/enas-cpu.yaml", 1), ("nas/enas-gpu.yaml", 8)] {
        let path = dir.join(file);
        let out = ktune(&["suggest", path.to_str().unwrap(), "-n", "3", "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", describe(&out));
        let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let trials = trials.as_array().unwrap();
        assert_eq!(trials.len(), 3, "{file}");
        for trial in trials {
            let parameters = &trial["parameters"];
            let architecture = parameters["architecture"].as_str().unwrap();
            let config = parameters["nn_config"].as_str().unwrap();
            assert!(config.starts_with("{'num_layers': "), "{config}");
            // RunTrial.py: replace("'", '"'), then json.loads.
            let arch: Vec<Vec<u64>> =
                serde_json::from_str(&architecture.replace('\'', "\"")).unwrap();
            let config: serde_json::Value =
                serde_json::from_str(&config.replace('\'', "\"")).unwrap();
            assert_eq!(arch.len(), layers, "{architecture}");
            assert_eq!(config["num_layers"], layers);
            assert_eq!(config["input_sizes"], serde_json::json!([32, 32, 3]));
            assert_eq!(config["output_sizes"], serde_json::json!([10]));
            let embedding = config["embedding"].as_object().unwrap();
            for (l, layer) in arch.iter().enumerate() {
                assert_eq!(layer.len(), l + 1, "{architecture}");
                assert!(layer[1..].iter().all(|&b| b <= 1), "{architecture}");
                let op = layer[0];
                assert!(op < 106, "{architecture}");
                let entry = &embedding[&op.to_string()];
                assert_eq!(entry["opt_id"], op);
                let params = &entry["opt_params"];
                // Katib's order: convolution 3×5×2 = ids 0–29, separable
                // 3×5×2×2 = 30–89, depthwise 3×2×2 = 90–101, reduction 2×2.
                match op {
                    0..=29 => {
                        assert_eq!(entry["opt_type"], "convolution");
                        assert_eq!(params["filter_size"], ["3", "5", "7"][(op / 10) as usize]);
                        assert_eq!(
                            params["num_filter"],
                            ["32", "48", "64", "96", "128"][(op / 2 % 5) as usize]
                        );
                        assert_eq!(params["stride"], ["1", "2"][(op % 2) as usize]);
                    }
                    30..=89 => assert_eq!(entry["opt_type"], "separable_convolution"),
                    90..=101 => assert_eq!(entry["opt_type"], "depthwise_convolution"),
                    _ => {
                        assert_eq!(entry["opt_type"], "reduction");
                        let k = op - 102;
                        assert_eq!(
                            params["reduction_type"],
                            ["max_pooling", "avg_pooling"][(k / 2) as usize]
                        );
                        // An int parameter: a JSON integer, not a string.
                        assert_eq!(params["pool_size"], 2 + k % 2);
                    }
                }
            }
            let used: std::collections::BTreeSet<String> =
                arch.iter().map(|l| l[0].to_string()).collect();
            assert_eq!(
                embedding
                    .keys()
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>(),
                used
            );
        }
    }
}

/// A DARTS trial reports its genotype, not a number: Katib accepts it, so
/// the trial succeeds and is the best.
#[test]
fn a_darts_trial_reporting_a_genotype_succeeds_and_is_the_best() {
    let dir = support::scratch("darts-run");
    let yaml = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: darts-local}
spec:
  maxTrialCount: 1
  parallelTrialCount: 1
  objective: {type: maximize, objectiveMetricName: Best-Genotype}
  metricsCollectorSpec:
    source: {filter: {metricsFormat: ["([\\w-]+)=(Genotype.*)"]}}
  algorithm:
    algorithmName: darts
    algorithmSettings: [{name: num_epochs, value: "1"}]
  nasConfig:
    graphConfig: {numLayers: 2}
    operations:
      - operationType: max_pooling
        parameters:
          - {name: filter_size, parameterType: categorical, feasibleSpace: {list: ["3"]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: searchSpace, reference: search-space}
      - {name: layers, reference: num-layers}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: x
                command: ["sh", "-c", "echo \"Best-Genotype=Genotype(normal=[$1 x $2])\"", "t", "${trialParameters.searchSpace}", "${trialParameters.layers}"]
"#;
    let (out, summary) = run_json(&dir, "darts", yaml);
    assert_eq!(summary["counts"]["succeeded"], 1, "{}", describe(&out));
    assert_eq!(summary["best"]["trial"], "darts-local-0001", "{summary}");
    assert_eq!(
        summary["best"]["metrics"]["Best-Genotype"], "Genotype(normal=[['max_pooling_3x3'] x 2])",
        "{summary}"
    );
}

/// An ENAS experiment runs to the end locally: every trial gets an
/// architecture of the graph's shape, its objective is read back, and the
/// controller is retrained from the history between rounds.
#[test]
fn an_enas_experiment_runs_to_the_end() {
    let dir = support::scratch("enas-run");
    let yaml = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: enas-local}
spec:
  maxTrialCount: 6
  parallelTrialCount: 2
  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm:
    algorithmName: enas
    algorithmSettings:
      - {name: controller_hidden_size, value: "8"}
      - {name: controller_train_steps, value: "5"}
  nasConfig:
    graphConfig: {numLayers: 3, inputSizes: [8], outputSizes: [2]}
    operations:
      - operationType: convolution
        parameters:
          - {name: filter_size, parameterType: categorical, feasibleSpace: {list: ["3", "5"]}}
          - {name: stride, parameterType: int, feasibleSpace: {min: "1", max: "2"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: arch, reference: architecture}
      - {name: config, reference: nn_config}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: x
                command: ["sh", "-c", "echo \"accuracy=0.$(printf '%s' \"$1\" | tr -cd 1 | wc -c)\"", "t", "${trialParameters.arch}", "${trialParameters.config}"]
"#;
    let (out, summary) = run_json(&dir, "enas", yaml);
    assert_eq!(summary["counts"]["succeeded"], 6, "{}", describe(&out));
    let best = &summary["best"];
    let arch: Vec<Vec<u64>> = serde_json::from_str(
        best["parameters"]["architecture"]
            .as_str()
            .unwrap_or_else(|| panic!("{summary}")),
    )
    .unwrap();
    assert_eq!(arch.len(), 3, "{summary}");
    assert!(arch.iter().all(|l| l[0] < 4), "{summary}");
}

/// An empty file (or one of other kinds only) is named when there is
/// nothing to validate, convert or run in it.
#[test]
fn a_file_without_an_experiment_is_named() {
    let dir = support::scratch("empty-file");
    let empty = dir.join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let path = empty.to_str().unwrap();
    for command in ["validate", "convert", "run"] {
        let out = ktune(
            &[command, path, "--db", "sqlite::memory:"][..if command == "run" { 4 } else { 2 }],
        );
        assert_eq!(out.status.code(), Some(1), "{command}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(&format!("no Experiment document in {path}")),
            "{command}: {}",
            describe(&out)
        );
    }
}
