//! The engine's behaviour over in-memory fakes (see [`super::fakes`] and
//! [`crate::metrics::testing`]): launching up to parallelism, collecting and
//! reducing reports, early stopping, failure rules, completion, store
//! outages, interruption and resuming after a crash. Deterministic: no
//! process, no database, no sleep — a test ends a trial by telling the
//! fake runner, and steps the engine.

use ktune_algorithms::history::TrialState;
use serde_json::{Value, json};

use super::fakes::{FakeRunner, FakeStore};
use super::{Engine, EngineError, EngineOptions, Event, RunSummary};
use crate::api::validate::Context;
use crate::api::{PreparedExperiment, no_configmaps};
use crate::metrics::testing::FakeCollector;
use crate::runner::Exit;
use crate::store::{ExperimentState, StoreError};

/// The experiment `e`: random search over `lr`, minimising `loss` (and
/// collecting `accuracy`), two trials at once, four in all; `spec` fields
/// given replace the defaults.
fn experiment(spec: &Value) -> PreparedExperiment {
    let mut base = json!({
        "objective": {"type": "minimize", "objectiveMetricName": "loss",
                      "additionalMetricNames": ["accuracy"]},
        "algorithm": {"algorithmName": "random",
                      "algorithmSettings": [{"name": "random_state", "value": "7"}]},
        "parallelTrialCount": 2,
        "maxTrialCount": 4,
        "maxFailedTrialCount": 2,
        "parameters": [{"name": "lr", "parameterType": "double",
                        "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "rate", "reference": "lr"}],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "python:3",
                                "command": ["train", "--lr=${trialParameters.rate}"]}]}}}}
        }
    });
    if let (Some(base), Some(spec)) = (base.as_object_mut(), spec.as_object()) {
        base.extend(spec.clone());
    }
    let doc = json!({"apiVersion": "ktune.dev/v1beta1", "kind": "Experiment",
                     "metadata": {"name": "e"}, "spec": base});
    let context = Context {
        configmaps: no_configmaps(),
        require_configmaps: true,
    };
    let prepared = crate::api::prepare(&doc, context).expect("an Experiment");
    assert!(prepared.report.is_valid(), "{:?}", prepared.report.errors);
    prepared
}

/// The fakes an engine runs over, kept by the test to script and inspect.
#[derive(Default)]
struct Bench {
    store: FakeStore,
    runner: FakeRunner,
    collector: FakeCollector,
}

type FakeEngine<'a> = Engine<'a, FakeStore, FakeRunner, FakeCollector>;

impl Bench {
    async fn open(&self, prepared: &PreparedExperiment) -> FakeEngine<'_> {
        self.open_with(prepared, EngineOptions::default()).await
    }

    async fn open_with(
        &self,
        prepared: &PreparedExperiment,
        options: EngineOptions,
    ) -> FakeEngine<'_> {
        Engine::open(
            prepared,
            no_configmaps(),
            &self.store,
            &self.runner,
            &self.collector,
            options,
        )
        .await
        .expect("the experiment opens")
    }

    /// The trials in store as (name, state).
    fn states(&self) -> Vec<(String, TrialState)> {
        self.store
            .all_trials()
            .into_iter()
            .map(|t| (t.name, t.state))
            .collect()
    }

    fn state(&self, trial: &str) -> TrialState {
        self.store.trial(trial).expect("a stored trial").state
    }
}

/// One step, its events appended to `events`.
async fn step(engine: &mut FakeEngine<'_>, events: &mut Vec<Event>) -> Option<RunSummary> {
    engine
        .step(&mut |e| events.push(e))
        .await
        .expect("the step succeeds")
}

/// Steps until nothing changes any more (the engine waits for trials) or
/// the experiment completes.
async fn settle(engine: &mut FakeEngine<'_>, events: &mut Vec<Event>) -> Option<RunSummary> {
    loop {
        let done = step(engine, events).await;
        if done.is_some() || !engine.needs_step() {
            return done;
        }
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn trials_are_launched_up_to_parallelism_and_freed_slots_are_filled() {
    let bench = Bench::default();
    let prepared = experiment(&json!({}));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    assert!(settle(&mut engine, &mut events).await.is_none());
    assert_eq!(bench.runner.running(), names(&["e-0001", "e-0002"]));
    assert_eq!(engine.running(), 2);
    assert!(
        bench
            .states()
            .iter()
            .all(|(_, s)| *s == TrialState::Running)
    );
    // Nothing changes while the trials run: no new trial, however often it steps.
    for _ in 0..3 {
        assert!(step(&mut engine, &mut events).await.is_none());
    }
    assert_eq!(bench.store.all_trials().len(), 2);
    // One ends: its slot is filled at once.
    bench.collector.report("e-0001", "loss", "0.5");
    bench.runner.end("e-0001", Exit::Succeeded);
    settle(&mut engine, &mut events).await;
    assert_eq!(bench.state("e-0001"), TrialState::Succeeded);
    assert!(!bench.collector.attached("e-0001") && bench.collector.attached("e-0002"));
    assert_eq!(
        bench.runner.running(),
        names(&["e-0002", "e-0003"]),
        "the freed slot is taken by the next trial"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Finished { trial, state: TrialState::Succeeded, objective: Some(v), .. }
            if trial == "e-0001" && (*v - 0.5).abs() < 1e-12
    )));
}

#[tokio::test]
async fn a_launch_carries_the_trial_typed_as_the_runner_needs_it() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"parallelTrialCount": 1}));
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    let launched = bench.runner.launched();
    let [first] = launched.as_slice() else {
        panic!("one launch expected: {launched:?}")
    };
    let stored = bench.store.trial("e-0001").expect("stored before launch");
    assert_eq!(first.experiment, "e");
    assert_eq!(first.trial, "e-0001");
    assert_eq!(first.parameters, stored.assignment);
    assert_eq!(first.gpu, None);
    let push = first
        .reporting
        .push
        .as_ref()
        .expect("the collector's token");
    assert_eq!(push.token, "token-e-0001");
    // The workload is rendered: the trial's name and its parameter value.
    assert_eq!(first.workload["metadata"]["name"], "e-0001");
    let lr = stored.parameter("lr").expect("an lr");
    let command = &first.workload["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(command[1], format!("--lr={lr}"));
}

#[tokio::test]
async fn reports_are_numbered_stored_and_reduced_by_the_metric_strategy() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"parallelTrialCount": 1}));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    for loss in ["0.9", "0.4"] {
        bench.collector.report("e-0001", "loss", loss);
        step(&mut engine, &mut events).await;
    }
    bench.collector.report("e-0001", "accuracy", "0.7");
    bench.collector.report("e-0001", "loss", "0.6");
    bench.runner.end("e-0001", Exit::Succeeded);
    settle(&mut engine, &mut events).await;
    let stored: Vec<(String, i64, String)> = bench
        .store
        .reports("e-0001")
        .into_iter()
        .map(|o| (o.metric, o.step, o.value))
        .collect();
    assert_eq!(
        stored,
        [
            ("loss".to_owned(), 1, "0.9".to_owned()),
            ("loss".to_owned(), 2, "0.4".to_owned()),
            ("accuracy".to_owned(), 1, "0.7".to_owned()),
            ("loss".to_owned(), 3, "0.6".to_owned()),
        ]
    );
    // Minimising: Katib's default strategy keeps the smallest loss.
    let trial = bench.store.trial("e-0001").expect("stored");
    assert_eq!(trial.state, TrialState::Succeeded);
    assert_eq!(trial.objective, Some(0.4));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Reported { trial, latest } if trial == "e-0001" && latest.len() == 2
    )));
}

#[tokio::test]
async fn a_trial_without_its_objective_is_metrics_unavailable_and_a_crash_is_failed() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"maxFailedTrialCount": 4}));
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    bench.collector.report("e-0001", "accuracy", "0.9");
    bench.runner.end("e-0001", Exit::Succeeded);
    bench.runner.end("e-0002", Exit::Failed { code: 3 });
    settle(&mut engine, &mut Vec::new()).await;
    let unavailable = bench.store.trial("e-0001").expect("stored");
    assert_eq!(unavailable.state, TrialState::MetricsUnavailable);
    assert!(
        unavailable.message.contains("\"loss\""),
        "{}",
        unavailable.message
    );
    let failed = bench.store.trial("e-0002").expect("stored");
    assert_eq!(failed.state, TrialState::Failed);
    assert_eq!(failed.reason, "TrialFailed");
    assert!(failed.message.contains('3'), "{}", failed.message);
    assert_eq!(bench.collector.detached(), names(&["e-0001", "e-0002"]));
}

#[tokio::test]
async fn reaching_max_failed_trials_fails_the_experiment_once_nothing_runs() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"maxFailedTrialCount": 1, "parallelTrialCount": 2}));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    bench.runner.end("e-0001", Exit::Failed { code: 1 });
    assert!(
        settle(&mut engine, &mut events).await.is_none(),
        "waits for the running trial"
    );
    assert_eq!(
        bench.runner.launched().len(),
        2,
        "no trial started after the failure"
    );
    bench.collector.report("e-0002", "loss", "0.3");
    bench.runner.end("e-0002", Exit::Succeeded);
    let summary = settle(&mut engine, &mut events).await.expect("complete");
    assert_eq!(summary.state, ExperimentState::Failed);
    assert_eq!(summary.reason, "ExperimentFailed");
    assert_eq!(summary.failures.len(), 1);
    let stored = bench.store.experiment("e").expect("stored");
    assert_eq!(stored.state, ExperimentState::Failed);
}

#[tokio::test]
async fn a_trial_that_cannot_start_fails_alone() {
    let bench = Bench::default();
    bench.runner.refuse("e-0001");
    let prepared = experiment(&json!({"maxFailedTrialCount": 3}));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    let refused = bench.store.trial("e-0001").expect("stored");
    assert_eq!(refused.state, TrialState::Failed);
    assert_eq!(refused.reason, "LaunchFailed");
    assert_eq!(
        bench.runner.running(),
        names(&["e-0002", "e-0003"]),
        "the others run, and the failed one's slot is filled"
    );
    assert!(
        bench.collector.detached().contains(&"e-0001".to_owned()),
        "what the collector prepared for it is let go"
    );
}

#[tokio::test]
async fn a_trial_whose_template_cannot_be_rendered_fails_alone() {
    // The template asks for an annotation the workload does not have:
    // only rendering a trial finds out.
    let mut prepared = experiment(&json!({"parallelTrialCount": 1, "maxFailedTrialCount": 3}));
    let template = prepared
        .experiment
        .spec
        .trial_template
        .as_mut()
        .expect("a template");
    if let Some(parameters) = template.trial_parameters.as_mut() {
        parameters[0].reference = "${trialSpec.Annotations[missing]}".into();
    }
    let bench = Bench::default();
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    let trial = bench.store.trial("e-0001").expect("stored");
    assert_eq!(trial.state, TrialState::Failed);
    assert_eq!(trial.reason, "TemplateRenderFailed");
    assert!(bench.runner.launched().is_empty(), "nothing was started");
}

#[tokio::test]
async fn reaching_the_goal_completes_the_experiment_once_running_trials_end() {
    let bench = Bench::default();
    let mut prepared = experiment(&json!({}));
    if let Some(objective) = prepared.experiment.spec.objective.as_mut() {
        objective.goal = Some(0.1);
    }
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    bench.collector.report("e-0001", "loss", "0.05");
    bench.runner.end("e-0001", Exit::Succeeded);
    assert!(settle(&mut engine, &mut events).await.is_none());
    assert_eq!(bench.runner.running(), names(&["e-0002"]), "no new trial");
    bench.collector.report("e-0002", "loss", "0.5");
    bench.runner.end("e-0002", Exit::Succeeded);
    let summary = settle(&mut engine, &mut events).await.expect("complete");
    assert_eq!(summary.state, ExperimentState::Succeeded);
    assert_eq!(summary.reason, "ExperimentGoalReached");
    let best = summary.best.expect("a best trial");
    assert_eq!((best.name.as_str(), best.objective), ("e-0001", 0.05));
    assert_eq!(engine.best().map(|b| b.name), Some("e-0001".to_owned()));
}

#[tokio::test]
async fn the_trial_budget_caps_the_trials_created() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"maxTrialCount": 3}));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    let mut summary = settle(&mut engine, &mut events).await;
    for round in 0..10 {
        if summary.is_some() {
            break;
        }
        for trial in bench.runner.running() {
            bench
                .collector
                .report(&trial, "loss", &format!("0.{round}"));
            bench.runner.end(&trial, Exit::Succeeded);
        }
        summary = settle(&mut engine, &mut events).await;
    }
    let summary = summary.expect("complete");
    assert_eq!(summary.state, ExperimentState::Succeeded);
    assert_eq!(summary.reason, "ExperimentMaxTrialsReached");
    assert_eq!(summary.counts.succeeded, 3);
    assert_eq!(
        bench.runner.launched_names(),
        names(&["e-0001", "e-0002", "e-0003"])
    );
}

#[tokio::test]
async fn the_stopping_rule_stops_a_trial_worse_than_the_median() {
    let bench = Bench::default();
    let prepared = experiment(&json!({
        "parallelTrialCount": 1,
        "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "1"},
            {"name": "start_step", "value": "2"}]}
    }));
    let mut engine = bench.open(&prepared).await;
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    for loss in ["0.2", "0.1"] {
        bench.collector.report("e-0001", "loss", loss);
    }
    bench.runner.end("e-0001", Exit::Succeeded);
    settle(&mut engine, &mut events).await;
    assert_eq!(bench.state("e-0001"), TrialState::Succeeded);
    // The second trial is judged after each report: the first alone is
    // too early, the second is worse than the median of the first trial.
    bench.collector.report("e-0002", "loss", "0.9");
    step(&mut engine, &mut events).await;
    assert!(bench.runner.stopped().is_empty(), "too early to judge");
    bench.collector.report("e-0002", "loss", "0.8");
    settle(&mut engine, &mut events).await;
    assert_eq!(bench.runner.stopped(), names(&["e-0002"]));
    let stopped = bench.store.trial("e-0002").expect("stored");
    assert_eq!(stopped.state, TrialState::EarlyStopped);
    assert_eq!(stopped.reason, "TrialEarlyStopped");
    assert!(!stopped.message.is_empty(), "the rule's reason");
    assert_eq!(
        bench.store.reports("e-0002").len(),
        2,
        "its reports are kept"
    );
    assert_eq!(bench.runner.running(), names(&["e-0003"]));
}

#[tokio::test]
async fn a_store_outage_stops_no_trial_and_loses_no_report() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"parallelTrialCount": 1}));
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    bench.store.set_down(true);
    bench.collector.report("e-0001", "loss", "0.4");
    bench.runner.end("e-0001", Exit::Succeeded);
    let failed = engine.step(&mut |_| {}).await;
    assert!(
        matches!(failed, Err(EngineError::Store(StoreError::Database(_)))),
        "{failed:?}"
    );
    assert_eq!(engine.running(), 1, "the ended trial is kept, unrecorded");
    assert!(bench.store.reports("e-0001").is_empty());
    bench.store.set_down(false);
    settle(&mut engine, &mut Vec::new()).await;
    let trial = bench.store.trial("e-0001").expect("stored");
    assert_eq!(
        (trial.state, trial.objective),
        (TrialState::Succeeded, Some(0.4))
    );
    assert_eq!(bench.store.reports("e-0001").len(), 1);
    assert_eq!(
        bench.runner.running(),
        names(&["e-0002"]),
        "the run goes on"
    );
}

#[tokio::test]
async fn an_engine_opened_after_a_crash_reruns_its_trials_without_duplicating_or_losing_any() {
    let bench = Bench::default();
    let prepared = experiment(&json!({}));
    {
        let mut engine = bench.open(&prepared).await;
        settle(&mut engine, &mut Vec::new()).await;
        bench.collector.report("e-0001", "loss", "0.5");
        step(&mut engine, &mut Vec::new()).await;
        // Killed here: nothing recorded the trials' end.
    }
    assert_eq!(bench.store.reports("e-0001").len(), 1);
    let mut engine = bench.open(&prepared).await;
    assert_eq!(bench.runner.reaped(), names(&["e-0001", "e-0002"]));
    assert!(
        bench
            .states()
            .iter()
            .all(|(_, s)| *s == TrialState::Pending),
        "sent back to Pending: {:?}",
        bench.states()
    );
    let mut events = Vec::new();
    settle(&mut engine, &mut events).await;
    assert!(matches!(
        events.first(),
        Some(Event::Resumed {
            done: 0,
            rerun: 2,
            ..
        })
    ));
    assert_eq!(bench.store.all_trials().len(), 2, "no trial added");
    assert_eq!(
        bench.runner.launched_names(),
        names(&["e-0001", "e-0002", "e-0001", "e-0002"]),
        "the same trials run again"
    );
    // The new attempt's reports come after the stored one.
    bench.collector.report("e-0001", "loss", "0.7");
    bench.runner.end("e-0001", Exit::Succeeded);
    settle(&mut engine, &mut events).await;
    let steps: Vec<i64> = bench
        .store
        .reports("e-0001")
        .iter()
        .map(|o| o.step)
        .collect();
    assert_eq!(steps, [1, 2]);
    let trial = bench.store.trial("e-0001").expect("stored");
    assert_eq!(trial.objective, Some(0.7), "this attempt's reports decide");
}

#[tokio::test]
async fn an_adopted_trial_counts_its_earlier_reports_once() {
    let bench = Bench {
        collector: FakeCollector::replaying(),
        ..Bench::default()
    };
    let prepared = experiment(&json!({"parallelTrialCount": 1}));
    {
        let mut engine = bench.open(&prepared).await;
        settle(&mut engine, &mut Vec::new()).await;
        bench.collector.report("e-0001", "loss", "0.2");
        step(&mut engine, &mut Vec::new()).await;
    }
    // Still running in its cluster: the new engine takes it over, and its
    // log, read from the start, delivers the stored report again.
    bench.runner.adopt("e-0001");
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    bench.collector.report("e-0001", "loss", "0.2");
    bench.collector.report("e-0001", "loss", "0.3");
    bench.runner.end("e-0001", Exit::Succeeded);
    settle(&mut engine, &mut Vec::new()).await;
    let values: Vec<String> = bench
        .store
        .reports("e-0001")
        .into_iter()
        .map(|o| o.value)
        .collect();
    assert_eq!(
        values,
        ["0.2", "0.3"],
        "the replayed report is not stored twice"
    );
    let trial = bench.store.trial("e-0001").expect("stored");
    assert_eq!(trial.objective, Some(0.2), "the earlier report counts");
}

#[tokio::test]
async fn an_interrupted_run_sends_its_trials_back_to_pending() {
    let bench = Bench::default();
    let prepared = experiment(&json!({}));
    let mut engine = bench.open(&prepared).await;
    settle(&mut engine, &mut Vec::new()).await;
    bench.collector.report("e-0002", "loss", "0.6");
    let mut events = Vec::new();
    let summary = engine
        .interrupt(&mut |e| events.push(e))
        .await
        .expect("interrupted");
    assert_eq!(summary.state, ExperimentState::Running);
    assert_eq!(summary.interrupted, 2);
    assert_eq!(bench.runner.stopped(), names(&["e-0001", "e-0002"]));
    for (name, state) in bench.states() {
        assert_eq!(state, TrialState::Pending, "{name}");
        assert_eq!(
            bench.store.trial(&name).expect("stored").reason,
            "Interrupted"
        );
    }
    assert_eq!(
        bench.store.reports("e-0002").len(),
        1,
        "its last reports are kept"
    );
    let interrupted = events
        .iter()
        .filter(|e| matches!(e, Event::Interrupted { .. }))
        .count();
    assert_eq!(interrupted, 2);
    assert_eq!(engine.running(), 0);
}

#[tokio::test]
async fn a_finished_experiment_stays_closed_under_resume_policy_never() {
    let bench = Bench::default();
    let prepared =
        experiment(&json!({"maxTrialCount": 1, "parallelTrialCount": 1, "maxFailedTrialCount": 1}));
    {
        let mut engine = bench.open(&prepared).await;
        settle(&mut engine, &mut Vec::new()).await;
        bench.collector.report("e-0001", "loss", "0.3");
        bench.runner.end("e-0001", Exit::Succeeded);
        let done = settle(&mut engine, &mut Vec::new())
            .await
            .expect("complete");
        assert!(!done.closed);
    }
    let mut engine = bench.open(&prepared).await;
    assert!(!engine.needs_step());
    let summary = step(&mut engine, &mut Vec::new()).await.expect("closed");
    assert!(summary.closed);
    assert_eq!(summary.state, ExperimentState::Succeeded);
    assert_eq!(summary.best.map(|b| b.name), Some("e-0001".to_owned()));
    assert_eq!(bench.runner.launched().len(), 1, "nothing ran again");
}

#[tokio::test]
async fn a_changed_search_is_refused_on_resume() {
    let bench = Bench::default();
    bench.open(&experiment(&json!({}))).await;
    let changed = experiment(&json!({"algorithm": {"algorithmName": "random",
        "algorithmSettings": [{"name": "random_state", "value": "8"}]}}));
    let refused = Engine::open(
        &changed,
        no_configmaps(),
        &bench.store,
        &bench.runner,
        &bench.collector,
        EngineOptions::default(),
    )
    .await;
    assert!(
        matches!(&refused, Err(EngineError::SpecChanged { fields, .. }) if fields == &["spec.algorithm"]),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn trials_wait_for_a_free_gpu_and_each_gets_its_own() {
    let bench = Bench::default();
    let prepared = experiment(&json!({"parallelTrialCount": 3}));
    let options = EngineOptions {
        gpus: vec!["0".into(), "1".into()],
        ..EngineOptions::default()
    };
    let mut engine = bench.open_with(&prepared, options).await;
    settle(&mut engine, &mut Vec::new()).await;
    let gpus: Vec<Option<String>> = bench.runner.launched().into_iter().map(|l| l.gpu).collect();
    assert_eq!(gpus, [Some("0".to_owned()), Some("1".to_owned())]);
    assert_eq!(
        bench.state("e-0003"),
        TrialState::Pending,
        "waits for a GPU"
    );
    bench.collector.report("e-0002", "loss", "0.1");
    bench.runner.end("e-0002", Exit::Succeeded);
    settle(&mut engine, &mut Vec::new()).await;
    let third = bench.runner.launched().pop().expect("launched");
    assert_eq!(
        (third.trial.as_str(), third.gpu.as_deref()),
        ("e-0003", Some("1"))
    );
}
