//! Dense linear algebra on row-major `Vec<f64>` for the Gaussian process:
//! Cholesky with escalating jitter, triangular solves (one right-hand side
//! or many at once), the inverse from the factor, and growing a factor by
//! one row for fantasised observations.
//!
//! No BLAS: the matrices are at most a few hundred rows (the training set is
//! capped in [`super::gp`]), where straightforward loops written so the
//! compiler vectorises the inner `axpy`s are fast enough. Nothing here panics:
//! every index is checked or derived from lengths checked on entry.

use std::fmt;

/// A failed factorisation: the matrix stayed indefinite even with the
/// largest jitter tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NotPositiveDefinite {
    /// The size of the matrix.
    pub n: usize,
    /// The largest jitter added to the diagonal before giving up.
    pub jitter: f64,
}

impl fmt::Display for NotPositiveDefinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {n}x{n} kernel matrix is not positive definite even with jitter {j:e}",
            n = self.n,
            j = self.jitter
        )
    }
}

impl std::error::Error for NotPositiveDefinite {}

/// `Σ a_i b_i` with four interleaved partial sums: independent chains the
/// compiler can vectorise (a single running sum is a serial dependency).
/// The summation order is fixed, so results stay bit-for-bit reproducible.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// In-place Cholesky of the `n x n` row-major matrix `a` (lower triangle
/// read and written, the strict upper triangle zeroed). `false` when a pivot
/// is not positive or not finite.
fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    if a.len() != n * n {
        return false;
    }
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let Some(row_i) = rest.get_mut(..n) else {
            return false;
        };
        for j in 0..i {
            let Some(row_j) = done.get(j * n..j * n + j + 1) else {
                return false;
            };
            let pivot = row_j[j];
            row_i[j] = (row_i[j] - dot(&row_i[..j], &row_j[..j])) / pivot;
        }
        let sq = dot(&row_i[..i], &row_i[..i]);
        let d = row_i[i] - sq;
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        row_i[i] = d.sqrt();
        row_i[i + 1..].iter_mut().for_each(|x| *x = 0.0);
    }
    true
}

/// The Cholesky factor `L` (row-major, lower) of `a + jitter*I`, trying no
/// jitter first and then `1e-10, 1e-9, …, 1e-3` times the mean diagonal.
/// Returns the factor and the jitter that worked.
///
/// # Errors
/// [`NotPositiveDefinite`] when every jitter fails (NaN entries, or a matrix
/// far from positive definite).
pub(crate) fn cholesky_jittered(
    a: &[f64],
    n: usize,
) -> Result<(Vec<f64>, f64), NotPositiveDefinite> {
    let mean_diag = (0..n).filter_map(|i| a.get(i * n + i)).sum::<f64>() / n.max(1) as f64;
    let scale = if mean_diag.is_finite() && mean_diag > 0.0 {
        mean_diag
    } else {
        1.0
    };
    let mut jitter = 0.0;
    for attempt in 0..9 {
        let mut l = a.to_vec();
        if attempt > 0 {
            jitter = scale * 10f64.powi(attempt - 11);
            for i in 0..n {
                if let Some(x) = l.get_mut(i * n + i) {
                    *x += jitter;
                }
            }
        }
        if cholesky_in_place(&mut l, n) {
            return Ok((l, jitter));
        }
    }
    Err(NotPositiveDefinite { n, jitter })
}

/// Solves `L x = b` in place (forward substitution).
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n.min(b.len()) {
        let Some(row) = l.get(i * n..i * n + i + 1) else {
            return;
        };
        b[i] = (b[i] - dot(&row[..i], &b[..i])) / row[i];
    }
}

/// Solves `Lᵀ x = b` in place (backward substitution on the transpose).
pub(crate) fn solve_lower_transposed(l: &[f64], n: usize, b: &mut [f64]) {
    if b.len() < n || l.len() < n * n {
        return;
    }
    for i in (0..n).rev() {
        let xi = b[i] / l[i * n + i];
        b[i] = xi;
        // Column i of Lᵀ is row i of L: subtract its contribution from the
        // remaining unknowns, which keeps the memory access along rows.
        for (bj, lij) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *bj -= lij * xi;
        }
    }
}

/// Solves `L V = B` in place for an `n x m` row-major `B` (all right-hand
/// sides at once, so the inner loop is a vectorisable `axpy` over `m`).
pub(crate) fn solve_lower_many(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    if b.len() < n * m || l.len() < n * n {
        return;
    }
    for i in 0..n {
        let (done, rest) = b.split_at_mut(i * m);
        let row_i = &mut rest[..m];
        for j in 0..i {
            let lij = l[i * n + j];
            if lij != 0.0 {
                for (x, y) in row_i.iter_mut().zip(&done[j * m..j * m + m]) {
                    *x -= lij * y;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        row_i.iter_mut().for_each(|x| *x *= inv);
    }
}

/// `K⁻¹ = L⁻ᵀ L⁻¹` from the factor, as a full symmetric row-major matrix.
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // Rows of the identity solved at once give L⁻¹ (lower triangular).
    // Row i of L⁻¹ is zero beyond column i, so each update only touches
    // the first j+1 columns (n³/6 flops instead of n³/2).
    let mut linv = vec![0.0; n * n];
    if l.len() < n * n {
        return linv;
    }
    for i in 0..n {
        let (done, rest) = linv.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        for j in 0..i {
            let lij = l[i * n + j];
            if lij != 0.0 {
                for (x, y) in row_i[..=j].iter_mut().zip(&done[j * n..j * n + j + 1]) {
                    *x -= lij * y;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        row_i[..i].iter_mut().for_each(|x| *x *= inv);
        row_i[i] = inv;
    }
    // (L⁻ᵀ L⁻¹)_ij = Σ_k L⁻¹_ki L⁻¹_kj: accumulate row k's outer product,
    // restricted to the lower triangle, then mirror.
    let mut inv = vec![0.0; n * n];
    for k in 0..n {
        let row = &linv[k * n..k * n + k + 1];
        for (i, &a) in row.iter().enumerate() {
            if a != 0.0 {
                for (x, b) in inv[i * n..i * n + i + 1].iter_mut().zip(row) {
                    *x += a * b;
                }
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            inv[j * n + i] = inv[i * n + j];
        }
    }
    inv
}

/// Grows the factor of an `n x n` matrix to `(n+1) x (n+1)` for a new last
/// row/column `k_new` (length `n`) and diagonal `k_diag`. The new pivot is
/// floored at `floor` (a fantasy at a point already in the data would
/// otherwise give a zero pivot).
pub(crate) fn extend_cholesky(
    l: &[f64],
    n: usize,
    k_new: &[f64],
    k_diag: f64,
    floor: f64,
) -> Vec<f64> {
    let mut row = k_new.to_vec();
    row.resize(n, 0.0);
    solve_lower(l, n, &mut row);
    let sq: f64 = row.iter().map(|x| x * x).sum();
    let pivot = (k_diag - sq).max(floor).sqrt();
    let m = n + 1;
    let mut out = vec![0.0; m * m];
    for i in 0..n {
        out[i * m..i * m + i + 1].copy_from_slice(&l[i * n..i * n + i + 1]);
    }
    out[n * m..n * m + n].copy_from_slice(&row);
    out[n * m + n] = pivot;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // A diagonally dominant symmetric matrix.
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = 1.0 / (1.0 + (i as f64 - j as f64).abs());
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn cholesky_reconstructs_the_matrix_and_inverse_is_an_inverse() {
        let n = 7;
        let a = spd(n);
        let (l, jitter) = cholesky_jittered(&a, n).unwrap();
        assert_eq!(jitter, 0.0);
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                assert!((v - a[i * n + j]).abs() < 1e-12);
            }
        }
        let inv = inverse_from_cholesky(&l, n);
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn solves_agree_with_the_factor() {
        let n = 5;
        let a = spd(n);
        let (l, _) = cholesky_jittered(&a, n).unwrap();
        let b: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let mut x = b.clone();
        solve_lower(&l, n, &mut x);
        solve_lower_transposed(&l, n, &mut x);
        for i in 0..n {
            let v: f64 = (0..n).map(|k| a[i * n + k] * x[k]).sum();
            assert!((v - b[i]).abs() < 1e-12);
        }
        let mut many: Vec<f64> = (0..n).flat_map(|i| [b[i], 2.0 * b[i]]).collect();
        solve_lower_many(&l, n, &mut many, 2);
        let mut one = b.clone();
        solve_lower(&l, n, &mut one);
        for i in 0..n {
            assert!((many[i * 2] - one[i]).abs() < 1e-14);
            assert!((many[i * 2 + 1] - 2.0 * one[i]).abs() < 1e-13);
        }
    }

    #[test]
    fn extending_matches_a_fresh_factorisation() {
        let n = 6;
        let a = spd(n);
        let small: Vec<f64> = (0..n - 1)
            .flat_map(|i| a[i * n..i * n + n - 1].to_vec())
            .collect();
        let (l, _) = cholesky_jittered(&small, n - 1).unwrap();
        let k_new: Vec<f64> = (0..n - 1).map(|j| a[(n - 1) * n + j]).collect();
        let grown = extend_cholesky(&l, n - 1, &k_new, a[n * n - 1], 1e-12);
        let (full, _) = cholesky_jittered(&a, n).unwrap();
        for (x, y) in grown.iter().zip(&full) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn an_indefinite_or_nan_matrix_is_an_error_not_a_panic() {
        let a = vec![1.0, 2.0, 2.0, 1.0];
        let err = cholesky_jittered(&a, 2).unwrap_err();
        assert_eq!(err.n, 2);
        assert!(err.to_string().contains("not positive definite"));
        assert!(cholesky_jittered(&[f64::NAN], 1).is_err());
        assert!(cholesky_jittered(&[1.0, 2.0], 2).is_err());
    }

    #[test]
    fn a_singular_matrix_is_rescued_by_jitter() {
        let a = vec![1.0, 1.0, 1.0, 1.0];
        let (_, jitter) = cholesky_jittered(&a, 2).unwrap();
        assert!(jitter > 0.0);
    }
}
