//! The Gaussian process: hyperparameter fit by maximum a posteriori log
//! marginal likelihood, and the conditioned posterior used by the
//! acquisition.
//!
//! Model: `y = m + f(x) + ε`, `f ~ GP(0, Matérn-5/2 ARD)`, `ε ~ N(0, σₙ²)`,
//! on standardised outputs (the adapter standardises), inputs in the unit
//! cube, `m` a constant at its generalised-least-squares value for each `θ`
//! (profiled out of the likelihood; [`Gp::centre_on_gls_mean`]).
//! Hyperparameters `θ = (log ℓ_1..ℓ_D, log s², log σₙ²)` maximise
//! `log p(y | θ) + log p(θ)` (Rasmussen & Williams 2006, eq. 5.8–5.9, with
//! the analytic gradient `½ tr((ααᵀ − K⁻¹) ∂K/∂θ)`). The lengthscales
//! (unit-cube widths) get a log-normal prior, `ℓ_d ~ LogNormal(−½, √3)`
//! (median 0.61, [`LS_LOC`]), which keeps the model from collapsing to tiny
//! lengthscales when data are scarce without drowning the short-scale
//! structure that 50–100 trials can resolve. Its width is Hvarfner,
//! Hellsten & Nardi's ("Vanilla Bayesian Optimization Performs Great in
//! High Dimensions", ICML 2024); their location, `√2 + ½ ln D` (median 4.1
//! at `D = 1`, 10–12 at the 5–8 feature columns of the peer benchmark), is
//! meant for dozens to hundreds of dimensions. At the handful ktune's users
//! tune, it modelled a weak parameter as irrelevant (dropout on the peer
//! benchmark's `mixed` function: a linear trend to its bound, no variance
//! left to explore), and even at `D = 1` it smoothed away Hartmann-6's and
//! Styblinski-Tang's basins: over 20 seeds at 50 trials, centring the prior
//! at −½ instead of √2 took Hartmann-6's median regret from 0.17 to 0.05,
//! Rosenbrock-4's from 44 to 14, Ackley-5's from 5.5 to 4.2 and
//! Styblinski-Tang-8's from 113 to 60, Branin and `mixed` staying at 0
//! (centres 0 and −1 were between the two; Optuna's GPSampler puts the
//! mode of its prior at 1). Signal and noise
//! get weak log-normal priors. The fit is a multi-start projected L-BFGS
//! in log space ([`super::optimize`]).

use super::kernel::Matern52;
use super::linalg::{
    NotPositiveDefinite, cholesky_jittered, dot, extend_cholesky, inverse_from_cholesky,
    solve_lower, solve_lower_many, solve_lower_transposed,
};
use super::optimize::{Budget, minimize};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The log-median of the lengthscale prior, in unit-cube widths; see the
/// module docs.
pub(crate) const LS_LOC: f64 = -0.5;

/// Smallest posterior variance reported (keeps `σ` and `log σ` finite).
const MIN_VARIANCE: f64 = 1e-12;

/// Fitted hyperparameters, in log space.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hyper {
    /// `log ℓ_d` per input dimension.
    pub log_lengthscales: Vec<f64>,
    /// `log s²`.
    pub log_signal: f64,
    /// `log σₙ²`.
    pub log_noise: f64,
}

impl Hyper {
    fn from_theta(theta: &[f64], d: usize) -> Self {
        Self {
            log_lengthscales: theta.iter().take(d).copied().collect(),
            log_signal: theta.get(d).copied().unwrap_or(0.0),
            log_noise: theta.get(d + 1).copied().unwrap_or(-6.0),
        }
    }

    fn kernel(&self) -> Matern52 {
        Matern52::from_log(&self.log_lengthscales, self.log_signal)
    }
}

/// `(mean, sd)` of the normal prior on each entry of `θ`, and its box.
struct Prior {
    mean: Vec<f64>,
    sd: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl Prior {
    /// The prior for `d` feature columns, the lengthscales' log-normal
    /// centred at `ls_loc` (see [`LS_LOC`]).
    fn new(d: usize, ls_loc: f64) -> Self {
        let df = d.max(1) as f64;
        let mut mean = vec![ls_loc; d];
        let mut sd = vec![3f64.sqrt(); d];
        let mut lo = vec![0.005f64.ln(); d];
        let mut hi = vec![(20.0 * df.sqrt()).ln(); d];
        // Signal: outputs are standardised, so s² ≈ 1 a priori.
        mean.push(0.0);
        sd.push(1.0);
        lo.push(0.05f64.ln());
        hi.push(20f64.ln());
        // Noise: most tuning objectives are nearly deterministic; a weak
        // prior around 2.5e-3 that the data can overrule in either direction.
        mean.push(-6.0);
        sd.push(2.0);
        lo.push(1e-6f64.ln());
        hi.push(1f64.ln());
        Self { mean, sd, lo, hi }
    }

    fn log_density(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let mut lp = 0.0;
        for (((t, m), s), g) in theta.iter().zip(&self.mean).zip(&self.sd).zip(grad) {
            let z = (t - m) / s;
            lp -= 0.5 * z * z;
            *g = -z / s;
        }
        lp
    }
}

/// `K + σₙ² I` for the `n x d` inputs `x` (row-major); with `slopes`, also
/// the derivative factor `g(r)` of every pair (lower triangle), which the
/// gradient of the marginal likelihood needs.
fn kernel_matrix(
    kern: &Matern52,
    noise: f64,
    x: &[f64],
    d: usize,
    slopes: Option<&mut Vec<f64>>,
) -> Vec<f64> {
    let n = x.len() / d.max(1);
    let mut k = vec![0.0; n * n];
    let mut sl = slopes;
    if let Some(s) = sl.as_deref_mut() {
        s.clear();
        s.resize(n * n, 0.0);
    }
    for i in 0..n {
        let xi = &x[i * d..i * d + d];
        for j in 0..i {
            let (v, g) = kern.value_and_slope(kern.r2(xi, &x[j * d..j * d + d]));
            k[i * n + j] = v;
            k[j * n + i] = v;
            if let Some(s) = sl.as_deref_mut() {
                s[i * n + j] = g;
            }
        }
        k[i * n + i] = kern.signal + noise;
    }
    k
}

/// The negative log posterior `−log p(y|θ) − log p(θ)` of `θ = (log ℓ, log s², log σₙ²)`
/// for inputs `x` (`n x d`, row-major) and outputs `y`, with its gradient
/// written into `grad`; the likelihood is that of `y − m(θ)`, the GLS
/// constant mean profiled out. `+inf` when the kernel matrix cannot be
/// factorised.
#[cfg(test)]
pub(crate) fn neg_log_posterior(
    x: &[f64],
    y: &[f64],
    d: usize,
    theta: &[f64],
    grad: &mut [f64],
) -> f64 {
    let prior = Prior::new(d, LS_LOC);
    neg_log_posterior_with(&prior, x, y, d, theta, grad)
}

fn neg_log_posterior_with(
    prior: &Prior,
    x: &[f64],
    y: &[f64],
    d: usize,
    theta: &[f64],
    grad: &mut [f64],
) -> f64 {
    let n = y.len();
    if theta.len() != d + 2 || grad.len() != d + 2 || x.len() != n * d {
        return f64::INFINITY;
    }
    let hyper = Hyper::from_theta(theta, d);
    let kern = hyper.kernel();
    let noise = hyper.log_noise.exp();
    let mut slopes = Vec::new();
    let k = kernel_matrix(&kern, noise, x, d, Some(&mut slopes));
    let Ok((l, _)) = cholesky_jittered(&k, n) else {
        return f64::INFINITY;
    };
    let mut alpha = y.to_vec();
    solve_lower(&l, n, &mut alpha);
    // The constant mean is profiled out: `y − m(θ)` with `m(θ)` the GLS
    // mean (see `Gp::centre_on_gls_mean`), whitened as `L⁻¹y − m·L⁻¹1`.
    // `m(θ)` maximises the likelihood for each `θ`, so the gradient below,
    // taken at fixed `m`, is the profiled objective's gradient as well.
    let mut ones = vec![1.0; n];
    solve_lower(&l, n, &mut ones);
    let m = dot(&ones, &alpha) / dot(&ones, &ones);
    if m.is_finite() {
        alpha.iter_mut().zip(&ones).for_each(|(a, o)| *a -= m * o);
    }
    let fit = dot(&alpha, &alpha);
    solve_lower_transposed(&l, n, &mut alpha);
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    let lml = -0.5 * fit - log_det - 0.5 * n as f64 * LN_2PI;

    // W = ααᵀ − K⁻¹; ∂LML/∂θ = ½ Σ_ij W_ij ∂K_ij/∂θ, using symmetry.
    let kinv = inverse_from_cholesky(&l, n);
    let mut g_lml = vec![0.0; d + 2];
    let mut trace_w = 0.0;
    for i in 0..n {
        let xi = &x[i * d..i * d + d];
        for j in 0..i {
            let w = alpha[i] * alpha[j] - kinv[i * n + j];
            let ws = w * slopes[i * n + j];
            let xj = &x[j * d..j * d + d];
            for ((gd, (a, b)), inv) in g_lml
                .iter_mut()
                .zip(xi.iter().zip(xj))
                .zip(&kern.inv_sq_lengthscales)
            {
                let delta = a - b;
                *gd += ws * delta * delta * inv;
            }
            g_lml[d] += w * k[i * n + j];
        }
        trace_w += alpha[i] * alpha[i] - kinv[i * n + i];
    }
    g_lml[d] += 0.5 * kern.signal * trace_w;
    g_lml[d + 1] = 0.5 * noise * trace_w;

    let lp = prior.log_density(theta, grad);
    for (g, gl) in grad.iter_mut().zip(&g_lml) {
        *g = -(*g + gl);
    }
    -(lml + lp)
}

/// Fitted hyperparameters and how well they explain the data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fit {
    /// The hyperparameters.
    pub hyper: Hyper,
    /// `−log p(y | θ) − log p(θ)` at them; `+inf` for the fallback.
    pub neg_log_posterior: f64,
}

/// Fits the hyperparameters to `(x, y)` (`y` standardised): projected
/// L-BFGS from three starts, lengthscales `{0.25, 0.5, 1}·√D`, so neither
/// the short- nor the long-lengthscale basin is missed; the best optimum
/// wins. Falls back to `ℓ = √D` if every start fails.
pub(crate) fn fit_hyper(x: &[f64], y: &[f64], d: usize, ls_loc: f64) -> Fit {
    let prior = Prior::new(d, ls_loc);
    let sqrt_d = (d.max(1) as f64).sqrt();
    // Hyperparameters matter to a few percent, not to the last digit: the
    // last tens of evaluations gain well under a nat of log posterior.
    let budget = Budget {
        max_iter: 25,
        max_evals: 30,
        gtol: 1e-3,
        ftol: 1e-5,
    };
    let starts: Vec<Vec<f64>> = [0.25, 0.5, 1.0]
        .iter()
        .map(|scale| {
            let mut start = vec![(scale * sqrt_d).ln(); d];
            start.extend([0.0, -6.0]);
            start
        })
        .collect();
    let objective = |t: &[f64], g: &mut [f64]| neg_log_posterior_with(&prior, x, y, d, t, g);
    // Small fits are cheap: polish every start. Larger ones polish only the
    // start with the best posterior, halving the cost for the same optimum
    // in almost every case.
    let polished: Vec<&Vec<f64>> = if y.len() <= 40 {
        starts.iter().collect()
    } else {
        let mut scratch = vec![0.0; d + 2];
        starts
            .iter()
            .map(|s| (s, objective(s, &mut scratch)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, _)| s)
            .into_iter()
            .collect()
    };
    let mut best: Option<(Vec<f64>, f64)> = None;
    for start in polished {
        let (theta, value) = minimize(objective, start, &prior.lo, &prior.hi, budget);
        if value.is_finite() && best.as_ref().is_none_or(|(_, b)| value < *b) {
            best = Some((theta, value));
        }
    }
    match best {
        Some((theta, value)) => Fit {
            hyper: Hyper::from_theta(&theta, d),
            neg_log_posterior: value,
        },
        None => Fit {
            hyper: Hyper {
                log_lengthscales: vec![sqrt_d.ln(); d],
                log_signal: 0.0,
                log_noise: -6.0,
            },
            neg_log_posterior: f64::INFINITY,
        },
    }
}

/// A GP conditioned on data: everything prediction needs.
#[derive(Debug, Clone)]
pub(crate) struct Gp {
    d: usize,
    n: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    kern: Matern52,
    noise: f64,
    chol: Vec<f64>,
    alpha: Vec<f64>,
}

impl Gp {
    /// Conditions the GP with `hyper` on `(x, y)`.
    ///
    /// # Errors
    /// [`NotPositiveDefinite`] when the kernel matrix cannot be factorised
    /// even with jitter (non-finite inputs or hyperparameters).
    pub fn condition(
        x: &[f64],
        y: &[f64],
        d: usize,
        hyper: &Hyper,
    ) -> Result<Self, NotPositiveDefinite> {
        let n = y.len();
        if x.len() != n * d {
            return Err(NotPositiveDefinite { n, jitter: 0.0 });
        }
        let kern = hyper.kernel();
        let noise = hyper.log_noise.exp();
        let k = kernel_matrix(&kern, noise, x, d, None);
        let (chol, _) = cholesky_jittered(&k, n)?;
        let mut gp = Self {
            d,
            n,
            x: x.to_vec(),
            y: y.to_vec(),
            kern,
            noise,
            chol,
            alpha: Vec::new(),
        };
        gp.solve_alpha();
        Ok(gp)
    }

    fn solve_alpha(&mut self) {
        let mut alpha = self.y.clone();
        solve_lower(&self.chol, self.n, &mut alpha);
        solve_lower_transposed(&self.chol, self.n, &mut alpha);
        self.alpha = alpha;
    }

    /// Re-centres the GP on its generalised-least-squares constant mean,
    /// `m = 1ᵀK⁻¹y / 1ᵀK⁻¹1` (the maximum-likelihood constant mean, as
    /// BoTorch's `ConstantMean`), and returns `m`; afterwards the GP
    /// models `y − m`. `O(n²)`.
    ///
    /// Why not the plain average, which standardisation makes 0: Bayesian
    /// optimisation clusters its samples where the values are good, so
    /// their average drifts towards the best values and the model expects
    /// every unexplored region to be about that good. The GLS mean weights
    /// correlated (clustered) samples as the kernel says they are — as
    /// roughly one — so unexplored regions are expected to be typical
    /// rather than good: less time spent on the corners of the cube, more
    /// on the basins. With the mean profiled out of the hyperparameter fit
    /// too and the output transform chosen by likelihood, over 30 seeds of
    /// the peer benchmark the median regret at 50 / 100 trials went from
    /// 0.068 / 2e-4 to 0.00076 / 7.5e-6 on Hartmann-6, 4.6 / 2.7 to 3.0 /
    /// 2.2 on Ackley-5 and 63 / 58 to 46 / 34 on Styblinski-Tang-8
    /// (`benches/peers/README.md`, third round).
    pub fn centre_on_gls_mean(&mut self) -> f64 {
        let mut ones = vec![1.0; self.n];
        solve_lower(&self.chol, self.n, &mut ones);
        let mut white = self.y.clone();
        solve_lower(&self.chol, self.n, &mut white);
        let precision = dot(&ones, &ones);
        let m = dot(&ones, &white) / precision;
        if !m.is_finite() || precision <= 0.0 {
            return 0.0;
        }
        self.y.iter_mut().for_each(|v| *v -= m);
        self.solve_alpha();
        m
    }

    /// The number of conditioning points (fantasies included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Adds the observation `(x, y)` without refitting the hyperparameters
    /// (a fantasy for a pending trial: Kriging believer). `O(n²)`.
    pub fn add_observation(&mut self, x: &[f64], y: f64) {
        if x.len() != self.d {
            return;
        }
        let k_new: Vec<f64> = (0..self.n)
            .map(|i| self.kern.eval(x, &self.x[i * self.d..(i + 1) * self.d]))
            .collect();
        self.chol = extend_cholesky(
            &self.chol,
            self.n,
            &k_new,
            self.kern.signal + self.noise,
            self.noise.max(1e-9),
        );
        self.x.extend_from_slice(x);
        self.y.push(y);
        self.n += 1;
        self.solve_alpha();
    }

    /// Posterior means and variances of the latent `f` at the `m` points
    /// `xs` (`m x d`, row-major), all at once.
    pub fn predict_many(&self, xs: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (n, d) = (self.n, self.d);
        let m = xs.len() / d.max(1);
        // K* stored n x m so the triangular solve runs over contiguous rows.
        let mut ks = vec![0.0; n * m];
        let mut mean = vec![0.0; m];
        for i in 0..n {
            let xi = &self.x[i * d..i * d + d];
            let a = self.alpha[i];
            for (c, (row, mu)) in xs.chunks_exact(d.max(1)).zip(mean.iter_mut()).enumerate() {
                let v = self.kern.eval(row, xi);
                ks[i * m + c] = v;
                *mu += a * v;
            }
        }
        solve_lower_many(&self.chol, n, &mut ks, m);
        let mut var = vec![self.kern.signal; m];
        for i in 0..n {
            for (v, s) in var.iter_mut().zip(&ks[i * m..i * m + m]) {
                *v -= s * s;
            }
        }
        var.iter_mut().for_each(|v| *v = v.max(MIN_VARIANCE));
        (mean, var)
    }

    /// Mean, variance and their gradients with respect to `x` at one point.
    pub fn predict_with_gradient(&self, x: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let (n, d) = (self.n, self.d);
        let mut kstar = vec![0.0; n];
        let mut dk = vec![0.0; n * d];
        let mut mean = 0.0;
        let mut dmean = vec![0.0; d];
        for i in 0..n {
            let xi = &self.x[i * d..i * d + d];
            let (v, slope) = self.kern.value_and_slope(self.kern.r2(x, xi));
            kstar[i] = v;
            mean += self.alpha[i] * v;
            for (c, ((a, b), w)) in x
                .iter()
                .zip(xi)
                .zip(&self.kern.inv_sq_lengthscales)
                .enumerate()
            {
                let g = -slope * (a - b) * w;
                dk[i * d + c] = g;
                dmean[c] += self.alpha[i] * g;
            }
        }
        let mut v = kstar;
        solve_lower(&self.chol, n, &mut v);
        let raw_var = self.kern.signal - dot(&v, &v);
        let mut w = v;
        solve_lower_transposed(&self.chol, n, &mut w);
        let mut dvar = vec![0.0; d];
        if raw_var > MIN_VARIANCE {
            for (i, wi) in w.iter().enumerate() {
                for (dv, g) in dvar.iter_mut().zip(&dk[i * d..i * d + d]) {
                    *dv -= 2.0 * wi * g;
                }
            }
        }
        (mean, raw_var.max(MIN_VARIANCE), dmean, dvar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_point_posterior_matches_the_hand_computation() {
        // ℓ = 1, s² = 1, σₙ² = 0.01, x = {0, 1}, y = {1, −1}, predict at 0.5.
        let hyper = Hyper {
            log_lengthscales: vec![0.0],
            log_signal: 0.0,
            log_noise: 0.01f64.ln(),
        };
        let gp = Gp::condition(&[0.0, 1.0], &[1.0, -1.0], 1, &hyper).unwrap();
        let k = |r: f64| (1.0 + 5f64.sqrt() * r + 5.0 / 3.0 * r * r) * (-(5f64.sqrt()) * r).exp();
        let (k01, kh) = (k(1.0), k(0.5));
        let (a, b) = (1.0 + 0.01, k01);
        let det = a * a - b * b;
        // K⁻¹ = [[a, −b], [−b, a]] / det; k* = (kh, kh).
        let inv = [a / det, -b / det];
        let mean = kh * (inv[0] - inv[1]) + kh * (inv[1] - inv[0]);
        let var = 1.0 - 2.0 * kh * kh * (inv[0] + inv[1]);
        let (m, v) = gp.predict_many(&[0.5]);
        assert!((m[0] - mean).abs() < 1e-12, "{} {mean}", m[0]);
        assert!((v[0] - var).abs() < 1e-12, "{} {var}", v[0]);
        // At a data point with small noise: mean near y, variance near σₙ²-ish.
        let (m, v) = gp.predict_many(&[0.0]);
        let mean0 = (inv[0] - inv[1]) + k01 * (inv[1] - inv[0]);
        assert!((m[0] - mean0).abs() < 1e-12, "{} {mean0}", m[0]);
        assert!(v[0] < 0.02);
    }

    #[test]
    fn the_gradient_of_the_log_posterior_matches_finite_differences() {
        let d = 2;
        let x = [0.1, 0.2, 0.5, 0.9, 0.8, 0.3, 0.4, 0.4, 0.95, 0.05];
        let y = [0.3, -1.0, 0.8, 0.1, -0.2];
        let theta = [0.3f64.ln(), 0.8f64.ln(), 0.2, 0.05f64.ln()];
        let mut grad = [0.0; 4];
        let f0 = neg_log_posterior(&x, &y, d, &theta, &mut grad);
        assert!(f0.is_finite());
        let h = 1e-6;
        for i in 0..4 {
            let mut up = theta;
            up[i] += h;
            let mut down = theta;
            down[i] -= h;
            let mut scratch = [0.0; 4];
            let fd = (neg_log_posterior(&x, &y, d, &up, &mut scratch)
                - neg_log_posterior(&x, &y, d, &down, &mut scratch))
                / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-5 * fd.abs().max(1.0),
                "θ{i}: {fd} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn the_profiled_mean_makes_the_fit_blind_to_a_shift_of_the_values() {
        // With the constant mean profiled out, `y` and `y + 5` are equally
        // likely under every θ; with a zero mean the shifted values would
        // be far less likely (and push the signal variance up).
        let d = 2;
        let x = [0.1, 0.2, 0.5, 0.9, 0.8, 0.3, 0.4, 0.4, 0.95, 0.05];
        let y = [0.3, -1.0, 0.8, 0.1, -0.2];
        let shifted: Vec<f64> = y.iter().map(|v| v + 5.0).collect();
        let mut g = [0.0; 4];
        for theta in [
            [0.3f64.ln(), 0.8f64.ln(), 0.2, 0.05f64.ln()],
            [0.0, 0.0, 0.0, -6.0],
        ] {
            let a = neg_log_posterior(&x, &y, d, &theta, &mut g);
            let b = neg_log_posterior(&x, &shifted, d, &theta, &mut g);
            assert!((a - b).abs() < 1e-9, "{a} {b}");
        }
    }

    #[test]
    fn prediction_gradients_match_finite_differences() {
        let hyper = Hyper {
            log_lengthscales: vec![0.3f64.ln(), 0.6f64.ln()],
            log_signal: 0.1,
            log_noise: 1e-4f64.ln(),
        };
        let x = [0.1, 0.2, 0.5, 0.9, 0.8, 0.3];
        let gp = Gp::condition(&x, &[0.3, -1.0, 0.8], 2, &hyper).unwrap();
        let p = [0.4, 0.55];
        let (_, _, dm, dv) = gp.predict_with_gradient(&p);
        let h = 1e-6;
        for c in 0..2 {
            let mut up = p;
            up[c] += h;
            let mut down = p;
            down[c] -= h;
            let (mu, vu) = gp.predict_many(&up);
            let (md, vd) = gp.predict_many(&down);
            assert!(((mu[0] - md[0]) / (2.0 * h) - dm[c]).abs() < 1e-6);
            assert!(((vu[0] - vd[0]) / (2.0 * h) - dv[c]).abs() < 1e-6);
        }
    }

    #[test]
    fn the_gls_mean_counts_a_cluster_of_samples_about_once() {
        let hyper = Hyper {
            log_lengthscales: vec![0.1f64.ln()],
            log_signal: 0.0,
            log_noise: 1e-6f64.ln(),
        };
        // Five samples clustered at a good value, one far away at a bad one:
        // their average is −2/3, the GLS mean close to the middle.
        let x = [0.10, 0.11, 0.12, 0.13, 0.14, 0.9];
        let y = [-1.0, -1.0, -1.0, -1.0, -1.0, 1.0];
        let mut gp = Gp::condition(&x, &y, 1, &hyper).unwrap();
        let before = gp.predict_many(&x).0;
        let m = gp.centre_on_gls_mean();
        assert!(m > -0.2 && m < 0.2, "{m}");
        // The data are fitted as before, now relative to m ...
        let after = gp.predict_many(&x).0;
        for (b, a) in before.iter().zip(&after) {
            assert!((b - (a + m)).abs() < 1e-3, "{b} {a}");
        }
        // ... and far from the data the model reverts to m, not to −2/3.
        let (far, _) = gp.predict_many(&[0.5]);
        assert!(far[0].abs() < 0.02, "{}", far[0]);
        // A constant is its own mean.
        let mut flat = Gp::condition(&x, &[3.0; 6], 1, &hyper).unwrap();
        assert!((flat.centre_on_gls_mean() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_fantasy_equals_conditioning_on_it_from_scratch() {
        let hyper = Hyper {
            log_lengthscales: vec![0.3f64.ln()],
            log_signal: 0.0,
            log_noise: 1e-3f64.ln(),
        };
        let mut gp = Gp::condition(&[0.1, 0.7], &[1.0, 0.0], 1, &hyper).unwrap();
        gp.add_observation(&[0.4], 0.5);
        let fresh = Gp::condition(&[0.1, 0.7, 0.4], &[1.0, 0.0, 0.5], 1, &hyper).unwrap();
        let (a, b) = (
            gp.predict_many(&[0.25, 0.9]),
            fresh.predict_many(&[0.25, 0.9]),
        );
        for (x, y) in a.0.iter().chain(&a.1).zip(b.0.iter().chain(&b.1)) {
            assert!((x - y).abs() < 1e-10);
        }
        assert_eq!(gp.len(), 3);
    }

    #[test]
    fn non_finite_inputs_give_an_error_or_infinity_not_a_panic() {
        let hyper = Hyper {
            log_lengthscales: vec![0.0],
            log_signal: 0.0,
            log_noise: -6.0,
        };
        assert!(Gp::condition(&[f64::NAN, 0.5], &[1.0, 2.0], 1, &hyper).is_err());
        let nan_signal = Hyper {
            log_signal: f64::NAN,
            ..hyper
        };
        assert!(Gp::condition(&[0.1, 0.5], &[1.0, 2.0], 1, &nan_signal).is_err());
        let mut g = [0.0; 3];
        let f = neg_log_posterior(&[0.1, 0.5], &[1.0, 2.0], 1, &[f64::NAN, 0.0, -6.0], &mut g);
        assert_eq!(f, f64::INFINITY);
    }

    #[test]
    fn the_fit_recovers_a_short_lengthscale_for_a_wiggly_function() {
        let xs: Vec<f64> = (0..30).map(|i| f64::from(i) / 29.0).collect();
        let wiggly: Vec<f64> = xs.iter().map(|x| (12.0 * x).sin()).collect();
        let smooth: Vec<f64> = xs.iter().map(|x| x - 0.5).collect();
        let hw = fit_hyper(&xs, &wiggly, 1, LS_LOC).hyper;
        let hs = fit_hyper(&xs, &smooth, 1, LS_LOC).hyper;
        assert!(
            hw.log_lengthscales[0] < hs.log_lengthscales[0],
            "{hw:?} {hs:?}"
        );
        assert!(hw.log_lengthscales[0].exp() < 0.5, "{hw:?}");
    }
}
