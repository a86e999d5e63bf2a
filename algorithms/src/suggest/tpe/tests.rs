use proptest::prelude::*;

use super::*;
use crate::history::{Direction, Observation};
use crate::space::{Assignment, ParamValue, ParameterSpec};
use crate::suggest::conformance::{check_suggester, simulate};

const VARIANTS: [&str; 2] = ["tpe", "multivariate-tpe"];

/// Every kind of parameter TPE models differently.
fn space() -> SearchSpace {
    SearchSpace::new(vec![
        ParameterSpec::double("lr", 1e-5, 1.0, None, Distribution::LogUniform).unwrap(),
        ParameterSpec::double("wd", 0.0, 0.3, None, Distribution::Normal).unwrap(),
        ParameterSpec::double("m", 0.1, 0.9, Some(0.2), Distribution::Uniform).unwrap(),
        ParameterSpec::int("depth", 2, 12, None, Distribution::Uniform).unwrap(),
        ParameterSpec::int("width", 8, 1024, Some(8), Distribution::LogUniform).unwrap(),
        ParameterSpec::double("warm", 1e-3, 1.0, Some(1e-3), Distribution::LogNormal).unwrap(),
        ParameterSpec::discrete(
            "bs",
            vec![
                ParamValue::Int(256),
                ParamValue::Int(16),
                ParamValue::Float(64.5),
            ],
        )
        .unwrap(),
        ParameterSpec::categorical("act", vec!["relu".into(), "gelu".into(), "tanh".into()])
            .unwrap(),
        ParameterSpec::int("one", 4, 4, None, Distribution::Uniform).unwrap(),
    ])
    .unwrap()
}

fn build_named(name: &str, given: &[(&str, &str)]) -> Box<dyn Suggester> {
    let settings = crate::settings::algorithm(name)
        .unwrap()
        .parse(given.iter().copied())
        .unwrap();
    crate::suggest::build_suggester(name, &settings, &space()).unwrap()
}

fn request<'a>(
    space: &'a SearchSpace,
    objective: &'a Objective,
    history: &'a [TrialRecord],
    count: usize,
    seed: u64,
) -> SuggestRequest<'a> {
    SuggestRequest {
        space,
        objective,
        history,
        count,
        seed,
        state: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    // The random start conforms in full, batching included.
    #[test]
    fn startup_phase_conforms(seed in any::<u64>(), batches in prop::collection::vec(0usize..5, 1..6)) {
        for name in VARIANTS {
            check_suggester(name, &[("n_startup_trials", "40")], &space(), seed, &batches, None);
        }
    }

    // With the model on, a batch differs from the same trials asked one by
    // one (earlier members are pending, not finished), so the suite runs
    // one suggestion per call; batches are checked below.
    #[test]
    fn model_phase_conforms(seed in any::<u64>(), n in 5usize..25) {
        for name in VARIANTS {
            check_suggester(name, &[("n_startup_trials", "4")], &space(), seed, &vec![1; n], None);
        }
    }

    #[test]
    fn batches_are_in_bounds_deterministic_and_distinct(
        seed in any::<u64>(),
        batches in prop::collection::vec(1usize..6, 2..6),
    ) {
        let continuous = SearchSpace::new(vec![
            ParameterSpec::double("a", -1.0, 1.0, None, Distribution::Uniform).unwrap(),
            ParameterSpec::double("b", 1e-3, 1.0, None, Distribution::LogUniform).unwrap(),
        ]).unwrap();
        for name in VARIANTS {
            let s = build_named(name, &[("n_startup_trials", "2")]);
            let (run, _) = simulate(s.as_ref(), &continuous, seed, &batches, None);
            let (again, _) = simulate(s.as_ref(), &continuous, seed, &batches, None);
            prop_assert_eq!(&run, &again);
            for (i, t) in run.iter().enumerate() {
                prop_assert!(continuous.contains(&t.assignment));
                for u in &run[..i] {
                    prop_assert_ne!(&u.assignment, &t.assignment, "{} repeated a point", name);
                }
            }
        }
    }

    // Arbitrary histories: any states, NaN and infinite objectives, foreign
    // and partial assignments.
    #[test]
    fn any_history_gives_valid_deterministic_suggestions(
        seed in any::<u64>(),
        trials in prop::collection::vec((0u8..7, prop::num::f64::ANY, 0u8..4), 0..40),
        count in 0usize..4,
        maximize in any::<bool>(),
    ) {
        let space = space();
        let mut rng = derive_rng(seed, 0, "history");
        let history: Vec<TrialRecord> = trials
            .iter()
            .enumerate()
            .map(|(i, &(state, value, shape))| {
                let mut a = space.sample(&mut rng);
                match shape {
                    0 => a.set("lr", ParamValue::Float(7.0)),
                    1 => a = Assignment::new(),
                    _ => {}
                }
                let mut t = TrialRecord::new(format!("t{i}"), a);
                t.state = [
                    TrialState::Pending,
                    TrialState::Running,
                    TrialState::Succeeded,
                    TrialState::Failed,
                    TrialState::Killed,
                    TrialState::EarlyStopped,
                    TrialState::MetricsUnavailable,
                ][usize::from(state)];
                t.objective = Some(value);
                t.observations = vec![Observation { step: u64::from(shape), value }];
                t
            })
            .collect();
        let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
        let objective = Objective::new("loss", direction);
        for name in VARIANTS {
            let s = build_named(name, &[("n_startup_trials", "3"), ("n_ei_candidates", "5")]);
            let req = request(&space, &objective, &history, count, seed);
            let out = s.suggest(&req).unwrap();
            prop_assert_eq!(out.suggestions.len(), count);
            for sug in &out.suggestions {
                prop_assert!(space.contains(&sug.assignment), "{:?}", sug.assignment);
            }
            prop_assert_eq!(&out, &s.suggest(&req).unwrap());
        }
    }
}

#[test]
fn the_first_trials_are_a_sobol_design_except_for_normal_shapes() {
    let space = space();
    let objective = Objective::new("loss", Direction::Minimize);
    let s = build_named("tpe", &[("random_state", "11")]);
    let out = s.suggest(&request(&space, &objective, &[], 8, 99)).unwrap();
    let mut eighths = [0; 8];
    for (k, sug) in out.suggestions.iter().enumerate() {
        let design = space.decode(&sobol_point(11, k as u64, space.len()));
        for p in space.params() {
            let (got, planned) = (sug.assignment.get(p.name()), design.get(p.name()));
            match p.distribution() {
                Distribution::Normal | Distribution::LogNormal => {
                    assert!(p.contains(got.unwrap()), "{}", p.name());
                }
                _ => assert_eq!(got, planned, "{} at {k}", p.name()),
            }
        }
        // Stratified: the first 8 points put one `lr` in each eighth of its
        // log range, which 8 independent draws do with probability 0.24 %.
        let u = space.params()[0]
            .encode(sug.assignment.get("lr").unwrap())
            .unwrap();
        eighths[((u * 8.0) as usize).min(7)] += 1;
    }
    assert_eq!(eighths, [1; 8]);
    // The normal-shaped `wd` is a draw from its distribution, not the design.
    let wd: Vec<_> = out
        .suggestions
        .iter()
        .map(|s| s.assignment.get("wd"))
        .collect();
    let planned: Vec<_> = (0..8)
        .map(|k| {
            space
                .decode(&sobol_point(11, k, space.len()))
                .get("wd")
                .cloned()
        })
        .collect();
    assert_ne!(wd, planned.iter().map(Option::as_ref).collect::<Vec<_>>());
}

#[test]
fn settings_are_read_with_katib_names_and_defaults() {
    let parsed = crate::settings::algorithm("tpe")
        .unwrap()
        .parse([
            ("n_EI_candidates", "7"),
            ("gamma", "0.3"),
            ("random_state", "3"),
        ])
        .unwrap();
    let c = TpeConfig::from_settings(&parsed, true);
    assert_eq!(c.n_ei_candidates, 7);
    assert_eq!(c.gamma, 0.3);
    assert_eq!(c.seed, Some(3));
    assert_eq!(c.n_startup_trials, 10);
    assert_eq!(c.prior_weight, 1.0);
    assert!(c.multivariate);
    assert_eq!(
        TpeConfig::from_settings(&Settings::default(), false),
        TpeConfig::default()
    );
    for name in VARIANTS {
        assert_eq!(build_named(name, &[]).name(), name);
    }
}

/// The regret (best value found minus the known minimum) of `algorithm`
/// with `given` settings after `budget` trials on `f`, asked one at a time;
/// `maximize` hands it `-f` to maximise instead.
fn regret(
    algorithm: &str,
    given: &[(&str, &str)],
    f: &crate::testfns::TestFunction,
    seed: u64,
    budget: usize,
    maximize: bool,
) -> f64 {
    let params = f.bounds.iter().enumerate().map(|(i, &(lo, hi))| {
        ParameterSpec::double(format!("x{i}"), lo, hi, None, Distribution::Uniform).unwrap()
    });
    let space = SearchSpace::new(params.collect()).unwrap();
    let direction = if maximize {
        Direction::Maximize
    } else {
        Direction::Minimize
    };
    let objective = Objective::new("value", direction);
    let settings = crate::settings::algorithm(algorithm)
        .unwrap()
        .parse(given.iter().copied())
        .unwrap();
    let s = crate::suggest::build_suggester(algorithm, &settings, &space).unwrap();
    let mut history = Vec::new();
    let mut best = f64::INFINITY;
    for i in 0..budget {
        let out = s
            .suggest(&request(&space, &objective, &history, 1, seed))
            .unwrap();
        let a = &out.suggestions[0].assignment;
        let x: Vec<f64> = a.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
        let v = (f.f)(&x);
        best = best.min(v);
        let mut t = TrialRecord::new(format!("t{i}"), a.clone());
        t.state = TrialState::Succeeded;
        t.objective = Some(if maximize { -v } else { v });
        history.push(t);
    }
    best - f.minimum
}

fn branin_regret(algorithm: &str, seed: u64, maximize: bool) -> f64 {
    regret(algorithm, &[], &crate::testfns::ALL[0], seed, 60, maximize)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    0.5 * (v[v.len() / 2] + v[(v.len() - 1) / 2])
}

#[test]
fn tpe_beats_random_search_on_branin_after_sixty_trials() {
    let seeds = 0..12u64;
    let random = median(
        seeds
            .clone()
            .map(|s| branin_regret("random", s, false))
            .collect(),
    );
    for name in VARIANTS {
        for maximize in [false, true] {
            let bests: Vec<f64> = seeds
                .clone()
                .map(|s| branin_regret(name, s, maximize))
                .collect();
            let wins = bests.iter().filter(|&&b| b < random).count();
            let m = median(bests);
            assert!(
                m < random,
                "{name} (maximize {maximize}): median {m} vs random {random}"
            );
            assert!(
                wins >= 8,
                "{name}: only {wins} of 12 seeds beat random's median"
            );
        }
    }
}

#[test]
fn pending_trials_push_the_next_suggestion_away() {
    // Twenty finished trials on a 1-D quadratic, then a batch of 6: the
    // batch spreads instead of piling onto the optimum.
    let space = SearchSpace::new(vec![
        ParameterSpec::double("x", 0.0, 1.0, None, Distribution::Uniform).unwrap(),
    ])
    .unwrap();
    let objective = Objective::new("loss", Direction::Minimize);
    let history: Vec<TrialRecord> = (0..20)
        .map(|i| {
            let x = f64::from(i) / 19.0;
            let mut t = TrialRecord::new(
                format!("t{i}"),
                [("x", ParamValue::Float(x))].into_iter().collect(),
            );
            t.state = TrialState::Succeeded;
            t.objective = Some((x - 0.3).powi(2));
            t
        })
        .collect();
    for name in VARIANTS {
        let s = build_named(name, &[]);
        let out = s
            .suggest(&request(&space, &objective, &history, 6, 5))
            .unwrap();
        let xs: Vec<f64> = out
            .suggestions
            .iter()
            .map(|s| s.assignment.get("x").unwrap().as_f64().unwrap())
            .collect();
        let spread = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - xs.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(spread > 0.05, "{name}: {xs:?}");
        // The first one, with nothing pending, is near the optimum.
        assert!((xs[0] - 0.3).abs() < 0.2, "{name}: {xs:?}");
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`).
fn thread_cpu_ns() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Median time per suggestion on a 6-D double space with random histories.
/// Not an assertion: run with
/// `cargo test --release -p ktune-algorithms tpe::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check: run in release with --ignored --nocapture"]
fn timing_per_suggestion_in_six_dimensions() {
    let space = SearchSpace::new(
        (0..6)
            .map(|i| {
                ParameterSpec::double(format!("x{i}"), -5.0, 5.0, None, Distribution::Uniform)
                    .unwrap()
            })
            .collect(),
    )
    .unwrap();
    let objective = Objective::new("loss", Direction::Minimize);
    let mut rng = derive_rng(1, 2, "timing");
    let history: Vec<TrialRecord> = (0..10_000)
        .map(|i| {
            let a = space.sample(&mut rng);
            let x: Vec<f64> = a.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
            let mut t = TrialRecord::new(format!("t{i}"), a);
            t.state = TrialState::Succeeded;
            t.objective = Some(crate::testfns::sphere(&x));
            t
        })
        .collect();
    for name in VARIANTS {
        let settings = crate::settings::algorithm(name).unwrap().parse([]).unwrap();
        let s = crate::suggest::build_suggester(name, &settings, &space).unwrap();
        for n in [100, 1_000, 10_000] {
            // On-CPU time of this thread (the build machine is shared, so
            // wall time would count other processes' slices), per call,
            // averaged over blocks of about 0.2 s: the kernel updates the
            // count only at scheduler ticks.
            let calls = 200_000 / n as u64;
            let mut times: Vec<f64> = (0..7)
                .map(|r| {
                    let start = thread_cpu_ns();
                    for i in 0..calls {
                        let req = request(&space, &objective, &history[..n], 1, r * calls + i);
                        std::hint::black_box(s.suggest(&req).unwrap());
                    }
                    (thread_cpu_ns() - start) / calls as f64 / 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!("{name} n={n}: median {:.1} µs", times[times.len() / 2]);
        }
    }
}

/// Median regret over seeds for a few settings; a report, not a check.
#[test]
#[ignore = "quality report, not a check: run in release with --ignored --nocapture"]
fn quality_report() {
    for f in crate::testfns::ALL {
        for (name, given) in [
            ("random", &[][..]),
            ("tpe", &[]),
            ("tpe", &[("gamma", "0.25")]),
            ("multivariate-tpe", &[]),
            ("multivariate-tpe", &[("gamma", "0.25")]),
        ] {
            let regrets = (0..20).map(|seed| regret(name, given, f, seed, 100, false));
            let m = median(regrets.collect());
            println!(
                "{} {name} {given:?}: median regret after 100 trials {m:.4}",
                f.name
            );
        }
    }
}

#[test]
fn degenerate_spaces_and_histories_still_give_valid_suggestions() {
    let objective = Objective::new("loss", Direction::Minimize);
    let fixed = SearchSpace::new(vec![
        ParameterSpec::double("c", 2.0, 2.0, None, Distribution::Uniform).unwrap(),
        ParameterSpec::categorical("only", vec!["x".into()]).unwrap(),
    ])
    .unwrap();
    let one = SearchSpace::new(vec![
        ParameterSpec::int("k", 0, 3, None, Distribution::Uniform).unwrap(),
    ])
    .unwrap();
    for space in [&fixed, &one] {
        let mut t = TrialRecord::new("t0", space.sample(&mut derive_rng(1, 1, "x")));
        t.state = TrialState::Succeeded;
        t.objective = Some(1.0);
        let mut failed = t.clone();
        failed.state = TrialState::Failed;
        for history in [
            vec![],
            vec![t.clone()],
            vec![failed.clone(), failed],
            vec![t],
        ] {
            for name in VARIANTS {
                let settings = crate::settings::algorithm(name)
                    .unwrap()
                    .parse([("n_startup_trials", "0")])
                    .unwrap();
                let s = crate::suggest::build_suggester(name, &settings, space).unwrap();
                let out = s
                    .suggest(&request(space, &objective, &history, 6, 3))
                    .unwrap();
                assert_eq!(out.suggestions.len(), 6);
                for sug in &out.suggestions {
                    assert!(
                        space.contains(&sug.assignment),
                        "{name}: {:?}",
                        sug.assignment
                    );
                }
            }
        }
    }
}

/// The peer benchmark's `mixed` function (log-scale double, two ints, a
/// double that interacts with one of them, a categorical): in how many of
/// `seeds` did `tpe` end on the right integers (regret < 0.2: one step off
/// costs 0.25 or more) after 100 trials?
fn mixed_on_the_right_integers(name: &str, seeds: std::ops::Range<u64>) -> usize {
    let case = super::peer_report::cases()
        .into_iter()
        .find(|c| c.name == "mixed")
        .unwrap();
    let settings = crate::settings::algorithm(name)
        .unwrap()
        .parse(std::iter::empty())
        .unwrap();
    let s = crate::suggest::build_suggester(name, &settings, &case.space).unwrap();
    seeds
        .filter(|&seed| super::peer_report::run(&*s, &case, seed).1 < 0.2)
        .count()
}

#[test]
fn univariate_tpe_leaves_a_wrong_integer_on_the_mixed_function() {
    // With the good estimator's floor as narrow on the integers as on the
    // doubles, half the seeds settled one step from the best `layers` or
    // `batch_log2` (12 of seeds 0-23); with the wider floor on integer
    // dimensions, 16 of 24 (over 400 seeds: 56 % before, 78 % after;
    // Optuna's TPESampler 80 % over 40).
    let found = mixed_on_the_right_integers("tpe", 0..24);
    assert!(
        found >= 15,
        "only {found} of 24 seeds found the right integers"
    );
}
