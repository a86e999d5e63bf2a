//! Suggester-level tests: conformance, regret against random search,
//! batches, duplicates, degenerate histories, and properties.

use proptest::prelude::*;

use super::*;
use crate::history::{Direction, Observation};
use crate::settings;
use crate::space::{Assignment, Distribution, ParamValue, ParameterSpec};
use crate::suggest::conformance::{check_suggester, simulate, small_mixed_space};
use crate::suggest::{RandomSuggester, build_suggester};
use crate::testfns;

fn parsed(pairs: &[(&str, &str)]) -> Settings {
    settings::algorithm("bayesianoptimization")
        .unwrap()
        .parse(pairs.iter().copied())
        .unwrap()
}

fn box_space(bounds: &[(f64, f64)]) -> SearchSpace {
    SearchSpace::new(
        bounds
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| {
                ParameterSpec::double(format!("x{i}"), lo, hi, None, Distribution::Uniform).unwrap()
            })
            .collect(),
    )
    .unwrap()
}

fn point(space: &SearchSpace, a: &Assignment) -> Vec<f64> {
    space
        .params()
        .iter()
        .map(|p| a.get(p.name()).and_then(ParamValue::as_f64).unwrap())
        .collect()
}

fn finished(name: String, assignment: Assignment, value: f64) -> TrialRecord {
    let mut t = TrialRecord::new(name, assignment);
    t.state = TrialState::Succeeded;
    t.objective = Some(value);
    t.observations = vec![Observation { step: 1, value }];
    t
}

/// Best value after `budget` sequential evaluations of `f`.
fn run(
    s: &dyn Suggester,
    space: &SearchSpace,
    f: fn(&[f64]) -> f64,
    seed: u64,
    budget: usize,
) -> f64 {
    let objective = Objective::new("loss", Direction::Minimize);
    let mut history = Vec::new();
    while history.len() < budget {
        for sug in ask(s, space, &objective, &history, 1, seed).suggestions {
            let v = f(&point(space, &sug.assignment));
            history.push(finished(format!("t{}", history.len()), sug.assignment, v));
        }
    }
    history
        .iter()
        .filter_map(|t| t.objective)
        .fold(f64::INFINITY, f64::min)
}

/// One call with no state.
fn ask(
    s: &dyn Suggester,
    space: &SearchSpace,
    objective: &Objective,
    history: &[TrialRecord],
    count: usize,
    seed: u64,
) -> Suggestions {
    let req = SuggestRequest {
        space,
        objective,
        history,
        count,
        seed,
        state: None,
    };
    s.suggest(&req).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn the_initial_design_conforms_to_the_suggester_suite() {
    // The suite also checks that batching does not change the sequence,
    // which holds for the quasi-random design only: a model-based batch
    // fantasises results that one-at-a-time calls would have observed.
    for seed in [0, 7, 99] {
        check_suggester(
            "bayesianoptimization",
            &[("n_initial_points", "40")],
            &small_mixed_space(),
            seed,
            &[3, 0, 4, 1, 5],
            None,
        );
    }
}

#[test]
fn the_model_phase_is_in_bounds_deterministic_and_restartable() {
    let space = small_mixed_space();
    let s = build_suggester(
        "bayesianoptimization",
        &parsed(&[("n_initial_points", "4")]),
        &space,
    )
    .unwrap();
    let batches = [2, 3, 1, 4, 2];
    let (run1, _) = simulate(s.as_ref(), &space, 11, &batches, None);
    assert_eq!(run1.len(), 12);
    for t in &run1 {
        assert!(space.contains(&t.assignment), "{:?}", t.assignment);
    }
    for cut in 0..batches.len() {
        let (again, _) = simulate(s.as_ref(), &space, 11, &batches, Some(cut));
        assert_eq!(again, run1, "restart before call {cut}");
    }
}

#[test]
fn gp_bo_beats_random_search_on_branin_after_30_evaluations() {
    let branin = testfns::ALL[0];
    let space = box_space(branin.bounds);
    let bo = BayesSuggester::from_settings(&parsed(&[]));
    let random = RandomSuggester::new(None);
    let seeds = [1, 2, 3, 4, 5];
    let regret = |s: &dyn Suggester| -> f64 {
        median(
            seeds
                .iter()
                .map(|&seed| run(s, &space, branin.f, seed, 30) - branin.minimum)
                .collect(),
        )
    };
    let (bo_regret, random_regret) = (regret(&bo), regret(&random));
    assert!(
        bo_regret < random_regret,
        "bo {bo_regret} vs random {random_regret}"
    );
    assert!(bo_regret < 0.1, "bo {bo_regret}");
}

#[test]
fn more_parameters_than_the_sobol_design_supports_are_refused() {
    let params: Vec<ParameterSpec> = (0..=MAX_DIMENSIONS)
        .map(|i| {
            ParameterSpec::double(format!("p{i}"), 0.0, 1.0, None, Distribution::Uniform).unwrap()
        })
        .collect();
    let space = SearchSpace::new(params).unwrap();
    let err = build("bayesianoptimization", &parsed(&[]), &space).unwrap_err();
    assert!(
        matches!(err, AlgorithmError::TooManyDimensions { .. }),
        "{err}"
    );
    let objective = Objective::new("loss", Direction::Minimize);
    let s = BayesSuggester::from_settings(&parsed(&[]));
    let req = SuggestRequest {
        space: &space,
        objective: &objective,
        history: &[],
        count: 1,
        seed: 0,
        state: None,
    };
    assert!(s.suggest(&req).is_err());
}

#[test]
fn maximisation_climbs_to_the_peak() {
    let space = box_space(&[(-1.0, 1.0)]);
    let objective = Objective::new("acc", Direction::Maximize);
    let s = BayesSuggester::from_settings(&parsed(&[("n_initial_points", "4")]));
    let mut history = Vec::new();
    for _ in 0..14 {
        for sug in ask(&s, &space, &objective, &history, 1, 8).suggestions {
            let x = point(&space, &sug.assignment)[0];
            history.push(finished(
                format!("t{}", history.len()),
                sug.assignment,
                -(x - 0.3).powi(2),
            ));
        }
    }
    let best = objective.best_trial(&history).unwrap();
    let x = point(&space, &best.assignment)[0];
    assert!((x - 0.3).abs() < 0.01, "best x {x}");
}

#[test]
fn gp_bo_beats_random_search_on_a_mixed_space_with_a_decisive_category() {
    let space = small_mixed_space();
    let objective = Objective::new("loss", Direction::Minimize);
    let f = |a: &Assignment| {
        let penalty = match a.get("opt") {
            Some(ParamValue::Text(t)) if t == "adam" => 0.0,
            _ => 0.5,
        };
        crate::suggest::conformance::simulated_value(&space, a) + penalty
    };
    let median_best = |s: &dyn Suggester| -> f64 {
        median(
            (0..3)
                .map(|seed| {
                    let mut history = Vec::new();
                    while history.len() < 30 {
                        for sug in ask(s, &space, &objective, &history, 1, seed).suggestions {
                            let v = f(&sug.assignment);
                            history.push(finished(
                                format!("t{}", history.len()),
                                sug.assignment,
                                v,
                            ));
                        }
                    }
                    objective
                        .best_trial(&history)
                        .and_then(|t| t.objective)
                        .unwrap()
                })
                .collect(),
        )
    };
    let bo = median_best(&BayesSuggester::from_settings(&parsed(&[])));
    let random = median_best(&RandomSuggester::new(None));
    assert!(bo < random && bo < 0.1, "bo {bo} vs random {random}");
}

#[test]
fn a_batch_is_spread_out_and_never_repeats_history() {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0)]);
    let objective = Objective::new("loss", Direction::Minimize);
    let s = BayesSuggester::from_settings(&parsed(&[("n_initial_points", "5")]));
    let mut history: Vec<TrialRecord> = (0..8)
        .map(|i| {
            let x = f64::from(i) / 7.0;
            let a = space.decode(&[x, 1.0 - x]);
            finished(format!("t{i}"), a, (x - 0.4).powi(2))
        })
        .collect();
    // One trial still running: it must be avoided as well.
    history.push(TrialRecord::new("running", space.decode(&[0.42, 0.58])));
    let out = ask(&s, &space, &objective, &history, 4, 3);
    assert_eq!(out.suggestions.len(), 4);
    let points: Vec<Vec<f64>> = out
        .suggestions
        .iter()
        .map(|s| point(&space, &s.assignment))
        .collect();
    for (i, p) in points.iter().enumerate() {
        for q in points.iter().skip(i + 1) {
            let dist = p
                .iter()
                .zip(q)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(dist > 1e-3, "{p:?} {q:?}");
        }
        for t in &history {
            assert_ne!(out.suggestions[i].assignment, t.assignment);
        }
    }
}

#[test]
fn a_fully_visited_finite_space_is_exhausted() {
    let space = SearchSpace::new(vec![
        ParameterSpec::categorical("opt", vec!["sgd".into(), "adam".into()]).unwrap(),
        ParameterSpec::int("layers", 1, 2, None, Distribution::Uniform).unwrap(),
    ])
    .unwrap();
    let s = BayesSuggester::from_settings(&parsed(&[("n_initial_points", "1")]));
    let (run, exhausted) = simulate(&s, &space, 5, &[2, 2, 2], None);
    assert!(exhausted);
    assert_eq!(run.len(), 4);
    let distinct: BTreeSet<_> = run
        .iter()
        .map(|t| t.assignment.to_katib_strings())
        .collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn nan_infinite_and_failed_results_are_ignored_not_fatal() {
    let space = box_space(&[(0.0, 1.0), (-1.0, 1.0)]);
    let objective = Objective::new("acc", Direction::Maximize);
    let s =
        BayesSuggester::from_settings(&parsed(&[("n_initial_points", "0"), ("acq_func", "LCB")]));
    let mut history = Vec::new();
    for (i, v) in [
        f64::NAN,
        1.0,
        f64::INFINITY,
        0.5,
        f64::NEG_INFINITY,
        0.7,
        0.7,
    ]
    .into_iter()
    .enumerate()
    {
        let x = f64::from(u32::try_from(i).unwrap()) / 7.0;
        history.push(finished(format!("t{i}"), space.decode(&[x, x]), v));
    }
    let mut failed = TrialRecord::new("failed", space.decode(&[0.9, 0.1]));
    failed.state = TrialState::Failed;
    history.push(failed);
    for acq in ["LCB", "PI", "EIps", "gp_hedge"] {
        let s2 = BayesSuggester::from_settings(&parsed(&[
            ("acq_func", acq),
            ("acq_optimizer", "sampling"),
        ]));
        for sug in [&s, &s2] {
            let out = ask(sug, &space, &objective, &history, 2, 1);
            assert_eq!(out.suggestions.len(), 2);
            assert!(
                out.suggestions
                    .iter()
                    .all(|s| space.contains(&s.assignment))
            );
        }
    }
}

#[test]
fn identical_inputs_give_one_suggestion_for_constant_results() {
    // All values equal and repeated points: standardisation and the
    // Cholesky must cope.
    let space = box_space(&[(0.0, 1.0)]);
    let objective = Objective::new("loss", Direction::Minimize);
    let history: Vec<TrialRecord> = (0..6)
        .map(|i| finished(format!("t{i}"), space.decode(&[0.5]), 1.0))
        .collect();
    let s = BayesSuggester::from_settings(&parsed(&[("n_initial_points", "0")]));
    let out = ask(&s, &space, &objective, &history, 1, 1);
    assert_eq!(out.suggestions.len(), 1);
    assert_ne!(out.suggestions[0].assignment, history[0].assignment);
}

#[test]
fn the_training_subset_keeps_the_best_and_the_latest() {
    let values: Vec<f64> = (0..1000).map(|i| f64::from((i * 7919) % 1000)).collect();
    let mut rng = derive_rng(1, 0, "t");
    let kept = subset(&values, 100, &mut rng);
    assert_eq!(kept.len(), 100);
    assert!(kept.windows(2).all(|w| w[0] < w[1]));
    let best = (0..1000)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap();
    assert!(kept.contains(&best) && kept.contains(&999));
}

/// Median time per suggestion at 100 and 1 000 observations in 6
/// dimensions (Hartmann-6 values at Sobol points). Run with
/// `cargo test --release -p ktune-algorithms bayes::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, run by hand in release mode"]
fn timing() {
    let h6 = testfns::ALL[1];
    let space = box_space(h6.bounds);
    let objective = Objective::new("loss", Direction::Minimize);
    let s = BayesSuggester::from_settings(&parsed(&[]));
    for n in [100usize, 1000] {
        let history: Vec<TrialRecord> = (0..n)
            .map(|k| {
                let a = space.decode(&sobol_point(9, k as u64, 6));
                let v = (h6.f)(&point(&space, &a));
                finished(format!("t{k}"), a, v)
            })
            .collect();
        let mut wall = Vec::new();
        for seed in 0..25 {
            let t0 = std::time::Instant::now();
            let _ = ask(&s, &space, &objective, &history, 1, seed);
            wall.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        // The minimum is the least disturbed by other processes.
        let min = wall.iter().copied().fold(f64::INFINITY, f64::min);
        println!("n = {n}: median {:.2} ms, min {min:.2} ms", median(wall));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn suggestions_are_in_the_space_and_reproducible(seed in any::<u64>(), n in 0usize..14, count in 1usize..4) {
        let space = small_mixed_space();
        let objective = Objective::new("loss", Direction::Minimize);
        let mut rng = derive_rng(seed, 0, "history");
        let history: Vec<TrialRecord> = (0..n)
            .map(|i| {
                let a = space.sample(&mut rng);
                let v = crate::suggest::conformance::simulated_value(&space, &a);
                finished(format!("t{i}"), a, v)
            })
            .collect();
        let s = BayesSuggester::from_settings(&parsed(&[("n_initial_points", "3")]));
        let a = ask(&s, &space, &objective, &history, count, seed);
        let b = ask(&s, &space, &objective, &history, count, seed);
        prop_assert_eq!(&a, &b);
        prop_assert!(a.suggestions.len() == count);
        for sug in &a.suggestions {
            prop_assert!(space.contains(&sug.assignment));
        }
    }
}

/// Median regret over seven seeds of GP-BO (EI and LCB) and random search
/// on the known-optimum functions. Run with
/// `cargo test --release -p ktune-algorithms bayes::tests::regret_report -- --ignored --nocapture`.
#[test]
#[ignore = "quality report, run by hand in release mode"]
fn regret_report() {
    for (fi, budget) in [(0usize, 30usize), (1, 60), (2, 60), (3, 30)] {
        let tf = testfns::ALL[fi];
        let space = box_space(tf.bounds);
        for (name, s) in [
            (
                "bo",
                Box::new(BayesSuggester::from_settings(&parsed(&[]))) as Box<dyn Suggester>,
            ),
            (
                "lcb",
                Box::new(BayesSuggester::from_settings(&parsed(&[(
                    "acq_func", "LCB",
                )]))),
            ),
            ("random", Box::new(RandomSuggester::new(None))),
        ] {
            let t0 = std::time::Instant::now();
            let r: Vec<f64> = (0..7)
                .map(|seed| run(s.as_ref(), &space, tf.f, seed, budget) - tf.minimum)
                .collect();
            println!(
                "{} {name}: median regret {:.4} (all {:?}) {:?}",
                tf.name,
                median(r.clone()),
                r.iter()
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>(),
                t0.elapsed()
            );
        }
    }
}

#[test]
fn hartmann6_basins_are_resolved_within_fifty_evaluations() {
    // With the lengthscale prior centred at √2 (median ℓ 4.1 unit-cube
    // widths) the model smoothed Hartmann-6 into one basin and most seeds
    // stopped at its local optima (regret 0.13 and 0.5): median regret
    // 0.139 over these 8 seeds. Centred at −½, 0.068; with the output
    // transform chosen by likelihood and the GLS mean, 0.0011; with that
    // mean profiled out of the hyperparameter fit as well, 0.0003.
    use crate::suggest::tpe::peer_report::{cases, regret_after};
    let case = cases().into_iter().find(|c| c.name == "hartmann6").unwrap();
    let s = BayesSuggester::from_settings(&parsed(&[]));
    let regrets: Vec<f64> = (0..8)
        .map(|seed| regret_after(&s, &case, seed, 50))
        .collect();
    let m = median(regrets.clone());
    assert!(m < 0.01, "median {m}: {regrets:?}");
}

/// The peer benchmark's functions (`tpe::peer_report`) with GP-BO: median
/// and mean log10 regret at 50 and 100 trials, for quick A/B runs.
/// `GP_SEEDS` (default 10), `GP_FIRST_SEED` (0), `GP_CASES` (names),
/// `GP_VERBOSE`, `GP_XI`, `GP_LS_LOC` (the lengthscale prior's
/// log-median). Run with `cargo test --release -p ktune-algorithms
/// bayes::tests::gp_peer_report -- --ignored --nocapture`.
#[test]
#[ignore = "quality report, run by hand in release mode"]
fn gp_peer_report() {
    use crate::suggest::tpe::peer_report::{cases, env_seeds, report_line, run_seeds, selected};
    let mut s = BayesSuggester::from_settings(&parsed(&[]));
    if let Some(xi) = std::env::var("GP_XI").ok().and_then(|v| v.parse().ok()) {
        s.xi = xi;
    }
    s.ls_loc = std::env::var("GP_LS_LOC").ok().and_then(|v| v.parse().ok());
    for case in cases().into_iter().filter(|c| selected("GP", c.name)) {
        let t0 = std::time::Instant::now();
        let (r50, r100) = run_seeds(&s, &case, env_seeds("GP", 10));
        if std::env::var("GP_VERBOSE").is_ok() {
            println!("{} @50: {r50:.4?}", case.name);
            println!("{} @100: {r100:.4?}", case.name);
        }
        let line = report_line("GP", case.name, &r50, &r100);
        println!("{line} ({:.1?})", t0.elapsed());
    }
}

/// One `mixed` run traced: each suggestion from trial 10 on, and the
/// hyperparameters fitted at a few points. `GP_SEED` picks the seed.
#[test]
#[ignore = "diagnostic, run by hand in release mode"]
fn gp_trace_mixed() {
    use crate::suggest::tpe::peer_report::cases;
    let seed: u64 = std::env::var("GP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let case = cases().into_iter().find(|c| c.name == "mixed").unwrap();
    let s = BayesSuggester::from_settings(&parsed(&[]));
    let objective = Objective::new("value", Direction::Minimize);
    let mut history: Vec<TrialRecord> = Vec::new();
    let map = FeatureMap::new(&case.space);
    for i in 0..60 {
        let a = ask(&s, &case.space, &objective, &history, 1, seed)
            .suggestions
            .remove(0)
            .assignment;
        let v = (case.f)(&a);
        println!(
            "{i:3} {v:9.4} {}",
            a.to_katib_strings()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        history.push(finished(format!("t{i}"), a, v));
        if i % 10 == 9 {
            let (obs, _) = read_history(&case.space, &map, &objective, &history);
            let raw: Vec<f64> = obs.iter().map(|(_, v)| *v).collect();
            let y = super::output::candidates(&raw).swap_remove(0).y;
            let x: Vec<f64> = obs.iter().flat_map(|(f, _)| f.clone()).collect();
            let h = fit_hyper(&x, &y, map.width(), super::gp::LS_LOC).hyper;
            println!(
                "    ls {:.3?} signal {:.3} noise {:.2e}",
                h.log_lengthscales
                    .iter()
                    .map(|l| l.exp())
                    .collect::<Vec<_>>(),
                h.log_signal.exp(),
                h.log_noise.exp()
            );
        }
    }
}
