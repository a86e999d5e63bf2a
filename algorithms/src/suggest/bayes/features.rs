//! The GP's input space: the unit-cube encoding of [`crate::space::encode`]
//! with every categorical parameter expanded to a one-hot block.
//!
//! A categorical's unit-cube coordinate is an index bin, which imposes an
//! order the values do not have (`sgd < adam < rmsprop`); one-hot coordinates
//! make every pair of categories equally far apart, and the ARD lengthscale
//! of each block learns how much the choice matters. `int`, stepped `double`
//! and `discrete` parameters keep their single ordered coordinate; the
//! optimiser moves it freely and [`FeatureMap::snap`] rounds it to the point
//! the trial would actually run (decode, then encode), so the model is
//! always asked about real configurations.

use crate::space::{Assignment, Domain, SearchSpace};

/// How one parameter maps to feature columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Column {
    /// One ordered coordinate at this column; `quantised` when it has points.
    Ordered {
        /// The column.
        at: usize,
        /// Whether the parameter has finitely many points.
        quantised: bool,
    },
    /// `len` one-hot columns starting at `at`.
    OneHot {
        /// The first column.
        at: usize,
        /// The number of categories.
        len: usize,
    },
}

/// The mapping between assignments and GP feature vectors.
#[derive(Debug, Clone)]
pub(crate) struct FeatureMap {
    columns: Vec<Column>,
    width: usize,
}

impl FeatureMap {
    /// The map for `space`.
    pub fn new(space: &SearchSpace) -> Self {
        let mut width = 0;
        let columns = space
            .params()
            .iter()
            .map(|p| match p.domain() {
                Domain::Categorical { values } if values.len() > 1 => {
                    let c = Column::OneHot {
                        at: width,
                        len: values.len(),
                    };
                    width += values.len();
                    c
                }
                _ => {
                    let c = Column::Ordered {
                        at: width,
                        quantised: p.points().is_some(),
                    };
                    width += 1;
                    c
                }
            })
            .collect();
        Self { columns, width }
    }

    /// The number of feature columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The columns, one per parameter in space order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Features from unit-cube coordinates (one per parameter); a
    /// categorical coordinate picks its bin.
    pub fn features_at(&self, u: &[f64]) -> Vec<f64> {
        let mut f = vec![0.0; self.width];
        for (c, &x) in self.columns.iter().zip(u) {
            match *c {
                Column::Ordered { at, .. } => set(&mut f, at, x),
                Column::OneHot { at, len } => {
                    #[allow(
                        clippy::cast_precision_loss,
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss
                    )]
                    let k = ((x.clamp(0.0, 1.0) * len as f64) as usize).min(len - 1);
                    set(&mut f, at + k, 1.0);
                }
            }
        }
        f
    }

    /// Unit-cube coordinates from features (the largest one-hot entry wins).
    pub fn to_unit(&self, f: &[f64]) -> Vec<f64> {
        self.columns
            .iter()
            .map(|c| match *c {
                Column::Ordered { at, .. } => f.get(at).copied().unwrap_or(0.5),
                Column::OneHot { at, len } => {
                    let k = argmax(f.get(at..at + len).unwrap_or(&[]));
                    (k as f64 + 0.5) / len as f64
                }
            })
            .collect()
    }

    /// The features of `assignment`; `None` when a value is missing or not
    /// in its domain.
    pub fn encode(&self, space: &SearchSpace, assignment: &Assignment) -> Option<Vec<f64>> {
        Some(self.features_at(&space.encode(assignment)?))
    }

    /// The assignment at features `f`.
    pub fn decode(&self, space: &SearchSpace, f: &[f64]) -> Assignment {
        space.decode(&self.to_unit(f))
    }

    /// Rounds `f` in place to the features of the configuration it decodes to.
    pub fn snap(&self, space: &SearchSpace, f: &mut [f64]) {
        for (c, p) in self.columns.iter().zip(space.params()) {
            match *c {
                Column::Ordered { at, quantised } => {
                    if let Some(x) = f.get_mut(at) {
                        let v = x.clamp(0.0, 1.0);
                        *x = if quantised {
                            p.encode(&p.decode(v)).unwrap_or(v)
                        } else {
                            v
                        };
                    }
                }
                Column::OneHot { at, len } => {
                    if let Some(block) = f.get_mut(at..at + len) {
                        let k = argmax(block);
                        block
                            .iter_mut()
                            .enumerate()
                            .for_each(|(i, x)| *x = if i == k { 1.0 } else { 0.0 });
                    }
                }
            }
        }
    }
}

/// The index of the largest entry (the first on ties; 0 when empty).
fn argmax(block: &[f64]) -> usize {
    block
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bk, bv), (k, &v)| {
            if v > bv { (k, v) } else { (bk, bv) }
        })
        .0
}

fn set(f: &mut [f64], at: usize, v: f64) {
    if let Some(x) = f.get_mut(at) {
        *x = v;
    }
}
