//! Training the controller (`Controller.py` `build_trainer`): REINFORCE with
//! an exponential moving-average baseline and Adam (TensorFlow 1's
//! `AdamOptimizer`: β1 0.9, β2 0.999, ε 1e-8, bias correction in the step
//! size).
//!
//! One deviation from Katib, on purpose: Katib feeds the *mean* objective
//! of all succeeded trials as the reward of architectures it samples anew at
//! every train step, so the reward is never tied to the architecture that
//! earned it. Here each train step replays a round's own architectures,
//! each with its own reward (the ENAS paper's REINFORCE), and the gradient
//! is the mean over them. Per step, as Katib: `reward = objective +
//! entropy_weight · sample_entropy`; `baseline −= (1 − decay)(baseline −
//! reward)` (with the round's mean reward); `loss = −log π · (reward −
//! baseline) + skip_weight · skip_penalty`.

use super::controller::{Decide, Shape, run};
use super::format::Architecture;
use super::params::{Layout, Params};

/// The settings training reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSettings {
    /// `controller_entropy_weight` (`None` → 0).
    pub entropy_weight: f64,
    /// `controller_baseline_decay`.
    pub baseline_decay: f64,
    /// `controller_learning_rate`.
    pub learning_rate: f64,
    /// `controller_skip_weight` (`None` → 0).
    pub skip_weight: f64,
    /// `controller_train_steps`.
    pub train_steps: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

/// The controller with everything training carries from round to round.
#[derive(Debug, Clone, PartialEq)]
pub struct Trainer {
    /// The weights.
    pub params: Params,
    /// Adam's first moments.
    pub m: Vec<f64>,
    /// Adam's second moments.
    pub v: Vec<f64>,
    /// Adam steps taken.
    pub t: u64,
    /// The reward baseline.
    pub baseline: f64,
}

impl Trainer {
    /// A fresh trainer around `params`.
    #[must_use]
    pub fn new(params: Params) -> Self {
        let len = params.data.len();
        Self {
            params,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            baseline: 0.0,
        }
    }

    /// `settings.train_steps` steps on one round's (architecture, reward) pairs.
    pub fn train_round(
        &mut self,
        shape: &Shape,
        settings: &TrainSettings,
        round: &[(Architecture, f64)],
    ) {
        if round.is_empty() {
            return;
        }
        let batch = round.len() as f64;
        let layout: Layout = self.params.layout;
        for _ in 0..settings.train_steps {
            let tapes: Vec<_> = round
                .iter()
                .map(|(arch, _)| run(&self.params, shape, Decide::Replay(arch)))
                .collect();
            let rewards: Vec<f64> = tapes
                .iter()
                .zip(round)
                .map(|(tape, (_, r))| r + settings.entropy_weight * tape.entropy)
                .collect();
            let mean = rewards.iter().sum::<f64>() / batch;
            let baseline = self.baseline - (1.0 - settings.baseline_decay) * (self.baseline - mean);
            if !baseline.is_finite() {
                return;
            }
            self.baseline = baseline;
            let mut grad = Params::zeros(layout);
            for (tape, reward) in tapes.iter().zip(&rewards) {
                tape.backward(
                    &self.params,
                    shape,
                    (reward - self.baseline) / batch,
                    settings.skip_weight / batch,
                    &mut grad,
                );
            }
            self.adam(&grad.data, settings.learning_rate);
        }
    }

    /// One Adam step; a gradient that overflowed (an objective near
    /// f64::MAX) is skipped rather than let it poison every weight.
    fn adam(&mut self, grad: &[f64], lr: f64) {
        if !grad.iter().all(|g| g.is_finite()) {
            return;
        }
        self.t += 1;
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        let step = lr * (1.0 - BETA2.powi(t)).sqrt() / (1.0 - BETA1.powi(t));
        for (((w, m), v), g) in self
            .params
            .data
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grad)
        {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *w -= step * *m / (v.sqrt() + EPSILON);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    #[test]
    fn overflowing_rewards_leave_the_controller_finite() {
        let layout = Layout { h: 4, n: 3 };
        let mut rng = derive_rng(3, 0, "enas-train");
        let shape = Shape {
            layers: 3,
            temperature: Some(5.0),
            tanh_const: Some(2.25),
            skip_target: 0.4,
        };
        let mut trainer = Trainer::new(Params::init(layout, &mut rng));
        let arch = run(&trainer.params, &shape, Decide::Sample(&mut rng)).arch;
        let settings = TrainSettings {
            entropy_weight: 1e-5,
            baseline_decay: 0.5,
            learning_rate: 0.1,
            skip_weight: 0.8,
            train_steps: 3,
        };
        trainer.train_round(
            &shape,
            &settings,
            &[(arch.clone(), f64::MAX), (arch.clone(), f64::MAX)],
        );
        assert!(trainer.params.data.iter().all(|w| w.is_finite()));
        assert!(trainer.baseline.is_finite());
        // An ordinary reward still trains.
        let before = trainer.params.clone();
        trainer.train_round(&shape, &settings, &[(arch, 1.0)]);
        assert_ne!(before, trainer.params);
    }
}
