//! Test functions with known optima, for property tests and regret benchmarks.
//!
//! Each function takes a point in its natural domain and returns the value
//! to minimise; [`TestFunction`] bundles the domain and the known minimum so
//! a benchmark can build a search space and measure regret.

use std::f64::consts::PI;

/// A benchmark function with its box and known minimum.
#[derive(Debug, Clone, Copy)]
pub struct TestFunction {
    /// The function's usual name.
    pub name: &'static str,
    /// The box `[(low, high)]`, one pair per dimension.
    pub bounds: &'static [(f64, f64)],
    /// The known global minimum value.
    pub minimum: f64,
    /// The function (missing coordinates read as 0).
    pub f: fn(&[f64]) -> f64,
}

fn at(x: &[f64], i: usize) -> f64 {
    x.get(i).copied().unwrap_or(0.0)
}

/// Branin–Hoo on `[-5, 10] × [0, 15]`; minimum 0.397887 at three points.
#[must_use]
pub fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (at(x, 0), at(x, 1));
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

/// Rosenbrock in any dimension on `[-5, 10]^d`; minimum 0 at `(1, …, 1)`.
#[must_use]
pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| match w {
            [a, b] => 100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2),
            _ => 0.0,
        })
        .sum()
}

/// Sphere `sum x_i^2`; minimum 0 at the origin.
#[must_use]
pub fn sphere(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

/// Hartmann 6-D on `[0, 1]^6`; minimum −3.32237 at
/// (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).
#[must_use]
pub fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -ALPHA
        .iter()
        .zip(A.iter().zip(P.iter()))
        .map(|(alpha, (a, p))| {
            let inner: f64 = (0..6).map(|j| a[j] * (at(x, j) - p[j]).powi(2)).sum();
            alpha * (-inner).exp()
        })
        .sum::<f64>()
}

/// The functions above with their domains.
pub const ALL: &[TestFunction] = &[
    TestFunction {
        name: "branin",
        bounds: &[(-5.0, 10.0), (0.0, 15.0)],
        minimum: 0.397_887_357_729_738,
        f: branin,
    },
    TestFunction {
        name: "hartmann6",
        bounds: &[(0.0, 1.0); 6],
        minimum: -3.322_368_011_415_51,
        f: hartmann6,
    },
    TestFunction {
        name: "rosenbrock4",
        bounds: &[(-5.0, 10.0); 4],
        minimum: 0.0,
        f: rosenbrock,
    },
    TestFunction {
        name: "sphere3",
        bounds: &[(-5.0, 5.0); 3],
        minimum: 0.0,
        f: sphere,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_optima_are_reached() {
        assert!((branin(&[PI, 2.275]) - 0.397_887).abs() < 1e-5);
        assert!((branin(&[-PI, 12.275]) - 0.397_887).abs() < 1e-5);
        let h = hartmann6(&[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]);
        assert!((h + 3.32237).abs() < 1e-4, "{h}");
        assert_eq!(rosenbrock(&[1.0; 5]), 0.0);
        assert_eq!(sphere(&[0.0; 3]), 0.0);
    }
}
