//! The good/bad split of the history and the kernel weights (Optuna's
//! `_split_trials`, `default_weights`).
//!
//! * Ranked trials are the succeeded ones with a finite objective, then the
//!   early-stopped ones with a finite objective (Optuna's pruned trials):
//!   the best `n_below` of them are *good*, succeeded trials first, and
//!   early-stopped ones only fill up when too few succeeded — ranked among
//!   themselves by how far they got (later last step first), then by value.
//! * Everything else — pending and running trials (Optuna's constant liar,
//!   which Katib turns on for `multivariate-tpe` and ktune uses for both),
//!   failed, killed, metrics-unavailable trials and NaN/infinite objectives —
//!   is *bad*: a configuration that crashed or is already being tried is not
//!   worth proposing again.
//! * `n_below = ceil(gamma * n)` clamped to `[1, 25]` (and to `n`), where `n`
//!   counts the ranked trials. Katib's `gamma` setting is that fraction;
//!   its default, 0.1, is Optuna's `default_gamma`, `min(ceil(0.1 n), 25)`.
//!   (Katib's hyperopt service defaults to 0.25 but reads it as
//!   `ceil(0.25 sqrt(n))`, an even smaller group: 2 of 50 trials, 3 of 100;
//!   a quarter of the trials — ktune's earlier default — makes the good
//!   group too broad to refine, see `benches/peers/`.) The cap of 25 —
//!   hyperopt's `linear_forgetting` — is common to both.

/// The most good trials, whatever `gamma` says.
pub(crate) const MAX_BELOW: usize = 25;

/// How a finished trial ranks; `None` marks a trial that is bad by fiat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rank {
    /// 0 for succeeded trials, 1 for early-stopped ones.
    pub(crate) tier: u8,
    /// The last reported step (orders early-stopped trials; 0 for succeeded).
    pub(crate) last_step: u64,
    /// The objective as "larger is better" (finite).
    pub(crate) score: f64,
}

/// The number of good trials among `n` ranked ones.
#[must_use]
pub(crate) fn n_below(gamma: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let wanted = (gamma * n as f64).ceil().max(1.0).min(MAX_BELOW as f64) as usize;
    wanted.min(n)
}

/// Row indices (ascending, i.e. in trial order) of the good and bad trials.
#[must_use]
pub(crate) fn split(ranks: &[Option<Rank>], gamma: f64) -> (Vec<usize>, Vec<usize>) {
    let mut ranked: Vec<(usize, Rank)> = ranks
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect();
    let k = n_below(gamma, ranked.len());
    // A total order (trial index breaks ties), so the unstable sort is deterministic.
    ranked.sort_unstable_by(|(ia, a), (ib, b)| {
        a.tier
            .cmp(&b.tier)
            .then(b.last_step.cmp(&a.last_step))
            .then(b.score.total_cmp(&a.score))
            .then(ia.cmp(ib))
    });
    let mut good: Vec<usize> = ranked.iter().take(k).map(|(i, _)| *i).collect();
    good.sort_unstable();
    let mut bad = Vec::with_capacity(ranks.len() - good.len());
    let mut next_good = good.iter().peekable();
    for i in 0..ranks.len() {
        if next_good.peek() == Some(&&i) {
            next_good.next();
        } else {
            bad.push(i);
        }
    }
    (good, bad)
}

/// Optuna's `default_weights(n)`: the newest 25 trials weigh 1, older ones
/// ramp linearly from `1/n` up, so the model forgets slowly.
#[must_use]
pub(crate) fn weights(n: usize) -> Vec<f64> {
    if n < MAX_BELOW {
        return vec![1.0; n];
    }
    let ramp = n - MAX_BELOW;
    let start = 1.0 / n as f64;
    (0..n)
        .map(|i| {
            if i >= ramp {
                1.0
            } else if ramp == 1 {
                start
            } else {
                // numpy's linspace(1/n, 1, ramp): endpoints exact.
                let t = i as f64 / (ramp - 1) as f64;
                start + t * (1.0 - start)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(score: f64) -> Option<Rank> {
        Some(Rank {
            tier: 0,
            last_step: 0,
            score,
        })
    }

    #[test]
    fn gamma_is_a_fraction_clamped_to_one_and_twenty_five() {
        assert_eq!(n_below(0.25, 0), 0);
        assert_eq!(n_below(0.25, 1), 1);
        assert_eq!(n_below(0.25, 4), 1);
        assert_eq!(n_below(0.25, 5), 2);
        assert_eq!(n_below(0.25, 40), 10);
        assert_eq!(n_below(0.25, 1000), 25);
        assert_eq!(n_below(0.1, 10), 1);
        assert_eq!(n_below(0.99, 3), 3);
    }

    #[test]
    fn best_scores_are_good_and_unranked_trials_are_bad() {
        // Scores are "larger is better"; None is pending/failed/NaN.
        let ranks = [done(1.0), None, done(5.0), done(3.0), done(4.0), None];
        let (good, bad) = split(&ranks, 0.4);
        assert_eq!(good, vec![2, 4]);
        assert_eq!(bad, vec![0, 1, 3, 5]);
    }

    #[test]
    fn early_stopped_trials_only_fill_up_behind_succeeded_ones() {
        let stopped = |step, score| {
            Some(Rank {
                tier: 1,
                last_step: step,
                score,
            })
        };
        let ranks = [stopped(3, 100.0), done(0.0), stopped(5, -1.0), done(-2.0)];
        let (good, bad) = split(&ranks, 0.75);
        // Three good: both succeeded, then the early-stopped trial that got further.
        assert_eq!(good, vec![1, 2, 3]);
        assert_eq!(bad, vec![0]);
    }

    #[test]
    fn ties_are_broken_by_trial_order() {
        let ranks = [done(1.0), done(1.0), done(1.0), done(1.0)];
        assert_eq!(split(&ranks, 0.5).0, vec![0, 1]);
    }

    #[test]
    fn weights_ramp_older_trials_like_optuna() {
        assert_eq!(weights(3), vec![1.0; 3]);
        let w = weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-15);
        assert_eq!(w[4], 1.0);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
        assert!(w[5..].iter().all(|&x| x == 1.0));
        assert_eq!(weights(26)[0], 1.0 / 26.0);
    }
}
