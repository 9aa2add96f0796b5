//! Seeded, deterministic payload bytes, in three shapes.
//!
//! Invariants:
//! - [`Payloads::fill`] fills exactly the buffer it is given, for every kind
//!   and every length, 0 included: text is cut (or continued with further
//!   records) to the length, never padded with filler bytes a codec would love;
//! - the bytes are a function of (kind, seed, message index, length) only;
//! - `random` bytes are pinned: the first published results used them, so a
//!   change would silently change every workload (a test holds them).

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::text;

/// The shape of payload bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// Uniformly random bytes: incompressible, the worst case for any codec.
    Random,
    /// Newline-separated JSON events (ids, timestamps, user ids, event
    /// names): text with repeated keys, moderately compressible.
    JsonEvents,
    /// Web server access-log lines from small pools of clients, paths and
    /// agents: highly compressible.
    LogLines,
}

impl PayloadKind {
    /// Every kind, in documentation order.
    pub const ALL: [PayloadKind; 3] = [
        PayloadKind::Random,
        PayloadKind::JsonEvents,
        PayloadKind::LogLines,
    ];

    /// The name used in workload files: `random`, `json-events`, `log-lines`.
    pub fn name(&self) -> &'static str {
        match self {
            PayloadKind::Random => "random",
            PayloadKind::JsonEvents => "json-events",
            PayloadKind::LogLines => "log-lines",
        }
    }
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

    /// The kind of payload this generates.
    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    /// Fills all of `buf` with the payload of message `n`, `buf.len()` bytes long.
    pub fn fill(&self, n: u64, buf: &mut [u8]) {
        match self.kind {
            PayloadKind::Random => {
                let mut rng = SplitMix64::for_random_payload(self.seed, n);
                for chunk in buf.chunks_mut(8) {
                    let word = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&word[..chunk.len()]);
                }
            }
            PayloadKind::JsonEvents => text::json_events(self.seed, n, buf),
            PayloadKind::LogLines => text::log_lines(self.seed, n, buf),
        }
    }

    /// The payload of message `n`, `len` bytes long.
    pub fn payload(&self, n: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(n, &mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::lz_ratio;

    #[test]
    fn same_seed_and_index_give_same_bytes() {
        for kind in PayloadKind::ALL {
            let payloads = Payloads::new(kind, 7);
            assert_eq!(
                payloads.payload(3, 300),
                payloads.payload(3, 300),
                "{kind:?}"
            );
            assert_ne!(
                payloads.payload(3, 300),
                payloads.payload(4, 300),
                "{kind:?}"
            );
            assert_ne!(
                payloads.payload(3, 300),
                Payloads::new(kind, 8).payload(3, 300),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn every_kind_fills_exactly_the_length_asked() {
        for kind in PayloadKind::ALL {
            let payloads = Payloads::new(kind, 42);
            for len in [0, 1, 7, 8, 9, 100, 1023, 1024, 4097, 65_536] {
                // A sentinel past the end catches a write beyond the slice's
                // length (impossible in safe Rust, so this checks the length
                // is honoured by `payload`), and every byte is written: a
                // generator that stopped early would leave the 0xee fill.
                let mut buf = vec![0xee; len + 1];
                payloads.fill(5, &mut buf[..len]);
                assert_eq!(buf[len], 0xee, "{kind:?} {len}");
                assert_eq!(payloads.payload(5, len).len(), len);
                assert_eq!(buf[..len], payloads.payload(5, len)[..], "{kind:?} {len}");
                if kind != PayloadKind::Random {
                    assert!(!buf[..len].contains(&0xee), "{kind:?} {len} left a gap");
                }
            }
        }
    }

    #[test]
    fn a_shorter_text_payload_is_a_prefix_of_a_longer_one() {
        // Cutting, not reshaping: the records do not depend on the length.
        for kind in [PayloadKind::JsonEvents, PayloadKind::LogLines] {
            let payloads = Payloads::new(kind, 42);
            let long = payloads.payload(9, 4096);
            assert_eq!(payloads.payload(9, 100)[..], long[..100], "{kind:?}");
        }
    }

    #[test]
    fn random_bytes_are_pinned_forever() {
        // If this changes, every published result's workload changed with it.
        let bytes = Payloads::new(PayloadKind::Random, 42).payload(0, 8);
        assert_eq!(bytes, SplitMix64(42).next().to_le_bytes());
        assert_eq!(
            SplitMix64(0).next(),
            0xe220_a839_7b1d_cdaf,
            "SplitMix64 reference value"
        );
    }

    #[test]
    fn compressibility_differs_as_each_kind_claims() {
        let ratio = |kind| lz_ratio(&Payloads::new(kind, 42).payload(0, 64 << 10));
        let (random, json, logs) = (
            ratio(PayloadKind::Random),
            ratio(PayloadKind::JsonEvents),
            ratio(PayloadKind::LogLines),
        );
        assert!(random > 1.0, "random bytes compressed: {random}");
        assert!(json < 0.6, "json events barely compress: {json}");
        assert!(
            logs < 0.6 * json,
            "log lines not far below json: {logs} vs {json}"
        );
    }

    #[test]
    fn text_kinds_are_printable_lines() {
        for kind in [PayloadKind::JsonEvents, PayloadKind::LogLines] {
            let text = Payloads::new(kind, 1).payload(2, 2000);
            assert!(
                text.iter()
                    .all(|&b| b == b'\n' || (b' '..=b'~').contains(&b)),
                "{kind:?}"
            );
            assert!(
                text.iter().filter(|&&b| b == b'\n').count() >= 5,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn kind_names_match_the_file_names() {
        for kind in PayloadKind::ALL {
            let parsed: PayloadKind =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(kind.name()))
                .unwrap();
            assert_eq!(parsed, kind);
        }
    }
}
