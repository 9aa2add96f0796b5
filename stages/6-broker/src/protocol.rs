//! Stage 4's requests, decoded for stage 6: the same codes and bodies; a
//! produce keeps the frame's buffer, as in stage 5.
//!
//! A produce is validated here, on the shard that read it, before it is
//! handed to the shard that owns the partition: a hostile frame costs its
//! own connection's shard, never the owner's, and the owner's
//! `Partition::append` receives whole records. (Stage 5's `ReceivedBatch`
//! does the same for its partition; stage 6's `Partition::append` stamps a
//! plain `&mut [u8]`, so the body buffer and the records' position in it are
//! what travels.)

use stage3_tcp_server::protocol::{BodyError, BodyReader};
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::{code, decode_partitioning};
use thiserror::Error;

use crate::error::BatchError;
use crate::record;

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
    /// that is not one of stage 4's.
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
    let partitioning = decode_partitioning(&mut reader)?;
    let said = reader.u32("count")?;
    let records_at = body.len() - reader.remaining();
    let records = body.get(records_at..).unwrap_or_default();
    let found = record::walk(records)?.len();
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

#[cfg(test)]
mod tests {
    use stage4_partitions::protocol::Request as Stage4Request;
    use stage4_partitions::protocol::record::Record;

    use super::*;

    fn produce(records: Vec<Record>) -> (u16, Vec<u8>) {
        Stage4Request::Produce {
            topic: 1,
            partitioning: Partitioning::Key(b"k".to_vec()),
            records,
        }
        .encode()
    }

    #[test]
    fn protocol_decodes_what_stage4_encodes() {
        let record = Record {
            offset: 0,
            timestamp: 0,
            id: 3,
            payload: b"hi".to_vec(),
        };
        let (code, body) = produce(vec![record.clone(), record]);
        let Some(Ok(Request::Produce {
            topic,
            partitioning,
            body,
            records_at,
        })) = Request::decode(code, body)
        else {
            panic!("a stage 4 produce decodes")
        };
        assert_eq!((topic, partitioning), (1, Partitioning::Key(b"k".to_vec())));
        assert_eq!(record::walk(&body[records_at..]).unwrap().len(), 2);
        let (code, body) = Stage4Request::Poll {
            topic: 1,
            partition: 2,
            offset: 3,
            count: 4,
        }
        .encode();
        assert_eq!(
            Request::decode(code, body).unwrap().unwrap(),
            Request::Poll {
                topic: 1,
                partition: 2,
                offset: 3,
                count: 4
            }
        );
        assert!(Request::decode(2, Vec::new()).is_none());
    }

    #[test]
    fn protocol_refuses_lying_counts_and_lengths() {
        let record = Record {
            offset: 0,
            timestamp: 0,
            id: 3,
            payload: b"hi".to_vec(),
        };
        let (code, mut body) = produce(vec![record]);
        // The count is the u32 after topic (4), kind (1), key len (2), key (1).
        body[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Request::decode(code, body.clone()),
            Some(Err(DecodeError::Count { said: 2, found: 1 }))
        ));
        body[8..12].copy_from_slice(&1u32.to_le_bytes());
        // The payload length (after the 4-byte checksum) claims more than is there.
        body[16..20].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            Request::decode(code, body),
            Some(Err(DecodeError::Batch(_)))
        ));
    }
}
