//! The population's randomness: SplitMix64 ([`Rng`], `rand_xoshiro`'s),
//! one stream per purpose and entity, and the affine shuffles that place
//! entity `i` in its block without storing a permutation.

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

pub(crate) const PER_MILLE: u64 = 1000;
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function (a bijection on `u64`).
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea, Flood 2014; `rand_xoshiro`'s, checked by that
/// crate against the reference output and here against fixed values): tiny,
/// fast, and fixed forever. The one deterministic generator of the project:
/// the population, the load generator, the benches and the reliability
/// campaigns all draw from it.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    /// The generator whose state starts at `state`.
    pub fn new(state: u64) -> Rng {
        Rng(SplitMix64::seed_from_u64(state))
    }

    /// The stream for entity `index` of purpose `tag`; distinct indices give distinct starting states.
    pub(crate) fn stream(seed: u64, tag: u64, index: u64) -> Rng {
        Rng::new(mix64(mix64(seed ^ tag).wrapping_add(index.wrapping_mul(GOLDEN_GAMMA))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to draw");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(PER_MILLE) < per_mille
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, (lo, hi): (u32, u32)) -> u32 {
        debug_assert!(lo <= hi);
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    pub(crate) fn between_i32(&mut self, (lo, hi): (i32, i32)) -> i32 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i32
    }

    /// A day number uniform in `lo..=hi`.
    pub(crate) fn day_in(&mut self, (lo, hi): (i32, i32)) -> i32 {
        self.between_i32((lo, hi))
    }

    /// A value of `table`, drawn with the weights beside each.
    pub(crate) fn weighted<T: Copy>(&mut self, table: &[(T, u64)]) -> T {
        let total: u64 = table.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for &(value, weight) in table {
            if x < weight {
                return value;
            }
            x -= weight;
        }
        unreachable!("x < total")
    }
}

/// Units modulo `m` (the multipliers of an affine shuffle) with their inverses.
pub(crate) fn units(m: u64) -> Vec<(u64, u64)> {
    (1..m).filter_map(|a| (1..m).find(|b| a * b % m == 1).map(|b| (a, b))).collect()
}

/// The affine shuffle of block `block`: `r -> a*r + c (mod m)`.
fn affine(seed: u64, tag: u64, block: u64, m: u64, units: &[(u64, u64)]) -> ((u64, u64), u64) {
    let h = Rng::stream(seed, tag, block).next_u64();
    (units[(h % units.len() as u64) as usize], (h >> 32) % m)
}

/// Entity `index`'s block and shuffled slot within it.
pub(crate) fn shuffle(seed: u64, tag: u64, index: u64, m: u64, units: &[(u64, u64)]) -> (u64, u64) {
    let (block, r) = (index / m, index % m);
    let ((a, _), c) = affine(seed, tag, block, m, units);
    (block, (a * r + c) % m)
}

/// The position in block `block` whose shuffled slot is `v`.
pub(crate) fn unshuffle(seed: u64, tag: u64, block: u64, v: u64, m: u64, units: &[(u64, u64)]) -> u64 {
    let ((_, a_inverse), c) = affine(seed, tag, block, m, units);
    a_inverse * ((v + m - c) % m) % m
}

/// Which entry of a slot table `slot` falls in: (entry, rank within it, the entry's slot count).
pub(crate) fn slot_entry<T>(table: &[(T, u64)], slot: u64) -> (usize, u64, u64) {
    let mut start = 0;
    for (k, (_, width)) in table.iter().enumerate() {
        if slot < start + width {
            return (k, slot - start, *width);
        }
        start += width;
    }
    unreachable!("slot {slot} beyond the table")
}
