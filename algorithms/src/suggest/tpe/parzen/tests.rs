use super::*;
use crate::rng::derive_rng;
use crate::space::{Distribution, ParameterSpec};

fn dims_of(specs: &[ParameterSpec]) -> Vec<Dim> {
    specs.iter().map(Dim::new).collect()
}

/// A fit to `coords` (one row per observation), all weights 1.
fn fitted(dims: &[Dim], coords: &[f64], n_ranked: usize, which: &[usize]) -> Parzen<'static> {
    fitted_as(dims, coords, n_ranked, which, false)
}

/// [`fitted`], as one joint (multivariate) estimator when `joint`.
fn fitted_as(
    dims: &[Dim],
    coords: &[f64],
    n_ranked: usize,
    which: &[usize],
    joint: bool,
) -> Parzen<'static> {
    let n = coords.len() / dims.len();
    let rows: Vec<usize> = (0..n).collect();
    // Leaked so the estimator can borrow it for the rest of the test.
    let weights: &'static KernelWeights =
        Box::leak(Box::new(KernelWeights::new(&vec![1.0; n], 1.0)));
    let setup = Setup {
        dims,
        prior_weight: 1.0,
        n_ranked,
        joint,
    };
    Parzen::new(
        &setup,
        which,
        &Fit {
            coords,
            rows: &rows,
        },
        weights,
    )
}

#[test]
fn one_observation_matches_the_hand_computed_mixture() {
    // One kernel at 0.3 on [0, 1]: its sigma is the larger gap to the range
    // ends, 0.7 (above the floor 1/3); the prior kernel is N(0.5, 1). Both
    // truncated to [0, 1], weights 1/2 each.
    let dims =
        dims_of(&[ParameterSpec::double("x", 0.0, 1.0, None, Distribution::Uniform).unwrap()]);
    let p = fitted(&dims, &[0.3], 1, &[0]);
    let sqrt_2pi = (2.0 * std::f64::consts::PI).sqrt();
    let z_kernel = 0.8413447460685429 - 0.3341175708976247; // Φ(1) - Φ(-3/7)
    let z_prior = 0.382_924_922_548_026; // Φ(0.5) - Φ(-0.5)
    let kernel = (-0.5 * (0.1f64 / 0.7).powi(2)).exp() / sqrt_2pi / 0.7 / z_kernel;
    let prior = (-0.5 * 0.1f64.powi(2)).exp() / sqrt_2pi / z_prior;
    let want = (0.5 * kernel + 0.5 * prior).ln();
    let got = p.log_pdf(&[0.4], &mut Vec::new());
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn neighbour_bandwidths_follow_optuna() {
    // Sorted: 0.1, 0.2, 0.9 (the prior's mean is not among them).
    let s = neighbour_sigmas(&[0.9, 0.1, 0.2], 0.0, 1.0);
    // 0.9 is last: its inner gap 0.7; 0.1 is first: its inner gap 0.1;
    // 0.2: max(0.1, 0.7).
    assert_eq!(s.len(), 3);
    assert!((s[0] - 0.7).abs() < 1e-15);
    assert!((s[1] - 0.1).abs() < 1e-15);
    assert!((s[2] - 0.7).abs() < 1e-15);
    // A lone kernel counts the range ends: max(0.3, 0.7).
    assert_eq!(neighbour_sigmas(&[0.3], 0.0, 1.0), vec![0.7]);
    // Ties share a zero gap on one side and take the other.
    let t = neighbour_sigmas(&[0.5, 0.5, 0.5], 0.0, 1.0);
    assert_eq!(t, vec![0.0, 0.0, 0.0]);
    assert!(neighbour_sigmas(&[], 0.0, 1.0).is_empty());
}

#[test]
fn the_floor_is_optunas_for_a_whole_history_and_narrower_for_a_tenth_of_it() {
    // The bad group (m = n): Optuna's width / min(100, m + 2).
    assert!((min_sigma(1.0, 40, 40) - 1.0 / 42.0).abs() < 1e-15);
    assert!((min_sigma(2.0, 500, 400) - 2.0 / 100.0).abs() < 1e-15);
    // The good group of 10 among 90: width / (sqrt(900) + 2).
    assert!((min_sigma(1.0, 10, 90) - 1.0 / 32.0).abs() < 1e-15);
    // Never wider than Optuna's, never narrower than 1 % of the range.
    for m in 0..60 {
        for n in 0..300 {
            let f = min_sigma(1.0, m, n);
            assert!(f <= 1.0 / (m as f64 + 2.0).min(100.0) + 1e-15, "{m} {n}");
            assert!(f >= 0.01 - 1e-15, "{m} {n}");
        }
    }
}

#[test]
fn the_ladder_floor_lies_between_ktunes_and_optunas() {
    // Ten good trials among 100 on 8 points (width 8): ktune's floor
    // 8 / (sqrt(1000) + 2), Optuna's 8 / 12, the ladder's their geometric mean.
    let k = min_sigma(8.0, 10, 100);
    let o = 8.0 / 12.0;
    assert!((ladder_min_sigma(8.0, 10, 100) - (k * o).sqrt()).abs() < 1e-15);
    for m in 0..60 {
        for n in 0..300 {
            let f = ladder_min_sigma(1.0, m, n);
            let optuna = 1.0 / (m as f64 + 2.0).min(100.0);
            assert!(f <= optuna + 1e-15, "{m} {n}");
            assert!(f >= min_sigma(1.0, m, n) - 1e-15, "{m} {n}");
        }
    }
    // Where m = n (the bad group) all three agree.
    assert!((ladder_min_sigma(1.0, 40, 40) - 1.0 / 42.0).abs() < 1e-15);
}

#[test]
fn a_good_group_on_one_integer_leaves_its_neighbours_a_chance() {
    // Ten good trials, all at layers = 4 (index 3), among 100 ranked: the
    // univariate estimator must still give 3 and 5 a real probability, or
    // TPE never tries them and settles on 4 for good. The joint estimator
    // keeps the sharper floor: its kernels carry the trial's other
    // coordinates, which are tuned for 4.
    let dims = dims_of(&[ParameterSpec::int("layers", 1, 8, None, Distribution::Uniform).unwrap()]);
    let coords = [3.0; 10];
    let p = |joint: bool, k: f64| {
        fitted_as(&dims, &coords, 100, &[0], joint)
            .log_pdf(&[k], &mut Vec::new())
            .exp()
    };
    for joint in [false, true] {
        let total: f64 = (0..8).map(|k| p(joint, f64::from(k))).sum();
        assert!((total - 1.0).abs() < 1e-12, "{joint}: {total}");
    }
    let (uni, multi) = (p(false, 2.0), p(true, 2.0));
    assert!(uni > 0.08, "univariate P(3) = {uni}");
    assert!(multi < 0.05, "joint P(3) = {multi}");
    assert!(p(false, 4.0) > 0.08, "univariate P(5) = {}", p(false, 4.0));
}

#[test]
fn clustered_good_kernels_narrow_as_the_history_grows() {
    // Five good trials at 0.5 on [0, 1]: alone (Optuna's floor 1/7) their
    // density at the cluster is lower than among 400 ranked trials
    // (floor 1/(sqrt(2000) + 2)).
    let dims =
        dims_of(&[ParameterSpec::double("x", 0.0, 1.0, None, Distribution::Uniform).unwrap()]);
    let coords = [0.5; 5];
    let alone = fitted(&dims, &coords, 5, &[0]).log_pdf(&[0.5], &mut Vec::new());
    let among = fitted(&dims, &coords, 400, &[0]).log_pdf(&[0.5], &mut Vec::new());
    assert!(among > alone + 1.0, "{among} vs {alone}");
    // Both still integrate to one.
    for n_ranked in [5, 400] {
        let p = fitted(&dims, &coords, n_ranked, &[0]);
        assert!((integrate(&p, 0.0, 1.0) - 1.0).abs() < 1e-6);
    }
}

fn integrate(p: &Parzen, low: f64, high: f64) -> f64 {
    let n = 20_000;
    let h = (high - low) / f64::from(n);
    let mut scratch = Vec::new();
    (0..n)
        .map(|i| {
            let x = low + (f64::from(i) + 0.5) * h;
            p.log_pdf(&[x], &mut scratch).exp() * h
        })
        .sum()
}

#[test]
fn continuous_densities_integrate_to_one() {
    let dims =
        dims_of(&[ParameterSpec::double("x", -2.0, 3.0, None, Distribution::Uniform).unwrap()]);
    let obs = [-1.9, -1.95, 0.0, 0.01, 2.5, 2.99, 1.0];
    for n_ranked in [0, 1000] {
        let p = fitted(&dims, &obs, n_ranked, &[0]);
        let total = integrate(&p, -2.0, 3.0);
        assert!((total - 1.0).abs() < 1e-6, "{n_ranked}: {total}");
    }
    // A log parameter integrates to one over ln x.
    let dims =
        dims_of(&[ParameterSpec::double("lr", 1e-4, 1.0, None, Distribution::LogNormal).unwrap()]);
    let obs: Vec<f64> = [1e-3, 2e-3, 0.5].iter().map(|v: &f64| v.ln()).collect();
    let p = fitted(&dims, &obs, 3, &[0]);
    let total = integrate(&p, 1e-4f64.ln(), 0.0);
    assert!((total - 1.0).abs() < 1e-6, "{total}");
}

#[test]
fn quantised_and_categorical_probabilities_sum_to_one() {
    let specs = [
        ParameterSpec::int("layers", 1, 8, None, Distribution::Uniform).unwrap(),
        ParameterSpec::int("units", 16, 512, Some(16), Distribution::LogUniform).unwrap(),
        ParameterSpec::categorical("opt", vec!["a".into(), "b".into(), "c".into()]).unwrap(),
    ];
    let dims = dims_of(&specs);
    // Rows: (layers index, units index, opt index).
    let coords = [0.0, 0.0, 1.0, 7.0, 31.0, 1.0, 3.0, 5.0, 0.0, 3.0, 6.0, 2.0];
    for n_ranked in [0, 1000] {
        for dim in 0..3 {
            let p = fitted(&dims, &coords, n_ranked, &[dim]);
            let n = specs[dim].points().unwrap();
            let mut x = [0.0; 3];
            let total: f64 = (0..n)
                .map(|k| {
                    x[dim] = k as f64;
                    p.log_pdf(&x, &mut Vec::new()).exp()
                })
                .sum();
            assert!((total - 1.0).abs() < 1e-12, "dim {dim}: {total}");
        }
    }
    // The joint model over all three sums to one as well.
    let p = fitted(&dims, &coords, 4, &[0, 1, 2]);
    let mut total = 0.0;
    for a in 0..8 {
        for b in 0..32 {
            for c in 0..3 {
                total += p
                    .log_pdf(&[f64::from(a), f64::from(b), f64::from(c)], &mut Vec::new())
                    .exp();
            }
        }
    }
    assert!((total - 1.0).abs() < 1e-12, "{total}");
}

#[test]
fn samples_stay_on_the_dimension_and_follow_the_good_observations() {
    let specs = [
        ParameterSpec::double("x", 0.0, 10.0, None, Distribution::Uniform).unwrap(),
        ParameterSpec::int("k", 0, 20, Some(2), Distribution::Uniform).unwrap(),
        ParameterSpec::categorical("c", vec!["a".into(), "b".into()]).unwrap(),
    ];
    let dims = dims_of(&specs);
    let coords: Vec<f64> = (0..20).flat_map(|_| [1.0, 3.0, 1.0]).collect();
    for n_ranked in [0, 1000] {
        let p = fitted(&dims, &coords, n_ranked, &[0, 1, 2]);
        let mut rng = derive_rng(9, 9, "test");
        let mut gauss = Gauss::default();
        let mut x = [0.0; 3];
        let (mut near, mut b) = (0, 0);
        for _ in 0..1000 {
            p.sample(&mut rng, &mut gauss, &mut x);
            assert!((0.0..=10.0).contains(&x[0]));
            assert!(x[1] >= 0.0 && x[1] <= 10.0 && x[1].fract() == 0.0);
            assert!(x[2] == 0.0 || x[2] == 1.0);
            near += usize::from((x[0] - 1.0).abs() < 1.0);
            b += usize::from(x[2] == 1.0);
        }
        // 20 of 21 kernel weight sits on x = 1, c = b.
        assert!(near > 600, "{n_ranked}: {near}");
        assert!(b > 850, "{n_ranked}: {b}");
    }
}

#[test]
fn an_empty_fit_is_the_prior_alone() {
    let dims =
        dims_of(&[ParameterSpec::double("x", 0.0, 1.0, None, Distribution::Uniform).unwrap()]);
    let p = fitted(&dims, &[], 0, &[0]);
    let got = p.log_pdf(&[0.5], &mut Vec::new());
    let want = -(2.0 * std::f64::consts::PI).sqrt().ln() - 0.382_924_922_548_026f64.ln();
    assert!((got - want).abs() < 1e-12);
}

#[test]
fn log_sum_exp_handles_empty_and_infinite_terms() {
    assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    assert!((log_sum_exp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
    assert!((log_sum_exp(&[-1000.0, -1000.0]) - (2f64.ln() - 1000.0)).abs() < 1e-12);
}
