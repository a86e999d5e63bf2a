//! A multi-layer perceptron with a softmax cross-entropy head, forward and
//! backward written out on `ndarray`.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

use crate::rng::Rng;

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Activation {
    Relu,
    Tanh,
}

impl Activation {
    fn apply(self, z: f64) -> f64 {
        match self {
            Self::Relu => z.max(0.0),
            Self::Tanh => z.tanh(),
        }
    }

    /// The derivative at pre-activation `z`, given the activation `a`.
    fn derivative(self, z: f64, a: f64) -> f64 {
        match self {
            Self::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Tanh => 1.0 - a * a,
        }
    }
}

/// One dense layer: `x · w + b`, `w` is inputs × outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
}

impl Layer {
    /// A layer of zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        Self {
            w: Array2::zeros(self.w.raw_dim()),
            b: Array1::zeros(self.b.raw_dim()),
        }
    }
}

/// The network: hidden layers, then a linear output layer of class scores.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub layers: Vec<Layer>,
    pub activation: Activation,
}

/// What one hidden layer keeps for the backward pass.
struct Cache {
    input: Array2<f64>,
    pre: Array2<f64>,
    out: Array2<f64>,
    mask: Option<Array2<f64>>,
}

impl Mlp {
    /// A network `inputs → hidden[0] → … → outputs`, with He (ReLU) or
    /// Glorot (tanh) uniform weights and zero biases.
    pub fn new(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        rng: &mut Rng,
    ) -> Self {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(outputs);
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let limit = match activation {
                    Activation::Relu => (6.0 / fan_in as f64).sqrt(),
                    Activation::Tanh => (6.0 / (fan_in + fan_out) as f64).sqrt(),
                };
                Layer {
                    w: Array2::from_shape_simple_fn((fan_in, fan_out), || rng.symmetric(limit)),
                    b: Array1::zeros(fan_out),
                }
            })
            .collect();
        Self { layers, activation }
    }

    /// Class scores (logits) for every row of `x`, without dropout.
    pub fn logits(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let (last, hidden) = self
            .layers
            .split_last()
            .expect("an MLP has an output layer");
        let mut a = x.to_owned();
        for layer in hidden {
            let mut z = a.dot(&layer.w) + &layer.b;
            z.mapv_inplace(|v| self.activation.apply(v));
            a = z;
        }
        a.dot(&last.w) + &last.b
    }

    /// Mean cross-entropy of the batch `x`/`y` and its gradient with respect
    /// to every weight and bias. Hidden units are dropped with probability
    /// `dropout` (inverted dropout, masks drawn from `rng`).
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<f64>,
        y: &[usize],
        dropout: f64,
        rng: &mut Rng,
    ) -> (f64, Vec<Layer>) {
        let (last, hidden) = self
            .layers
            .split_last()
            .expect("an MLP has an output layer");
        let mut caches = Vec::with_capacity(hidden.len());
        let mut a = x.to_owned();
        for layer in hidden {
            let pre = a.dot(&layer.w) + &layer.b;
            let out = pre.mapv(|v| self.activation.apply(v));
            let mask = (dropout > 0.0).then(|| {
                let keep = 1.0 - dropout;
                Array2::from_shape_simple_fn(out.raw_dim(), || {
                    if rng.uniform() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
            });
            let next = match &mask {
                Some(m) => &out * m,
                None => out.clone(),
            };
            caches.push(Cache {
                input: a,
                pre,
                out,
                mask,
            });
            a = next;
        }
        let logits = a.dot(&last.w) + &last.b;
        let (loss, mut delta) = softmax_cross_entropy(&logits, y);

        // Built from the output layer back, reversed at the end.
        let mut grads = Vec::with_capacity(self.layers.len());
        grads.push(Layer {
            w: a.t().dot(&delta),
            b: delta.sum_axis(Axis(0)),
        });
        let mut upstream = delta.dot(&last.w.t());
        for (i, cache) in caches.iter().enumerate().rev() {
            if let Some(m) = &cache.mask {
                upstream *= m;
            }
            Zip::from(&mut upstream)
                .and(&cache.pre)
                .and(&cache.out)
                .for_each(|g, &z, &o| *g *= self.activation.derivative(z, o));
            delta = upstream;
            grads.push(Layer {
                w: cache.input.t().dot(&delta),
                b: delta.sum_axis(Axis(0)),
            });
            if i > 0 {
                upstream = delta.dot(&self.layers[i].w.t());
            } else {
                break;
            }
        }
        grads.reverse();
        (loss, grads)
    }

    /// Whether every weight and bias is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.w.iter().chain(&l.b).all(|v| v.is_finite()))
    }
}

/// Mean cross-entropy of softmax(`logits`) against the classes `y`, and its
/// gradient with respect to the logits.
pub fn softmax_cross_entropy(logits: &Array2<f64>, y: &[usize]) -> (f64, Array2<f64>) {
    let n = logits.nrows().max(1) as f64;
    let mut grad = logits.clone();
    let mut loss = 0.0;
    for (mut row, &class) in grad.rows_mut().into_iter().zip(y) {
        let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        loss += sum.ln() - (row[class].ln());
        row.mapv_inplace(|v| v / sum);
        row[class] -= 1.0;
    }
    grad /= n;
    (loss / n, grad)
}

/// Mean cross-entropy and accuracy of `model` on `x`/`y`.
pub fn evaluate(model: &Mlp, x: ArrayView2<f64>, y: &[usize]) -> (f64, f64) {
    let logits = model.logits(x);
    let (loss, _) = softmax_cross_entropy(&logits, y);
    let correct = logits
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(row, class)| {
            let best = row
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                });
            best.0 == **class
        })
        .count();
    let accuracy = correct as f64 / y.len().max(1) as f64;
    (loss, accuracy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn tiny_batch(rng: &mut Rng) -> (Array2<f64>, Vec<usize>) {
        let x = Array2::from_shape_simple_fn((7, 4), || rng.symmetric(1.5));
        let y = vec![0, 1, 2, 1, 0, 2, 2];
        (x, y)
    }

    /// Central differences of the loss against the analytic gradient, for
    /// every parameter.
    fn check_gradients(activation: Activation, hidden: &[usize], dropout: f64) {
        let mut rng = Rng::new(11);
        let mut model = Mlp::new(4, hidden, 3, activation, &mut rng);
        // Non-zero biases, so no ReLU sits exactly at its kink.
        for l in &mut model.layers {
            l.b.mapv_inplace(|_| rng.symmetric(0.3));
        }
        let (x, y) = tiny_batch(&mut rng);
        let mask_rng = Rng::new(99);
        let (_, grads) = model.loss_and_grad(x.view(), &y, dropout, &mut mask_rng.clone());
        let loss_at = |m: &Mlp| {
            m.loss_and_grad(x.view(), &y, dropout, &mut mask_rng.clone())
                .0
        };
        let h = 1e-6;
        let mut worst: f64 = 0.0;
        for (li, grad) in grads.iter().enumerate() {
            for idx in 0..model.layers[li].w.len() {
                let (r, c) = (
                    idx / model.layers[li].w.ncols(),
                    idx % model.layers[li].w.ncols(),
                );
                let mut plus = model.clone();
                plus.layers[li].w[[r, c]] += h;
                let mut minus = model.clone();
                minus.layers[li].w[[r, c]] -= h;
                let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
                worst = worst.max((numeric - grad.w[[r, c]]).abs());
            }
            for j in 0..model.layers[li].b.len() {
                let mut plus = model.clone();
                plus.layers[li].b[j] += h;
                let mut minus = model.clone();
                minus.layers[li].b[j] -= h;
                let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
                worst = worst.max((numeric - grad.b[j]).abs());
            }
        }
        assert!(worst < 1e-6, "largest gradient error {worst}");
    }

    #[test]
    fn gradients_match_finite_differences_relu() {
        check_gradients(Activation::Relu, &[5], 0.0);
    }

    #[test]
    fn gradients_match_finite_differences_tanh_two_layers() {
        check_gradients(Activation::Tanh, &[5, 3], 0.0);
    }

    #[test]
    fn gradients_match_finite_differences_with_dropout() {
        check_gradients(Activation::Tanh, &[6], 0.3);
    }

    #[test]
    fn gradients_match_finite_differences_without_hidden_layers() {
        check_gradients(Activation::Relu, &[], 0.0);
    }

    #[test]
    fn cross_entropy_of_known_logits() {
        let logits = array![[0.0, 0.0], [1000.0, 0.0]];
        let (loss, grad) = softmax_cross_entropy(&logits, &[0, 0]);
        // ln 2 for the first row, 0 for the second (and no overflow).
        assert!(
            (loss - std::f64::consts::LN_2 / 2.0).abs() < 1e-12,
            "{loss}"
        );
        assert!((grad[[0, 0]] + 0.25).abs() < 1e-12);
        assert!(grad[[1, 0]].abs() < 1e-12);
    }

    #[test]
    fn evaluate_counts_correct_predictions() {
        let mut model = Mlp::new(2, &[], 2, Activation::Relu, &mut Rng::new(0));
        model.layers[0].w = array![[1.0, 0.0], [0.0, 1.0]];
        let x = array![[2.0, 0.0], [0.0, 2.0], [3.0, 1.0]];
        let (_, acc) = evaluate(&model, x.view(), &[0, 1, 1]);
        assert!((acc - 2.0 / 3.0).abs() < 1e-12);
    }
}
