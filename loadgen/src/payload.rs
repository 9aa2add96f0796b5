//! What the producers send: a send timestamp, then seeded bytes.
//!
//! Layout of every payload ([`LoadConfig::size_of`] bytes for its index, at
//! least [`TIMESTAMP_LEN`]):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | send time, nanoseconds since the UNIX epoch, little-endian (see `clock`) |
//! | 8.. | the same bytes of `rivulet_datasets::Payloads` (the config's kind) for the message's index |
//!
//! Generating payloads costs more than the in-process target does with
//! them, so it is done before the run: each producer builds a pool of about
//! [`POOL_MESSAGES`] distinct payloads, in whole batches, and cycles through
//! them, rewriting only the 8 timestamp bytes before each send. Fresh bytes per
//! message were rejected because the generator would then measure its own
//! random number generator. No stage compresses or deduplicates, so the
//! repetition every `POOL_MESSAGES` messages changes nothing it does. With a
//! size distribution the sizes repeat with the pool too: a run sends
//! `POOL_MESSAGES` draws per producer over and over, enough for the
//! distribution's shape, though a draw rarer than one in that many may be
//! missing from a run.

use rivulet_datasets::Payloads;

use crate::config::{LoadConfig, TIMESTAMP_LEN};

/// Distinct payloads per producer (rounded up to whole batches).
pub const POOL_MESSAGES: usize = 1024;

/// One producer's pool of batches, each reused in turn.
#[derive(Debug)]
pub struct BatchPool {
    batches: Vec<Vec<Vec<u8>>>,
    next: usize,
}

impl BatchPool {
    /// The pool of producer `producer` for `config`: message `m` of its pool
    /// is index `producer << 32 | m` of the seeded generators (its size and
    /// its bytes), so no two producers send the same messages.
    pub fn new(config: &LoadConfig, producer: u32) -> BatchPool {
        let payloads = Payloads::new(config.payload, config.seed);
        let batch = config.batch.max(1) as usize;
        let count = POOL_MESSAGES.div_ceil(batch);
        let batches = (0..count)
            .map(|b| {
                (0..batch)
                    .map(|m| {
                        let index = (u64::from(producer) << 32) | (b * batch + m) as u64;
                        payloads.payload(index, config.size_of(index))
                    })
                    .collect()
            })
            .collect();
        BatchPool { batches, next: 0 }
    }

    /// The next batch, its first `len` messages stamped with `timestamp_ns`.
    /// Their payload bytes are `batch.iter().map(Vec::len).sum()`: with a size
    /// distribution, batches differ.
    pub fn next_batch(&mut self, len: usize, timestamp_ns: u64) -> &[Vec<u8>] {
        let index = self.next;
        self.next = (self.next + 1) % self.batches.len();
        let batch = &mut self.batches[index];
        let len = len.min(batch.len());
        for payload in &mut batch[..len] {
            stamp(payload, timestamp_ns);
        }
        &batch[..len]
    }
}

/// Writes `timestamp_ns` into the first 8 bytes (a shorter payload is left
/// alone; the config never makes one).
pub fn stamp(payload: &mut [u8], timestamp_ns: u64) {
    if let Some(head) = payload.get_mut(..TIMESTAMP_LEN) {
        head.copy_from_slice(&timestamp_ns.to_le_bytes());
    }
}

/// The send timestamp of a payload, or `None` if it is too short to hold one.
pub fn timestamp(payload: &[u8]) -> Option<u64> {
    let head: [u8; TIMESTAMP_LEN] = payload.get(..TIMESTAMP_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

#[cfg(test)]
mod tests {
    use rivulet_datasets::{MessageSize, PayloadKind};

    use super::*;

    fn config(message_size: MessageSize, payload: PayloadKind, batch: u32) -> LoadConfig {
        LoadConfig {
            message_size,
            payload,
            batch,
            seed: 42,
            ..LoadConfig::default()
        }
    }

    #[test]
    fn stamped_batches_carry_the_timestamp_then_seeded_bytes() {
        let mut pool = BatchPool::new(&config(MessageSize::Fixed(64), PayloadKind::Random, 10), 1);
        let batch = pool.next_batch(3, 0x0102_0304_0506_0708).to_vec();
        assert_eq!(batch.len(), 3);
        let expected_tail = Payloads::new(PayloadKind::Random, 42).payload(1 << 32, 64);
        assert_eq!(batch[0][..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(batch[0][8..], expected_tail[8..]);
        assert_eq!(timestamp(&batch[2]), Some(0x0102_0304_0506_0708));
        assert_ne!(batch[0], batch[1]);
        assert_eq!(timestamp(&[1, 2, 3]), None);
    }

    #[test]
    fn the_pool_cycles_through_distinct_batches() {
        let mut pool = BatchPool::new(
            &LoadConfig {
                seed: 7,
                ..config(MessageSize::Fixed(16), PayloadKind::Random, 512)
            },
            0,
        );
        let first = pool.next_batch(512, 0).to_vec();
        let second = pool.next_batch(512, 0).to_vec();
        let third = pool.next_batch(512, 0).to_vec();
        assert_ne!(first, second);
        assert_eq!(first, third);
    }

    #[test]
    fn pools_follow_the_size_distribution_and_the_payload_kind() {
        let sizes = MessageSize::LogNormal {
            median: 100,
            sigma: 1.5,
            min: 1,
            max: 2000,
        };
        let config = config(sizes, PayloadKind::LogLines, 50);
        let mut pool = BatchPool::new(&config, 2);
        let mut lens = Vec::new();
        for b in 0..POOL_MESSAGES.div_ceil(50) {
            for (m, payload) in pool.next_batch(50, 7).iter().enumerate() {
                let index = (2u64 << 32) | (b * 50 + m) as u64;
                assert_eq!(payload.len(), config.size_of(index));
                assert_eq!(timestamp(payload), Some(7));
                let expected =
                    Payloads::new(PayloadKind::LogLines, 42).payload(index, payload.len());
                assert_eq!(payload[8..], expected[8..]);
                lens.push(payload.len());
            }
        }
        assert!(lens.iter().any(|&len| len > 1000), "no large draw");
        assert!(lens.contains(&TIMESTAMP_LEN), "no small draw raised");
    }
}
