//! The trained controller as an [`AlgorithmState`]: a cache of the fold over
//! the history's finished rounds, tagged with how many trials it consumed
//! and a fingerprint of them, so a call whose history does not extend that
//! prefix replays from the seed instead. Floats are stored as the hex of
//! their bits, so a state read back is bit-identical (restart safety).

use serde::{Deserialize, Serialize};

use super::params::{Layout, Params};
use super::train::Trainer;
use crate::suggest::AlgorithmState;

/// The state format version.
const VERSION: u32 = 1;

/// What a state holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// How many history records (from the first) the trainer has consumed.
    pub consumed: usize,
    /// The fingerprint of those records.
    pub fingerprint: u64,
    /// The controller after them.
    pub trainer: Trainer,
}

#[derive(Serialize, Deserialize)]
struct Blob {
    consumed: usize,
    fingerprint: String,
    hidden: usize,
    operations: usize,
    steps: u64,
    baseline: String,
    weights: String,
    adam_m: String,
    adam_v: String,
}

fn hex(values: &[f64]) -> String {
    let mut out = String::with_capacity(values.len() * 16);
    for v in values {
        out.push_str(&format!("{:016x}", v.to_bits()));
    }
    out
}

fn unhex(text: &str, len: usize) -> Option<Vec<f64>> {
    if text.len() != len * 16 || !text.is_ascii() {
        return None;
    }
    (0..len)
        .map(|i| {
            u64::from_str_radix(&text[i * 16..(i + 1) * 16], 16)
                .ok()
                .map(f64::from_bits)
        })
        .collect()
}

/// `cached` as a state blob.
#[must_use]
pub fn save(cached: &Cached) -> AlgorithmState {
    let t = &cached.trainer;
    let blob = Blob {
        consumed: cached.consumed,
        fingerprint: format!("{:016x}", cached.fingerprint),
        hidden: t.params.layout.h,
        operations: t.params.layout.n,
        steps: t.t,
        baseline: hex(&[t.baseline]),
        weights: hex(&t.params.data),
        adam_m: hex(&t.m),
        adam_v: hex(&t.v),
    };
    AlgorithmState {
        version: VERSION,
        data: serde_json::to_value(blob).unwrap_or(serde_json::Value::Null),
    }
}

/// The cache in `state`, if it is one of this version for `layout`.
#[must_use]
pub fn load(state: &AlgorithmState, layout: Layout) -> Option<Cached> {
    if state.version != VERSION {
        return None;
    }
    let blob: Blob = serde_json::from_value(state.data.clone()).ok()?;
    if blob.hidden != layout.h || blob.operations != layout.n {
        return None;
    }
    let len = layout.total();
    let params = Params {
        layout,
        data: unhex(&blob.weights, len)?,
    };
    Some(Cached {
        consumed: blob.consumed,
        fingerprint: u64::from_str_radix(&blob.fingerprint, 16).ok()?,
        trainer: Trainer {
            params,
            m: unhex(&blob.adam_m, len)?,
            v: unhex(&blob.adam_v, len)?,
            t: blob.steps,
            baseline: *unhex(&blob.baseline, 1)?.first()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_rng;

    #[test]
    fn a_saved_state_loads_bit_for_bit() {
        let layout = Layout { h: 3, n: 2 };
        let mut trainer = Trainer::new(Params::init(layout, &mut derive_rng(1, 0, "t")));
        trainer.baseline = -0.1 / 3.0;
        trainer.m[0] = f64::MIN_POSITIVE;
        trainer.t = 9;
        let cached = Cached {
            consumed: 4,
            fingerprint: u64::MAX,
            trainer,
        };
        let state = save(&cached);
        let text = serde_json::to_string(&state).unwrap();
        let back: AlgorithmState = serde_json::from_str(&text).unwrap();
        assert_eq!(load(&back, layout), Some(cached));
        assert_eq!(load(&back, Layout { h: 4, n: 2 }), None);
        let mut other = back.clone();
        other.version = 0;
        assert_eq!(load(&other, layout), None);
    }
}
