//! The training loop: mini-batches over a fresh shuffle every epoch, one
//! report per epoch.

use ndarray::Axis;

use crate::checkpoint::Saved;
use crate::data::{CLASSES, Split};
use crate::mlp::{Activation, Mlp, evaluate};
use crate::optim::{Kind, Optimizer};
use crate::rng::Rng;

/// Hyperparameters of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub lr: f64,
    pub optimizer: Kind,
    pub momentum: f64,
    pub hidden: usize,
    pub layers: usize,
    pub activation: Activation,
    pub batch_size: usize,
    pub weight_decay: f64,
    pub dropout: f64,
    pub epochs: usize,
    pub seed: u64,
}

/// The metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch's batches.
    pub loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch={} loss={:.5} val_loss={:.5} val_accuracy={:.4}",
            self.epoch, self.loss, self.val_loss, self.val_accuracy
        )
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Every epoch ran.
    Finished,
    /// The loss or a weight stopped being a finite number in this epoch
    /// (reported as the epoch it happened in; nothing was printed for it).
    Diverged { epoch: usize },
}

/// The network `config` describes for `data`, with fresh weights.
pub fn fresh_model(config: &Config, data: &Split, rng: &mut Rng) -> Mlp {
    let hidden = vec![config.hidden; config.layers];
    Mlp::new(
        data.train.x.ncols(),
        &hidden,
        CLASSES,
        config.activation,
        rng,
    )
}

/// Trains on `data.train` for `config.epochs` epochs — from `start` (a
/// checkpoint's network and the epochs it has trained) or fresh weights —
/// calling `report` after every epoch with the validation metrics and the
/// network; stops early when training diverges or when `report` returns an
/// error.
pub fn train<E>(
    config: &Config,
    data: &Split,
    start: Option<Saved>,
    mut report: impl FnMut(&Epoch, &Mlp) -> Result<(), E>,
) -> Result<Outcome, E> {
    let (mut model, done, mut rng) = match start {
        // A continued run draws other batches than the run before it.
        Some(saved) => {
            let rng = Rng::new(config.seed ^ (saved.epochs as u64).wrapping_mul(0x9E37_79B9));
            (saved.model, saved.epochs, rng)
        }
        None => {
            let mut rng = Rng::new(config.seed);
            (fresh_model(config, data, &mut rng), 0, rng)
        }
    };
    let mut optimizer = Optimizer::new(
        config.optimizer,
        config.lr,
        config.momentum,
        config.weight_decay,
        &model,
    );
    let n = data.train.x.nrows();
    let batch = config.batch_size.clamp(1, n.max(1));
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in done + 1..=done + config.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for idx in order.chunks(batch) {
            let x = data.train.x.select(Axis(0), idx);
            let y: Vec<usize> = idx.iter().map(|&i| data.train.y[i]).collect();
            let (loss, grads) = model.loss_and_grad(x.view(), &y, config.dropout, &mut rng);
            let weight = idx.len() as f64;
            total += loss * weight;
            optimizer.step(&mut model, &grads);
        }
        let loss = total / n.max(1) as f64;
        let (val_loss, val_accuracy) = evaluate(&model, data.valid.x.view(), &data.valid.y);
        if !(loss.is_finite() && val_loss.is_finite() && model.is_finite()) {
            return Ok(Outcome::Diverged { epoch });
        }
        let metrics = Epoch {
            epoch,
            loss,
            val_loss,
            val_accuracy,
        };
        report(&metrics, &model)?;
    }
    Ok(Outcome::Finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Table, split, wine_quality};
    use ndarray::Array2;

    fn config() -> Config {
        Config {
            lr: 0.01,
            optimizer: Kind::Adam,
            momentum: 0.9,
            hidden: 16,
            layers: 1,
            activation: Activation::Relu,
            batch_size: 32,
            weight_decay: 0.0,
            dropout: 0.0,
            epochs: 8,
            seed: 1,
        }
    }

    fn run(config: &Config, data: &Split) -> (Vec<Epoch>, Outcome) {
        let mut epochs = Vec::new();
        let outcome = train(config, data, None, |e, _| {
            epochs.push(*e);
            Ok::<(), ()>(())
        })
        .unwrap();
        (epochs, outcome)
    }

    /// A small separable problem: the class is which of the first three
    /// features is largest.
    fn tiny() -> Split {
        let mut rng = Rng::new(4);
        let x = Array2::from_shape_simple_fn((300, 4), || rng.symmetric(1.0));
        let y: Vec<usize> = x
            .rows()
            .into_iter()
            .map(|r| {
                let mut best = 0;
                for k in 1..3 {
                    if r[k] > r[best] {
                        best = k;
                    }
                }
                best
            })
            .collect();
        split(&x, &y)
    }

    #[test]
    fn loss_decreases_on_a_tiny_problem() {
        let data = tiny();
        let (epochs, outcome) = run(&config(), &data);
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(epochs.len(), 8);
        let (first, last) = (epochs[0], epochs[7]);
        assert!(last.loss < first.loss * 0.6, "{first} → {last}");
        assert!(last.val_loss < first.val_loss, "{first} → {last}");
        assert!(last.val_accuracy > 0.8, "{last}");
    }

    #[test]
    fn sgd_with_momentum_learns_too() {
        let data = tiny();
        let c = Config {
            optimizer: Kind::Sgd,
            lr: 0.05,
            activation: Activation::Tanh,
            layers: 2,
            dropout: 0.1,
            weight_decay: 1e-4,
            ..config()
        };
        let (epochs, _) = run(&c, &data);
        assert!(epochs[7].val_accuracy > 0.8, "{}", epochs[7]);
    }

    #[test]
    fn the_same_seed_gives_the_same_curve() {
        let data = tiny();
        let c = Config {
            dropout: 0.2,
            ..config()
        };
        assert_eq!(run(&c, &data).0, run(&c, &data).0);
        let other = Config {
            seed: 2,
            ..c.clone()
        };
        assert_ne!(run(&c, &data).0, run(&other, &data).0);
    }

    #[test]
    fn a_huge_learning_rate_diverges_or_learns_nothing() {
        let data = wine_quality();
        let c = Config {
            optimizer: Kind::Sgd,
            lr: 1e6,
            epochs: 3,
            ..config()
        };
        let (epochs, outcome) = run(&c, &data);
        let good = run(
            &Config {
                epochs: 3,
                ..config()
            },
            &data,
        )
        .0;
        assert!(
            matches!(outcome, Outcome::Diverged { .. })
                || epochs.iter().all(|e| e.val_loss > good[2].val_loss * 2.0),
            "{outcome:?} {epochs:?}"
        );
    }

    #[test]
    fn wine_quality_beats_the_majority_class() {
        let data = wine_quality();
        let (epochs, _) = run(
            &Config {
                epochs: 15,
                ..config()
            },
            &data,
        );
        let majority = {
            let mut counts = [0usize; CLASSES];
            for &c in &data.valid.y {
                counts[c] += 1;
            }
            *counts.iter().max().unwrap() as f64 / data.valid.y.len() as f64
        };
        let last = epochs.last().unwrap();
        assert!(last.val_accuracy > majority + 0.05, "{last} vs {majority}");
    }

    #[test]
    fn a_report_error_stops_training() {
        let data = tiny();
        let mut seen = 0;
        let result = train(&config(), &data, None, |_, _| {
            seen += 1;
            if seen == 2 { Err("closed") } else { Ok(()) }
        });
        assert_eq!(result, Err("closed"));
        assert_eq!(seen, 2);
    }

    #[test]
    fn a_run_from_a_checkpoint_continues_its_epochs_and_its_learning() {
        let data = tiny();
        let short = Config {
            epochs: 2,
            ..config()
        };
        let mut last = None;
        train(&short, &data, None, |e, m| {
            last = Some((*e, m.clone()));
            Ok::<(), ()>(())
        })
        .unwrap();
        let (first_half, model) = last.unwrap();
        let mut epochs = Vec::new();
        let start = Saved { model, epochs: 2 };
        train(&short, &data, Some(start), |e, _| {
            epochs.push(*e);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [3, 4]);
        assert!(
            epochs[1].val_loss < first_half.val_loss,
            "{first_half} → {}",
            epochs[1]
        );
    }

    #[test]
    fn a_batch_larger_than_the_data_is_one_batch() {
        let data = Split {
            train: Table {
                x: Array2::zeros((3, 2)),
                y: vec![0, 1, 0],
            },
            valid: Table {
                x: Array2::zeros((1, 2)),
                y: vec![0],
            },
        };
        let (epochs, outcome) = run(
            &Config {
                batch_size: 1000,
                epochs: 2,
                ..config()
            },
            &data,
        );
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(epochs.len(), 2);
    }
}
