//! `pbt`: population based training, as Katib's PBT service runs it, as a
//! pure function of the history.
//!
//! A population of `n_population` members trains in generations. Each
//! member of generation `g + 1` descends from one finished member of
//! generation `g`, whose checkpoint folder it starts from (the caller
//! copies it; see [`LABEL_PARENT`]):
//!
//! - **exploit**: a member whose objective lies below the
//!   `truncation_threshold` quantile of its generation is replaced by a
//!   copy of a member drawn from the top quantile (at or above the
//!   `1 - truncation_threshold` quantile) — its hyperparameters *and* its
//!   checkpoint. (Katib's service copies the top member's hyperparameters
//!   but the *bottom* member's checkpoint folder; ktune copies the weights
//!   that earned the good score, as the PBT paper does.)
//! - **explore**: every other member continues from its own checkpoint
//!   with perturbed hyperparameters: each number multiplied by 0.8 or 1.2
//!   and clamped to its range (snapped to its step), each list value moved
//!   to a neighbouring item — or, with `resample_probability` set, each
//!   parameter resampled from the space with that probability and kept
//!   otherwise.
//!
//! Generation 0 is `n_population` random draws. A member whose trial
//! failed or was killed is tried again with the same hyperparameters and
//! parent (Katib re-queues them too); one that finished without a usable
//! objective counts as the worst of its generation (so it is exploited,
//! not retried forever).
//!
//! No hidden state: every suggestion carries its generation
//! ([`LABEL_GENERATION`], Katib's label), its parent ([`LABEL_PARENT`],
//! Katib's label) and its place in the population ([`LABEL_MEMBER`]), and
//! the population is rebuilt from the labels in the history; the draws of
//! generation `g` come from a generator keyed by `(seed, g)`, so a restart
//! continues the same generations. Generations are synchronous: the next
//! starts when every member of the current one has finished (Katib starts
//! it once more than `n_population` trials finished, sampling the rest from
//! the previous generation — a rule that depends on completion order,
//! which a history does not fix).

use std::collections::BTreeMap;

use rand::RngExt;

use crate::error::AlgorithmError;
use crate::history::{TrialRecord, TrialState};
use crate::rng::{AlgoRng, derive_rng};
use crate::settings::Settings;
use crate::space::{Assignment, Domain, ParamValue, ParameterSpec, SearchSpace};

use super::{SuggestRequest, Suggester, Suggestion, Suggestions, random_state};

/// Katib's label holding a member's generation (0, 1, …).
pub const LABEL_GENERATION: &str = "pbt.suggestion.katib.kubeflow.org/generation";
/// Katib's label holding the name of the trial whose checkpoint a member
/// starts from (absent in generation 0).
pub const LABEL_PARENT: &str = "pbt.suggestion.katib.kubeflow.org/parent";
/// ktune's label holding a member's place in the population (0 to
/// `n_population - 1`); a retried member keeps it.
pub const LABEL_MEMBER: &str = "pbt.ktune.dev/member";
/// The setting naming the folder a trial reads and writes its checkpoint in.
pub const CHECKPOINT_SETTING: &str = "suggestion_trial_dir";

/// The factors an explored number is multiplied by (Katib's).
const PERTURB_FACTORS: [f64; 2] = [0.8, 1.2];

/// PBT's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PbtConfig {
    /// Members per generation (≥ 5, as Katib requires).
    pub population: usize,
    /// The quantile below which members are exploited (in `[0, 1]`).
    pub truncation_threshold: f64,
    /// Resample each parameter with this probability instead of perturbing.
    pub resample_probability: Option<f64>,
    /// `random_state`, overriding the experiment's seed.
    pub seed: Option<u64>,
}

impl PbtConfig {
    /// Reads Katib's settings (already checked by the catalog: present and
    /// in range).
    ///
    /// # Errors
    /// [`AlgorithmError::MissingSetting`] when `n_population` or
    /// `truncation_threshold` is missing.
    pub fn from_settings(settings: &Settings) -> Result<Self, AlgorithmError> {
        let missing = |setting| AlgorithmError::MissingSetting {
            algorithm: "pbt",
            setting,
        };
        let population = settings
            .int("n_population")
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| missing("n_population"))?;
        let truncation_threshold = settings
            .float("truncation_threshold")
            .ok_or_else(|| missing("truncation_threshold"))?;
        Ok(Self {
            population,
            truncation_threshold,
            resample_probability: settings.float("resample_probability"),
            seed: random_state(settings),
        })
    }
}

/// Population based training.
#[derive(Debug, Clone, PartialEq)]
pub struct PbtSuggester {
    config: PbtConfig,
}

impl PbtSuggester {
    /// PBT with `config`.
    #[must_use]
    pub fn new(config: PbtConfig) -> Self {
        Self { config }
    }
}

/// One place in a generation: what its trial runs with.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    assignment: Assignment,
    parent: Option<String>,
}

/// Where one place of the current generation stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place<'a> {
    /// No attempt yet, or every attempt failed or was killed.
    Open,
    /// An attempt is pending or running.
    Busy,
    /// An attempt finished: its trial, and its score (larger is better;
    /// `-inf` without a usable objective).
    Done(&'a TrialRecord, f64),
}

impl<'a> Place<'a> {
    /// The finished attempt and its score, if the place is done.
    fn done(&self) -> Option<(&'a TrialRecord, f64)> {
        match self {
            Place::Done(t, score) => Some((*t, *score)),
            Place::Open | Place::Busy => None,
        }
    }
}

fn label<T: std::str::FromStr>(t: &TrialRecord, key: &str) -> Option<T> {
    t.labels.get(key)?.parse().ok()
}

impl PbtSuggester {
    /// The places of generation `g`, rebuilt from the history.
    fn places<'h>(&self, req: &SuggestRequest<'h>, g: u64) -> Vec<Place<'h>> {
        let mut places = vec![Place::Open; self.config.population];
        for t in req.history {
            if label::<u64>(t, LABEL_GENERATION) != Some(g) {
                continue;
            }
            let Some(place) = label::<usize>(t, LABEL_MEMBER).and_then(|m| places.get_mut(m))
            else {
                continue;
            };
            let attempt = match t.state {
                TrialState::Pending | TrialState::Running => Place::Busy,
                TrialState::Failed | TrialState::Killed => Place::Open,
                TrialState::Succeeded
                | TrialState::EarlyStopped
                | TrialState::MetricsUnavailable => {
                    Place::Done(t, req.objective.score(t.objective))
                }
            };
            // The first finished attempt decides; a busy one outranks a failed one.
            *place = match (*place, attempt) {
                (done @ Place::Done(..), _) | (Place::Busy, done @ Place::Open) => done,
                (_, next) => next,
            };
        }
        places
    }

    /// Generation 0: independent random draws, one generator per place.
    fn first_generation(&self, space: &SearchSpace, seed: u64) -> Vec<Planned> {
        (0..self.config.population as u64)
            .map(|m| Planned {
                assignment: space.sample(&mut derive_rng(seed, m, "pbt-0")),
                parent: None,
            })
            .collect()
    }

    /// Generation `g + 1` from the finished members of generation `g`
    /// (one per place, in place order).
    fn next_generation(
        &self,
        space: &SearchSpace,
        seed: u64,
        next: u64,
        members: &[(&TrialRecord, f64)],
    ) -> Vec<Planned> {
        let mut rng = derive_rng(seed, next, "pbt");
        let scores = worst_below_the_rest(members.iter().map(|(_, s)| *s).collect());
        let low = quantile(&scores, self.config.truncation_threshold);
        let high = quantile(&scores, 1.0 - self.config.truncation_threshold);
        let top: Vec<&TrialRecord> = members
            .iter()
            .filter(|(_, s)| *s >= high)
            .map(|(t, _)| *t)
            .collect();
        members
            .iter()
            .map(|&(member, score)| {
                if score < low && !top.is_empty() {
                    let donor = top[rng.random_range(0..top.len())];
                    Planned {
                        assignment: donor.assignment.clone(),
                        parent: Some(donor.name.clone()),
                    }
                } else {
                    Planned {
                        assignment: self.explore(space, &member.assignment, &mut rng),
                        parent: Some(member.name.clone()),
                    }
                }
            })
            .collect()
    }

    /// A member's hyperparameters, perturbed or resampled.
    fn explore(&self, space: &SearchSpace, from: &Assignment, rng: &mut AlgoRng) -> Assignment {
        space
            .params()
            .iter()
            .map(|p| {
                let kept = from.get(p.name()).cloned();
                let value = match (self.config.resample_probability, kept) {
                    (_, None) => p.sample(rng),
                    (Some(r), Some(kept)) => {
                        if rng.random::<f64>() < r {
                            p.sample(rng)
                        } else {
                            kept
                        }
                    }
                    (None, Some(kept)) => perturb(p, &kept, rng),
                };
                (p.name(), value)
            })
            .collect()
    }
}

/// One parameter's value moved a little: a number times 0.8 or 1.2
/// (clamped, on the step's grid; an int truncated toward zero first, as
/// Katib does), a list value to a neighbouring item.
fn perturb(p: &ParameterSpec, value: &ParamValue, rng: &mut AlgoRng) -> ParamValue {
    let factor = PERTURB_FACTORS[rng.random_range(0..PERTURB_FACTORS.len())];
    match p.domain() {
        Domain::Double { min, max, .. } => {
            let x = (value.as_f64().unwrap_or(*min) * factor).clamp(*min, *max);
            match p.points() {
                Some(_) => p.point(p.nearest_index(x)).unwrap_or(ParamValue::Float(x)),
                None => ParamValue::Float(x),
            }
        }
        Domain::Int { min, max, .. } => {
            let x = (value.as_f64().unwrap_or(*min as f64) * factor)
                .trunc()
                .clamp(*min as f64, *max as f64);
            p.point(p.nearest_index(x)).unwrap_or(ParamValue::Int(*min))
        }
        Domain::Discrete { .. } | Domain::Categorical { .. } => {
            let n = p.points().unwrap_or(1);
            let Some(k) = p.index_of(value) else {
                return p.sample(rng);
            };
            let up = rng.random::<bool>();
            // At either end the only neighbour is the one inside the list.
            let next = if n < 2 {
                k
            } else if k == 0 || (up && k + 1 < n) {
                k + 1
            } else {
                k - 1
            };
            p.point(next).unwrap_or_else(|| value.clone())
        }
    }
}

/// The scores with each `-inf` (no usable objective) replaced by a finite
/// value below every real one, so that quantiles stay finite and such
/// members fall in the bottom quantile.
fn worst_below_the_rest(mut scores: Vec<f64>) -> Vec<f64> {
    let finite = scores.iter().copied().filter(|s| s.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| {
        (l.min(s), h.max(s))
    });
    let floor = if low.is_finite() {
        low - (high - low) - 1.0
    } else {
        0.0
    };
    for s in &mut scores {
        if !s.is_finite() {
            *s = floor;
        }
    }
    scores
}

/// The `q`-quantile of `values` with linear interpolation (numpy's
/// default); `-inf` for no values.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NEG_INFINITY;
    };
    let position = q.clamp(0.0, 1.0) * last as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    let (a, b) = (sorted[lo.min(last)], sorted[hi.min(last)]);
    a + (b - a) * (position - position.floor())
}

impl Suggester for PbtSuggester {
    fn name(&self) -> &'static str {
        "pbt"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        let seed = self.config.seed.unwrap_or(req.seed);
        let current = req
            .history
            .iter()
            .filter_map(|t| label::<u64>(t, LABEL_GENERATION))
            .max()
            .unwrap_or(0);
        // The plan of the current generation, rebuilt from the one before
        // (or a new generation, when every member of the current one is done).
        let places = self.places(req, current);
        let finished: Option<Vec<(&TrialRecord, f64)>> = places.iter().map(Place::done).collect();
        let (generation, plan, places) = match finished {
            Some(members) => {
                let next = current + 1;
                let plan = self.next_generation(req.space, seed, next, &members);
                (next, plan, vec![Place::Open; self.config.population])
            }
            _ => {
                let plan = if current == 0 {
                    self.first_generation(req.space, seed)
                } else {
                    let before = self.places(req, current - 1);
                    let members: Vec<(&TrialRecord, f64)> =
                        before.iter().filter_map(Place::done).collect();
                    self.next_generation(req.space, seed, current, &members)
                };
                (current, plan, places)
            }
        };
        let suggestions = places
            .iter()
            .zip(plan)
            .enumerate()
            .filter(|(_, (place, _))| **place == Place::Open)
            .take(req.count)
            .map(|(member, (_, planned))| {
                let mut labels = BTreeMap::from([
                    (LABEL_GENERATION.to_owned(), generation.to_string()),
                    (LABEL_MEMBER.to_owned(), member.to_string()),
                ]);
                if let Some(parent) = planned.parent {
                    labels.insert(LABEL_PARENT.to_owned(), parent);
                }
                Suggestion {
                    assignment: planned.assignment,
                    labels,
                }
            })
            .collect();
        Ok(Suggestions {
            suggestions,
            state: None,
            exhausted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::history::{Direction, Objective};
    use crate::rng::derive_rng;
    use crate::settings;
    use crate::space::Distribution;
    use crate::suggest::conformance::{check_suggester, small_mixed_space};

    const SETTINGS: &[(&str, &str)] = &[
        ("n_population", "5"),
        ("truncation_threshold", "0.2"),
        ("suggestion_trial_dir", "/var/log/katib/checkpoints/"),
    ];

    fn suggester(extra: &[(&str, &str)]) -> PbtSuggester {
        let parsed = settings::algorithm("pbt")
            .unwrap()
            .parse(
                SETTINGS
                    .iter()
                    .filter(|(name, _)| !extra.iter().any(|(e, _)| e == name))
                    .chain(extra)
                    .copied(),
            )
            .unwrap();
        PbtSuggester::new(PbtConfig::from_settings(&parsed).unwrap())
    }

    fn lr_space() -> SearchSpace {
        SearchSpace::new(vec![
            ParameterSpec::double("lr", 0.001, 0.1, None, Distribution::Uniform).unwrap(),
        ])
        .unwrap()
    }

    fn ask(
        s: &PbtSuggester,
        space: &SearchSpace,
        history: &[TrialRecord],
        count: usize,
    ) -> Vec<Suggestion> {
        let objective = Objective::new("accuracy", Direction::Maximize);
        let req = SuggestRequest {
            space,
            objective: &objective,
            history,
            count,
            seed: 7,
            state: None,
        };
        s.suggest(&req).unwrap().suggestions
    }

    /// Adds the suggestions as trials that end in `state` with `value(i)`.
    fn record(
        history: &mut Vec<TrialRecord>,
        suggestions: Vec<Suggestion>,
        state: TrialState,
        value: impl Fn(&Assignment) -> Option<f64>,
    ) {
        for s in suggestions {
            let mut t = TrialRecord::new(format!("t{}", history.len()), s.assignment);
            t.objective = value(&t.assignment);
            t.labels = s.labels;
            t.state = state;
            history.push(t);
        }
    }

    /// The first `n` members of generation 0, finished, each scoring its `lr`.
    fn scored_first_generation(
        s: &PbtSuggester,
        space: &SearchSpace,
        n: usize,
    ) -> Vec<TrialRecord> {
        let mut history = Vec::new();
        let out = ask(s, space, &[], n);
        record(&mut history, out, TrialState::Succeeded, |a| Some(lr(a)));
        history
    }

    fn lr(a: &Assignment) -> f64 {
        a.get("lr").and_then(ParamValue::as_f64).unwrap()
    }

    fn generation_of(s: &Suggestion) -> &str {
        &s.labels[LABEL_GENERATION]
    }

    #[test]
    fn conforms() {
        for seed in [0, 1, 99] {
            check_suggester(
                "pbt",
                SETTINGS,
                &small_mixed_space(),
                seed,
                &[3, 0, 4, 5, 2, 7, 1],
                None,
            );
        }
    }

    #[test]
    fn generation_zero_is_the_population_and_no_more() {
        let s = suggester(&[]);
        let out = ask(&s, &lr_space(), &[], 8);
        assert_eq!(out.len(), 5, "one trial per member of the population");
        for (i, sug) in out.iter().enumerate() {
            assert_eq!(generation_of(sug), "0");
            assert_eq!(sug.labels[LABEL_MEMBER], i.to_string());
            assert!(!sug.labels.contains_key(LABEL_PARENT));
        }
        let mut history = Vec::new();
        record(&mut history, out, TrialState::Running, |_| None);
        assert!(
            ask(&s, &lr_space(), &history, 3).is_empty(),
            "all five are running"
        );
    }

    #[test]
    fn the_next_generation_waits_for_every_member() {
        let s = suggester(&[]);
        let space = lr_space();
        let mut history = scored_first_generation(&s, &space, 4);
        let out = ask(&s, &space, &history, 1);
        record(&mut history, out, TrialState::Running, |_| None);
        assert!(ask(&s, &space, &history, 5).is_empty());
        history[4].state = TrialState::Succeeded;
        history[4].objective = Some(0.5);
        let next = ask(&s, &space, &history, 5);
        assert_eq!(next.len(), 5);
        assert!(next.iter().all(|s| generation_of(s) == "1"));
    }

    #[test]
    fn bottom_members_copy_a_top_member_and_the_others_explore_themselves() {
        let s = suggester(&[]);
        let space = lr_space();
        let history = scored_first_generation(&s, &space, 5);
        let mut by_score: Vec<&TrialRecord> = history.iter().collect();
        by_score.sort_by(|a, b| lr(&a.assignment).total_cmp(&lr(&b.assignment)));
        let (worst, best) = (by_score[0], by_score[4]);

        for child in ask(&s, &space, &history, 5) {
            let member: usize = child.labels[LABEL_MEMBER].parse().unwrap();
            let parent = &child.labels[LABEL_PARENT];
            if history[member].name == worst.name {
                // quantile(0.2) of five values is above only the worst one;
                // quantile(0.8) is reached only by the best one.
                assert_eq!(parent, &best.name);
                assert_eq!(child.assignment, best.assignment);
            } else {
                assert_eq!(parent, &history[member].name);
                let ratio = lr(&child.assignment) / lr(&history[member].assignment);
                let clamped = lr(&child.assignment) == 0.1 || lr(&child.assignment) == 0.001;
                assert!(
                    clamped || (ratio - 0.8).abs() < 1e-9 || (ratio - 1.2).abs() < 1e-9,
                    "explored by ×{ratio}"
                );
            }
        }
    }

    #[test]
    fn a_failed_member_is_tried_again_with_its_values_and_parent() {
        let s = suggester(&[]);
        let space = lr_space();
        let mut history = scored_first_generation(&s, &space, 5);
        let children = ask(&s, &space, &history, 5);
        let failed = children[2].clone();
        record(&mut history, children, TrialState::Succeeded, |a| {
            Some(lr(a))
        });
        let last = history.len() - 3;
        history[last].state = TrialState::Failed;
        history[last].objective = None;

        let retry = ask(&s, &space, &history, 5);
        assert_eq!(retry, vec![failed], "only the failed member, unchanged");
    }

    #[test]
    fn a_member_without_an_objective_is_the_worst_not_retried() {
        let s = suggester(&[]);
        let space = lr_space();
        let mut history = scored_first_generation(&s, &space, 5);
        history[1].state = TrialState::MetricsUnavailable;
        history[1].objective = None;
        let best = history
            .iter()
            .filter(|t| t.objective.is_some())
            .max_by(|a, b| lr(&a.assignment).total_cmp(&lr(&b.assignment)))
            .unwrap()
            .clone();
        let next = ask(&s, &space, &history, 5);
        assert_eq!(next.len(), 5);
        assert_eq!(next[1].labels[LABEL_PARENT], best.name, "exploited");
        assert_eq!(next[1].assignment, best.assignment);
    }

    #[test]
    fn resample_probability_zero_keeps_and_one_redraws() {
        let space = lr_space();
        for (p, kept) in [("0", true), ("1", false)] {
            let s = suggester(&[("resample_probability", p), ("truncation_threshold", "0")]);
            let history = scored_first_generation(&s, &space, 5);
            for (child, member) in ask(&s, &space, &history, 5).iter().zip(&history) {
                assert_eq!(child.assignment == member.assignment, kept, "p = {p}");
            }
        }
    }

    #[test]
    fn generations_go_on_and_survive_a_restart() {
        let s = suggester(&[]);
        let space = lr_space();
        let mut history = Vec::new();
        for generation in 0..4 {
            let out = ask(&s, &space, &history, 5);
            assert!(
                out.iter()
                    .all(|s| generation_of(s) == generation.to_string())
            );
            // A restart: the same question asked again gets the same answer.
            assert_eq!(out, ask(&s, &space, &history, 5));
            record(&mut history, out, TrialState::Succeeded, |a| {
                Some(-(lr(a) - 0.05).abs())
            });
        }
        for t in &history[5..] {
            let parent = &t.labels[LABEL_PARENT];
            let p = history.iter().find(|p| &p.name == parent).unwrap();
            let g: u64 = t.labels[LABEL_GENERATION].parse().unwrap();
            assert_eq!(p.labels[LABEL_GENERATION], (g - 1).to_string());
        }
    }

    #[test]
    fn quantile_interpolates_like_numpy_and_missing_scores_sink() {
        assert!((quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.2) - 1.8).abs() < 1e-12);
        assert!((quantile(&[5.0, 1.0, 3.0], 0.5) - 3.0).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), f64::NEG_INFINITY);
        let scores = worst_below_the_rest(vec![f64::NEG_INFINITY, 2.0, 3.0]);
        assert_eq!(scores, vec![0.0, 2.0, 3.0]);
        assert!(quantile(&scores, 0.2) > scores[0]);
        assert_eq!(
            worst_below_the_rest(vec![f64::NEG_INFINITY; 2]),
            vec![0.0; 2]
        );
    }

    proptest! {
        #[test]
        fn perturbed_values_stay_in_the_space(seed in any::<u64>(), draws in 1usize..20) {
            let space = small_mixed_space();
            let mut rng = derive_rng(seed, 0, "test");
            let mut a = space.sample(&mut rng);
            for _ in 0..draws {
                for p in space.params() {
                    let v = perturb(p, a.get(p.name()).unwrap(), &mut rng);
                    prop_assert!(p.contains(&v), "{v:?} outside {p:?}");
                    a.set(p.name(), v);
                }
            }
        }
    }
}
