//! The suggester as a whole: it learns, it is a pure function of its
//! inputs (with or without its state), and its suggestions are well formed.

use proptest::prelude::*;

use super::*;
use crate::history::{Objective, TrialState};
use crate::settings;
use crate::space::nas::{NasOperation, NasParameter, NasValues};
use crate::suggest::{AlgorithmState, build_suggester};

/// `layers` layers over one operation type with `ops` filter sizes.
pub(crate) fn graph(layers: usize, ops: usize) -> NasGraph {
    NasGraph::new(
        layers,
        vec![32, 32, 3],
        vec![10],
        vec![NasOperation {
            operation_type: "convolution".into(),
            parameters: vec![NasParameter {
                name: "filter_size".into(),
                values: NasValues::List((0..ops).map(|i| (2 * i + 1).to_string()).collect()),
            }],
        }],
    )
    .unwrap()
}

fn suggester(settings: &[(&str, &str)], space: &SearchSpace) -> Box<dyn Suggester> {
    crate::suggest::conformance::built("enas", settings, space)
}

fn arch_of(t: &Suggestion, layers: usize, ops: usize) -> Architecture {
    match t.assignment.get(ARCHITECTURE) {
        Some(ParamValue::Text(text)) => Architecture::from_katib(text, layers, ops).unwrap(),
        other => panic!("no architecture: {other:?}"),
    }
}

/// The synthetic task: the fraction of layers whose op is `TARGET`.
const TARGET: usize = 2;

fn reward(arch: &Architecture) -> f64 {
    arch.layers.iter().filter(|l| l.op == TARGET).count() as f64 / arch.layers.len() as f64
}

/// Runs `rounds` rounds of `per_round` suggestions, every trial finishing
/// with the synthetic reward; returns each round's mean reward.
fn learn(settings: &[(&str, &str)], rounds: usize, per_round: usize, seed: u64) -> Vec<f64> {
    let (layers, ops) = (4, 6);
    let space = SearchSpace::nas(graph(layers, ops));
    let s = suggester(settings, &space);
    let objective = Objective::new("accuracy", Direction::Maximize);
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut state = None;
    let mut means = Vec::new();
    for _ in 0..rounds {
        let out = s
            .suggest(&SuggestRequest {
                space: &space,
                objective: &objective,
                history: &history,
                count: per_round,
                seed,
                state: state.as_ref(),
            })
            .unwrap();
        state = out.state;
        let mut sum = 0.0;
        for sug in out.suggestions {
            let r = reward(&arch_of(&sug, layers, ops));
            sum += r;
            let mut t = TrialRecord::new(format!("t{}", history.len()), sug.assignment);
            t.labels = sug.labels;
            t.state = TrialState::Succeeded;
            t.objective = Some(r);
            history.push(t);
        }
        means.push(sum / per_round as f64);
    }
    means
}

/// Settings that learn within 30 rounds (Katib's default learning rate
/// of 5e-5 moves a weight by at most 0.075 in 30 rounds of 50 Adam steps),
/// on a small controller so that the test stays quick in a debug build.
const FAST: &[(&str, &str)] = &[
    ("controller_learning_rate", "0.02"),
    ("controller_train_steps", "20"),
    ("controller_baseline_decay", "0.9"),
    ("controller_hidden_size", "16"),
];

#[test]
fn the_controller_learns_to_pick_the_rewarded_operation() {
    let (rounds, per_round) = (30, 4);
    let mut last = Vec::new();
    let mut first = 0.0;
    for seed in [1, 2, 3] {
        let means = learn(FAST, rounds, per_round, seed);
        first += means[..5].iter().sum::<f64>() / 15.0;
        last.push(means[rounds - 5..].iter().sum::<f64>() / 5.0);
    }
    let learned = last.iter().sum::<f64>() / last.len() as f64;
    // Random sampling's expected reward: one op in six.
    let random = 1.0 / 6.0;
    eprintln!(
        "mean reward: first 5 rounds {first:.3}, last 5 rounds {learned:.3} \
         (per seed {last:?}), random {random:.3}"
    );
    assert!(
        learned > random + 0.3,
        "mean reward of the last 5 rounds {learned:.3} (per seed {last:?}) vs random {random:.3}"
    );
}

fn request<'a>(
    space: &'a SearchSpace,
    objective: &'a Objective,
    history: &'a [TrialRecord],
    state: Option<&'a AlgorithmState>,
) -> SuggestRequest<'a> {
    SuggestRequest {
        space,
        objective,
        history,
        count: 3,
        seed: 11,
        state,
    }
}

#[test]
fn a_running_trial_holds_back_later_rounds_and_the_state_changes_nothing() {
    let space = SearchSpace::nas(graph(3, 4));
    let s = suggester(&[("controller_train_steps", "5")], &space);
    let objective = Objective::new("loss", Direction::Minimize);
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut state: Option<AlgorithmState> = None;
    for round in 0..4 {
        let out = s
            .suggest(&request(&space, &objective, &history, state.as_ref()))
            .unwrap();
        let fresh = s
            .suggest(&request(&space, &objective, &history, None))
            .unwrap();
        assert_eq!(out, fresh, "round {round}: the state changed the reply");
        state = out.state;
        for (i, sug) in out.suggestions.into_iter().enumerate() {
            let mut t = TrialRecord::new(format!("t{}", history.len()), sug.assignment);
            t.labels = sug.labels;
            // Round 1's second trial stays running: rounds 2 and 3 wait.
            t.state = if round == 1 && i == 1 {
                TrialState::Running
            } else {
                TrialState::Succeeded
            };
            t.objective = Some(round as f64 + i as f64 / 10.0);
            history.push(t);
        }
    }
    let ends = EnasSuggester::finished_rounds(&history);
    assert_eq!(ends, vec![3]);
    // The trial finishes: every round is consumed, from the stale state or not.
    history[4].state = TrialState::Succeeded;
    let with = s
        .suggest(&request(&space, &objective, &history, state.as_ref()))
        .unwrap();
    let without = s
        .suggest(&request(&space, &objective, &history, None))
        .unwrap();
    assert_eq!(with, without);
    assert_eq!(EnasSuggester::finished_rounds(&history), vec![3, 6, 9, 12]);
    // A state from another history is ignored, not trusted.
    history[0].objective = Some(-5.0);
    let altered = s
        .suggest(&request(&space, &objective, &history, with.state.as_ref()))
        .unwrap();
    assert_eq!(
        altered,
        s.suggest(&request(&space, &objective, &history, None))
            .unwrap()
    );
    assert_ne!(altered.state, with.state);
}

#[test]
fn failed_and_malformed_trials_teach_nothing() {
    let space = SearchSpace::nas(graph(2, 3));
    let s = suggester(&[], &space);
    let objective = Objective::new("accuracy", Direction::Maximize);
    let first = s.suggest(&request(&space, &objective, &[], None)).unwrap();
    let mut history: Vec<TrialRecord> = Vec::new();
    for (i, sug) in first.suggestions.iter().enumerate() {
        let mut t = TrialRecord::new(format!("t{i}"), sug.assignment.clone());
        t.labels = sug.labels.clone();
        t.state = TrialState::Failed;
        t.objective = [None, Some(f64::NAN), Some(f64::INFINITY)][i];
        history.push(t);
    }
    let mut junk = TrialRecord::new("junk", Assignment::new());
    junk.assignment
        .set(ARCHITECTURE, ParamValue::Text("[[7], [0, 3]]".into()));
    junk.state = TrialState::Succeeded;
    junk.objective = Some(1.0);
    history.push(junk);
    // Nothing usable: the controller is the initial one, so the replies
    // differ from the first only through the sampling stream.
    let out = s
        .suggest(&request(&space, &objective, &history, None))
        .unwrap();
    let initial = state::load(first.state.as_ref().unwrap(), Layout { h: 64, n: 3 }).unwrap();
    let now = state::load(out.state.as_ref().unwrap(), Layout { h: 64, n: 3 }).unwrap();
    assert_eq!(initial.trainer, now.trainer);
    assert_eq!(now.consumed, 4);
}

#[test]
fn enas_refuses_a_hyperparameter_space() {
    let space = crate::suggest::conformance::small_mixed_space();
    let parsed = settings::algorithm("enas")
        .unwrap()
        .parse(std::iter::empty())
        .unwrap();
    assert!(matches!(
        build_suggester("enas", &parsed, &space),
        Err(AlgorithmError::UnsupportedSpace { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the weights and settings, a sampled architecture has one
    /// entry per layer, op ids in range, `l` skip bits at layer `l`, and an
    /// `nn_config` that describes exactly the ops it uses.
    #[test]
    fn sampled_architectures_are_well_formed(
        seed in any::<u64>(),
        layers in 1usize..7,
        ops in 1usize..6,
        scale in 0.0f64..300.0,
        temperature in prop::option::of(0.1f64..10.0),
        tanh_const in prop::option::of(0.1f64..5.0),
    ) {
        let graph = graph(layers, ops);
        let expanded = ops::expand(&graph);
        prop_assert_eq!(expanded.len(), ops);
        let layout = Layout { h: 6, n: ops };
        let mut rng = derive_rng(seed, 0, "enas-prop");
        let mut params = Params::init(layout, &mut rng);
        for w in &mut params.data {
            *w *= scale;
        }
        let shape = Shape { layers, temperature, tanh_const, skip_target: 0.4 };
        let arch = controller::run(&params, &shape, Decide::Sample(&mut rng)).arch;
        prop_assert_eq!(arch.layers.len(), layers);
        for (l, layer) in arch.layers.iter().enumerate() {
            prop_assert!(layer.op < ops);
            prop_assert_eq!(layer.skips.len(), l);
        }
        let text = arch.to_katib();
        prop_assert_eq!(Architecture::from_katib(&text, layers, ops), Some(arch.clone()));
        let config: serde_json::Value =
            serde_json::from_str(&format::nn_config(&graph, &expanded, &arch).replace('\'', "\"")).unwrap();
        let mut used: Vec<String> = arch.layers.iter().map(|l| l.op.to_string()).collect();
        used.sort();
        used.dedup();
        let mut keys: Vec<String> = config["embedding"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        prop_assert_eq!(keys, used);
    }

    /// The algorithm conformance suite, less batching independence (a
    /// controller trained per round cannot sample the same whatever the
    /// rounds were).
    #[test]
    fn enas_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..4, 1..5)) {
        crate::suggest::conformance::check_core(
            "enas",
            &[("controller_train_steps", "3"), ("controller_hidden_size", "8")],
            &SearchSpace::nas(graph(3, 4)),
            seed,
            &batches,
            None,
        );
    }
}
