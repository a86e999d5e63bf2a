//! The controller's weights as one flat vector (so the optimiser and the
//! state are one loop and one blob), with Katib's shapes (`Controller.py`
//! `_build_params`): `w_lstm` [2H, 4H], `g_emb` [H], `w_emb` [N, H],
//! `w_soft` [H, N], `attn_w_1` and `attn_w_2` [H, H], `attn_v` [H].
//! Matrices are row-major; a vector `x` times `w` [a, b] is `Σ_r x_r w[r, ·]`.

use rand::RngExt;

use crate::rng::AlgoRng;

/// Sizes and offsets of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `controller_hidden_size`.
    pub h: usize,
    /// The number of operations.
    pub n: usize,
}

/// The named blocks, in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The LSTM's one weight matrix (no bias, as Katib's `_lstm`).
    Lstm,
    /// The first input.
    GEmb,
    /// One embedding row per operation.
    WEmb,
    /// Hidden state to operation logits.
    WSoft,
    /// Attention over earlier layers' hidden states.
    Attn1,
    /// Attention over the current hidden state.
    Attn2,
    /// Attention's output vector.
    AttnV,
}

impl Layout {
    fn len_of(self, block: Block) -> usize {
        let (h, n) = (self.h, self.n);
        match block {
            Block::Lstm => 2 * h * 4 * h,
            Block::GEmb | Block::AttnV => h,
            Block::WEmb | Block::WSoft => n * h,
            Block::Attn1 | Block::Attn2 => h * h,
        }
    }

    /// The range of `block` in the flat vector.
    #[must_use]
    pub fn range(self, block: Block) -> std::ops::Range<usize> {
        const ORDER: [Block; 7] = [
            Block::Lstm,
            Block::GEmb,
            Block::WEmb,
            Block::WSoft,
            Block::Attn1,
            Block::Attn2,
            Block::AttnV,
        ];
        let mut start = 0;
        for b in ORDER {
            let len = self.len_of(b);
            if b == block {
                return start..start + len;
            }
            start += len;
        }
        start..start
    }

    /// The total number of weights.
    #[must_use]
    pub fn total(self) -> usize {
        self.range(Block::AttnV).end
    }
}

/// A flat weight (or gradient) vector with its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The sizes.
    pub layout: Layout,
    /// Every weight, blocks in [`Layout::range`] order.
    pub data: Vec<f64>,
}

impl Params {
    /// All zeros (a gradient accumulator).
    #[must_use]
    pub fn zeros(layout: Layout) -> Self {
        Self {
            layout,
            data: vec![0.0; layout.total()],
        }
    }

    /// Katib's initialiser: uniform in [-0.01, 0.01].
    #[must_use]
    pub fn init(layout: Layout, rng: &mut AlgoRng) -> Self {
        Self {
            layout,
            data: (0..layout.total())
                .map(|_| rng.random_range(-0.01..=0.01))
                .collect(),
        }
    }

    /// One block's weights.
    #[must_use]
    pub fn block(&self, block: Block) -> &[f64] {
        &self.data[self.layout.range(block)]
    }

    /// One block's weights, mutably.
    pub fn block_mut(&mut self, block: Block) -> &mut [f64] {
        let range = self.layout.range(block);
        &mut self.data[range]
    }
}

/// `x · w` for `w` of `x.len()` rows and `cols` columns.
#[must_use]
pub fn vec_mat(x: &[f64], w: &[f64], cols: usize) -> Vec<f64> {
    let mut y = vec![0.0; cols];
    for (xr, row) in x.iter().zip(w.chunks_exact(cols)) {
        if *xr != 0.0 {
            for (yk, wk) in y.iter_mut().zip(row) {
                *yk += xr * wk;
            }
        }
    }
    y
}

/// The backward pass of [`vec_mat`]: adds `x ⊗ dy` to `dw` and `w · dy` to `dx`.
pub fn vec_mat_back(x: &[f64], w: &[f64], dy: &[f64], dx: &mut [f64], dw: &mut [f64]) {
    let cols = dy.len();
    for (((xr, row), drow), dxr) in x
        .iter()
        .zip(w.chunks_exact(cols))
        .zip(dw.chunks_exact_mut(cols))
        .zip(dx.iter_mut())
    {
        let mut acc = 0.0;
        for ((wk, dwk), dyk) in row.iter().zip(drow.iter_mut()).zip(dy) {
            *dwk += xr * dyk;
            acc += wk * dyk;
        }
        *dxr += acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_tile_the_vector() {
        let layout = Layout { h: 3, n: 5 };
        assert_eq!(layout.range(Block::Lstm), 0..72);
        assert_eq!(layout.range(Block::GEmb), 72..75);
        assert_eq!(layout.range(Block::AttnV).end, layout.total());
        assert_eq!(layout.total(), 72 + 3 + 15 + 15 + 9 + 9 + 3);
    }

    #[test]
    fn vec_mat_and_its_backward_agree() {
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        assert_eq!(vec_mat(&[1.0, -1.0], &w, 3), vec![-3.0, -3.0, -3.0]);
        let (mut dx, mut dw) = (vec![0.0; 2], vec![0.0; 6]);
        vec_mat_back(&[1.0, -1.0], &w, &[1.0, 0.0, 2.0], &mut dx, &mut dw);
        assert_eq!(dx, vec![7.0, 16.0]);
        assert_eq!(dw, vec![1.0, 0.0, 2.0, -1.0, 0.0, -2.0]);
    }
}
