//! Time per suggestion for every implemented algorithm, against history
//! size (10 … 10 000 trials) and dimension (2, 10, 50).
//!
//! Run with `cargo bench -p ktune-algorithms --bench suggest`; the whole run
//! takes a few minutes (short measurement windows, 10 samples each).
//! Histories are realistic for each algorithm: random points for random,
//! sobol and grid, and a real Hyperband run (labels included) for hyperband.

// A benchmark whose setup is broken should abort loudly, like a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ktune_algorithms::history::{Direction, Objective, Observation, TrialRecord, TrialState};
use ktune_algorithms::settings;
use ktune_algorithms::space::nas::{NasGraph, NasOperation, NasParameter, NasValues};
use ktune_algorithms::space::{Distribution, ParameterSpec, SearchSpace};
use ktune_algorithms::suggest::{SuggestRequest, Suggester, build_suggester};
use ktune_algorithms::testfns::sphere;

const HISTORY: [usize; 4] = [10, 100, 1_000, 10_000];
const DIMS: [usize; 3] = [2, 10, 50];

fn space(algorithm: &str, dims: usize) -> SearchSpace {
    let mut params: Vec<ParameterSpec> = (0..dims)
        .map(|i| {
            let name = format!("x{i}");
            if algorithm == "grid" {
                ParameterSpec::int(name, 0, 9, None, Distribution::Uniform)
            } else {
                ParameterSpec::double(name, -5.0, 5.0, None, Distribution::Uniform)
            }
            .unwrap()
        })
        .collect();
    if algorithm == "hyperband" {
        params.push(ParameterSpec::int("epochs", 1, 6561, None, Distribution::Uniform).unwrap());
    }
    SearchSpace::new(params).unwrap()
}

fn settings_for(algorithm: &str) -> settings::Settings {
    let given: &[(&str, &str)] = match algorithm {
        "hyperband" => &[("resource_name", "epochs"), ("r_l", "6561"), ("eta", "3")],
        _ => &[],
    };
    settings::algorithm(algorithm)
        .unwrap()
        .parse(given.iter().copied())
        .unwrap()
}

/// A history of `n` finished trials produced by `s` itself (or by random
/// search for algorithms whose cost does not depend on who made the history).
fn history(s: &dyn Suggester, space: &SearchSpace, n: usize) -> Vec<TrialRecord> {
    let objective = Objective::new("loss", Direction::Minimize);
    let mut history: Vec<TrialRecord> = Vec::with_capacity(n);
    while history.len() < n {
        let out = s
            .suggest(&SuggestRequest {
                space,
                objective: &objective,
                history: &history,
                count: n - history.len(),
                seed: 1,
                state: None,
            })
            .unwrap();
        if out.suggestions.is_empty() {
            break;
        }
        for sug in out.suggestions {
            let x: Vec<f64> = space.encode(&sug.assignment).unwrap_or_default();
            let value = sphere(&x);
            let mut t = TrialRecord::new(format!("t{}", history.len()), sug.assignment);
            t.labels = sug.labels;
            t.state = TrialState::Succeeded;
            t.objective = Some(value);
            t.observations = vec![Observation { step: 1, value }];
            history.push(t);
        }
    }
    history
}

/// Every algorithm with the history sizes and dimensions it is used at (a
/// GP at 10 000 observations is not), and who makes its history: CMA-ES
/// and Hyperband read only their own trials; the others any history.
const CASES: [(&str, &[usize], &[usize], &str); 8] = [
    ("random", &HISTORY, &DIMS, "random"),
    ("sobol", &HISTORY, &DIMS, "random"),
    ("grid", &HISTORY, &DIMS, "random"),
    ("hyperband", &HISTORY, &DIMS, "hyperband"),
    ("tpe", &HISTORY, &DIMS, "random"),
    ("multivariate-tpe", &HISTORY, &DIMS, "random"),
    ("cmaes", &[10, 100, 1_000], &DIMS, "cmaes"),
    (
        "bayesianoptimization",
        &[10, 100, 1_000],
        &[2, 6, 10],
        "random",
    ),
];

fn bench(c: &mut Criterion) {
    for (algorithm, sizes, dims_list, history_maker) in CASES {
        let mut group = c.benchmark_group(algorithm);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(700));
        for &dims in dims_list {
            let space = space(algorithm, dims);
            let s = build_suggester(algorithm, &settings_for(algorithm), &space).unwrap();
            let maker =
                build_suggester(history_maker, &settings_for(history_maker), &space).unwrap();
            let largest = sizes.iter().copied().max().unwrap_or(0);
            let full = history(maker.as_ref(), &space, largest);
            let objective = Objective::new("loss", Direction::Minimize);
            for &n in sizes {
                let past = &full[..n.min(full.len())];
                group.bench_with_input(
                    BenchmarkId::new(format!("d{dims}"), n),
                    &past,
                    |b, past| {
                        b.iter(|| {
                            s.suggest(black_box(&SuggestRequest {
                                space: &space,
                                objective: &objective,
                                history: past,
                                count: 1,
                                seed: 42,
                                state: None,
                            }))
                            .unwrap()
                        });
                    },
                );
            }
        }
        group.finish();
    }
}

/// Katib's enas-gpu example's graph: 8 layers; 106 operations (the
/// convolution, separable, depthwise and reduction combinations).
fn enas_space() -> SearchSpace {
    let list = |values: &[&str]| NasValues::List(values.iter().map(|v| (*v).to_owned()).collect());
    let param = |name: &str, values: NasValues| NasParameter {
        name: name.to_owned(),
        values,
    };
    let filters = || param("filter_size", list(&["3", "5", "7"]));
    let counts = || param("num_filter", list(&["32", "48", "64", "96", "128"]));
    let stride = || param("stride", list(&["1", "2"]));
    let depth = || param("depth_multiplier", list(&["1", "2"]));
    let op = |t: &str, parameters| NasOperation {
        operation_type: t.to_owned(),
        parameters,
    };
    SearchSpace::nas(
        NasGraph::new(
            8,
            vec![32, 32, 3],
            vec![10],
            vec![
                op("convolution", vec![filters(), counts(), stride()]),
                op(
                    "separable_convolution",
                    vec![filters(), counts(), stride(), depth()],
                ),
                op("depthwise_convolution", vec![filters(), stride(), depth()]),
                op(
                    "reduction",
                    vec![
                        param("reduction_type", list(&["max_pooling", "avg_pooling"])),
                        param(
                            "pool_size",
                            NasValues::Int {
                                min: 2,
                                max: 3,
                                step: 1,
                            },
                        ),
                    ],
                ),
            ],
        )
        .unwrap(),
    )
}

/// ENAS with Katib's defaults (hidden size 64, 50 train steps) on a
/// history of 100 trials made by ENAS itself in rounds of 4: one round
/// trained from the previous call's state (the usual call), and the whole
/// history replayed without it (a restart).
fn bench_enas(c: &mut Criterion) {
    let space = enas_space();
    let settings = settings::algorithm("enas")
        .unwrap()
        .parse(std::iter::empty())
        .unwrap();
    let s = build_suggester("enas", &settings, &space).unwrap();
    let objective = Objective::new("accuracy", Direction::Maximize);
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut state = None;
    while history.len() < 100 {
        let out = s
            .suggest(&SuggestRequest {
                space: &space,
                objective: &objective,
                history: &history,
                count: 4,
                seed: 1,
                state: state.as_ref(),
            })
            .unwrap();
        state = out.state;
        for sug in out.suggestions {
            let value = (history.len() % 7) as f64 / 7.0;
            let mut t = TrialRecord::new(format!("t{}", history.len()), sug.assignment);
            t.labels = sug.labels;
            t.state = TrialState::Succeeded;
            t.objective = Some(value);
            history.push(t);
        }
    }
    // `state` covers 96 trials; the last round of 4 is new to it.
    let mut group = c.benchmark_group("enas");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for (name, with_state) in [("round-from-state", true), ("replay-100", false)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                s.suggest(black_box(&SuggestRequest {
                    space: &space,
                    objective: &objective,
                    history: &history,
                    count: 4,
                    seed: 1,
                    state: if with_state { state.as_ref() } else { None },
                }))
                .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_enas);
criterion_main!(benches);
