//! Katib's LSTM cell (`Controller.py` `_lstm`): `[x, h] · W` split into the
//! gates i, f, o, g (no bias), `c' = σ(i)·tanh(g) + σ(f)·c`,
//! `h' = σ(o)·tanh(c')` — and its backward pass.

use super::params::{vec_mat, vec_mat_back};

/// What one step keeps for its backward pass.
#[derive(Debug, Clone)]
pub struct Step {
    /// `[x, h_prev]`.
    xh: Vec<f64>,
    /// The activated gates, `4H`: σ(i), σ(f), σ(o), tanh(g).
    gates: Vec<f64>,
    c_prev: Vec<f64>,
    tanh_c: Vec<f64>,
    /// The new cell state.
    pub c: Vec<f64>,
    /// The new hidden state.
    pub h: Vec<f64>,
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One step from `x`, `c_prev`, `h_prev` with weights `w` [2H, 4H].
#[must_use]
pub fn forward(x: &[f64], c_prev: &[f64], h_prev: &[f64], w: &[f64]) -> Step {
    let h = h_prev.len();
    let mut xh = Vec::with_capacity(2 * h);
    xh.extend_from_slice(x);
    xh.extend_from_slice(h_prev);
    let mut gates = vec_mat(&xh, w, 4 * h);
    for (k, z) in gates.iter_mut().enumerate() {
        *z = if k < 3 * h { sigmoid(*z) } else { z.tanh() };
    }
    let c: Vec<f64> = (0..h)
        .map(|k| gates[k] * gates[3 * h + k] + gates[h + k] * c_prev[k])
        .collect();
    let tanh_c: Vec<f64> = c.iter().map(|v| v.tanh()).collect();
    let h_new = (0..h).map(|k| gates[2 * h + k] * tanh_c[k]).collect();
    Step {
        xh,
        gates,
        c_prev: c_prev.to_vec(),
        tanh_c,
        c,
        h: h_new,
    }
}

/// Gradients of one step's inputs.
#[derive(Debug, Clone)]
pub struct StepGrad {
    /// d loss / d x.
    pub dx: Vec<f64>,
    /// d loss / d h_prev.
    pub dh_prev: Vec<f64>,
    /// d loss / d c_prev.
    pub dc_prev: Vec<f64>,
}

/// The backward pass of `step` given d loss / d h and d loss / d c (from
/// later steps); adds d loss / d W to `dw`.
#[must_use]
pub fn backward(step: &Step, dh: &[f64], dc_next: &[f64], w: &[f64], dw: &mut [f64]) -> StepGrad {
    let h = dh.len();
    let g = &step.gates;
    let mut dz = vec![0.0; 4 * h];
    let mut dc_prev = vec![0.0; h];
    for k in 0..h {
        let (i, f, o, gg) = (g[k], g[h + k], g[2 * h + k], g[3 * h + k]);
        let tc = step.tanh_c[k];
        let dc = dc_next[k] + dh[k] * o * (1.0 - tc * tc);
        dz[k] = dc * gg * i * (1.0 - i);
        dz[h + k] = dc * step.c_prev[k] * f * (1.0 - f);
        dz[2 * h + k] = dh[k] * tc * o * (1.0 - o);
        dz[3 * h + k] = dc * i * (1.0 - gg * gg);
        dc_prev[k] = dc * f;
    }
    let mut dxh = vec![0.0; 2 * h];
    vec_mat_back(&step.xh, w, &dz, &mut dxh, dw);
    let dh_prev = dxh.split_off(h);
    StepGrad {
        dx: dxh,
        dh_prev,
        dc_prev,
    }
}
