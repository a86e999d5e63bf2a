//! `hyperband`: Katib's bracket arithmetic with successive halving, made
//! restartable and independent of `parallelTrialCount`.
//!
//! # Arithmetic (Li et al. 2018, as Katib computes it; katib-reference §5.2)
//! * `s_max = floor(log_eta(r_l))`, computed as the largest `s` with
//!   `eta^s <= r_l` (with a relative tolerance of 1e-9), because
//!   `ln(1000)/ln(10)` is `2.9999999999999996` in floating point and Katib's
//!   `floor` then loses a bracket;
//! * brackets `s = s_max, …, 0` run one after the other; bracket `s` starts
//!   `n = ceil((s_max+1) * eta^s / (s+1))` configurations;
//! * rung `i = 0..=s` of bracket `s` holds `ceil(n * eta^-i)` configurations
//!   (Katib's rounding) trained with resource `r_l * eta^(i-s)` (so the last
//!   rung always gets `r_l`); the configurations of rung `i+1` are the best
//!   of rung `i` by the objective (failed, killed, metrics-unavailable or NaN
//!   trials rank last; ties go to the lower configuration id).
//!
//! # Differences from Katib (fixes)
//! * Independent of `parallelTrialCount`: Katib overwrites `n` with the
//!   number of trials requested; here every call hands out as many of the
//!   current rung's not-yet-issued configurations as asked, and returns fewer
//!   (possibly none, without error) while the rung is fully issued but not
//!   finished. A rung is promoted when *all* its trials are terminal.
//! * No hidden state: each suggestion carries the labels
//!   [`LABEL_BRACKET`], [`LABEL_RUNG`], [`LABEL_CONFIG`] (and
//!   [`LABEL_PARENT`] for promotions), and the whole position is
//!   reconstructed from the labels in the history, so a restart continues
//!   exactly. Configurations of rung 0 are drawn from a generator keyed by
//!   `(seed, bracket, config)`, so they do not depend on how calls were batched.
//! * After the last bracket finishes the reply says `exhausted`.
//! * Non-resource parameters follow their distributions (Katib: uniform).
//!
//! # The resource parameter
//! Its value is the budget and, as in Katib, its feasible space is ignored
//! (Katib's own example declares `num-epochs` with `min = max = 1` and
//! `r_l = 2`). An `int` resource gets the budget truncated toward zero like
//! Katib's `int()`, after a 1e-9 relative tolerance so `8.999999999` is 9,
//! and at least 1; a `double` resource gets the budget as computed.

use std::collections::BTreeMap;

use crate::error::AlgorithmError;
use crate::history::{Objective, TrialRecord, TrialState};
use crate::rng::derive_rng;
use crate::settings::Settings;
use crate::space::{Domain, ParamValue, SearchSpace};

use super::{SuggestRequest, Suggester, Suggestion, Suggestions, random_state};

/// Label holding the bracket `s`.
pub const LABEL_BRACKET: &str = "hyperband.ktune.dev/bracket";
/// Label holding the rung `i` within the bracket.
pub const LABEL_RUNG: &str = "hyperband.ktune.dev/rung";
/// Label holding the configuration id within the bracket (kept across rungs).
pub const LABEL_CONFIG: &str = "hyperband.ktune.dev/config";
/// Label holding the name of the previous rung's trial of the same configuration.
pub const LABEL_PARENT: &str = "hyperband.ktune.dev/parent";

const MAX_BRACKETS: u32 = 64;
const MAX_CONFIGS: u64 = 1 << 32;
const TOLERANCE: f64 = 1e-9;

/// Hyperband's settings, checked against the space.
#[derive(Debug, Clone, PartialEq)]
pub struct HyperbandConfig {
    /// The parameter whose value is the budget (`resource_name`).
    pub resource_name: String,
    /// Whether that parameter is an `int` (budgets are truncated).
    pub integer_resource: bool,
    /// The reduction factor (`eta` > 1).
    pub eta: f64,
    /// The maximum resource per configuration (`r_l` > 0).
    pub r_l: f64,
    /// `random_state`, overriding the request's seed.
    pub seed: Option<u64>,
}

/// One rung of a bracket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// How many configurations run at this rung.
    pub configs: u64,
    /// The resource each gets.
    pub resource: f64,
}

/// One bracket: its `s` and its rungs, first to last.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    /// The bracket index `s` (`s_max` first).
    pub s: u32,
    /// Rungs `0..=s`.
    pub rungs: Vec<Rung>,
}

fn ceil_tolerant(x: f64) -> f64 {
    (x - x.abs() * TOLERANCE).ceil()
}

impl HyperbandConfig {
    /// Reads `resource_name`, `eta`, `r_l`, `random_state` and checks them.
    ///
    /// # Errors
    /// [`AlgorithmError::MissingSetting`] if a required setting is absent,
    /// [`AlgorithmError::ResourceParameterMissing`] /
    /// [`AlgorithmError::ResourceParameterNotNumeric`] when `resource_name`
    /// does not name an int or double parameter,
    /// [`AlgorithmError::HyperbandTooLarge`] for absurd `r_l`/`eta`.
    pub fn from_settings(settings: &Settings, space: &SearchSpace) -> Result<Self, AlgorithmError> {
        let missing = |setting| AlgorithmError::MissingSetting {
            algorithm: "hyperband",
            setting,
        };
        let resource_name = settings
            .text("resource_name")
            .ok_or_else(|| missing("resource_name"))?
            .to_owned();
        let r_l = settings.float("r_l").ok_or_else(|| missing("r_l"))?;
        let eta = settings.float("eta").unwrap_or(3.0);
        let param =
            space
                .get(&resource_name)
                .ok_or_else(|| AlgorithmError::ResourceParameterMissing {
                    name: resource_name.clone(),
                })?;
        let integer_resource = match param.domain() {
            Domain::Int { .. } => true,
            Domain::Double { .. } => false,
            Domain::Discrete { .. } | Domain::Categorical { .. } => {
                return Err(AlgorithmError::ResourceParameterNotNumeric {
                    name: resource_name,
                });
            }
        };
        let config = Self {
            resource_name,
            integer_resource,
            eta,
            r_l,
            seed: random_state(settings),
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), AlgorithmError> {
        let too_large = |brackets| AlgorithmError::HyperbandTooLarge {
            r_l: self.r_l,
            eta: self.eta,
            brackets,
        };
        // Settings parsing already guarantees these; a hand-built config may not.
        if !(self.eta > 1.0 && self.eta.is_finite() && self.r_l > 0.0 && self.r_l.is_finite()) {
            return Err(too_large(0));
        }
        let s_max = self.s_max();
        if s_max >= MAX_BRACKETS {
            return Err(too_large(u64::from(s_max) + 1));
        }
        if self
            .brackets()
            .iter()
            .any(|b| b.rungs.first().is_none_or(|r| r.configs > MAX_CONFIGS))
        {
            return Err(too_large(u64::from(s_max) + 1));
        }
        Ok(())
    }

    /// `s_max`: the largest `s >= 0` with `eta^s <= r_l` (0 when `r_l < eta`).
    #[must_use]
    pub fn s_max(&self) -> u32 {
        let mut s = 0u32;
        let limit = self.r_l * (1.0 + TOLERANCE);
        while s < MAX_BRACKETS && self.eta.powi(i32::try_from(s + 1).unwrap_or(i32::MAX)) <= limit {
            s += 1;
        }
        s
    }

    /// Every bracket with its rungs, in the order they run.
    #[must_use]
    pub fn brackets(&self) -> Vec<Bracket> {
        let s_max = self.s_max();
        let pow = |k: u32| self.eta.powi(i32::try_from(k).unwrap_or(i32::MAX));
        (0..=s_max)
            .rev()
            .map(|s| {
                let n = ceil_tolerant(f64::from(s_max + 1) * pow(s) / f64::from(s + 1)).max(1.0);
                let rungs = (0..=s)
                    .map(|i| {
                        let configs = ceil_tolerant(n / pow(i)).max(1.0);
                        let configs = configs.min(u64::MAX as f64) as u64;
                        Rung {
                            configs,
                            resource: self.r_l / pow(s - i),
                        }
                    })
                    .collect();
                Bracket { s, rungs }
            })
            .collect()
    }

    /// The resource parameter's value for budget `r`.
    #[must_use]
    pub fn resource_value(&self, r: f64) -> ParamValue {
        if self.integer_resource {
            let t = (r + r.abs() * TOLERANCE).trunc().max(1.0);
            ParamValue::Int(t.min(9.0e18) as i64)
        } else {
            ParamValue::Float(r)
        }
    }
}

/// Hyperband (successive halving over brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct HyperbandSuggester {
    config: HyperbandConfig,
    brackets: Vec<Bracket>,
}

type Position = (u32, u32, u64);

fn label<T: std::str::FromStr>(t: &TrialRecord, key: &str) -> Option<T> {
    t.labels.get(key)?.parse().ok()
}

/// The ranking score of a finished rung trial: failures rank last.
fn rank_score(objective: &Objective, t: &TrialRecord) -> f64 {
    match t.state {
        TrialState::Succeeded | TrialState::EarlyStopped => objective.score(t.objective),
        _ => f64::NEG_INFINITY,
    }
}

impl HyperbandSuggester {
    /// Hyperband with a checked configuration.
    #[must_use]
    pub fn new(config: HyperbandConfig) -> Self {
        let brackets = config.brackets();
        Self { config, brackets }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &HyperbandConfig {
        &self.config
    }

    /// The bracket plan.
    #[must_use]
    pub fn brackets(&self) -> &[Bracket] {
        &self.brackets
    }

    fn suggestion(
        &self,
        req: &SuggestRequest<'_>,
        (s, i, c): Position,
        parent: Option<&TrialRecord>,
        resource: f64,
    ) -> Suggestion {
        let mut assignment = match parent {
            Some(p) => p.assignment.clone(),
            None => {
                let seed = self.config.seed.unwrap_or(req.seed);
                let mut rng = derive_rng(seed, (u64::from(s) << 40) ^ c, "hyperband");
                req.space.sample(&mut rng)
            }
        };
        assignment.set(
            self.config.resource_name.clone(),
            self.config.resource_value(resource),
        );
        let mut labels = BTreeMap::from([
            (LABEL_BRACKET.to_owned(), s.to_string()),
            (LABEL_RUNG.to_owned(), i.to_string()),
            (LABEL_CONFIG.to_owned(), c.to_string()),
        ]);
        if let Some(p) = parent {
            labels.insert(LABEL_PARENT.to_owned(), p.name.clone());
        }
        Suggestion { assignment, labels }
    }
}

impl Suggester for HyperbandSuggester {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    fn suggest(&self, req: &SuggestRequest<'_>) -> Result<Suggestions, AlgorithmError> {
        // First trial per (bracket, rung, config) wins; unlabelled trials are not ours.
        let mut issued: BTreeMap<Position, &TrialRecord> = BTreeMap::new();
        for t in req.history {
            if let (Some(s), Some(i), Some(c)) = (
                label::<u32>(t, LABEL_BRACKET),
                label::<u32>(t, LABEL_RUNG),
                label::<u64>(t, LABEL_CONFIG),
            ) {
                issued.entry((s, i, c)).or_insert(t);
            }
        }
        let mut out = Vec::new();
        for bracket in &self.brackets {
            let s = bracket.s;
            let mut members: Vec<u64> =
                (0..bracket.rungs.first().map_or(0, |r| r.configs)).collect();
            for (i, rung) in (0u32..).zip(&bracket.rungs) {
                let mut complete = true;
                for &c in &members {
                    match issued.get(&(s, i, c)) {
                        Some(t) => complete &= t.state.is_terminal(),
                        None => {
                            complete = false;
                            if out.len() < req.count {
                                let parent = i
                                    .checked_sub(1)
                                    .and_then(|p| issued.get(&(s, p, c)).copied());
                                out.push(self.suggestion(req, (s, i, c), parent, rung.resource));
                            }
                        }
                    }
                }
                if !complete {
                    return Ok(Suggestions {
                        suggestions: out,
                        state: None,
                        exhausted: false,
                    });
                }
                let Some(next) = bracket.rungs.get(i as usize + 1) else {
                    break;
                };
                let mut ranked: Vec<(f64, u64)> = members
                    .iter()
                    .map(|&c| {
                        let score = issued
                            .get(&(s, i, c))
                            .map_or(f64::NEG_INFINITY, |t| rank_score(req.objective, t));
                        (score, c)
                    })
                    .collect();
                ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                members = ranked
                    .into_iter()
                    .take(usize::try_from(next.configs).unwrap_or(usize::MAX))
                    .map(|(_, c)| c)
                    .collect();
                members.sort_unstable();
            }
        }
        Ok(Suggestions {
            suggestions: out,
            state: None,
            exhausted: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Direction;
    use crate::settings;
    use crate::space::{Distribution, ParameterSpec};
    use crate::suggest::conformance::record_running;

    fn space() -> SearchSpace {
        SearchSpace::new(vec![
            ParameterSpec::double("lr", 0.01, 0.05, None, Distribution::Uniform).unwrap(),
            ParameterSpec::int("num-epochs", 1, 1, None, Distribution::Uniform).unwrap(),
        ])
        .unwrap()
    }

    fn config(r_l: &str, eta: &str) -> HyperbandConfig {
        let s = settings::algorithm("hyperband")
            .unwrap()
            .parse([("resource_name", "num-epochs"), ("r_l", r_l), ("eta", eta)])
            .unwrap();
        HyperbandConfig::from_settings(&s, &space()).unwrap()
    }

    fn plan(c: &HyperbandConfig) -> Vec<Vec<(u64, f64)>> {
        c.brackets()
            .iter()
            .map(|b| b.rungs.iter().map(|r| (r.configs, r.resource)).collect())
            .collect()
    }

    #[test]
    fn bracket_plan_matches_katib_for_r_l_9_eta_3() {
        let c = config("9", "3");
        assert_eq!(c.s_max(), 2);
        assert_eq!(
            plan(&c),
            vec![
                vec![(9, 1.0), (3, 3.0), (1, 9.0)],
                vec![(5, 3.0), (2, 9.0)],
                vec![(3, 9.0)],
            ]
        );
    }

    #[test]
    fn s_max_survives_float_noise_in_logarithms() {
        // ln(1000)/ln(10) = 2.9999999999999996: Katib's floor says 2.
        assert_eq!(config("1000", "10").s_max(), 3);
        assert_eq!(config("27", "3").s_max(), 3);
        assert_eq!(config("26.9", "3").s_max(), 2);
        assert_eq!(config("0.5", "3").s_max(), 0);
        // Katib's own example: r_l = 2, eta = 2.
        assert_eq!(
            plan(&config("2", "2")),
            vec![vec![(2, 1.0), (1, 2.0)], vec![(2, 2.0)]]
        );
    }

    #[test]
    fn absurd_settings_are_refused_and_resource_must_be_numeric() {
        let s = settings::algorithm("hyperband")
            .unwrap()
            .parse([
                ("resource_name", "num-epochs"),
                ("r_l", "1e300"),
                ("eta", "1.0001"),
            ])
            .unwrap();
        assert!(matches!(
            HyperbandConfig::from_settings(&s, &space()),
            Err(AlgorithmError::HyperbandTooLarge { .. })
        ));
        let s = settings::algorithm("hyperband")
            .unwrap()
            .parse([("resource_name", "nope"), ("r_l", "9")])
            .unwrap();
        assert!(matches!(
            HyperbandConfig::from_settings(&s, &space()),
            Err(AlgorithmError::ResourceParameterMissing { .. })
        ));
    }

    fn ask(h: &HyperbandSuggester, history: &[TrialRecord], count: usize) -> Suggestions {
        let objective = Objective::new("loss", Direction::Minimize);
        h.suggest(&SuggestRequest {
            space: &space(),
            objective: &objective,
            history,
            count,
            seed: 7,
            state: None,
        })
        .unwrap()
    }

    #[test]
    fn rungs_wait_for_every_trial_then_promote_the_best_and_failures_rank_last() {
        let h = HyperbandSuggester::new(config("9", "3"));
        let mut history = Vec::new();
        // Asking for 4 at a time hands out rung 0 of bracket 2 (9 configs) in pieces.
        for _ in 0..2 {
            let out = ask(&h, &history, 4);
            assert_eq!(out.suggestions.len(), 4);
            record_running(&mut history, out);
        }
        let out = ask(&h, &history, 4);
        assert_eq!(out.suggestions.len(), 1);
        record_running(&mut history, out);
        assert_eq!(history.len(), 9);
        assert!(
            history
                .iter()
                .all(|t| t.assignment.get("num-epochs") == Some(&ParamValue::Int(1)))
        );
        // Fully issued but running: nothing, no error, not exhausted.
        let out = ask(&h, &history, 4);
        assert!(out.suggestions.is_empty() && !out.exhausted);
        // Finish all but one: still nothing.
        for (i, t) in history.iter_mut().enumerate() {
            t.state = TrialState::Succeeded;
            t.objective = Some(i as f64);
        }
        history[0].state = TrialState::Failed; // best value, but failed: ranks last
        history[8].state = TrialState::Running;
        assert!(ask(&h, &history, 4).suggestions.is_empty());
        history[8].state = TrialState::Succeeded;
        // Rung 1: the best 3 of 9 (configs 1, 2, 3), resource 3, same lr, parents labelled.
        let out = ask(&h, &history, 10);
        assert_eq!(out.suggestions.len(), 3);
        for (s, parent) in out.suggestions.iter().zip(&history[1..4]) {
            assert_eq!(s.assignment.get("num-epochs"), Some(&ParamValue::Int(3)));
            assert_eq!(s.assignment.get("lr"), parent.assignment.get("lr"));
            assert_eq!(s.labels.get(LABEL_PARENT), Some(&parent.name));
            assert_eq!(s.labels.get(LABEL_RUNG).map(String::as_str), Some("1"));
        }
    }

    #[test]
    fn the_whole_schedule_runs_to_exhaustion_with_katibs_trial_count() {
        let h = HyperbandSuggester::new(config("9", "3"));
        let mut history: Vec<TrialRecord> = Vec::new();
        for _ in 0..100 {
            let out = ask(&h, &history, 2);
            if out.exhausted {
                assert!(out.suggestions.is_empty());
                break;
            }
            record_running(&mut history, out);
            for t in &mut history {
                if t.state == TrialState::Running {
                    t.state = TrialState::Succeeded;
                    t.objective =
                        Some(t.assignment.get("lr").and_then(ParamValue::as_f64).unwrap());
                }
            }
        }
        // 9 + 3 + 1, 5 + 2, 3.
        assert_eq!(history.len(), 23);
        assert!(ask(&h, &history, 5).exhausted);
    }
}
