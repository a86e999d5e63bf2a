//! Population based training with `ktune run`: real processes, each
//! trial's checkpoint folder a copy of its parent's, and a `kill -9` in
//! the middle losing no generation.

mod support;

use std::time::Duration;

use ktune::store::Store as _;
use support::runs::{finish, spawn, wait_until};
use support::{check_pbt_run, describe, pbt_experiment_yaml, scratch};

/// The run's trials: name, labels and standard output.
fn trials_of(
    dir: &std::path::Path,
    name: &str,
) -> Vec<(String, std::collections::BTreeMap<String, String>, String)> {
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ktune::store::SqlStore::connect(&db).await.ok()?;
        let experiment = store.experiment(name).await.ok()??;
        store.trials(experiment.id).await.ok()
    });
    rows.unwrap_or_default()
        .into_iter()
        .map(|t| {
            let out = std::fs::read_to_string(
                dir.join("trials")
                    .join(name)
                    .join(&t.name)
                    .join("stdout.log"),
            )
            .unwrap_or_default();
            (t.name, t.labels, out)
        })
        .collect()
}

#[test]
fn children_start_from_their_parents_checkpoints_across_a_crash() {
    let dir = scratch("pbt-local");
    let name = "pbt-local";
    let file = dir.join("pbt.yaml");
    std::fs::write(&file, pbt_experiment_yaml(name)).unwrap();
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let args = support::runs::run_args(&dir, &db, &file, &[]);

    // Killed once the second generation has begun, then resumed.
    let child = spawn(&args);
    wait_until(Duration::from_secs(60), "a second generation", || {
        dir.join("k.db").exists()
            && trials_of(&dir, name).iter().any(|(_, l, _)| {
                l.get("pbt.suggestion.katib.kubeflow.org/generation")
                    .map(String::as_str)
                    == Some("1")
            })
    });
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    let before = trials_of(&dir, name).len();
    assert!(before < 15, "killed too late: {before} trials");

    let out = finish(spawn(&args), Duration::from_secs(120));
    assert!(out.status.success(), "{}", describe(&out));
    let trials = trials_of(&dir, name);
    check_pbt_run(&trials);

    // Each trial's checkpoint lives in its own folder.
    for (trial, _, _) in &trials {
        assert!(
            dir.join("trials")
                .join(name)
                .join(trial)
                .join("checkpoint/step")
                .is_file(),
            "{trial}"
        );
    }
}
