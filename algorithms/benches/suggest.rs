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

fn bench(c: &mut Criterion) {
    for algorithm in ["random", "sobol", "grid", "hyperband"] {
        let mut group = c.benchmark_group(algorithm);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600));
        for dims in DIMS {
            let space = space(algorithm, dims);
            let s = build_suggester(algorithm, &settings_for(algorithm), &space).unwrap();
            let maker = if algorithm == "hyperband" {
                build_suggester("hyperband", &settings_for("hyperband"), &space).unwrap()
            } else {
                build_suggester("random", &settings_for("random"), &space).unwrap()
            };
            let full = history(maker.as_ref(), &space, *HISTORY.last().unwrap_or(&0));
            for n in HISTORY {
                let past = &full[..n.min(full.len())];
                let objective = Objective::new("loss", Direction::Minimize);
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

/// The model-based algorithms, on the history sizes and dimensions where
/// they are used in practice (a GP at 10 000 observations is not).
fn bench_model_based(c: &mut Criterion) {
    let cases: [(&str, &[usize], &[usize]); 4] = [
        ("tpe", &[10, 100, 1_000, 10_000], &[2, 10, 50]),
        ("multivariate-tpe", &[10, 100, 1_000, 10_000], &[2, 10, 50]),
        ("cmaes", &[10, 100, 1_000], &[2, 10, 50]),
        ("bayesianoptimization", &[10, 100, 1_000], &[2, 6, 10]),
    ];
    for (algorithm, sizes, dims_list) in cases {
        let mut group = c.benchmark_group(algorithm);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800));
        for &dims in dims_list {
            let space = space(algorithm, dims);
            let s = build_suggester(algorithm, &settings_for(algorithm), &space).unwrap();
            // CMA-ES reads only its own generations; the others read any history.
            let maker = if algorithm == "cmaes" {
                build_suggester("cmaes", &settings_for("cmaes"), &space).unwrap()
            } else {
                build_suggester("random", &settings_for("random"), &space).unwrap()
            };
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

criterion_group!(benches, bench, bench_model_based);
criterion_main!(benches);
