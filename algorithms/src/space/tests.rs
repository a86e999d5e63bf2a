//! Property tests of the space: every view agrees on what a valid value is.

use proptest::prelude::*;

use super::*;
use crate::rng::derive_rng;

fn distribution(log_ok: bool) -> impl Strategy<Value = Distribution> {
    if log_ok {
        prop_oneof![
            Just(Distribution::Uniform),
            Just(Distribution::Normal),
            Just(Distribution::LogUniform),
            Just(Distribution::LogNormal)
        ]
        .boxed()
    } else {
        prop_oneof![Just(Distribution::Uniform), Just(Distribution::Normal)].boxed()
    }
}

fn param(name: String) -> impl Strategy<Value = ParameterSpec> {
    let n1 = name.clone();
    let n2 = name.clone();
    let n3 = name.clone();
    let n4 = name.clone();
    let n5 = name;
    prop_oneof![
        (
            -1e3f64..1e3,
            0f64..1e3,
            distribution(false),
            prop::option::of(1usize..40)
        )
            .prop_map(move |(min, width, d, k)| {
                let step = k.map(|k| (width / k as f64).max(1e-3));
                ParameterSpec::double(n1.clone(), min, min + width, step, d).unwrap()
            }),
        (
            1e-6f64..1e3,
            1f64..1e4,
            distribution(true),
            prop::option::of(1usize..40)
        )
            .prop_map(move |(min, factor, d, k)| {
                let max = min * factor;
                let step = k.map(|k| ((max - min) / k as f64).max(1e-9));
                ParameterSpec::double(n2.clone(), min, max, step, d).unwrap()
            }),
        (-1000i64..1000, 0i64..500, 1i64..7, distribution(false)).prop_map(
            move |(min, w, s, d)| {
                ParameterSpec::int(n3.clone(), min, min + w, Some(s), d).unwrap()
            }
        ),
        (1i64..1000, 0i64..5000, distribution(true)).prop_map(move |(min, w, d)| {
            ParameterSpec::int(n4.clone(), min, min + w, None, d).unwrap()
        }),
        prop::collection::btree_set(-100i64..100, 1..6).prop_map(move |set| {
            let values = set.into_iter().map(|v| {
                if v % 2 == 0 {
                    ParamValue::Int(v)
                } else {
                    ParamValue::Float(v as f64 / 4.0)
                }
            });
            ParameterSpec::discrete(n5.clone(), values.collect()).unwrap()
        }),
        prop::collection::btree_set("[a-z]{1,4}", 1..6).prop_map(|set| {
            ParameterSpec::categorical("c", set.into_iter().collect()).unwrap()
        }),
    ]
}

fn space() -> impl Strategy<Value = SearchSpace> {
    (1usize..5)
        .prop_flat_map(|n| (0..n).map(|i| param(format!("p{i}"))).collect::<Vec<_>>())
        .prop_map(|mut params| {
            // Categorical strategies share a name; keep the first.
            let mut seen = std::collections::BTreeSet::new();
            params.retain(|p| seen.insert(p.name().to_owned()));
            SearchSpace::new(params).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoded_values_lie_in_the_space_and_round_trip_exactly(space in space(), u in prop::collection::vec(0f64..=1.0, 5)) {
        let a = space.decode(&u);
        prop_assert!(space.contains(&a), "{a:?}");
        let back = space.decode(&space.encode(&a).unwrap());
        prop_assert_eq!(back, a);
    }

    #[test]
    fn samples_lie_in_the_space_and_encode(space in space(), seed in any::<u64>()) {
        let mut rng = derive_rng(seed, 0, "test");
        for _ in 0..8 {
            let a = space.sample(&mut rng);
            prop_assert!(space.contains(&a), "{a:?}");
            let u = space.encode(&a).unwrap();
            prop_assert!(u.iter().all(|x| (0.0..=1.0).contains(x)));
            let back = space.decode(&u);
            for p in space.params() {
                let (v, w) = (a.get(p.name()).unwrap(), back.get(p.name()).unwrap());
                match (p.points(), v.as_f64(), w.as_f64()) {
                    // Quantised: exact.
                    (Some(_), _, _) => prop_assert_eq!(v, w),
                    // Continuous: exact where decode can reach, else a neighbour.
                    (None, Some(x), Some(y)) => {
                        let Domain::Double { min, max, .. } = p.domain() else { unreachable!() };
                        prop_assert!((x - y).abs() <= (max - min) * 1e-15 + x.abs() * 1e-15, "{x} {y}");
                    }
                    _ => prop_assert!(false),
                }
            }
        }
    }

    #[test]
    fn every_point_round_trips_through_its_index_and_code(p in param("x".into())) {
        if let Some(n) = p.points() {
            for k in (0..n).take(64).chain(n.saturating_sub(3)..n) {
                let v = p.point(k).unwrap();
                prop_assert!(p.contains(&v));
                prop_assert_eq!(p.index_of(&v), Some(k));
                prop_assert_eq!(p.decode(p.encode(&v).unwrap()), v.clone());
                prop_assert_eq!(p.parse_value(&v.to_katib_string()).unwrap(), v);
                if k > 0 {
                    // Strictly increasing numeric points.
                    if let (Some(a), Some(b)) = (p.point(k - 1).unwrap().as_f64(), p.point(k).unwrap().as_f64()) {
                        prop_assert!(a < b);
                    }
                }
            }
        }
    }

    #[test]
    fn grid_ordinals_and_points_are_a_bijection(space in space()) {
        if let Ok(grid) = Grid::new(&space) {
            let size = grid.size().unwrap();
            for o in (0..size).take(200) {
                let a = grid.point(o).unwrap();
                prop_assert!(space.contains(&a));
                prop_assert_eq!(grid.ordinal_of(&a), Some(o));
            }
            prop_assert_eq!(grid.point(size), None);
        }
    }
}

#[test]
fn grids_beyond_u128_enumerate_without_panicking() {
    let params = (0..50)
        .map(|i| ParameterSpec::int(format!("p{i}"), 0, 999, None, Distribution::Uniform).unwrap())
        .collect();
    let space = SearchSpace::new(params).unwrap();
    let grid = Grid::new(&space).unwrap();
    assert_eq!(grid.size(), None);
    let last = grid.point(u128::MAX).unwrap();
    assert_eq!(grid.ordinal_of(&last), Some(u128::MAX));
}

#[test]
fn duplicate_names_and_empty_spaces_are_refused() {
    let p = ParameterSpec::int("a", 0, 1, None, Distribution::Uniform).unwrap();
    assert_eq!(
        SearchSpace::new(vec![p.clone(), p]),
        Err(crate::AlgorithmError::DuplicateParameter { name: "a".into() })
    );
    assert_eq!(
        SearchSpace::new(vec![]),
        Err(crate::AlgorithmError::EmptySpace)
    );
}

#[test]
fn log_uniform_samples_spread_over_decades() {
    let p = ParameterSpec::double("lr", 1e-5, 1e-1, None, Distribution::LogUniform).unwrap();
    let mut rng = derive_rng(1, 0, "t");
    let small = (0..4000)
        .filter(|_| p.sample(&mut rng).as_f64().unwrap() < 1e-3)
        .count();
    // Half the decades lie below 1e-3.
    assert!((1700..2300).contains(&small), "{small}");
}

#[test]
fn normal_samples_centre_on_the_middle_with_sigma_a_sixth() {
    let p = ParameterSpec::double("x", 0.0, 6.0, None, Distribution::Normal).unwrap();
    let mut rng = derive_rng(2, 0, "t");
    let xs: Vec<f64> = (0..20000)
        .map(|_| p.sample(&mut rng).as_f64().unwrap())
        .collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    assert!((mean - 3.0).abs() < 0.03, "{mean}");
    assert!((var.sqrt() - 1.0).abs() < 0.03, "{var}");
}

/// Unit tests of single parameter definitions.
mod param {
    use super::super::*;
    use crate::error::{AlgorithmError, ParameterProblem};

    #[test]
    fn stepped_double_includes_max_despite_float_noise() {
        let p = ParameterSpec::double("x", 0.0, 0.3, Some(0.1), Distribution::Uniform).unwrap();
        assert_eq!(p.points(), Some(4));
        assert_eq!(p.point(3), Some(ParamValue::Float(0.3)));
        assert_eq!(p.point(4), None);
        let q = ParameterSpec::double("x", 0.01, 0.05, Some(0.005), Distribution::Uniform).unwrap();
        assert_eq!(q.points(), Some(9));
        assert_eq!(q.point(2), Some(ParamValue::Float(0.02)));
    }

    #[test]
    fn int_points_and_indices() {
        let p = ParameterSpec::int("n", 1, 10, Some(3), Distribution::Uniform).unwrap();
        assert_eq!(p.points(), Some(4)); // 1 4 7 10
        assert_eq!(p.index_of(&ParamValue::Int(7)), Some(2));
        assert_eq!(p.index_of(&ParamValue::Float(7.0)), Some(2));
        assert_eq!(p.index_of(&ParamValue::Int(8)), None);
        let full = ParameterSpec::int("n", i64::MIN, i64::MAX, None, Distribution::Uniform);
        assert!(matches!(
            full,
            Err(AlgorithmError::InvalidParameter {
                problem: ParameterProblem::TooManyPoints,
                ..
            })
        ));
    }

    #[test]
    fn invalid_definitions_are_refused_with_the_reason() {
        let u = Distribution::Uniform;
        assert!(ParameterSpec::double("x", f64::NAN, 1.0, None, u).is_err());
        assert!(ParameterSpec::double("x", 2.0, 1.0, None, u).is_err());
        assert!(ParameterSpec::double("x", -f64::MAX, f64::MAX, None, u).is_err());
        assert!(ParameterSpec::double("x", 0.0, 1.0, Some(0.0), u).is_err());
        assert!(ParameterSpec::double("x", 0.0, 1.0, Some(1e-300), u).is_err());
        assert!(ParameterSpec::double("x", 0.0, 1.0, None, Distribution::LogUniform).is_err());
        assert!(ParameterSpec::int("x", 0, 10, Some(-1), u).is_err());
        assert!(ParameterSpec::int("", 0, 10, None, u).is_err());
        assert!(ParameterSpec::discrete("d", vec![]).is_err());
        assert!(
            ParameterSpec::discrete("d", vec![ParamValue::Int(1), ParamValue::Float(1.0)]).is_err()
        );
        assert!(ParameterSpec::categorical("c", vec!["a".into(), "a".into()]).is_err());
        assert!(ParameterSpec::double("x", 1.0, 1.0, None, u).is_ok());
    }

    #[test]
    fn discrete_values_are_sorted_and_parsed_to_the_canonical_item() {
        let d = ParameterSpec::discrete(
            "d",
            vec![
                ParamValue::Int(4),
                ParamValue::Float(0.5),
                ParamValue::Int(2),
            ],
        )
        .unwrap();
        assert_eq!(d.point(0), Some(ParamValue::Float(0.5)));
        assert_eq!(d.parse_value("2.0").unwrap(), ParamValue::Int(2));
        assert!(d.parse_value("3").is_err());
    }
}
