//! Stage 4's requests, decoded for stage 6: the same codes and bodies; a
//! produce keeps the frame's buffer, as in stage 5. Then stage 6's own
//! commands ([`crate::api`]): resource commands with a JSON body, read with
//! `serde_json` into the contract's types (a body that does not parse is
//! malformed, and the connection is closed), and the binary poll by position.
//!
//! Names are checked in two steps: bytes that are not UTF-8, or a length
//! over [`api::MAX_NAME_LEN`], are malformed here (the frame cannot be
//! trusted; the length is checked *before* the bytes are read); a UTF-8
//! name with characters [`api::check_name`] refuses is a valid frame with a
//! bad value, answered `Invalid` by the connection, which stays open.
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

use crate::api;
use crate::error::BatchError;
use crate::record;
use crate::router::Admin;

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
    /// A metadata command, for shard 0's metadata writer.
    Admin(Admin),
    /// Describe a topic and its partitions.
    DescribeTopic(api::TopicRef),
    /// Read records from a position.
    PollBy(api::PollBy),
    /// Store a consumer's offset.
    StoreOffset(api::StoreOffset),
    /// A consumer's offsets in a topic.
    GetOffsets(api::GetOffsets),
    /// The server's counters.
    Stats,
    /// Log in.
    Login(api::Login),
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
    /// A JSON body does not parse as the command's type.
    #[error("invalid JSON body: {0}")]
    Json(#[from] serde_json::Error),
    /// A poll-by-position's kind byte is not one of the kinds.
    #[error("unknown poll kind {0}")]
    PollKind(u8),
    /// A name is longer than the limit or not UTF-8.
    #[error("{0}")]
    Name(String),
    /// A poll-by-position's `auto_commit` byte is neither 0 nor 1.
    #[error("auto_commit is 0 or 1, not {0}")]
    AutoCommit(u8),
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
    /// Decodes a request body, keeping a produce's buffer; `None` for an
    /// unknown code.
    pub fn decode(code: u16, body: Vec<u8>) -> Option<Result<Request, DecodeError>> {
        if let Some(request) = decode_json(code, &body) {
            return Some(request);
        }
        let mut reader = BodyReader::new(&body);
        let request = match code {
            api::code::POLL_BY => decode_poll_by(&mut reader).map(Request::PollBy),
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

/// A resource command's JSON body; `None` if `code` is not one.
fn decode_json(code: u16, body: &[u8]) -> Option<Result<Request, DecodeError>> {
    Some(match code {
        api::code::CREATE_STREAM => json(body).map(|b| Request::Admin(Admin::CreateStream(b))),
        api::code::LIST_STREAMS => {
            json::<api::Empty>(body).map(|_| Request::Admin(Admin::ListStreams))
        }
        api::code::DELETE_STREAM => json(body).map(|b| Request::Admin(Admin::DeleteStream(b))),
        api::code::CREATE_TOPIC_NAMED => json(body).map(|b| Request::Admin(Admin::CreateTopic(b))),
        api::code::LIST_TOPICS => json(body).map(|b| Request::Admin(Admin::ListTopics(b))),
        api::code::DESCRIBE_TOPIC => json(body).map(Request::DescribeTopic),
        api::code::DELETE_TOPIC => json(body).map(|b| Request::Admin(Admin::DeleteTopic(b))),
        api::code::STORE_OFFSET => json(body).map(Request::StoreOffset),
        api::code::GET_OFFSETS => json(body).map(Request::GetOffsets),
        api::code::STATS => json::<api::Empty>(body).map(|_| Request::Stats),
        api::code::LOGIN => json(body).map(Request::Login),
        _ => return None,
    })
}

/// A JSON body as `T`. An empty body reads as `{}`, so commands that take
/// nothing can be sent with nothing.
fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    Ok(serde_json::from_slice(body)?)
}

// ANCHOR: decode_poll_by
/// [`api::PollBy`]'s layout; the consumer's length is checked against
/// [`api::MAX_NAME_LEN`] before its bytes are read.
fn decode_poll_by(reader: &mut BodyReader<'_>) -> Result<api::PollBy, DecodeError> {
    let topic = reader.u32("topic")?;
    let partition = reader.u32("partition")?;
    let tag = reader.u8("kind")?;
    let value = reader.u64("value")?;
    let kind = api::PollKind::from_wire(tag, value).ok_or(DecodeError::PollKind(tag))?;
    let count = reader.u32("count")?;
    let len = usize::from(reader.u16("consumer_len")?);
    if len > api::MAX_NAME_LEN {
        return Err(DecodeError::Name(format!(
            "a consumer name has at most {} bytes, the frame says {len}",
            api::MAX_NAME_LEN
        )));
    }
    let consumer = String::from_utf8(reader.take("consumer", len)?.to_vec())
        .map_err(|_| DecodeError::Name("the consumer name is not UTF-8".to_string()))?;
    let auto_commit = match reader.u8("auto_commit")? {
        0 => false,
        1 => true,
        other => return Err(DecodeError::AutoCommit(other)),
    };
    Ok(api::PollBy {
        topic,
        partition,
        kind,
        count,
        consumer,
        auto_commit,
    })
}
// ANCHOR_END: decode_poll_by

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

    #[test]
    fn protocol_decodes_polls_by_position_and_bounds_the_consumer_name() {
        let poll = api::PollBy {
            topic: 7,
            partition: 1,
            kind: api::PollKind::Timestamp(99),
            count: 10,
            consumer: "reader-1".into(),
            auto_commit: true,
        };
        let decoded = Request::decode(api::code::POLL_BY, poll.encode());
        assert_eq!(decoded.unwrap().unwrap(), Request::PollBy(poll.clone()));
        // A consumer length over the limit is refused before it is read.
        let mut body = poll.encode();
        body[21..23].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            Request::decode(api::code::POLL_BY, body),
            Some(Err(DecodeError::Name(_)))
        ));
        let mut body = poll.encode();
        body[23] = 0xff; // not UTF-8
        assert!(matches!(
            Request::decode(api::code::POLL_BY, body),
            Some(Err(DecodeError::Name(_)))
        ));
        let mut body = poll.encode();
        body[8] = 9; // no such kind
        assert!(matches!(
            Request::decode(api::code::POLL_BY, body),
            Some(Err(DecodeError::PollKind(9)))
        ));
        let mut body = poll.encode();
        body.push(0); // a byte left over
        assert!(Request::decode(api::code::POLL_BY, body).unwrap().is_err());
    }

    #[test]
    fn protocol_reads_json_bodies_and_refuses_what_does_not_parse() {
        let decoded = Request::decode(api::code::CREATE_STREAM, br#"{"name":"s"}"#.to_vec());
        assert_eq!(
            decoded.unwrap().unwrap(),
            Request::Admin(Admin::CreateStream(api::CreateStream { name: "s".into() }))
        );
        assert_eq!(
            Request::decode(api::code::STATS, Vec::new())
                .unwrap()
                .unwrap(),
            Request::Stats
        );
        for bad in [
            &b"{"[..],
            br#"{"name":1}"#,
            br#"{"name":"s","x":1}"#,
            b"\xff",
        ] {
            assert!(matches!(
                Request::decode(api::code::CREATE_STREAM, bad.to_vec()),
                Some(Err(DecodeError::Json(_)))
            ));
        }
    }
}
