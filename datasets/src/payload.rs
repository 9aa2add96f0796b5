//! Seeded, deterministic payload bytes.
//!
//! A hand-written SplitMix64 rather than `rand`'s `StdRng`: `rand` documents that
//! its standard generator may change between versions, and a workload must give
//! the same bytes forever, or results from two dates would not be comparable.

use serde::Deserialize;

/// The shape of payload bytes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// Uniformly random bytes: incompressible, the worst case for any codec.
    Random,
}

/// Generates the payload of message `n` of a workload, for any `n`, in any order.
///
/// Addressable by index (not a stream of bytes), so a crash test can regenerate
/// the exact payload of any offset it finds on disk and compare.
#[derive(Debug, Clone, Copy)]
pub struct Payloads {
    kind: PayloadKind,
    seed: u64,
}

impl Payloads {
    /// A generator for `kind` payloads from `seed`.
    pub fn new(kind: PayloadKind, seed: u64) -> Payloads {
        Payloads { kind, seed }
    }

    /// Fills `buf` with the payload of message `n`.
    pub fn fill(&self, n: u64, buf: &mut [u8]) {
        match self.kind {
            PayloadKind::Random => {
                let mut rng = SplitMix64(self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for chunk in buf.chunks_mut(8) {
                    let word = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&word[..chunk.len()]);
                }
            }
        }
    }

    /// The payload of message `n`, `len` bytes long.
    pub fn payload(&self, n: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(n, &mut buf);
        buf
    }
}

/// Sebastiano Vigna's SplitMix64: tiny, fast, and good enough for test bytes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_index_give_same_bytes() {
        let payloads = Payloads::new(PayloadKind::Random, 7);
        assert_eq!(payloads.payload(3, 100), payloads.payload(3, 100));
        assert_ne!(payloads.payload(3, 100), payloads.payload(4, 100));
    }

    #[test]
    fn bytes_are_pinned_forever() {
        // If this changes, every published result's workload changed with it.
        let bytes = Payloads::new(PayloadKind::Random, 42).payload(0, 8);
        assert_eq!(bytes, SplitMix64(42).next().to_le_bytes());
        assert_eq!(
            SplitMix64(0).next(),
            0xe220_a839_7b1d_cdaf,
            "SplitMix64 reference value"
        );
    }
}
