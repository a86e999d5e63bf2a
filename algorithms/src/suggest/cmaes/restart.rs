//! Runs and restarts: the whole optimizer as a sequence of CMA-ES runs, and
//! its serialised snapshot.
//!
//! Katib's `restart_strategy` (goptuna's names):
//! * `none`: one run forever. A run whose numbers break down (non-finite
//!   mean or step size, a covariance that no longer decomposes) is restarted
//!   anyway with the same population, since continuing would only sample
//!   garbage.
//! * `ipop` (Auger & Hansen 2005): when a run stops (see
//!   `Strategy::should_stop`) the next starts from a uniformly random mean
//!   with the initial step size and twice the population.
//! * `bipop` (Hansen 2009, "Benchmarking a BI-Population CMA-ES on the
//!   BBOB-2009 function testbed"): the first run uses the default
//!   population; afterwards, while the evaluations spent in small-population
//!   runs are fewer than in large ones, the next run is small, with
//!   `λ_s = ⌊λ_def (λ_l / (2 λ_def))^{U²}⌋` and `σ_s = σ₀ · 10^{−2U'}`
//!   (`λ_l` the last large population, `U`, `U'` uniform), else large, with
//!   the population doubled again.
//!
//! Every random choice here (restart means, bipop's `U`) comes from a
//! generator keyed by the run index, so replaying history always restarts
//! the same way.

use serde::{Deserialize, Serialize};

use super::strategy::{Core, Strategy, default_population};
use crate::rng::{derive_rng, mix64};
use crate::space::sample::unit_f64;

/// Katib's `restart_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartStrategy {
    /// No restarts (`none`, the default).
    None,
    /// Increasing population (`ipop`).
    Ipop,
    /// Interlaced large and small populations (`bipop`).
    Bipop,
}

/// The largest population a restart may reach (ipop doubles it each time).
pub(crate) const MAX_POPULATION: usize = 1 << 14;

/// What the optimizer needs besides history: fixed per experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RunConfig {
    pub seed: u64,
    pub sigma0: f64,
    pub strategy: RestartStrategy,
    /// The number of CMA-ES coordinates (numeric parameters).
    pub n: usize,
}

/// Whether the current run is one of bipop's large or small ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Regime {
    Large,
    Small,
}

/// The whole optimizer: the current run plus the restart bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Optimizer {
    /// The run index (0 for the first run), the `restart` label.
    pub restart: u32,
    pub regime: Regime,
    /// How many large restarts happened (the population is `λ_def · 2^k`).
    pub large_restarts: u32,
    pub evals_large: u64,
    pub evals_small: u64,
    pub strategy: Strategy,
}

impl Optimizer {
    /// The first run: mean at the centre of the cube, `σ₀`, default population.
    pub(crate) fn initial(cfg: &RunConfig) -> Self {
        Self {
            restart: 0,
            regime: Regime::Large,
            large_restarts: 0,
            evals_large: 0,
            evals_small: 0,
            strategy: Strategy::new(vec![0.5; cfg.n], cfg.sigma0, default_population(cfg.n)),
        }
    }

    /// The current population size.
    pub(crate) fn lambda(&self) -> usize {
        self.strategy.params.lambda
    }

    /// The current generation within the run, the `generation` label.
    pub(crate) fn generation(&self) -> u64 {
        self.strategy.core.generation
    }

    /// The current generation's candidates, member `i` drawn from a
    /// generator keyed by `(seed, restart, generation, i)`.
    pub(crate) fn samples(&self, seed: u64) -> Vec<Vec<f64>> {
        let mut rngs: Vec<_> = (0..self.lambda())
            .map(|i| derive_rng(seed, self.member_key(i), "cmaes"))
            .collect();
        self.strategy.sample_generation(&mut rngs)
    }

    /// The key of member `index` of the current generation.
    pub(crate) fn member_key(&self, index: usize) -> u64 {
        mix64(mix64(u64::from(self.restart)) ^ self.generation()) ^ index as u64
    }

    /// Tells the generation (`ranked` best first) and restarts if the run is over.
    pub(crate) fn advance(&mut self, cfg: &RunConfig, ranked: &[(Vec<f64>, f64)]) {
        self.strategy.tell(ranked);
        let broken = !self.strategy.is_healthy();
        let stop = broken || self.strategy.should_stop();
        match cfg.strategy {
            RestartStrategy::None if broken => self.restart_with(cfg, self.lambda(), cfg.sigma0),
            RestartStrategy::None => {}
            _ if !stop => {}
            RestartStrategy::Ipop => {
                self.large_restarts += 1;
                let lambda = self.large_lambda(cfg);
                self.restart_with(cfg, lambda, cfg.sigma0);
            }
            RestartStrategy::Bipop => self.bipop_restart(cfg),
        }
    }

    fn large_lambda(&self, cfg: &RunConfig) -> usize {
        let base = default_population(cfg.n);
        let factor = 1usize
            .checked_shl(self.large_restarts)
            .unwrap_or(usize::MAX);
        base.saturating_mul(factor).min(MAX_POPULATION)
    }

    fn bipop_restart(&mut self, cfg: &RunConfig) {
        let spent = (self.lambda() as u64).saturating_mul(self.generation());
        match self.regime {
            Regime::Large => self.evals_large = self.evals_large.saturating_add(spent),
            Regime::Small => self.evals_small = self.evals_small.saturating_add(spent),
        }
        if self.evals_small < self.evals_large {
            let mut rng = derive_rng(cfg.seed, u64::from(self.restart), "cmaes-bipop");
            let (u, u2) = (unit_f64(&mut rng), unit_f64(&mut rng));
            let (def, large) = (
                default_population(cfg.n) as f64,
                self.large_lambda(cfg) as f64,
            );
            let lambda = (def * (large / (2.0 * def)).powf(u * u)).floor();
            let lambda = (lambda.max(2.0) as usize).min(MAX_POPULATION);
            self.regime = Regime::Small;
            self.restart_with(cfg, lambda, cfg.sigma0 * 10f64.powf(-2.0 * u2));
        } else {
            self.regime = Regime::Large;
            self.large_restarts += 1;
            let lambda = self.large_lambda(cfg);
            self.restart_with(cfg, lambda, cfg.sigma0);
        }
    }

    /// A new run from a uniformly random mean.
    fn restart_with(&mut self, cfg: &RunConfig, lambda: usize, sigma: f64) {
        self.restart = self.restart.saturating_add(1);
        let mut rng = derive_rng(cfg.seed, u64::from(self.restart), "cmaes-restart");
        let mean = (0..cfg.n).map(|_| unit_f64(&mut rng)).collect();
        self.strategy = Strategy::new(mean, sigma, lambda);
    }

    /// The optimizer as a snapshot; floats as exact hex bit patterns.
    pub(crate) fn snapshot(&self, fingerprint: u64) -> Snapshot {
        let s = &self.strategy;
        Snapshot {
            fingerprint: hex(fingerprint),
            restart: self.restart,
            generation: s.core.generation,
            population: s.params.lambda as u64,
            sigma: s.core.sigma,
            regime: self.regime,
            large_restarts: self.large_restarts,
            evals_large: self.evals_large,
            evals_small: self.evals_small,
            exact: ExactState {
                mean: s.core.mean.iter().map(|v| hex(v.to_bits())).collect(),
                sigma: hex(s.core.sigma.to_bits()),
                cov: s.core.cov.iter().map(|v| hex(v.to_bits())).collect(),
                p_sigma: s.core.p_sigma.iter().map(|v| hex(v.to_bits())).collect(),
                p_c: s.core.p_c.iter().map(|v| hex(v.to_bits())).collect(),
                tolx: hex(s.core.tolx.to_bits()),
                fun_hist: s
                    .core
                    .fun_hist
                    .iter()
                    .map(|(a, b)| [hex(a.to_bits()), hex(b.to_bits())])
                    .collect(),
            },
        }
    }

    /// The optimizer stored in `snap`, if it is intact and has `n` coordinates.
    pub(crate) fn from_snapshot(snap: &Snapshot, n: usize) -> Option<Self> {
        let e = &snap.exact;
        let floats = |v: &[String]| v.iter().map(|h| unhex_f64(h)).collect::<Option<Vec<_>>>();
        let fun_hist = e
            .fun_hist
            .iter()
            .map(|[a, b]| Some((unhex_f64(a)?, unhex_f64(b)?)))
            .collect::<Option<Vec<_>>>()?;
        let lambda = usize::try_from(snap.population).ok()?;
        if !(2..=MAX_POPULATION).contains(&lambda) {
            return None;
        }
        let core = Core {
            mean: floats(&e.mean)?,
            sigma: unhex_f64(&e.sigma)?,
            cov: floats(&e.cov)?,
            p_sigma: floats(&e.p_sigma)?,
            p_c: floats(&e.p_c)?,
            generation: snap.generation,
            tolx: unhex_f64(&e.tolx)?,
            fun_hist,
        };
        if core.mean.len() != n {
            return None;
        }
        let strategy = Strategy::from_core(lambda, core);
        strategy.is_healthy().then_some(Self {
            restart: snap.restart,
            regime: snap.regime,
            large_restarts: snap.large_restarts,
            evals_large: snap.evals_large,
            evals_small: snap.evals_small,
            strategy,
        })
    }
}

/// The serialised optimizer at the start of its current generation.
///
/// The readable fields say where the search is; `exact` holds every float
/// as its IEEE-754 bit pattern in hex, because a cache that is not bit-exact
/// would make a resumed run diverge from an uninterrupted one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// Hash of the configuration and of every trial the snapshot consumed.
    pub fingerprint: String,
    pub restart: u32,
    pub generation: u64,
    pub population: u64,
    /// The step size, for reading only (the exact value is in `exact`).
    pub sigma: f64,
    pub regime: Regime,
    pub large_restarts: u32,
    pub evals_large: u64,
    pub evals_small: u64,
    pub exact: ExactState,
}

/// The distribution's numbers, bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExactState {
    pub mean: Vec<String>,
    pub sigma: String,
    pub cov: Vec<String>,
    pub p_sigma: Vec<String>,
    pub p_c: Vec<String>,
    pub tolx: String,
    pub fun_hist: Vec<[String; 2]>,
}

pub(crate) fn hex(bits: u64) -> String {
    format!("{bits:016x}")
}

fn unhex_f64(text: &str) -> Option<f64> {
    u64::from_str_radix(text, 16).ok().map(f64::from_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(strategy: RestartStrategy) -> RunConfig {
        RunConfig {
            seed: 3,
            sigma0: 0.3,
            strategy,
            n: 4,
        }
    }

    #[test]
    fn snapshots_round_trip_bit_for_bit_through_json() {
        let c = cfg(RestartStrategy::Ipop);
        let mut opt = Optimizer::initial(&c);
        for _ in 0..3 {
            let ranked: Vec<(Vec<f64>, f64)> = opt
                .samples(c.seed)
                .into_iter()
                .map(|x| {
                    let f = x.iter().map(|v| (v - 0.2).powi(2)).sum::<f64>();
                    (x, f)
                })
                .collect();
            let mut ranked = ranked;
            ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
            opt.advance(&c, &ranked);
        }
        let json = serde_json::to_value(opt.snapshot(7)).unwrap();
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(Optimizer::from_snapshot(&back, 4), Some(opt.clone()));
        assert_eq!(Optimizer::from_snapshot(&back, 5), None);
    }

    #[test]
    fn ipop_doubles_and_bipop_interlaces_small_runs() {
        let c = cfg(RestartStrategy::Ipop);
        let mut opt = Optimizer::initial(&c);
        let base = opt.lambda();
        opt.strategy.core.sigma = f64::NAN;
        opt.advance(&c, &[]);
        assert_eq!((opt.restart, opt.lambda()), (1, 2 * base));

        let c = cfg(RestartStrategy::Bipop);
        let mut opt = Optimizer::initial(&c);
        opt.strategy.core.generation = 5;
        opt.strategy.core.sigma = f64::NAN;
        opt.advance(&c, &[]);
        // Large budget spent, small none: a small run, population <= default.
        assert_eq!(opt.regime, Regime::Small);
        assert!(opt.lambda() <= base && opt.strategy.core.sigma <= 0.3);
        let mut opt2 = opt.clone();
        opt2.strategy.core.generation = 1000;
        opt2.strategy.core.sigma = f64::NAN;
        opt2.advance(&c, &[]);
        assert_eq!((opt2.regime, opt2.lambda()), (Regime::Large, 2 * base));

        let c = cfg(RestartStrategy::None);
        let mut opt = Optimizer::initial(&c);
        opt.strategy.core.sigma = f64::INFINITY;
        opt.advance(&c, &[]);
        assert_eq!((opt.restart, opt.lambda()), (1, base));
    }
}
