//! `cmaes`: the covariance matrix adaptation evolution strategy (Hansen,
//! *The CMA Evolution Strategy: A Tutorial*, 2016), with Katib's settings
//! `random_state`, `sigma` and `restart_strategy` (`none` | `ipop` | `bipop`).
//!
//! # Search coordinates
//! CMA-ES works in the unit cube of [`crate::space::encode`]: one coordinate
//! per `double`, `int` or `discrete` parameter (log distributions are
//! searched on the log scale; quantised parameters are searched as their
//! bin coordinate and rounded by decoding, while the *unrounded* candidate
//! feeds the update, so step-size adaptation is not fooled by rounding).
//! The mean starts at the centre of the cube with `σ₀ = 1/8` of every
//! range (Optuna's sampler uses 1/6, Hansen's tutorial 0.3 for a box of
//! width 1; both explore longer and, measured on the peer benchmark at
//! 50–100 trials, end worse); Katib's `sigma` setting overrides `σ₀`, in
//! the same unit-cube scale (`sigma = 0.1` is a tenth of every range). The
//! population is `max(4, 2 + ⌊3 ln n⌋)`, two less than Hansen's default:
//! more generations in a tuning budget (see `strategy::default_population`
//! for the measurements). Candidates outside the box are
//! redrawn, then mirrored into it (`strategy.rs`). The standard normal
//! draws of a generation are made orthogonal in blocks of `n` (orthogonal
//! sampling, Wang, Emmerich & Bäck 2014), which lowers the regret at the
//! small budgets of tuning. `categorical` parameters are drawn outside
//! CMA-ES from a smoothed histogram of the best quarter of the finished
//! trials (`categorical.rs`; Optuna draws them uniformly); a space with
//! no other parameter is refused when the suggester is built.
//!
//! # A function of history
//! Every suggestion is labelled with its run ([`LABEL_RESTART`]), its
//! generation within the run ([`LABEL_GENERATION`]) and its member index
//! ([`LABEL_INDEX`]). Candidate `i` of a generation is drawn from a
//! generator keyed by `(seed, restart, generation, i)` (the generation's
//! draws are then made orthogonal together), so the optimizer is
//! rebuilt on every call by replaying the generations found in history:
//! draw the same candidates again, rank them by their trials' values and
//! apply the same update. A generation is told when all `λ` of its trials
//! are terminal; trials that failed, were killed, reported no metric or a
//! non-finite one rank last (worst value). Until then the call hands out the
//! generation's members not issued yet and returns fewer — possibly zero —
//! suggestions than asked, without error. Unlabelled trials (another
//! algorithm's, a user's) are ignored; if a trial's numeric values are not
//! what its labels say (the seed changed), the values it actually ran with
//! are used.
//!
//! The returned [`AlgorithmState`] (version [`STATE_VERSION`]) is only a
//! cache: the optimizer at the start of the current generation plus a
//! fingerprint of the configuration and of every trial it consumed. It is
//! used when the fingerprint still matches the history and ignored
//! otherwise, so dropping or corrupting it changes nothing but the time a
//! call takes.
//!
//! # Restarts
//! A run stops on the `cmaes` library's criteria (`tolfun` 1e-12 over the
//! last `10 + ⌈30n/λ⌉` generations, `tolx`, `tolxup`, no-effect axis or
//! coordinate, condition number of `C` above 1e14). With `none` the run
//! simply goes on (only a numerical breakdown restarts it); `ipop` restarts
//! from a uniformly random mean with twice the population (Auger & Hansen
//! 2005); `bipop` interlaces such large runs with small ones of random
//! population and step size whenever the small ones have used fewer
//! evaluations (Hansen 2009). Restart choices are keyed by the run index, so
//! replay restarts the same way.

mod categorical;
mod eigen;
mod restart;
mod strategy;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::error::AlgorithmError;
use crate::history::{Objective, TrialRecord, TrialState};
use crate::rng::{derive_rng, mix64};
use crate::settings::Settings;
use crate::space::{Assignment, Domain, SearchSpace};

use super::{AlgorithmState, SuggestRequest, Suggester, Suggestion, Suggestions, random_state};
use categorical::Elite;
pub use restart::RestartStrategy;
use restart::{Optimizer, RunConfig, Snapshot};

/// Label holding the run index (0 before the first restart).
pub const LABEL_RESTART: &str = "cmaes.ktune.dev/restart";
/// Label holding the generation within the run.
pub const LABEL_GENERATION: &str = "cmaes.ktune.dev/generation";
/// Label holding the member index within the generation (`0..λ`).
pub const LABEL_INDEX: &str = "cmaes.ktune.dev/index";
/// The version of the [`AlgorithmState`] this suggester writes and reads.
pub const STATE_VERSION: u32 = 1;
/// The initial step size in unit-cube scale when `sigma` is not set.
pub const DEFAULT_SIGMA: f64 = 1.0 / 8.0;

/// `(restart, generation, index)`.
type Key = (u32, u64, usize);

/// CMA-ES over the numeric parameters of a space.
#[derive(Debug, Clone, PartialEq)]
pub struct CmaesSuggester {
    seed: Option<u64>,
    sigma0: f64,
    restart: RestartStrategy,
}

/// Builds the suggester for `algorithm_name` (already looked up in the
/// settings catalog) from parsed settings.
///
/// # Errors
/// [`AlgorithmError::UnsupportedSpace`] when every parameter is categorical.
pub fn build(
    algorithm_name: &'static str,
    settings: &Settings,
    space: &SearchSpace,
) -> Result<Box<dyn Suggester>, AlgorithmError> {
    let _ = algorithm_name;
    Ok(Box::new(CmaesSuggester::from_settings(settings, space)?))
}

impl CmaesSuggester {
    /// CMA-ES with an optional fixed seed, `σ₀` in unit-cube scale (a
    /// non-finite or non-positive value means [`DEFAULT_SIGMA`]) and a restart
    /// strategy.
    #[must_use]
    pub fn new(seed: Option<u64>, sigma0: f64, restart: RestartStrategy) -> Self {
        let sigma0 = if sigma0.is_finite() && sigma0 > 0.0 {
            sigma0
        } else {
            DEFAULT_SIGMA
        };
        Self {
            seed,
            sigma0,
            restart,
        }
    }

    /// Reads `random_state`, `sigma` and `restart_strategy` and checks that
    /// the space has a parameter CMA-ES can search.
    ///
    /// # Errors
    /// [`AlgorithmError::UnsupportedSpace`] when every parameter is categorical.
    pub fn from_settings(settings: &Settings, space: &SearchSpace) -> Result<Self, AlgorithmError> {
        numeric_params(space)?;
        let restart = match settings.text("restart_strategy") {
            Some("ipop") => RestartStrategy::Ipop,
            Some("bipop") => RestartStrategy::Bipop,
            _ => RestartStrategy::None,
        };
        Ok(Self::new(
            random_state(settings),
            settings.float("sigma").unwrap_or(DEFAULT_SIGMA),
            restart,
        ))
    }

    fn suggestion(
        &self,
        req: &SuggestRequest<'_>,
        seed: u64,
        opt: &Optimizer,
        elite: &Elite<'_>,
        (index, x): (usize, &[f64]),
    ) -> Suggestion {
        let mut rng = derive_rng(seed, opt.member_key(index), "cmaes-categorical");
        let mut coords = x.iter();
        let assignment: Assignment = req
            .space
            .params()
            .iter()
            .map(|p| {
                let value = match p.domain() {
                    Domain::Categorical { .. } => elite.draw(p, &mut rng),
                    _ => p.decode(coords.next().copied().unwrap_or(0.5)),
                };
                (p.name(), value)
            })
            .collect();
        let labels = BTreeMap::from([
            (LABEL_RESTART.to_owned(), opt.restart.to_string()),
            (LABEL_GENERATION.to_owned(), opt.generation().to_string()),
            (LABEL_INDEX.to_owned(), index.to_string()),
        ]);
        Suggestion { assignment, labels }
    }
}

/// The indices of the parameters CMA-ES searches (all but categorical).
fn numeric_params(space: &SearchSpace) -> Result<Vec<usize>, AlgorithmError> {
    let numeric: Vec<usize> = space
        .params()
        .iter()
        .enumerate()
        .filter(|(_, p)| !matches!(p.domain(), Domain::Categorical { .. }))
        .map(|(i, _)| i)
        .collect();
    if numeric.is_empty() {
        return Err(AlgorithmError::UnsupportedSpace {
            algorithm: "cmaes",
            reason: "every parameter is categorical; CMA-ES needs at least one double, int or discrete parameter",
        });
    }
    Ok(numeric)
}

fn label<T: std::str::FromStr>(t: &TrialRecord, key: &str) -> Option<T> {
    t.labels.get(key)?.parse().ok()
}

/// Our trials by `(restart, generation, index)`; the first trial per key wins.
fn index_history(history: &[TrialRecord]) -> BTreeMap<Key, &TrialRecord> {
    let mut issued = BTreeMap::new();
    for t in history {
        if let (Some(r), Some(g), Some(i)) = (
            label::<u32>(t, LABEL_RESTART),
            label::<u64>(t, LABEL_GENERATION),
            label::<usize>(t, LABEL_INDEX),
        ) {
            issued.entry((r, g, i)).or_insert(t);
        }
    }
    issued
}

/// The value CMA-ES minimises: the objective made "smaller is better";
/// anything but a finished trial with a finite value is `+∞` (ranks last).
fn fitness(objective: &Objective, t: &TrialRecord) -> f64 {
    match t.state {
        TrialState::Succeeded | TrialState::EarlyStopped => -objective.score(t.objective),
        _ => f64::INFINITY,
    }
}

/// A hash of the configuration and of every trial before `(restart,
/// generation)`: equal fingerprints mean replay would rebuild the same optimizer.
fn fingerprint(
    cfg: &RunConfig,
    objective: &Objective,
    issued: &BTreeMap<Key, &TrialRecord>,
    upto: (u32, u64),
) -> u64 {
    let mut h = mix64(cfg.seed);
    let mut eat = |v: u64| h = mix64(h ^ v);
    eat(cfg.sigma0.to_bits());
    eat(cfg.n as u64);
    eat(cfg.strategy as u64);
    for ((r, g, i), t) in issued.range(..(upto.0, upto.1, 0)) {
        eat(u64::from(*r));
        eat(*g);
        eat(*i as u64);
        eat(fitness(objective, t).to_bits());
        for (name, value) in t.assignment.iter() {
            eat(name.len() as u64);
            eat(match value {
                crate::space::ParamValue::Int(v) => v.cast_unsigned(),
                crate::space::ParamValue::Float(v) => v.to_bits(),
                crate::space::ParamValue::Text(s) => s
                    .bytes()
                    .fold(0xCBF2_9CE4_8422_2325, |a, b| mix64(a ^ u64::from(b))),
            });
        }
    }
    h
}

/// The cached optimizer, if the state is ours, intact and still matches history.
fn cached(
    state: Option<&AlgorithmState>,
    cfg: &RunConfig,
    objective: &Objective,
    issued: &BTreeMap<Key, &TrialRecord>,
) -> Option<Optimizer> {
    let state = state.filter(|s| s.version == STATE_VERSION)?;
    let snap: Snapshot = serde_json::from_value(state.data.clone()).ok()?;
    let opt = Optimizer::from_snapshot(&snap, cfg.n)?;
    let expected = fingerprint(cfg, objective, issued, (opt.restart, opt.generation()));
    (snap.fingerprint == restart::hex(expected)).then_some(opt)
}

impl Suggester for CmaesSuggester {
    fn name(&self) -> &'static str {
        "cmaes"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        let numeric = numeric_params(req.space)?;
        let seed = self.seed.unwrap_or(req.seed);
        let cfg = RunConfig {
            seed,
            sigma0: self.sigma0,
            strategy: self.restart,
            n: numeric.len(),
        };
        let issued = index_history(req.history);
        let mut opt = cached(req.state, &cfg, req.objective, &issued)
            .unwrap_or_else(|| Optimizer::initial(&cfg));
        // Each pass consumes one generation whose λ trials all exist in
        // history, so the loop ends after at most |history| / 2 passes.
        let missing = loop {
            let (r, g) = (opt.restart, opt.generation());
            let mut members = Vec::with_capacity(opt.lambda());
            let mut missing = Vec::new();
            for i in 0..opt.lambda() {
                match issued.get(&(r, g, i)) {
                    Some(t) => members.push((i, *t)),
                    None => missing.push(i),
                }
            }
            if !missing.is_empty() || members.iter().any(|(_, t)| !t.state.is_terminal()) {
                break missing;
            }
            let ranked = rank(req, &numeric, &opt, seed, &members);
            opt.advance(&cfg, &ranked);
        };
        let upto = (opt.restart, opt.generation());
        let elite = if missing.is_empty() || req.count == 0 {
            Elite::default()
        } else {
            Elite::new(
                req.objective,
                issued
                    .range(..(upto.0, upto.1, 0))
                    .map(|(_, t)| *t)
                    .filter(|t| t.state.is_terminal()),
            )
        };
        let xs = if missing.is_empty() || req.count == 0 {
            Vec::new()
        } else {
            opt.samples(seed)
        };
        let suggestions = missing
            .into_iter()
            .take(req.count)
            .filter_map(|i| Some(self.suggestion(req, seed, &opt, &elite, (i, xs.get(i)?))))
            .collect();
        let snapshot = opt.snapshot(fingerprint(&cfg, req.objective, &issued, upto));
        let state = serde_json::to_value(snapshot)
            .ok()
            .map(|data| AlgorithmState {
                version: STATE_VERSION,
                data,
            });
        Ok(Suggestions {
            suggestions,
            state,
            exhausted: false,
        })
    }
}

/// The generation's candidates with their values, best first (ties by index).
fn rank(
    req: &SuggestRequest<'_>,
    numeric: &[usize],
    opt: &Optimizer,
    seed: u64,
    members: &[(usize, &TrialRecord)],
) -> Vec<(Vec<f64>, f64)> {
    let params = req.space.params();
    let xs = opt.samples(seed);
    let mut ranked: Vec<(Vec<f64>, f64)> = members
        .iter()
        .map(|&(i, t)| {
            let drawn = xs.get(i).cloned().unwrap_or_default();
            let matches = drawn.len() == numeric.len()
                && numeric.iter().zip(&drawn).all(|(&j, &u)| {
                    params
                        .get(j)
                        .is_some_and(|p| t.assignment.get(p.name()) == Some(&p.decode(u)))
                });
            let x = if matches {
                drawn
            } else {
                // Not the candidate its labels promise: use what it ran with.
                numeric
                    .iter()
                    .zip(&drawn)
                    .map(|(&j, &u)| {
                        params
                            .get(j)
                            .and_then(|p| p.encode(t.assignment.get(p.name())?))
                            .unwrap_or(u)
                    })
                    .collect()
            };
            (x, fitness(req.objective, t))
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    ranked
}
