//! The conformance suite every suggester runs (optuna-style
//! `BasicSamplerTestCase`): suggestions lie in the space, at most `count`
//! come back, identical requests give identical replies, the sequence does
//! not depend on how calls were batched, and dropping the returned state at
//! any point (a restart) changes nothing.
//!
//! Trials are simulated: each suggestion becomes a trial that succeeds at
//! once with a smooth objective of its unit-cube coordinates.

use proptest::prelude::*;

use super::{AlgorithmState, SuggestRequest, Suggester, build_suggester};
use crate::history::{Direction, Objective, Observation, TrialRecord, TrialState};
use crate::settings;
use crate::space::{Assignment, Distribution, ParamValue, ParameterSpec, SearchSpace};

/// A smooth test objective over whatever coordinates encode.
pub(crate) fn simulated_value(space: &SearchSpace, a: &Assignment) -> f64 {
    space
        .params()
        .iter()
        .filter_map(|p| p.encode(a.get(p.name())?))
        .map(|u| (u - 0.3).powi(2))
        .sum()
}

/// Drives `s` through `batches` (each call asks for that many), completing
/// every trial at once; `drop_state_at` forgets the state before that call.
pub(crate) fn simulate(
    s: &dyn Suggester,
    space: &SearchSpace,
    seed: u64,
    batches: &[usize],
    drop_state_at: Option<usize>,
) -> (Vec<TrialRecord>, bool) {
    let objective = Objective::new("loss", Direction::Minimize);
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut state: Option<AlgorithmState> = None;
    let mut exhausted = false;
    for (call, &count) in batches.iter().enumerate() {
        if drop_state_at == Some(call) {
            state = None;
        }
        let req = SuggestRequest {
            space,
            objective: &objective,
            history: &history,
            count,
            seed,
            state: state.as_ref(),
        };
        let out = s.suggest(&req).unwrap();
        assert!(
            out.suggestions.len() <= count,
            "{}: too many suggestions",
            s.name()
        );
        state = out.state;
        exhausted = out.exhausted;
        for sug in out.suggestions {
            let value = simulated_value(space, &sug.assignment);
            let mut t = TrialRecord::new(format!("t{}", history.len()), sug.assignment);
            t.labels = sug.labels;
            t.state = TrialState::Succeeded;
            t.objective = Some(value);
            t.observations = vec![Observation { step: 1, value }];
            history.push(t);
        }
        if exhausted {
            break;
        }
    }
    (history, exhausted)
}

/// Adds a call's suggestions to `history` as running trials (what a
/// caller holds between launching trials and their results).
pub(crate) fn record_running(history: &mut Vec<TrialRecord>, out: super::Suggestions) {
    for s in out.suggestions {
        let mut t = TrialRecord::new(format!("t{}", history.len()), s.assignment);
        t.labels = s.labels;
        t.state = TrialState::Running;
        history.push(t);
    }
}

/// Five parameters of every kind: log double, stepped double, int,
/// discrete and categorical — the space the model-based tests share.
pub(crate) fn small_mixed_space() -> SearchSpace {
    SearchSpace::new(vec![
        ParameterSpec::double("lr", 1e-4, 1e-1, None, Distribution::LogUniform).unwrap(),
        ParameterSpec::double("momentum", 0.5, 0.9, Some(0.1), Distribution::Uniform).unwrap(),
        ParameterSpec::int("layers", 1, 8, None, Distribution::Uniform).unwrap(),
        ParameterSpec::discrete(
            "batch",
            vec![
                ParamValue::Int(32),
                ParamValue::Int(64),
                ParamValue::Float(128.5),
            ],
        )
        .unwrap(),
        ParameterSpec::categorical("opt", vec!["sgd".into(), "adam".into(), "rmsprop".into()])
            .unwrap(),
    ])
    .unwrap()
}

/// The suggester `name` with `settings` over its defaults, for `space`.
pub(crate) fn built(
    name: &str,
    settings: &[(&str, &str)],
    space: &SearchSpace,
) -> Box<dyn Suggester> {
    let parsed = settings::algorithm(name)
        .unwrap()
        .parse(settings.iter().copied())
        .unwrap();
    build_suggester(name, &parsed, space).unwrap()
}

/// Every check of the suite for one algorithm on one space.
pub(crate) fn check_suggester(
    name: &str,
    settings: &[(&str, &str)],
    space: &SearchSpace,
    seed: u64,
    batches: &[usize],
    exempt: Option<&str>,
) {
    let (s, run) = check_core(name, settings, space, seed, batches, exempt);

    // Batching does not matter: one at a time gives the same sequence.
    let total: usize = batches.iter().sum();
    let (singles, _) = simulate(s.as_ref(), space, seed, &vec![1; total + 8], None);
    let n = run.len().min(singles.len());
    let a: Vec<&Assignment> = run.iter().take(n).map(|t| &t.assignment).collect();
    let b: Vec<&Assignment> = singles.iter().take(n).map(|t| &t.assignment).collect();
    assert_eq!(a, b, "{name}: result depends on batching");
}

/// The checks every suggester passes, batching independence aside (ENAS
/// trains once per round): suggestions in the space, determinism, and
/// restart safety. Returns the suggester and its simulated run.
pub(crate) fn check_core(
    name: &str,
    settings: &[(&str, &str)],
    space: &SearchSpace,
    seed: u64,
    batches: &[usize],
    exempt: Option<&str>,
) -> (Box<dyn Suggester>, Vec<TrialRecord>) {
    let s = built(name, settings, space);
    assert_eq!(s.name(), name);

    // In the space (the exempt parameter is Hyperband's resource).
    let (run, _) = simulate(s.as_ref(), space, seed, batches, None);
    for t in &run {
        if exempt.is_none() {
            assert!(
                space.contains(&t.assignment),
                "{name}: {t:?} not in the space"
            );
        }
        for p in space.params() {
            if Some(p.name()) == exempt {
                continue;
            }
            let v = t.assignment.get(p.name()).unwrap();
            assert!(p.contains(v), "{name}: {v:?} not in {p:?}");
        }
    }

    // Same request ⇒ same reply, bit for bit (on the final history).
    let objective = Objective::new("loss", Direction::Minimize);
    let req = SuggestRequest {
        space,
        objective: &objective,
        history: &run,
        count: 3,
        seed,
        state: None,
    };
    assert_eq!(
        s.suggest(&req).unwrap(),
        s.suggest(&req).unwrap(),
        "{name}: not deterministic"
    );

    // Restart at any call ⇒ the same future.
    for cut in 0..batches.len() {
        let (resumed, _) = simulate(s.as_ref(), space, seed, batches, Some(cut));
        assert_eq!(
            resumed, run,
            "{name}: restart before call {cut} changed the run"
        );
    }

    (s, run)
}

fn mixed_space() -> SearchSpace {
    SearchSpace::new(vec![
        ParameterSpec::double("lr", 1e-4, 1e-1, None, Distribution::LogUniform).unwrap(),
        ParameterSpec::double("momentum", 0.5, 0.9, Some(0.1), Distribution::Uniform).unwrap(),
        ParameterSpec::double("dropout", 0.0, 0.5, None, Distribution::Normal).unwrap(),
        ParameterSpec::int("layers", 1, 8, None, Distribution::Uniform).unwrap(),
        ParameterSpec::int("units", 16, 512, Some(16), Distribution::LogNormal).unwrap(),
        ParameterSpec::discrete(
            "batch",
            vec![
                ParamValue::Int(32),
                ParamValue::Int(64),
                ParamValue::Float(128.5),
            ],
        )
        .unwrap(),
        ParameterSpec::categorical("opt", vec!["sgd".into(), "adam".into()]).unwrap(),
        ParameterSpec::int("epochs", 1, 9, None, Distribution::Uniform).unwrap(),
    ])
    .unwrap()
}

const HYPERBAND: &[(&str, &str)] = &[("resource_name", "epochs"), ("r_l", "9"), ("eta", "3")];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..5, 1..6)) {
        check_suggester("random", &[], &mixed_space(), seed, &batches, None);
    }

    #[test]
    fn sobol_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..5, 1..6)) {
        check_suggester("sobol", &[("random_state", "5")], &mixed_space(), seed, &batches, None);
    }

    #[test]
    fn grid_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..40, 1..6)) {
        let space = SearchSpace::new(vec![
            ParameterSpec::double("momentum", 0.5, 0.9, Some(0.1), Distribution::Uniform).unwrap(),
            ParameterSpec::int("layers", 1, 8, Some(3), Distribution::Uniform).unwrap(),
            ParameterSpec::categorical("opt", vec!["sgd".into(), "adam".into()]).unwrap(),
        ]).unwrap();
        check_suggester("grid", &[], &space, seed, &batches, None);
    }

    #[test]
    fn hyperband_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..7, 1..10)) {
        check_suggester("hyperband", HYPERBAND, &mixed_space(), seed, &batches, None);
    }
}
