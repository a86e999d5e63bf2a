//! Eigendecomposition of the (small, symmetric) covariance matrix by cyclic
//! Jacobi rotations.
//!
//! CMA-ES samples `y = B·D·z` and whitens with `C^{-1/2} = B·D⁻¹·Bᵀ`, where
//! `C = B·D²·Bᵀ` (Hansen, *The CMA Evolution Strategy: A Tutorial*, 2016,
//! §2). Katib spaces have a few dozen parameters at most, where Jacobi is
//! simple, unconditionally stable and accurate to working precision; a
//! dependency on a LAPACK binding would buy nothing. The iteration is
//! bounded, so a matrix full of garbage returns `None` instead of looping.

/// Matrices are dense, row-major `n × n` vectors.
pub(crate) type Matrix = Vec<f64>;

/// `C = vectors · diag(values) · vectorsᵀ`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Eigen {
    /// The eigenvalues, in the order of the columns of `vectors`.
    pub values: Vec<f64>,
    /// Row-major; column `j` is the unit eigenvector of `values[j]`.
    pub vectors: Matrix,
}

const MAX_SWEEPS: usize = 64;

/// The eigendecomposition of the symmetric `n × n` matrix `a` (only its
/// upper triangle is read); `None` for a wrong length or non-finite entries.
pub(crate) fn symmetric_eigen(a: &[f64], n: usize) -> Option<Eigen> {
    if a.len() != n * n || a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Symmetrise from the upper triangle so round-off in the caller's
    // updates never makes the rotations chase an asymmetric matrix.
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = a[i * n + j];
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
    let mut v = identity(n);
    let scale = m.iter().fold(0.0f64, |s, x| s.max(x.abs()));
    if scale == 0.0 {
        return Some(Eigen {
            values: vec![0.0; n],
            vectors: v,
        });
    }
    for _ in 0..MAX_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off.sqrt() <= scale * 1e-15 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                rotate(&mut m, &mut v, n, p, q);
            }
        }
    }
    let values = (0..n).map(|i| m[i * n + i]).collect::<Vec<_>>();
    if values.iter().chain(&v).any(|x| !x.is_finite()) {
        return None;
    }
    Some(Eigen { values, vectors: v })
}

/// The `n × n` identity.
pub(crate) fn identity(n: usize) -> Matrix {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// One Jacobi rotation zeroing `m[p][q]` (Golub & Van Loan, Alg. 8.5.1,
/// with the numerically stable choice of the smaller rotation angle).
fn rotate(m: &mut [f64], v: &mut [f64], n: usize, p: usize, q: usize) {
    let apq = m[p * n + q];
    if apq == 0.0 {
        return;
    }
    let (app, aqq) = (m[p * n + p], m[q * n + q]);
    let theta = (aqq - app) / (2.0 * apq);
    let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
    let t = if theta == 0.0 { 1.0 } else { t };
    let c = 1.0 / t.hypot(1.0);
    let s = t * c;
    for k in 0..n {
        let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
        m[k * n + p] = c * mkp - s * mkq;
        m[k * n + q] = s * mkp + c * mkq;
    }
    for k in 0..n {
        let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
        m[p * n + k] = c * mpk - s * mqk;
        m[q * n + k] = s * mpk + c * mqk;
    }
    // The rotation zeroes m[p][q] exactly in theory; store the exact zero.
    m[p * n + q] = 0.0;
    m[q * n + p] = 0.0;
    for k in 0..n {
        let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
        v[k * n + p] = c * vkp - s * vkq;
        v[k * n + q] = s * vkp + c * vkq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconstruct(e: &Eigen, n: usize) -> Matrix {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] = (0..n)
                    .map(|k| e.vectors[i * n + k] * e.values[k] * e.vectors[j * n + k])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn decomposes_a_dense_symmetric_matrix_to_working_precision() {
        let n = 6;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = 1.0 / (1.0 + i as f64 + j as f64) + if i == j { 2.0 } else { 0.0 };
            }
        }
        let e = symmetric_eigen(&a, n).unwrap();
        let back = reconstruct(&e, n);
        for (x, y) in a.iter().zip(&back) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        // Orthonormal eigenvectors.
        for p in 0..n {
            for q in 0..n {
                let dot: f64 = (0..n)
                    .map(|k| e.vectors[k * n + p] * e.vectors[k * n + q])
                    .sum();
                let want = if p == q { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn garbage_and_wrong_sizes_give_none_not_a_panic() {
        assert!(symmetric_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_none());
        assert!(symmetric_eigen(&[1.0, 2.0, 3.0], 2).is_none());
        let zero = symmetric_eigen(&[0.0; 4], 2).unwrap();
        assert_eq!(zero.values, vec![0.0, 0.0]);
    }
}
