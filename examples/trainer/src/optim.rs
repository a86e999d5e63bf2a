//! Mini-batch optimisers: SGD with momentum, and Adam. Weight decay is an L2
//! penalty on the weights (not the biases), added to their gradient.

use ndarray::Zip;

use crate::mlp::{Layer, Mlp};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Sgd,
    Adam,
}

/// Adam's constants (Kingma & Ba's defaults).
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

/// An optimiser and its per-parameter state.
#[derive(Debug, Clone)]
pub struct Optimizer {
    kind: Kind,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    steps: i32,
    /// Velocity (SGD) or first moment (Adam).
    first: Vec<Layer>,
    /// Second moment (Adam only).
    second: Vec<Layer>,
}

impl Optimizer {
    /// An optimiser for `model`'s parameters.
    pub fn new(kind: Kind, lr: f64, momentum: f64, weight_decay: f64, model: &Mlp) -> Self {
        let zeros = || {
            model
                .layers
                .iter()
                .map(Layer::zeros_like)
                .collect::<Vec<_>>()
        };
        Self {
            kind,
            lr,
            momentum,
            weight_decay,
            steps: 0,
            first: zeros(),
            second: if kind == Kind::Adam {
                zeros()
            } else {
                Vec::new()
            },
        }
    }

    /// One update of `model` along `grads`.
    pub fn step(&mut self, model: &mut Mlp, grads: &[Layer]) {
        self.steps = self.steps.saturating_add(1);
        let (lr, wd, mu) = (self.lr, self.weight_decay, self.momentum);
        match self.kind {
            Kind::Sgd => {
                for ((layer, g), v) in model.layers.iter_mut().zip(grads).zip(&mut self.first) {
                    Zip::from(&mut layer.w)
                        .and(&g.w)
                        .and(&mut v.w)
                        .for_each(|p, &g, v| {
                            *v = mu * *v + g + wd * *p;
                            *p -= lr * *v;
                        });
                    Zip::from(&mut layer.b)
                        .and(&g.b)
                        .and(&mut v.b)
                        .for_each(|p, &g, v| {
                            *v = mu * *v + g;
                            *p -= lr * *v;
                        });
                }
            }
            Kind::Adam => {
                let c1 = 1.0 - BETA1.powi(self.steps);
                let c2 = 1.0 - BETA2.powi(self.steps);
                let update = move |p: &mut f64, g: f64, m: &mut f64, v: &mut f64| {
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + EPSILON);
                };
                for (((layer, g), m), v) in model
                    .layers
                    .iter_mut()
                    .zip(grads)
                    .zip(&mut self.first)
                    .zip(&mut self.second)
                {
                    Zip::from(&mut layer.w)
                        .and(&g.w)
                        .and(&mut m.w)
                        .and(&mut v.w)
                        .for_each(|p, &g, m, v| {
                            let g = g + wd * *p;
                            update(p, g, m, v);
                        });
                    Zip::from(&mut layer.b)
                        .and(&g.b)
                        .and(&mut m.b)
                        .and(&mut v.b)
                        .for_each(|p, &g, m, v| update(p, g, m, v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Activation;
    use crate::rng::Rng;

    fn model() -> Mlp {
        Mlp::new(3, &[4], 2, Activation::Relu, &mut Rng::new(5))
    }

    fn grads_of(model: &Mlp, value: f64) -> Vec<Layer> {
        model
            .layers
            .iter()
            .map(|l| {
                let mut z = l.zeros_like();
                z.w.fill(value);
                z.b.fill(value);
                z
            })
            .collect()
    }

    #[test]
    fn sgd_without_momentum_moves_by_lr_times_gradient() {
        let mut m = model();
        let before = m.clone();
        let mut opt = Optimizer::new(Kind::Sgd, 0.1, 0.0, 0.0, &m);
        let g = grads_of(&m, 2.0);
        opt.step(&mut m, &g);
        for (a, b) in m.layers.iter().zip(&before.layers) {
            assert!((&b.w - &a.w).iter().all(|d| (d - 0.2).abs() < 1e-12));
            assert!((&b.b - &a.b).iter().all(|d| (d - 0.2).abs() < 1e-12));
        }
    }

    #[test]
    fn adam_first_step_is_lr_in_the_gradient_direction() {
        let mut m = model();
        let before = m.clone();
        let mut opt = Optimizer::new(Kind::Adam, 0.01, 0.0, 0.0, &m);
        let g = grads_of(&m, -3.0);
        opt.step(&mut m, &g);
        for (a, b) in m.layers.iter().zip(&before.layers) {
            assert!((&a.w - &b.w).iter().all(|d| (d - 0.01).abs() < 1e-9));
        }
    }

    #[test]
    fn weight_decay_shrinks_weights_but_not_biases() {
        let mut m = model();
        for l in &mut m.layers {
            l.b.fill(1.0);
        }
        let before = m.clone();
        let mut opt = Optimizer::new(Kind::Sgd, 0.1, 0.0, 0.5, &m);
        let g = grads_of(&m, 0.0);
        opt.step(&mut m, &g);
        for (a, b) in m.layers.iter().zip(&before.layers) {
            assert!((&b.w * 0.95 - &a.w).iter().all(|d| d.abs() < 1e-12));
            assert_eq!(a.b, b.b);
        }
    }
}
