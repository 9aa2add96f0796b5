//! A seeded random number generator: SplitMix64, a dozen lines.
//!
//! Why not the `rand` crate: the driver needs reproducible choices from a
//! printed seed and nothing else, and SplitMix64 is the generator `rand`
//! itself uses to seed others. Reproducible means the same seed makes the
//! same choices; the kills still land where the machine's timing puts them.

/// SplitMix64 (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// A generator derived from this one for a sub-task (a producer, a
    /// round), so adding a task does not shift every other task's choices.
    pub fn fork(&self, salt: u64) -> Rng {
        Rng(mix(self.0 ^ mix(salt)))
    }
}

/// SplitMix64's finalizer: a bijection that scrambles every bit.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
