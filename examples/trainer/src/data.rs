//! The data: the red wine-quality set (1 599 wines, 11 physico-chemical
//! measurements, quality 3–8) that ships inside `linfa-datasets`, so nothing
//! is downloaded. Quality is predicted as one of six classes. The split into
//! training and validation wines is fixed (it does not depend on `--seed`),
//! and features are standardised with the training wines' mean and spread.

use ndarray::{Array1, Array2, Axis};

use crate::rng::Rng;

/// Seed of the fixed train/validation split.
const SPLIT_SEED: u64 = 0x005E_ED0F_5917;

/// Share of the wines held out for validation.
pub const VALIDATION_SHARE: f64 = 0.2;

/// Lowest quality in the set; class `k` is quality `k + 3`.
const LOWEST_QUALITY: usize = 3;

/// Number of quality classes (3, 4, 5, 6, 7, 8).
pub const CLASSES: usize = 6;

/// Features and class labels.
#[derive(Debug, Clone)]
pub struct Table {
    pub x: Array2<f64>,
    pub y: Vec<usize>,
}

/// The training and validation tables.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Table,
    pub valid: Table,
}

/// Loads the wine-quality set and splits it.
pub fn wine_quality() -> Split {
    let ds = linfa_datasets::winequality();
    let y: Vec<usize> = ds
        .targets
        .iter()
        .map(|q| q.saturating_sub(LOWEST_QUALITY).min(CLASSES - 1))
        .collect();
    split(&ds.records, &y)
}

/// Splits `x`/`y` with the fixed seed and standardises the features.
pub fn split(x: &Array2<f64>, y: &[usize]) -> Split {
    let n = x.nrows();
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(SPLIT_SEED).shuffle(&mut order);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let n_valid = ((n as f64) * VALIDATION_SHARE).round() as usize;
    let (valid_idx, train_idx) = order.split_at(n_valid.min(n));
    let take = |idx: &[usize]| Table {
        x: x.select(Axis(0), idx),
        y: idx.iter().map(|&i| y[i]).collect(),
    };
    let mut train = take(train_idx);
    let mut valid = take(valid_idx);
    let (mean, std) = moments(&train.x);
    for t in [&mut train, &mut valid] {
        t.x -= &mean;
        t.x /= &std;
    }
    Split { train, valid }
}

/// Per-column mean and standard deviation (1 where a column is constant).
fn moments(x: &Array2<f64>) -> (Array1<f64>, Array1<f64>) {
    let mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let std = x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { 1.0 });
    (mean, std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wine_quality_loads_splits_and_standardises() {
        let s = wine_quality();
        assert_eq!(s.train.x.nrows() + s.valid.x.nrows(), 1599);
        assert_eq!(s.valid.x.nrows(), 320);
        assert_eq!(s.train.x.ncols(), 11);
        assert_eq!(s.train.y.len(), s.train.x.nrows());
        assert!(s.train.y.iter().chain(&s.valid.y).all(|&c| c < CLASSES));
        // Standardised on the training wines.
        let mean = s.train.x.mean_axis(Axis(0)).unwrap();
        let std = s.train.x.std_axis(Axis(0), 0.0);
        assert!(mean.iter().all(|m| m.abs() < 1e-9), "{mean}");
        assert!(std.iter().all(|v| (v - 1.0).abs() < 1e-9), "{std}");
        // Several classes in validation, most wines are 5 or 6.
        let common = s.valid.y.iter().filter(|&&c| c == 2 || c == 3).count();
        assert!(common > 200 && common < 320, "{common}");
    }

    #[test]
    fn the_split_is_fixed() {
        let a = wine_quality();
        let b = wine_quality();
        assert_eq!(a.valid.y, b.valid.y);
        assert_eq!(a.train.x, b.train.x);
    }
}
