//! The wire vocabulary of stages 4 to 6, owned by the engine: status codes,
//! the error a request is answered with, a bounds-checked body reader, and
//! how a produce names its partition.
//!
//! The bytes are stage 4's, unchanged (see the protocol reference). The
//! engine keeps its own copy instead of importing stage 3's and stage 4's
//! types: the broker is built on the engine, and a change made to teach
//! something in a lesson must never change what the broker answers. The
//! bench crate's `wire_compat` test checks that the two still agree byte for
//! byte.

use std::sync::atomic::{AtomicU32, Ordering};

use thiserror::Error;

// ANCHOR: statuses
/// Reply status codes the engine answers with. 0 to 7 are stage 4's; the
/// broker adds its own (8 to 12) for the commands it serves.
pub mod status {
    /// Success.
    pub const OK: u16 = 0;
    /// The frame is over the server's limit; the connection is closed.
    pub const FRAME_TOO_LARGE: u16 = 1;
    /// The frame or body does not parse; the connection is closed.
    pub const MALFORMED: u16 = 2;
    /// Unknown request code; the connection is closed.
    pub const UNKNOWN_COMMAND: u16 = 3;
    /// No topic with that id (or name).
    pub const TOPIC_NOT_FOUND: u16 = 4;
    /// The request parses but cannot be served as asked.
    pub const INVALID: u16 = 5;
    /// The storage failed.
    pub const STORAGE: u16 = 6;
    /// The topic has no partition with that number.
    pub const PARTITION_NOT_FOUND: u16 = 7;
    /// The server is at its connection limit; sent unasked, with
    /// correlation 0, and the connection is closed.
    pub const TOO_MANY_CONNECTIONS: u16 = 13;
    /// The partition refuses writes after a failed write or sync (never retried).
    pub const PARTITION_FAILED: u16 = 14;
}
// ANCHOR_END: statuses

/// A request's error answer: a status code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("status {status}: {message}")]
pub struct WireError {
    /// The status code sent.
    pub status: u16,
    /// The reply body: UTF-8 text.
    pub message: String,
}

impl WireError {
    /// An error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> WireError {
        WireError {
            status,
            message: message.into(),
        }
    }

    /// A well-formed request with a value that cannot work.
    pub fn invalid(message: impl Into<String>) -> WireError {
        WireError::new(status::INVALID, message)
    }

    /// The storage failed.
    pub fn storage(message: impl Into<String>) -> WireError {
        WireError::new(status::STORAGE, message)
    }
}

/// A body that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    /// The body ends before a field does.
    #[error("body truncated: {field} needs {needed} bytes at byte {at}, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its size.
        needed: usize,
        /// Where it starts.
        at: usize,
        /// Bytes left in the body.
        available: usize,
    },
    /// Bytes are left over after the last field.
    #[error("{extra} unexpected bytes after the body's last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field that selects a variant holds a value with no variant.
    #[error("{field} kind {kind} is not one this protocol knows")]
    UnknownKind {
        /// The field.
        field: &'static str,
        /// Its value.
        kind: u8,
    },
}

/// A cursor over a body: every read checks the remaining length first.
#[derive(Debug)]
pub struct BodyReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> BodyReader<'a> {
    /// Starts at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> BodyReader<'a> {
        BodyReader { bytes, at: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], BodyError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let taken = rest.get(..n).ok_or(BodyError::Truncated {
            field,
            needed: n,
            at: self.at,
            available: rest.len(),
        })?;
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BodyError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(field, N)?);
        Ok(array)
    }

    /// A single byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, BodyError> {
        self.array::<1>(field).map(|[byte]| byte)
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, BodyError> {
        self.array(field).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, BodyError> {
        self.array(field).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, BodyError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Ends the body: leftover bytes mean the two sides disagree on the format.
    pub fn finish(self) -> Result<(), BodyError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(BodyError::TrailingBytes { extra }),
        }
    }
}

// ANCHOR: partitioning
/// How a producer chooses the partition of a batch (stage 4's three ways).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// The producer names the partition.
    Explicit(u32),
    /// The server takes the topic's partitions in turn, batch by batch (each
    /// shard keeps its own turn).
    RoundRobin,
    /// `crc32c(key) % partitions`: the same key always lands in the same
    /// partition, so its messages keep their order.
    Key(Vec<u8>),
}
// ANCHOR_END: partitioning

impl Partitioning {
    /// Reads a `u8` kind and its argument.
    pub fn decode(reader: &mut BodyReader<'_>) -> Result<Partitioning, BodyError> {
        Ok(match reader.u8("partitioning")? {
            0 => Partitioning::Explicit(reader.u32("partition")?),
            1 => Partitioning::RoundRobin,
            2 => {
                let len = reader.u16("key length")?;
                Partitioning::Key(reader.take("key", len.into())?.to_vec())
            }
            kind => {
                return Err(BodyError::UnknownKind {
                    field: "partitioning",
                    kind,
                });
            }
        })
    }

    /// Appends the kind and its argument (a key is cut at 65,535 bytes).
    pub fn encode(&self, body: &mut Vec<u8>) {
        match self {
            Partitioning::Explicit(partition) => {
                body.push(0);
                body.extend_from_slice(&partition.to_le_bytes());
            }
            Partitioning::RoundRobin => body.push(1),
            Partitioning::Key(key) => {
                let key = &key[..key.len().min(usize::from(u16::MAX))];
                body.push(2);
                body.extend_from_slice(&(key.len() as u16).to_le_bytes());
                body.extend_from_slice(key);
            }
        }
    }

    // ANCHOR: choose_partition
    /// The partition a batch goes to, out of `count`, with this shard's
    /// round-robin counter.
    pub fn choose(&self, count: u32, round_robin: &AtomicU32) -> Result<u32, WireError> {
        let partition = match self {
            Partitioning::Explicit(partition) => *partition,
            // Relaxed: the counter only spreads batches; nothing else depends
            // on its value. (`max(1)`: never divide by zero.)
            Partitioning::RoundRobin => round_robin.fetch_add(1, Ordering::Relaxed) % count.max(1),
            Partitioning::Key(key) => crc32c::crc32c(key) % count.max(1),
        };
        if partition >= count {
            return Err(WireError::new(
                status::PARTITION_NOT_FOUND,
                format!("partition {partition} does not exist; the topic has {count}"),
            ));
        }
        Ok(partition)
    }
    // ANCHOR_END: choose_partition
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_partitioning_reads_back_and_a_key_always_picks_one_partition() {
        for partitioning in [
            Partitioning::Explicit(3),
            Partitioning::RoundRobin,
            Partitioning::Key(b"user-7".to_vec()),
        ] {
            let mut body = Vec::new();
            partitioning.encode(&mut body);
            let mut reader = BodyReader::new(&body);
            assert_eq!(Partitioning::decode(&mut reader), Ok(partitioning));
            assert_eq!(reader.finish(), Ok(()));
        }
        let turn = AtomicU32::new(0);
        let key = Partitioning::Key(b"user-7".to_vec());
        let first = key.choose(4, &turn).unwrap();
        assert!((0..10).all(|_| key.choose(4, &turn).unwrap() == first));
        let spread: Vec<u32> = (0..4)
            .map(|_| Partitioning::RoundRobin.choose(4, &turn).unwrap())
            .collect();
        assert_eq!(spread, [0, 1, 2, 3]);
        let refused = Partitioning::Explicit(4).choose(4, &turn).unwrap_err();
        assert_eq!(refused.status, status::PARTITION_NOT_FOUND);
    }

    #[test]
    fn wire_reader_refuses_truncated_and_trailing_bytes() {
        let mut reader = BodyReader::new(&[1, 0]);
        assert!(matches!(
            reader.u32("topic"),
            Err(BodyError::Truncated { field: "topic", .. })
        ));
        let mut reader = BodyReader::new(&[7]);
        assert_eq!(reader.u8("kind"), Ok(7));
        assert_eq!(reader.finish(), Ok(()));
        assert_eq!(
            BodyReader::new(&[1]).finish(),
            Err(BodyError::TrailingBytes { extra: 1 })
        );
    }
}
