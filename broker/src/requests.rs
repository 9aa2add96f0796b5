//! The broker's own commands, decoded: resource commands with a JSON body
//! ([`crate::api`]), read with `serde_json` into the contract's types (a
//! body that does not parse is malformed, and the connection is closed),
//! and the binary poll by position. Stage 4's three requests (codes 10 to
//! 12) are the engine's, decoded by `stage6_broker::shards::protocol`.
//!
//! Names are checked in two steps: bytes that are not UTF-8, or a length
//! over [`api::MAX_NAME_LEN`], are malformed here (the frame cannot be
//! trusted; the length is checked *before* the bytes are read); a UTF-8
//! name with characters [`api::check_name`] refuses is a valid frame with a
//! bad value, answered `Invalid` by the session, which stays open.

use stage6_broker::shards::wire::{BodyError, BodyReader};
use thiserror::Error;

use crate::api;

/// A metadata command, served one at a time by shard 0's metadata writer
/// ([`crate::admin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// Stage 4's binary create-topic: a topic named by its id, in the
    /// default stream, default settings.
    CreateTopicById {
        /// Topic id.
        topic: u32,
        /// Partition count.
        partitions: u32,
    },
    /// Create a stream.
    CreateStream(api::CreateStream),
    /// List the streams.
    ListStreams,
    /// Delete a stream and its topics.
    DeleteStream(api::StreamName),
    /// Create a named topic.
    CreateTopic(api::CreateTopic),
    /// List topics.
    ListTopics(api::ListTopics),
    /// Delete a topic.
    DeleteTopic(api::TopicRef),
    /// One topic as the metadata holds it (its partitions are asked of
    /// their owners afterwards).
    Describe(api::TopicRef),
}

/// One of the broker's requests, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
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
    /// Join a consumer group (or join again).
    JoinGroup(api::JoinGroup),
    /// A group member's heartbeat.
    Heartbeat(api::Heartbeat),
    /// A member leaves its group.
    LeaveGroup(api::LeaveGroup),
    /// A member polls one of its partitions.
    GroupPoll(api::GroupPoll),
    /// A member commits an offset.
    CommitOffset(api::CommitOffset),
    /// Every group.
    ListGroups,
    /// One group, its members and offsets.
    DescribeGroup(api::GroupName),
}

/// Why a request body did not decode: the connection is closed after it.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// A field is missing, or bytes are left over.
    #[error(transparent)]
    Body(#[from] BodyError),
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
}

impl Request {
    /// Decodes one of the broker's requests; `None` for a code that is not
    /// one of them (the engine's, or unknown).
    pub fn decode(code: u16, body: &[u8]) -> Option<Result<Request, DecodeError>> {
        if code == api::code::POLL_BY {
            let mut reader = BodyReader::new(body);
            let poll = decode_poll_by(&mut reader)
                .and_then(|poll| Ok(reader.finish().map(|()| Request::PollBy(poll))?));
            return Some(poll);
        }
        decode_json(code, body)
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
        api::code::JOIN_GROUP => json(body).map(Request::JoinGroup),
        api::code::HEARTBEAT => json(body).map(Request::Heartbeat),
        api::code::LEAVE_GROUP => json(body).map(Request::LeaveGroup),
        api::code::GROUP_POLL => json(body).map(Request::GroupPoll),
        api::code::COMMIT_OFFSET => json(body).map(Request::CommitOffset),
        api::code::LIST_GROUPS => json::<api::Empty>(body).map(|_| Request::ListGroups),
        api::code::DESCRIBE_GROUP => json(body).map(Request::DescribeGroup),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let decoded = Request::decode(api::code::POLL_BY, &poll.encode());
        assert_eq!(decoded.unwrap().unwrap(), Request::PollBy(poll.clone()));
        // A consumer length over the limit is refused before it is read.
        let mut body = poll.encode();
        body[21..23].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            Request::decode(api::code::POLL_BY, &body),
            Some(Err(DecodeError::Name(_)))
        ));
        let mut body = poll.encode();
        body[23] = 0xff; // not UTF-8
        assert!(matches!(
            Request::decode(api::code::POLL_BY, &body),
            Some(Err(DecodeError::Name(_)))
        ));
        let mut body = poll.encode();
        body[8] = 9; // no such kind
        assert!(matches!(
            Request::decode(api::code::POLL_BY, &body),
            Some(Err(DecodeError::PollKind(9)))
        ));
        let mut body = poll.encode();
        body.push(0); // a byte left over
        assert!(Request::decode(api::code::POLL_BY, &body).unwrap().is_err());
    }

    #[test]
    fn protocol_reads_json_bodies_and_refuses_what_does_not_parse() {
        let decoded = Request::decode(api::code::CREATE_STREAM, br#"{"name":"s"}"#);
        assert_eq!(
            decoded.unwrap().unwrap(),
            Request::Admin(Admin::CreateStream(api::CreateStream { name: "s".into() }))
        );
        assert_eq!(
            Request::decode(api::code::STATS, &[]).unwrap().unwrap(),
            Request::Stats
        );
        let join = br#"{"group":"billing","topic":{"name":"orders"},"session_timeout_ms":3000}"#;
        assert_eq!(
            Request::decode(api::code::JOIN_GROUP, join)
                .unwrap()
                .unwrap(),
            Request::JoinGroup(api::JoinGroup {
                group: "billing".into(),
                topic: api::TopicRef::Name("orders".into()),
                session_timeout_ms: 3000,
                member: None,
                client_id: None,
            })
        );
        let poll = br#"{"group":"g","member":"m","generation":2,"topic":{"id":1},"partition":3,"count":9}"#;
        assert!(matches!(
            Request::decode(api::code::GROUP_POLL, poll)
                .unwrap()
                .unwrap(),
            Request::GroupPoll(api::GroupPoll {
                offset: None,
                count: 9,
                ..
            })
        ));
        assert!(matches!(
            Request::decode(api::code::HEARTBEAT, br#"{"group":"g","member":"m"}"#),
            Some(Err(DecodeError::Json(_)))
        ));
        for bad in [
            &b"{"[..],
            br#"{"name":1}"#,
            br#"{"name":"s","x":1}"#,
            b"\xff",
        ] {
            assert!(matches!(
                Request::decode(api::code::CREATE_STREAM, bad),
                Some(Err(DecodeError::Json(_)))
            ));
        }
    }
}
