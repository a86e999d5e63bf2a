//! Per-call random generators derived from explicit inputs.
//!
//! Suggesters keep no RNG state between calls: each call derives a fresh
//! generator from `(seed, index, salt)` — typically the history length as
//! the index — so the output is a function of the inputs alone and a
//! restarted process continues the same stream. Xoshiro256++ is specified
//! exactly by rand, so a seed means the same numbers on every platform.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// The generator type every algorithm uses.
pub type AlgoRng = Xoshiro256PlusPlus;

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of the salt, so different algorithms draw different streams.
fn hash_salt(salt: &str) -> u64 {
    salt.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// A generator determined by `seed`, `index` and `salt`.
#[must_use]
pub fn derive_rng(seed: u64, index: u64, salt: &str) -> AlgoRng {
    let key = mix64(mix64(seed) ^ mix64(index.wrapping_add(hash_salt(salt))));
    AlgoRng::seed_from_u64(key)
}
