//! One conformance suite for the store, run on SQLite and on the real
//! PostgreSQL server (`KTUNE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a reachable server
//! the PostgreSQL run is skipped with a message, except under `CI=true`.

use ktune::store::Store as _;
use std::collections::BTreeMap;

use ktune::store::{ExperimentState, NewTrial, ObservationRow, SqlStore, TrialOutcome};
use ktune_algorithms::history::TrialState;
use ktune_algorithms::suggest::AlgorithmState;

/// A name no other test run uses (PostgreSQL's tables are shared).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn trial(name: &str, lr: &str) -> NewTrial {
    NewTrial {
        name: name.to_owned(),
        assignment: vec![("lr".to_owned(), lr.to_owned())],
        labels: BTreeMap::from([("bracket".to_owned(), "0".to_owned())]),
    }
}

fn outcome(state: TrialState, objective: Option<f64>, at: i64) -> TrialOutcome {
    TrialOutcome {
        state,
        reason: format!("Trial{state:?}"),
        message: String::new(),
        objective,
        at,
    }
}

async fn conformance(store: &SqlStore) {
    let name = unique("conformance");
    let spec = serde_json::json!({"spec": {"maxTrialCount": 3}});
    let (exp, created) = store.create_experiment(&name, &spec, 1_000).await.unwrap();
    assert!(created);
    assert_eq!(exp.state, ExperimentState::Created);
    assert_eq!(exp.spec, spec);
    let (again, created) = store
        .create_experiment(&name, &serde_json::json!({}), 2_000)
        .await
        .unwrap();
    assert!(!created, "creating twice keeps the first");
    assert_eq!(again, exp);

    // Trials: inserted before launch, idempotent by name, ordered.
    let new = [trial("a", "0.1"), trial("b", "0.2")];
    assert_eq!(store.insert_trials(exp.id, &new, 1_100).await.unwrap(), 2);
    assert_eq!(
        store
            .insert_trials(exp.id, &[trial("b", "9"), trial("c", "0.3")], 1_200)
            .await
            .unwrap(),
        1
    );
    let trials = store.trials(exp.id).await.unwrap();
    let names: Vec<_> = trials.iter().map(|t| (t.seq, t.name.as_str())).collect();
    assert_eq!(names, [(1, "a"), (2, "b"), (3, "c")]);
    assert_eq!(
        trials[1].assignment,
        [("lr".to_owned(), "0.2".to_owned())],
        "the first insert wins"
    );
    assert_eq!(trials[0].state, TrialState::Pending);
    assert_eq!(trials[0].labels["bracket"], "0");

    // Transitions are compare-and-set and stamp times.
    let a = trials[0].id;
    assert!(
        store
            .transition(
                a,
                &[TrialState::Pending],
                &outcome(TrialState::Running, None, 1_300)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition(
                a,
                &[TrialState::Pending],
                &outcome(TrialState::Running, None, 1_400)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .transition(
                a,
                &[TrialState::Running],
                &outcome(TrialState::Succeeded, Some(0.25), 1_500)
            )
            .await
            .unwrap()
    );
    let a_row = store.trials(exp.id).await.unwrap().remove(0);
    assert_eq!(a_row.state, TrialState::Succeeded);
    assert_eq!(a_row.objective, Some(0.25));
    assert_eq!(
        (a_row.started_at, a_row.completed_at),
        (Some(1_300), Some(1_500))
    );
    assert_eq!(a_row.reason, "TrialSucceeded");

    // Observations: batched, idempotent on (trial, metric, step), NaN kept as text.
    let rows: Vec<ObservationRow> = (0..2_500)
        .map(|step| ObservationRow {
            metric: if step % 2 == 0 { "loss" } else { "accuracy" }.to_owned(),
            step,
            value: format!("{}", 1.0 / (step as f64 + 1.0)),
            number: Some(1.0 / (step as f64 + 1.0)),
            time: Some(1_000 + step),
        })
        .collect();
    assert_eq!(store.append_observations(a, &rows).await.unwrap(), 2_500);
    assert_eq!(store.append_observations(a, &rows[..10]).await.unwrap(), 0);
    let nan = ObservationRow {
        metric: "loss".into(),
        step: 9_999,
        value: "nan".into(),
        number: Some(f64::NAN),
        time: None,
    };
    assert_eq!(store.append_observations(a, &[nan]).await.unwrap(), 1);
    let stored = store.observations(a).await.unwrap();
    assert_eq!(stored.len(), 2_501);
    let last = stored.iter().find(|o| o.step == 9_999).unwrap();
    assert_eq!((last.value.as_str(), last.number), ("nan", None));

    // Algorithm state: compare-and-set on the version.
    let state = AlgorithmState {
        version: 1,
        data: serde_json::json!({"mean": [0.5]}),
    };
    assert!(store.save_algorithm_state(exp.id, 0, &state).await.unwrap());
    assert!(
        !store.save_algorithm_state(exp.id, 0, &state).await.unwrap(),
        "a stale writer loses"
    );
    let exp = store.experiment(&name).await.unwrap().unwrap();
    assert_eq!(
        (exp.algorithm_state, exp.algorithm_state_version),
        (Some(state), 1)
    );

    store
        .set_experiment_state(
            exp.id,
            ExperimentState::Succeeded,
            "ExperimentMaxTrialsReached",
            Some(2_000),
        )
        .await
        .unwrap();
    let exp = store.experiment(&name).await.unwrap().unwrap();
    assert_eq!(
        (exp.state, exp.reason.as_str(), exp.completed_at),
        (
            ExperimentState::Succeeded,
            "ExperimentMaxTrialsReached",
            Some(2_000)
        )
    );
    assert!(
        store
            .experiments()
            .await
            .unwrap()
            .iter()
            .any(|e| e.name == name)
    );
    assert!(store.experiment("no-such").await.unwrap().is_none());
}

/// What Katib's gRPC API needs beyond the engine: every trial of a name
/// (it names trials without their namespace) and deleting one trial's
/// observations.
async fn katib_lookups(store: &SqlStore) {
    let trial_name = unique("katib-t");
    let mut ids = Vec::new();
    for namespace in ["ns1", "ns2"] {
        let name = unique(&format!("{namespace}/exp"));
        let (exp, _) = store
            .create_experiment(&name, &serde_json::json!({}), 1)
            .await
            .unwrap();
        store
            .insert_trials(exp.id, &[trial(&trial_name, "0.1")], 1)
            .await
            .unwrap();
        let id = store.trials(exp.id).await.unwrap()[0].id;
        let row = ObservationRow {
            metric: "loss".into(),
            step: 0,
            value: "0.5".into(),
            number: Some(0.5),
            time: Some(5),
        };
        store.append_observations(id, &[row]).await.unwrap();
        ids.push((name, id));
    }
    let found = store.trials_named(&trial_name, 8).await.unwrap();
    let names: Vec<(&str, i64)> = found.iter().map(|(e, t)| (e.as_str(), t.id)).collect();
    assert_eq!(
        names,
        ids.iter()
            .map(|(e, id)| (e.as_str(), *id))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.trials_named(&trial_name, 1).await.unwrap().len(), 1);
    assert!(store.trials_named("no-such", 8).await.unwrap().is_empty());
    assert_eq!(store.delete_observations(ids[0].1).await.unwrap(), 1);
    assert!(store.observations(ids[0].1).await.unwrap().is_empty());
    assert_eq!(store.observations(ids[1].1).await.unwrap().len(), 1);
    assert_eq!(store.delete_observations(ids[0].1).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_file_store_conforms_and_survives_reopening() {
    let dir = std::env::temp_dir().join(unique("ktune-store"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("ktune.db").display());
    conformance(&SqlStore::connect(&url).await.unwrap()).await;
    // Reopening runs no migration twice and finds the data.
    let reopened = SqlStore::connect(&url).await.unwrap();
    assert_eq!(reopened.experiments().await.unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn sqlite_memory_store_conforms() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    conformance(&store).await;
    katib_lookups(&store).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let url = std::env::var("KTUNE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match SqlStore::connect(&url).await {
        Ok(store) => {
            conformance(&store).await;
            katib_lookups(&store).await;
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "SKIPPED: PostgreSQL at {url} is not reachable ({e}); set KTUNE_TEST_POSTGRES_URL"
            );
        }
        Err(e) => panic!("CI=true needs PostgreSQL at {url}: {e}"),
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(
        SqlStore::connect("mysql://root@127.0.0.1/test")
            .await
            .is_err()
    );
    assert!(SqlStore::connect("ktune.db").await.is_err());
}
