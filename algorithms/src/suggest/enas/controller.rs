//! The controller network (`Controller.py` `_build_sampler`): an LSTM that,
//! per layer, picks an operation (softmax over `h · w_soft`) and then, from
//! the second layer on, a skip bit per earlier layer (attention
//! `v · tanh(h · attn_w_2 + h_j · attn_w_1)` with logits `[-q, q]`); both
//! logits pass through `/ temperature` and `tanh_const · tanh(·)` when those
//! settings are not `None`. The next layer's input is the chosen
//! operation's embedding, then the mean of the skipped-to layers' states.
//!
//! [`run`] is the forward pass, sampling or replaying an architecture and
//! keeping a tape; [`Tape::backward`] is the hand-written backward pass
//! (through time) of the REINFORCE loss of that architecture.

use rand::RngExt;

use super::format::{Architecture, Layer};
use super::lstm::{self, Step, sigmoid};
use super::params::{Block, Params, vec_mat, vec_mat_back};
use crate::rng::AlgoRng;

/// The controller's shape and logit transforms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Layers of the searched network.
    pub layers: usize,
    /// `controller_temperature` (`None`: logits not divided).
    pub temperature: Option<f64>,
    /// `controller_tanh_const` (`None`: no tanh).
    pub tanh_const: Option<f64>,
    /// `controller_skip_target`.
    pub skip_target: f64,
}

impl Shape {
    /// The logit transform and its derivative at `x`.
    fn transform(&self, x: f64) -> (f64, f64) {
        let (mut y, mut dy) = (x, 1.0);
        if let Some(t) = self.temperature {
            y /= t;
            dy /= t;
        }
        if let Some(c) = self.tanh_const {
            let th = y.tanh();
            dy *= c * (1.0 - th * th);
            y = c * th;
        }
        (y, dy)
    }
}

/// How [`run`] makes its decisions.
#[derive(Debug)]
pub enum Decide<'a> {
    /// Draw them from the controller's distributions.
    Sample(&'a mut AlgoRng),
    /// Take them from a given architecture (of the right shape).
    Replay(&'a Architecture),
}

/// One attention row: layer `l`'s view of earlier layer `j`.
#[derive(Debug, Clone)]
struct Attention {
    u: Vec<f64>,
    a: f64,
    da_dq: f64,
    bit: bool,
}

#[derive(Debug, Clone)]
struct LayerTape {
    op_step: Step,
    /// The transformed logits' derivatives, per operation.
    dz_ds: Vec<f64>,
    probs: Vec<f64>,
    op: usize,
    emb_step: Step,
    attention: Vec<Attention>,
}

/// A forward pass: the architecture, its log-probability and what the
/// backward pass needs.
#[derive(Debug, Clone)]
pub struct Tape {
    /// The architecture decided.
    pub arch: Architecture,
    /// −log π(arch): the sum of every decision's cross-entropy.
    pub neg_log_prob: f64,
    /// Katib's sample entropy: Σ over decisions of `−log p · p` of the choice.
    pub entropy: f64,
    /// Katib's skip penalty: the mean over layers ≥ 1 of KL(σ([−a, a]) ‖
    /// [1 − target, target]) summed over the layer's rows (0 for one layer).
    pub skip_penalty: f64,
    layers: Vec<LayerTape>,
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Draws an index from `probs` (which sum to 1).
fn draw(probs: &[f64], rng: &mut AlgoRng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (k, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return k;
        }
    }
    probs.len().saturating_sub(1)
}

/// −ln σ(x), stably.
fn neg_log_sigmoid(x: f64) -> f64 {
    if x > 0.0 {
        (-x).exp().ln_1p()
    } else {
        -x + x.exp().ln_1p()
    }
}

/// KL(σ([−a, a]) ‖ [1 − target, target]) and its derivative in `a`. A
/// target of 1 (which Katib accepts, and then divides by zero) is taken as
/// 1 − 1e-9.
fn skip_kl(a: f64, target: f64) -> (f64, f64) {
    let target = target.clamp(1e-9, 1.0 - 1e-9);
    let p = sigmoid(a).clamp(1e-300, 1.0 - 1e-16);
    let q = 1.0 - p;
    let kl = q * (q / (1.0 - target)).ln() + p * (p / target).ln();
    let dkl_dp = (p / target).ln() - (q / (1.0 - target)).ln();
    (kl, dkl_dp * p * q)
}

/// The forward pass over `shape.layers` layers. A replayed architecture
/// must have the shape's layer count and valid ids (see
/// [`Architecture::from_katib`]).
#[must_use]
pub fn run(params: &Params, shape: &Shape, mut decide: Decide<'_>) -> Tape {
    let h = params.layout.h;
    let n = params.layout.n;
    let w_lstm = params.block(Block::Lstm);
    let w_soft = params.block(Block::WSoft);
    let w_emb = params.block(Block::WEmb);
    let w1 = params.block(Block::Attn1);
    let w2 = params.block(Block::Attn2);
    let v = params.block(Block::AttnV);
    let mut c = vec![0.0; h];
    let mut hid = vec![0.0; h];
    let mut input = params.block(Block::GEmb).to_vec();
    let mut all_h: Vec<Vec<f64>> = Vec::with_capacity(shape.layers);
    let mut all_hw: Vec<Vec<f64>> = Vec::with_capacity(shape.layers);
    let mut tape = Tape {
        arch: Architecture { layers: Vec::new() },
        neg_log_prob: 0.0,
        entropy: 0.0,
        skip_penalty: 0.0,
        layers: Vec::with_capacity(shape.layers),
    };
    for l in 0..shape.layers {
        let op_step = lstm::forward(&input, &c, &hid, w_lstm);
        let s = vec_mat(&op_step.h, w_soft, n);
        let (z, dz_ds): (Vec<f64>, Vec<f64>) = s.iter().map(|&x| shape.transform(x)).unzip();
        let probs = softmax(&z);
        let op = match &mut decide {
            Decide::Sample(rng) => draw(&probs, rng),
            Decide::Replay(arch) => arch.layers.get(l).map_or(0, |layer| layer.op.min(n - 1)),
        };
        let nll = -probs[op].max(f64::MIN_POSITIVE).ln();
        tape.neg_log_prob += nll;
        tape.entropy += nll * (-nll).exp();
        let emb = &w_emb[op * h..(op + 1) * h];
        let emb_step = lstm::forward(emb, &op_step.c, &op_step.h, w_lstm);
        let mut attention = Vec::with_capacity(l);
        let mut skips = Vec::with_capacity(l);
        if l > 0 {
            let query = vec_mat(&emb_step.h, w2, h);
            let mut kl_sum = 0.0;
            for (j, hw) in all_hw.iter().enumerate() {
                let u: Vec<f64> = query.iter().zip(hw).map(|(a, b)| (a + b).tanh()).collect();
                let q: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
                let (a, da_dq) = shape.transform(q);
                let bit = match &mut decide {
                    Decide::Sample(rng) => rng.random::<f64>() < sigmoid(2.0 * a),
                    Decide::Replay(arch) => arch
                        .layers
                        .get(l)
                        .and_then(|layer| layer.skips.get(j))
                        .copied()
                        .unwrap_or(false),
                };
                // Logits [−a, a]: p(bit) = σ(±2a).
                let nll = neg_log_sigmoid(if bit { 2.0 * a } else { -2.0 * a });
                tape.neg_log_prob += nll;
                tape.entropy += nll * (-nll).exp();
                kl_sum += skip_kl(a, shape.skip_target).0;
                skips.push(bit);
                attention.push(Attention { u, a, da_dq, bit });
            }
            tape.skip_penalty += kl_sum / (shape.layers - 1) as f64;
            let chosen = skips.iter().filter(|&&b| b).count();
            let mut next = vec![0.0; h];
            for (bit, hj) in skips.iter().zip(&all_h) {
                if *bit {
                    for (x, y) in next.iter_mut().zip(hj) {
                        *x += y;
                    }
                }
            }
            let scale = 1.0 / (1.0 + chosen as f64);
            input = next.iter().map(|x| x * scale).collect();
        } else {
            input = params.block(Block::GEmb).to_vec();
        }
        c.clone_from(&emb_step.c);
        hid.clone_from(&emb_step.h);
        all_hw.push(vec_mat(&emb_step.h, w1, h));
        all_h.push(emb_step.h.clone());
        tape.arch.layers.push(Layer { op, skips });
        tape.layers.push(LayerTape {
            op_step,
            dz_ds,
            probs,
            op,
            emb_step,
            attention,
        });
    }
    tape
}

impl Tape {
    /// Adds to `grad` the gradient of `advantage · (−log π(arch)) +
    /// skip_weight · skip_penalty` (the entropy bonus is a constant, as
    /// Katib's `stop_gradient`).
    pub fn backward(
        &self,
        params: &Params,
        shape: &Shape,
        advantage: f64,
        skip_weight: f64,
        grad: &mut Params,
    ) {
        let layout = params.layout;
        let (h, n) = (layout.h, layout.n);
        let layers = self.layers.len();
        let w_lstm = params.block(Block::Lstm);
        let w_soft = params.block(Block::WSoft);
        let w1 = params.block(Block::Attn1);
        let w2 = params.block(Block::Attn2);
        let v = params.block(Block::AttnV);
        let kl_scale = if layers > 1 {
            skip_weight / (layers - 1) as f64
        } else {
            0.0
        };
        let mut g_lstm = vec![0.0; layout.range(Block::Lstm).len()];
        let mut g_soft = vec![0.0; n * h];
        let mut g_emb = vec![0.0; n * h];
        let mut g_w1 = vec![0.0; h * h];
        let mut g_w2 = vec![0.0; h * h];
        let mut g_v = vec![0.0; h];
        let mut g_g = vec![0.0; h];
        // d loss / d (layer j's state after its embedding step), from later layers.
        let mut dh_all = vec![vec![0.0; h]; layers];
        let mut dh_next = vec![0.0; h];
        let mut dc_next = vec![0.0; h];
        for l in (0..layers).rev() {
            let tape = &self.layers[l];
            let h_e = &tape.emb_step.h;
            let mut dh: Vec<f64> = dh_next.iter().zip(&dh_all[l]).map(|(a, b)| a + b).collect();
            if l > 0 {
                let mut dquery = vec![0.0; h];
                for (j, att) in tape.attention.iter().enumerate() {
                    let target = if att.bit { 1.0 } else { 0.0 };
                    let dnll_da = 2.0 * (sigmoid(2.0 * att.a) - target);
                    let da = advantage * dnll_da + kl_scale * skip_kl(att.a, shape.skip_target).1;
                    let dq = da * att.da_dq;
                    let mut dpre = vec![0.0; h];
                    for k in 0..h {
                        g_v[k] += att.u[k] * dq;
                        dpre[k] = v[k] * dq * (1.0 - att.u[k] * att.u[k]);
                        dquery[k] += dpre[k];
                    }
                    let hj = &self.layers[j].emb_step.h;
                    vec_mat_back(hj, w1, &dpre, &mut dh_all[j], &mut g_w1);
                }
                vec_mat_back(h_e, w2, &dquery, &mut dh, &mut g_w2);
            }
            let emb = lstm::backward(&tape.emb_step, &dh, &dc_next, w_lstm, &mut g_lstm);
            for (g, d) in g_emb[tape.op * h..(tape.op + 1) * h]
                .iter_mut()
                .zip(&emb.dx)
            {
                *g += d;
            }
            // The operation choice at the first step's output.
            let ds: Vec<f64> = (0..n)
                .map(|k| {
                    let onehot = if k == tape.op { 1.0 } else { 0.0 };
                    advantage * (tape.probs[k] - onehot) * tape.dz_ds[k]
                })
                .collect();
            let mut dh_o = emb.dh_prev;
            vec_mat_back(&tape.op_step.h, w_soft, &ds, &mut dh_o, &mut g_soft);
            let op = lstm::backward(&tape.op_step, &dh_o, &emb.dc_prev, w_lstm, &mut g_lstm);
            // This step's input came from layer l−1's skips (or g_emb).
            if l >= 2 {
                let producer = &self.layers[l - 1];
                let chosen = producer.attention.iter().filter(|a| a.bit).count();
                let scale = 1.0 / (1.0 + chosen as f64);
                for (j, att) in producer.attention.iter().enumerate() {
                    if att.bit {
                        for (d, x) in dh_all[j].iter_mut().zip(&op.dx) {
                            *d += x * scale;
                        }
                    }
                }
            } else {
                for (g, x) in g_g.iter_mut().zip(&op.dx) {
                    *g += x;
                }
            }
            dh_next = op.dh_prev;
            dc_next = op.dc_prev;
        }
        for (block, g) in [
            (Block::Lstm, &g_lstm),
            (Block::GEmb, &g_g),
            (Block::WEmb, &g_emb),
            (Block::WSoft, &g_soft),
            (Block::Attn1, &g_w1),
            (Block::Attn2, &g_w2),
            (Block::AttnV, &g_v),
        ] {
            for (a, b) in grad.block_mut(block).iter_mut().zip(g) {
                *a += b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;
    use crate::suggest::enas::params::Layout;

    fn loss(params: &Params, shape: &Shape, arch: &Architecture, adv: f64, sw: f64) -> f64 {
        let tape = run(params, shape, Decide::Replay(arch));
        adv * tape.neg_log_prob + sw * tape.skip_penalty
    }

    /// The hand-written backward pass against central differences, on
    /// every weight of a small controller, with weights large enough that
    /// every nonlinearity is away from its linear regime.
    #[test]
    fn backward_matches_finite_differences() {
        let layout = Layout { h: 4, n: 3 };
        let mut rng = derive_rng(7, 0, "enas-gradcheck");
        let mut params = Params::init(layout, &mut rng);
        for w in &mut params.data {
            *w *= 60.0;
        }
        for shape in [
            Shape {
                layers: 4,
                temperature: Some(1.5),
                tanh_const: Some(2.25),
                skip_target: 0.3,
            },
            Shape {
                layers: 3,
                temperature: None,
                tanh_const: None,
                skip_target: 0.6,
            },
        ] {
            let arch = run(&params, &shape, Decide::Sample(&mut rng)).arch;
            let (adv, sw) = (0.7, 0.8);
            let mut grad = Params::zeros(layout);
            run(&params, &shape, Decide::Replay(&arch))
                .backward(&params, &shape, adv, sw, &mut grad);
            let eps = 1e-6;
            let mut worst: f64 = 0.0;
            for i in 0..layout.total() {
                let mut plus = params.clone();
                plus.data[i] += eps;
                let mut minus = params.clone();
                minus.data[i] -= eps;
                let numeric = (loss(&plus, &shape, &arch, adv, sw)
                    - loss(&minus, &shape, &arch, adv, sw))
                    / (2.0 * eps);
                // Central differences carry ~1e-10 of rounding: a relative
                // test with that much absolute slack.
                let diff = (numeric - grad.data[i]).abs();
                let scale = numeric.abs().max(grad.data[i].abs());
                worst = worst.max(diff / (1e-3 + scale));
                assert!(
                    diff <= 1e-8 + 1e-5 * scale,
                    "weight {i}: analytic {} numeric {numeric} ({shape:?})",
                    grad.data[i]
                );
            }
            assert!(
                grad.data.iter().any(|g| g.abs() > 1e-3),
                "a vanishing gradient checks nothing"
            );
            assert!(worst < 1e-5);
        }
    }

    #[test]
    fn sampled_architectures_replay_to_the_same_probabilities() {
        let layout = Layout { h: 5, n: 4 };
        let mut rng = derive_rng(1, 0, "enas-replay");
        let params = Params::init(layout, &mut rng);
        let shape = Shape {
            layers: 5,
            temperature: Some(5.0),
            tanh_const: Some(2.25),
            skip_target: 0.4,
        };
        let sampled = run(&params, &shape, Decide::Sample(&mut rng));
        let replayed = run(&params, &shape, Decide::Replay(&sampled.arch));
        assert_eq!(sampled.arch, replayed.arch);
        assert_eq!(sampled.neg_log_prob, replayed.neg_log_prob);
        assert_eq!(sampled.skip_penalty, replayed.skip_penalty);
        // Near-zero weights: every decision is close to uniform.
        let uniform = 5.0 * 4.0_f64.ln() + 10.0 * 2.0_f64.ln();
        assert!(
            (sampled.neg_log_prob - uniform).abs() < 0.05,
            "{}",
            sampled.neg_log_prob
        );
    }
}
