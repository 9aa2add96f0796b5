//! Stage 4's protocol, decoded for stage 5: the same codes, the same bodies,
//! the same error messages; only a produce decodes differently.
//!
//! Stage 4 turns a produce body into a `Vec<Record>`, one allocation and one
//! payload copy per record. Here it becomes a [`ReceivedBatch`]: the frame's own
//! buffer, its records validated where they lie. Create-topic and poll bodies
//! are a few integers and decode as in stage 4, with stage 3's `BodyReader`;
//! the partitioning is stage 4's own decoder.

use stage3_tcp_server::protocol::BodyReader;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::record::RecordError;
use stage4_partitions::protocol::{code, decode_partitioning};

use crate::batch::ReceivedBatch;

/// A request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create `topic` with `partitions` partitions.
    CreateTopic {
        /// Topic id.
        topic: u32,
        /// Number of partitions, at least 1.
        partitions: u32,
    },
    /// Append a batch to one partition of `topic`.
    Produce {
        /// Topic id.
        topic: u32,
        /// Where the batch goes.
        partitioning: Partitioning,
        /// The records, in the frame's buffer, validated.
        batch: ReceivedBatch,
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

// ANCHOR: decode
impl Request {
    /// Decodes a request body, keeping a produce's buffer; `None` for a code
    /// that is not one of stage 4's.
    pub fn decode(code: u16, body: Vec<u8>) -> Option<Result<Request, RecordError>> {
        let request = match code {
            code::PRODUCE => decode_produce(body),
            code::CREATE_TOPIC => (|| {
                let mut reader = BodyReader::new(&body);
                let request = Request::CreateTopic {
                    topic: reader.u32("topic")?,
                    partitions: reader.u32("partitions")?,
                };
                reader.finish()?;
                Ok(request)
            })(),
            code::POLL => (|| {
                let mut reader = BodyReader::new(&body);
                let request = Request::Poll {
                    topic: reader.u32("topic")?,
                    partition: reader.u32("partition")?,
                    offset: reader.u64("offset")?,
                    count: reader.u32("count")?,
                };
                reader.finish()?;
                Ok(request)
            })(),
            _ => return None,
        };
        Some(request)
    }
}

/// `topic u32`, the partitioning, then the batch, which stays where it is.
fn decode_produce(body: Vec<u8>) -> Result<Request, RecordError> {
    let mut reader = BodyReader::new(&body);
    let topic = reader.u32("topic")?;
    let partitioning = decode_partitioning(&mut reader)?;
    let count_at = body.len() - reader.remaining();
    Ok(Request::Produce {
        topic,
        partitioning,
        batch: ReceivedBatch::validate(body, count_at)?,
    })
}
// ANCHOR_END: decode

#[cfg(test)]
mod tests {
    use stage4_partitions::protocol::Request as Stage4Request;
    use stage4_partitions::protocol::record::Record;

    use super::*;

    #[test]
    fn decode_accepts_what_stage4_encodes() {
        let records = vec![Record {
            offset: 0,
            timestamp: 0,
            id: 3,
            payload: b"hi".to_vec(),
        }];
        let (code, body) = Stage4Request::Produce {
            topic: 1,
            partitioning: Partitioning::Key(b"k".to_vec()),
            records: records.clone(),
        }
        .encode();
        let Some(Ok(Request::Produce {
            topic,
            partitioning,
            batch,
        })) = Request::decode(code, body)
        else {
            panic!("a stage 4 produce decodes")
        };
        assert_eq!((topic, partitioning), (1, Partitioning::Key(b"k".to_vec())));
        let decoded: Vec<Record> = batch.view().iter().map(|r| r.to_record()).collect();
        assert_eq!(decoded, records);

        let (code, body) = Stage4Request::Poll {
            topic: 1,
            partition: 2,
            offset: 3,
            count: 4,
        }
        .encode();
        assert_eq!(
            Request::decode(code, body),
            Some(Ok(Request::Poll {
                topic: 1,
                partition: 2,
                offset: 3,
                count: 4
            }))
        );
        assert_eq!(Request::decode(2, Vec::new()), None);
    }
}
