//! `enas`: Katib's Efficient Neural Architecture Search service
//! (`pkg/suggestion/v1beta1/nas/enas`), in pure Rust.
//!
//! The space is a [`NasGraph`] ([`SearchSpace::nas`]): its operations are
//! expanded into op ids ([`ops`]), and an LSTM controller ([`controller`])
//! samples, per layer, an op id and skip connections to earlier layers.
//! Each trial gets Katib's two parameters, `architecture` and `nn_config`
//! ([`format`]).
//!
//! Katib's service keeps its controller in a process-local checkpoint. Here
//! a suggestion is a pure function of (settings, space, history, seed): the
//! weights start from the seed, then the controller is trained
//! ([`train`]) round by round on the finished trials, in creation order.
//! A round is the trials of one call (the label [`LABEL_ROUND`]; trials
//! without it are grouped while consecutive); training stops at the first
//! round with a trial still pending or running, so a later finished round
//! waits for it and the fold never depends on when a call happened. The
//! trained controller is returned as [`AlgorithmState`](super::AlgorithmState) and reused when the
//! next history extends the same prefix ([`state`]); without it the fold is
//! replayed, with the same result bit for bit.
//!
//! Reward: the trial's objective, negated for `minimize` (Katib); trials
//! without a finite objective, or whose `architecture` does not fit the
//! graph, teach nothing.

pub mod controller;
pub mod format;
pub mod lstm;
pub mod ops;
pub mod params;
pub mod state;
pub mod train;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;

use controller::{Decide, Shape};
use format::{ARCHITECTURE, Architecture, NN_CONFIG};
use ops::Op;
use params::{Layout, Params};
use train::{TrainSettings, Trainer};

use super::{SuggestRequest, Suggester, Suggestion, Suggestions};
use crate::error::AlgorithmError;
use crate::history::{Direction, TrialRecord};
use crate::rng::derive_rng;
use crate::settings::{SettingValue, Settings};
use crate::space::nas::NasGraph;
use crate::space::{Assignment, ParamValue, SearchSpace};

/// The label naming the suggestion round a trial came from (the history
/// length at that call).
pub const LABEL_ROUND: &str = "enas.ktune.dev/round";

/// The ENAS suggester for one graph and its settings.
#[derive(Debug, Clone)]
pub struct EnasSuggester {
    graph: NasGraph,
    ops: Vec<Op>,
    layout: Layout,
    shape: Shape,
    train: TrainSettings,
}

/// A float setting that Katib lets be `None`: absent → `default`.
fn float_or_none(settings: &Settings, name: &str, default: f64) -> Option<f64> {
    match settings.get(name) {
        Some(SettingValue::None) => None,
        Some(_) => settings.float(name),
        None => Some(default),
    }
}

/// Builds the ENAS suggester.
///
/// # Errors
/// [`AlgorithmError::UnsupportedSpace`] when `space` is not a NAS space.
pub fn build(
    settings: &Settings,
    space: &SearchSpace,
) -> Result<Box<dyn Suggester>, AlgorithmError> {
    let graph = space
        .nas_graph()
        .ok_or(AlgorithmError::UnsupportedSpace {
            algorithm: "enas",
            reason: "enas searches a nasConfig (graphConfig and operations), not spec.parameters",
        })?
        .clone();
    let ops = ops::expand(&graph);
    let hidden = settings
        .int("controller_hidden_size")
        .and_then(|h| usize::try_from(h).ok())
        .unwrap_or(64);
    let steps = settings
        .int("controller_train_steps")
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(50);
    Ok(Box::new(EnasSuggester {
        layout: Layout {
            h: hidden.max(1),
            n: ops.len().max(1),
        },
        shape: Shape {
            layers: graph.num_layers(),
            temperature: float_or_none(settings, "controller_temperature", 5.0),
            tanh_const: float_or_none(settings, "controller_tanh_const", 2.25),
            skip_target: settings.float("controller_skip_target").unwrap_or(0.4),
        },
        train: TrainSettings {
            entropy_weight: float_or_none(settings, "controller_entropy_weight", 1e-5)
                .unwrap_or(0.0),
            baseline_decay: settings.float("controller_baseline_decay").unwrap_or(0.999),
            learning_rate: settings.float("controller_learning_rate").unwrap_or(5e-5),
            skip_weight: float_or_none(settings, "controller_skip_weight", 0.8).unwrap_or(0.0),
            train_steps: steps,
        },
        graph,
        ops,
    }))
}

/// FNV-1a over a trial's identity and result, chained.
fn fingerprint(mut h: u64, trial: &TrialRecord) -> u64 {
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3);
        }
    };
    eat(trial.name.as_bytes());
    eat(trial.state.as_str().as_bytes());
    eat(&trial.objective.unwrap_or(f64::NAN).to_bits().to_le_bytes());
    eat(trial
        .labels
        .get(LABEL_ROUND)
        .map_or(&b"-"[..], |l| l.as_bytes()));
    if let Some(ParamValue::Text(a)) = trial.assignment.get(ARCHITECTURE) {
        eat(a.as_bytes());
    }
    h
}

const FINGERPRINT_START: u64 = 0xCBF2_9CE4_8422_2325;

impl EnasSuggester {
    /// The finished rounds in creation order, up to the first unfinished
    /// one: each as its end index in the history.
    fn finished_rounds(history: &[TrialRecord]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut start = 0;
        while start < history.len() {
            let key = history[start].labels.get(LABEL_ROUND);
            let end = history[start..]
                .iter()
                .position(|t| t.labels.get(LABEL_ROUND) != key)
                .map_or(history.len(), |k| start + k);
            if !history[start..end].iter().all(|t| t.state.is_terminal()) {
                break;
            }
            ends.push(end);
            start = end;
        }
        ends
    }

    /// A round's (architecture, reward) pairs.
    fn round_pairs(
        &self,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Vec<(Architecture, f64)> {
        trials
            .iter()
            .filter_map(|t| {
                let objective = t.finite_objective()?;
                let Some(ParamValue::Text(text)) = t.assignment.get(ARCHITECTURE) else {
                    return None;
                };
                let arch = Architecture::from_katib(text, self.shape.layers, self.ops.len())?;
                let reward = match direction {
                    Direction::Maximize => objective,
                    Direction::Minimize => -objective,
                };
                Some((arch, reward))
            })
            .collect()
    }

    /// The controller trained on every finished round of `req.history`,
    /// from the cached state where it covers a prefix.
    fn trained(&self, req: &SuggestRequest<'_>) -> state::Cached {
        let ends = Self::finished_rounds(req.history);
        let cached = req
            .state
            .and_then(|s| state::load(s, self.layout))
            .filter(|c| {
                (c.consumed == 0 || ends.contains(&c.consumed))
                    && req.history[..c.consumed]
                        .iter()
                        .fold(FINGERPRINT_START, fingerprint)
                        == c.fingerprint
            });
        let mut cached = cached.unwrap_or_else(|| state::Cached {
            consumed: 0,
            fingerprint: FINGERPRINT_START,
            trainer: Trainer::new(Params::init(
                self.layout,
                &mut derive_rng(req.seed, 0, "enas-init"),
            )),
        });
        for end in ends {
            if end <= cached.consumed {
                continue;
            }
            let trials = &req.history[cached.consumed..end];
            let pairs = self.round_pairs(trials, req.objective.direction);
            cached.trainer.train_round(&self.shape, &self.train, &pairs);
            cached.fingerprint = trials.iter().fold(cached.fingerprint, fingerprint);
            cached.consumed = end;
        }
        cached
    }
}

impl Suggester for EnasSuggester {
    fn name(&self) -> &'static str {
        "enas"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        if req.space.nas_graph() != Some(&self.graph) {
            return Err(AlgorithmError::UnsupportedSpace {
                algorithm: "enas",
                reason: "the space is not the NAS graph this suggester was built for",
            });
        }
        let cached = self.trained(req);
        let mut rng = derive_rng(req.seed, req.history.len() as u64, "enas");
        let round = req.history.len().to_string();
        let suggestions = (0..req.count)
            .map(|_| {
                let arch = controller::run(
                    &cached.trainer.params,
                    &self.shape,
                    Decide::Sample(&mut rng),
                )
                .arch;
                let mut assignment = Assignment::new();
                assignment.set(ARCHITECTURE, ParamValue::Text(arch.to_katib()));
                assignment.set(
                    NN_CONFIG,
                    ParamValue::Text(format::nn_config(&self.graph, &self.ops, &arch)),
                );
                Suggestion {
                    assignment,
                    labels: BTreeMap::from([(LABEL_ROUND.to_owned(), round.clone())]),
                }
            })
            .collect();
        Ok(Suggestions {
            suggestions,
            state: Some(state::save(&cached)),
            exhausted: false,
        })
    }
}
