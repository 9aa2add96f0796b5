//! Stage 4's three requests, decoded for stage 6: the same codes and bodies;
//! a produce keeps the frame's buffer, as in stage 5. Requests the engine
//! does not know go to the broker's handler first ([`crate::shards::extension`]).
//!
//! A produce is validated here, on the shard that read it, before it is
//! handed to the shard that owns the partition: a hostile frame costs its
//! own connection's shard, never the owner's, and the owner's
//! `Partition::append` receives whole records. (Stage 5's `ReceivedBatch`
//! does the same for its partition; stage 6's `Partition::append` stamps a
//! plain `&mut [u8]`, so the body buffer and the records' position in it are
//! what travels.)
//!
//! The encoders beside the decoders are for clients (the broker's own
//! client, the tests): one place knows each layout.

use thiserror::Error;

use crate::shards::wire::{BodyError, BodyReader, Partitioning};
use crate::storage::error::BatchError;
use crate::storage::record;

/// Request codes of stage 4's protocol, served by the engine.
pub mod code {
    /// Create topic: `topic u32`, `partitions u32`.
    pub const CREATE_TOPIC: u16 = 10;
    /// Produce: `topic u32`, partitioning, `count u32`, records.
    pub const PRODUCE: u16 = 11;
    /// Poll: `topic u32`, `partition u32`, `offset u64`, `count u32`.
    pub const POLL: u16 = 12;
}

/// A request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create `topic` with `partitions` partitions.
    CreateTopic {
        /// Topic id.
        topic: u32,
        /// Number of partitions.
        partitions: u32,
    },
    /// Append a batch to one partition of `topic`.
    Produce {
        /// Topic id.
        topic: u32,
        /// Where the batch goes.
        partitioning: Partitioning,
        /// The frame's body; the records are `body[records_at..]`, checked.
        body: Vec<u8>,
        /// Where the records start in `body` (after the count).
        records_at: usize,
    },
    /// Read records.
    Poll {
        /// Topic id.
        topic: u32,
        /// Partition number.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// How many at most.
        count: u32,
    },
}

/// Why a request body did not decode: the connection is closed after it.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// A field is missing, or bytes are left over.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The records are not whole records.
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    /// The count field disagrees with the records that follow it.
    #[error("the batch says {said} records and holds {found}")]
    Count {
        /// The count field.
        said: u32,
        /// Records found.
        found: usize,
    },
}

impl Request {
    /// Decodes a request body, keeping a produce's buffer; `None` for a code
    /// that is not one of the three.
    pub fn decode(code: u16, body: Vec<u8>) -> Option<Result<Request, DecodeError>> {
        let mut reader = BodyReader::new(&body);
        let request = match code {
            code::PRODUCE => return Some(decode_produce(body)),
            code::CREATE_TOPIC => (|| {
                Ok(Request::CreateTopic {
                    topic: reader.u32("topic")?,
                    partitions: reader.u32("partitions")?,
                })
            })(),
            code::POLL => (|| {
                Ok(Request::Poll {
                    topic: reader.u32("topic")?,
                    partition: reader.u32("partition")?,
                    offset: reader.u64("offset")?,
                    count: reader.u32("count")?,
                })
            })(),
            _ => return None,
        };
        Some(request.and_then(|request| Ok(reader.finish().map(|()| request)?)))
    }
}

// ANCHOR: decode_produce
/// `topic u32`, the partitioning, `count u32`, then the records, which stay
/// where they are; every record's length is checked against the bytes left.
fn decode_produce(body: Vec<u8>) -> Result<Request, DecodeError> {
    let mut reader = BodyReader::new(&body);
    let topic = reader.u32("topic")?;
    let partitioning = Partitioning::decode(&mut reader)?;
    let said = reader.u32("count")?;
    let records_at = body.len() - reader.remaining();
    let records = body.get(records_at..).unwrap_or_default();
    let found = record::count(records)?;
    if found != said as usize {
        return Err(DecodeError::Count { said, found });
    }
    Ok(Request::Produce {
        topic,
        partitioning,
        body,
        records_at,
    })
}
// ANCHOR_END: decode_produce

/// A create-topic body.
pub fn encode_create_topic(topic: u32, partitions: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(8);
    body.extend_from_slice(&topic.to_le_bytes());
    body.extend_from_slice(&partitions.to_le_bytes());
    body
}

/// A produce body's head: `topic`, the partitioning and the count; the
/// caller appends `count` records ([`record::encode`]).
pub fn encode_produce_head(topic: u32, partitioning: &Partitioning, count: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&topic.to_le_bytes());
    partitioning.encode(&mut body);
    body.extend_from_slice(&count.to_le_bytes());
    body
}

/// A poll body.
pub fn encode_poll(topic: u32, partition: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&topic.to_le_bytes());
    body.extend_from_slice(&partition.to_le_bytes());
    body.extend_from_slice(&offset.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    body
}

/// A produce's answer: where the batch went and what it was promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// The partition it went to.
    pub partition: u32,
    /// Offset of its first record.
    pub first_offset: u64,
    /// Number of records.
    pub count: u32,
    /// Whether they are synced to disk.
    pub durable: bool,
}

impl Produced {
    /// The reply body: `partition u32`, `first_offset u64`, `count u32`, `durable u8`.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(17);
        body.extend_from_slice(&self.partition.to_le_bytes());
        body.extend_from_slice(&self.first_offset.to_le_bytes());
        body.extend_from_slice(&self.count.to_le_bytes());
        body.push(u8::from(self.durable));
        body
    }

    /// Reads a reply body.
    pub fn decode(body: &[u8]) -> Result<Produced, BodyError> {
        let mut reader = BodyReader::new(body);
        let produced = Produced {
            partition: reader.u32("partition")?,
            first_offset: reader.u64("first offset")?,
            count: reader.u32("count")?,
            durable: reader.u8("durable")? != 0,
        };
        reader.finish()?;
        Ok(produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(payloads: &[&[u8]]) -> Vec<u8> {
        let mut body =
            encode_produce_head(1, &Partitioning::Key(b"k".to_vec()), payloads.len() as u32);
        for payload in payloads {
            record::encode(&mut body, 0, 0, 3, payload);
        }
        body
    }

    #[test]
    fn protocol_decodes_what_its_encoders_write() {
        let Some(Ok(Request::Produce {
            topic,
            partitioning,
            body,
            records_at,
        })) = Request::decode(code::PRODUCE, produce(&[b"hi", b"hi"]))
        else {
            panic!("a produce decodes")
        };
        assert_eq!((topic, partitioning), (1, Partitioning::Key(b"k".to_vec())));
        assert_eq!(record::walk(&body[records_at..]).unwrap().len(), 2);
        assert_eq!(
            Request::decode(code::POLL, encode_poll(1, 2, 3, 4))
                .unwrap()
                .unwrap(),
            Request::Poll {
                topic: 1,
                partition: 2,
                offset: 3,
                count: 4
            }
        );
        assert!(Request::decode(2, Vec::new()).is_none());
        let produced = Produced {
            partition: 2,
            first_offset: 7,
            count: 3,
            durable: true,
        };
        assert_eq!(Produced::decode(&produced.encode()), Ok(produced));
    }

    #[test]
    fn protocol_refuses_lying_counts_and_lengths() {
        let mut body = produce(&[b"hi"]);
        // The count is the u32 after topic (4), kind (1), key len (2), key (1).
        body[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Request::decode(code::PRODUCE, body.clone()),
            Some(Err(DecodeError::Count { said: 2, found: 1 }))
        ));
        body[8..12].copy_from_slice(&1u32.to_le_bytes());
        // The payload length (after the 4-byte checksum) claims more than is there.
        body[16..20].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            Request::decode(code::PRODUCE, body),
            Some(Err(DecodeError::Batch(_)))
        ));
    }
}
