//! A blocking client for the broker: every command of
//! [`rivulet_broker::api`] and stage 5's produce and poll, one request at a time over one
//! [`std::net::TcpStream`].
//!
//! Blocking, not async: its users are the `rivulet` command line and tests,
//! which do one thing at a time and want no runtime; a load generator that
//! needs many requests in flight uses stage 4's async client (as
//! `rivulet bench` does, through `rivulet-loadgen`). Rejected: a compio
//! client, which would tie every user to the server's runtime.
//!
//! The frames are stage 3's (a 10-byte header, then the body), with the
//! length prefix of a reply checked against a limit before anything is
//! allocated, exactly as the server checks requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use rivulet_broker::api;
use rivulet_broker::api::{code, status};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stage6_broker::shards::frame::{DEFAULT_MAX_FRAME_LEN, HEADER_LEN, MIN_FRAME_LEN};
use stage6_broker::shards::protocol::{
    Produced, encode_create_topic, encode_poll, encode_produce_head,
};
pub use stage6_broker::shards::wire::Partitioning;

mod group;
pub use group::{Batch, GroupConsumer, GroupOptions};
use stage6_broker::shards::wire::{BodyError, BodyReader};
use stage6_broker::storage::record::{
    self, Contents, MAX_PAYLOAD_LEN, RECORD_HEADER_LEN, UserHeader, checksum_matches, header_at,
};
use thiserror::Error;

/// The address `rivulet-server` listens on when told nothing else.
pub use stage6_broker::shards::server::DEFAULT_LISTEN;

/// A record as a poll returns it: a plain record or an extended one (with a
/// key, headers or a create time; the record layout is in
/// [`stage6_broker::storage::record`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Its offset in the partition.
    pub offset: u64,
    /// When the server appended it, µs since the UNIX epoch.
    pub timestamp: u64,
    /// The producer's id for it.
    pub id: u64,
    /// Its value (empty for a null value: see `null_value`).
    pub payload: Vec<u8>,
    /// Whether the value is null (a Kafka tombstone) rather than empty.
    pub null_value: bool,
    /// Its key; `None` when it has none (a null key).
    pub key: Option<Vec<u8>>,
    /// Its headers, in order (a name may repeat); a `None` value is null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The producer's timestamp, ms since the UNIX epoch, if it gave one.
    pub create_time: Option<i64>,
}

impl Record {
    /// The record's contents, borrowed, in the engine's terms.
    pub fn contents(&self) -> Contents<'_> {
        Contents {
            create_time: self.create_time,
            key: self.key.as_deref(),
            headers: user_headers(&self.headers),
            value: (!self.null_value).then_some(self.payload.as_slice()),
        }
    }
}

/// A record to produce: what [`Client::send_records`] sends. The default is
/// id 0, no key, no headers, no create time and an empty value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// The producer's id, stored with the record and served back.
    pub id: u64,
    /// The key, stored with the record (the partition is chosen by the
    /// request's [`Partitioning`], which may hash the same key).
    pub key: Option<Vec<u8>>,
    /// Headers, in order; a `None` value is null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The producer's timestamp, ms since the UNIX epoch.
    pub create_time: Option<i64>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
}

impl ProducerRecord {
    /// A record that is only `value`: sent as a plain record.
    pub fn value(value: impl Into<Vec<u8>>) -> ProducerRecord {
        ProducerRecord {
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// The record's contents, borrowed, in the engine's terms.
    pub fn contents(&self) -> Contents<'_> {
        Contents {
            create_time: self.create_time,
            key: self.key.as_deref(),
            headers: user_headers(&self.headers),
            value: self.value.as_deref(),
        }
    }
}

fn user_headers(headers: &[(String, Option<Vec<u8>>)]) -> Vec<UserHeader<'_>> {
    headers
        .iter()
        .map(|(name, value)| UserHeader {
            name,
            value: value.as_deref(),
        })
        .collect()
}

/// How long a connect, read or write may take by default: long enough for a
/// poll that waits on a synced batch, short enough that a dead server is
/// reported instead of waited on forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed, as the client sees it.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No server answered at the address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address, as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed, timed out or was closed.
    #[error("connection to the server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with an error status.
    #[error("{} (status {status}): {message}", status_name(*status))]
    Server {
        /// The status code ([`status_name`] names it).
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The reply does not parse, is over the limit, or a record in it fails
    /// its checksum.
    #[error("bad reply from the server: {0}")]
    Decode(String),
    /// The request cannot be sent as asked (a key too long for its field).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The status code of a server error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The name of a reply status code ([`api::status`]).
pub fn status_name(code: u16) -> &'static str {
    match code {
        status::OK => "ok",
        status::FRAME_TOO_LARGE => "frame too large",
        status::MALFORMED => "malformed request",
        status::UNKNOWN_COMMAND => "unknown command",
        status::TOPIC_NOT_FOUND => "topic not found",
        status::INVALID => "invalid request",
        status::STORAGE => "storage error",
        status::PARTITION_NOT_FOUND => "partition not found",
        status::STREAM_NOT_FOUND => "stream not found",
        status::ALREADY_EXISTS => "already exists",
        status::CONSUMER_NOT_FOUND => "consumer offset not found",
        status::UNAUTHENTICATED => "not logged in",
        status::FORBIDDEN => "forbidden",
        status::TOO_MANY_CONNECTIONS => "too many connections",
        status::PARTITION_FAILED => "partition failed",
        status::REBALANCING => "group rebalancing",
        status::STALE_GENERATION => "stale generation",
        status::UNKNOWN_MEMBER => "unknown group member",
        status::NOT_ASSIGNED => "partition not assigned",
        _ => "unknown status",
    }
}

/// One connection to a broker.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    correlation: u32,
    max_reply_len: u32,
}

impl Client {
    /// Connects to `addr` (`host:port`), trying each address it resolves to,
    /// with [`DEFAULT_TIMEOUT`] on the connect and on every read and write.
    pub fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with_timeout(addr, DEFAULT_TIMEOUT)
    }

    /// Connects as [`Client::connect`] does, with `timeout` on the connect
    /// and on every read and write instead of [`DEFAULT_TIMEOUT`]: the crash
    /// torture and the reliability tests want "the server hangs" reported
    /// sooner, as an error, than a person at the command line would.
    pub fn connect_with_timeout(
        addr: impl ToSocketAddrs + std::fmt::Display,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(connect_error)?.collect();
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        );
        for resolved in addrs {
            match TcpStream::connect_timeout(&resolved, timeout) {
                Ok(stream) => return Client::from_stream(stream, timeout).map_err(connect_error),
                Err(error) => last = error,
            }
        }
        Err(connect_error(last))
    }

    fn from_stream(stream: TcpStream, timeout: Duration) -> std::io::Result<Client> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        // One small request at a time: Nagle's delay would be pure latency.
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation: 0,
            max_reply_len: DEFAULT_MAX_FRAME_LEN,
        })
    }

    /// Changes the read and write timeout (`None` waits forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        Ok(())
    }

    /// Changes the largest reply frame accepted (`frame_len`, default stage
    /// 3's 16 MiB); a longer one is an error before anything is allocated.
    pub fn set_max_reply_len(&mut self, max: u32) {
        self.max_reply_len = max.max(MIN_FRAME_LEN);
    }

    /// Sends one request and returns the body of an ok reply; an error
    /// status becomes [`ClientError::Server`] with the server's message, and
    /// a reply to another request is refused.
    pub fn call(&mut self, code: u16, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        let frame = request_frame(code, self.correlation, body)?;
        self.stream.write_all(&frame)?;
        let (status, correlation, body) = self.read_reply()?;
        // The server answers a frame too short to hold a correlation id with
        // status `Malformed` and correlation 0, and closes the connection:
        // that error is still this request's. Any other mismatch is a stream
        // out of step (rejected: trusting the status alone, which would take
        // another request's error for this one's).
        let ours = correlation == self.correlation || (status != 0 && correlation == 0);
        if !ours {
            return Err(ClientError::Decode(format!(
                "reply to request {correlation}, expected {}",
                self.correlation
            )));
        }
        if status == 0 {
            Ok(body)
        } else {
            Err(ClientError::Server {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
            })
        }
    }

    // ANCHOR: read_reply
    /// Reads one reply frame as it comes: `(status, correlation, body)`. A
    /// length over the limit ([`Client::set_max_reply_len`]) is refused
    /// before its body is allocated. Public for tests that send raw frames
    /// ([`Client::send_raw`]); [`Client::call`] uses it and checks the
    /// correlation id.
    pub fn read_reply(&mut self) -> Result<(u16, u32, Vec<u8>), ClientError> {
        let mut header = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut header)?;
        let [l0, l1, l2, l3, s0, s1, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let status = u16::from_le_bytes([s0, s1]);
        let correlation = u32::from_le_bytes([c0, c1, c2, c3]);
        if len > self.max_reply_len {
            return Err(ClientError::Decode(format!(
                "a reply of {len} bytes is over the {}-byte limit",
                self.max_reply_len
            )));
        }
        if len < MIN_FRAME_LEN {
            return Err(ClientError::Decode(format!(
                "a reply of {len} bytes is shorter than a header"
            )));
        }
        let mut body = vec![0u8; (len - MIN_FRAME_LEN) as usize];
        self.stream.read_exact(&mut body)?;
        Ok((status, correlation, body))
    }
    // ANCHOR_END: read_reply

    /// Writes `bytes` as they are, whatever they claim to be: for tests
    /// that lie to the server (truncated frames, lying lengths). The reply,
    /// if any, is read with [`Client::read_reply`].
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// The socket itself, for tests that shut down one direction or flush.
    /// Rejected: a method per socket operation, each used by one test.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Whether the server closes the connection within `patience`: a read
    /// meets end of file or a reset. Bytes still in flight (the rest of a
    /// reply) are read and dropped, for `patience` at most in all (a server
    /// that keeps sending is not closing). Leaves `patience` as the read
    /// timeout.
    pub fn is_closed_by_server(&mut self, patience: Duration) -> bool {
        // A zero timeout is an error for `set_read_timeout`; one that cannot
        // be set means the socket is already unusable, which the read says.
        let _ = self.stream.set_read_timeout(Some(patience));
        let deadline = std::time::Instant::now() + patience;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) if std::time::Instant::now() < deadline => continue,
                Ok(_) => return false,
                Err(error) => {
                    // A timeout is "still open"; any other error (a reset)
                    // is the server gone.
                    return !matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }

    /// Sends a JSON request and reads a JSON reply.
    pub fn call_json<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        code: u16,
        request: &Q,
    ) -> Result<A, ClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|error| ClientError::Invalid(format!("encoding the request: {error}")))?;
        let reply = self.call(code, &body)?;
        serde_json::from_slice(&reply).map_err(|error| {
            ClientError::Decode(format!(
                "reply to command {code} is not the JSON expected: {error}"
            ))
        })
    }

    /// Creates a stream.
    pub fn create_stream(&mut self, name: &str) -> Result<api::StreamInfo, ClientError> {
        let request = api::CreateStream {
            name: name.to_string(),
        };
        self.call_json(code::CREATE_STREAM, &request)
    }

    /// Every stream, in name order.
    pub fn list_streams(&mut self) -> Result<Vec<api::StreamInfo>, ClientError> {
        let list: api::StreamList = self.call_json(code::LIST_STREAMS, &api::Empty {})?;
        Ok(list.streams)
    }

    /// Deletes a stream and its topics.
    pub fn delete_stream(&mut self, name: &str) -> Result<(), ClientError> {
        let request = api::StreamName {
            name: name.to_string(),
        };
        let _: api::Empty = self.call_json(code::DELETE_STREAM, &request)?;
        Ok(())
    }

    /// Creates a topic; the reply is the topic with its settings resolved.
    pub fn create_topic(
        &mut self,
        topic: &api::CreateTopic,
    ) -> Result<api::TopicInfo, ClientError> {
        self.call_json(code::CREATE_TOPIC_NAMED, topic)
    }

    /// Creates topic `topic` with `partitions` partitions by id (stage 4's
    /// binary command, code 10); fine if it exists with as many. Kept for
    /// clients that name topics by number only, as the crash torture does
    /// so it also runs against a server without named topics.
    pub fn create_topic_by_id(&mut self, topic: u32, partitions: u32) -> Result<(), ClientError> {
        let body = encode_create_topic(topic, partitions);
        self.call(code::CREATE_TOPIC, &body)?;
        Ok(())
    }

    /// The topics of `stream`, or of every stream, in id order.
    pub fn list_topics(
        &mut self,
        stream: Option<&str>,
    ) -> Result<Vec<api::TopicInfo>, ClientError> {
        let request = api::ListTopics {
            stream: stream.map(str::to_string),
        };
        let list: api::TopicList = self.call_json(code::LIST_TOPICS, &request)?;
        Ok(list.topics)
    }

    /// A topic with its partitions' state.
    pub fn describe_topic(&mut self, topic: &api::TopicRef) -> Result<api::TopicInfo, ClientError> {
        self.call_json(code::DESCRIBE_TOPIC, topic)
    }

    /// Deletes a topic and its records.
    pub fn delete_topic(&mut self, topic: &api::TopicRef) -> Result<(), ClientError> {
        let _: api::Empty = self.call_json(code::DELETE_TOPIC, topic)?;
        Ok(())
    }

    /// Produces `payloads` as one batch (stage 5's produce), record ids 0.
    pub fn produce<P: AsRef<[u8]>>(
        &mut self,
        topic: u32,
        partitioning: Partitioning,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<Produced, ClientError> {
        let records = payloads.into_iter().map(|payload| (0, payload));
        self.produce_with_ids(topic, partitioning, records)
    }

    /// Produces `(id, payload)` records as one batch: the id is stored with
    /// each record and served back by a poll, which is how the crash
    /// torture and the reliability tests tell every message from another.
    pub fn produce_with_ids<P: AsRef<[u8]>>(
        &mut self,
        topic: u32,
        partitioning: Partitioning,
        records: impl IntoIterator<Item = (u64, P)>,
    ) -> Result<Produced, ClientError> {
        check_partitioning(&partitioning)?;
        let records: Vec<(u64, P)> = records.into_iter().collect();
        let count = batch_count(records.len())?;
        let mut body = encode_produce_head(topic, &partitioning, count);
        for (id, payload) in &records {
            record::encode(&mut body, 0, 0, *id, payload.as_ref());
        }
        let reply = self.call(code::PRODUCE, &body)?;
        Produced::decode(&reply).map_err(|error| ClientError::Decode(error.to_string()))
    }

    /// Produces `records` as one batch, each with its key, headers, create
    /// time and value: stage 5's produce frame, each record encoded with
    /// [`record::encode_contents`] (a record with none of these is sent
    /// plain, byte for byte what [`Client::produce_with_ids`] sends).
    pub fn send_records(
        &mut self,
        topic: u32,
        partitioning: Partitioning,
        records: &[ProducerRecord],
    ) -> Result<Produced, ClientError> {
        check_partitioning(&partitioning)?;
        let count = batch_count(records.len())?;
        let mut body = encode_produce_head(topic, &partitioning, count);
        for producer_record in records {
            let contents = producer_record.contents();
            let payload_len = record::encoded_len(&contents) - RECORD_HEADER_LEN;
            if payload_len > MAX_PAYLOAD_LEN as usize {
                return Err(ClientError::Invalid(format!(
                    "a record of {payload_len} bytes is over the {MAX_PAYLOAD_LEN}-byte limit"
                )));
            }
            record::encode_contents(&mut body, 0, 0, producer_record.id, &contents);
        }
        let reply = self.call(code::PRODUCE, &body)?;
        Produced::decode(&reply).map_err(|error| ClientError::Decode(error.to_string()))
    }

    /// Up to `count` records of one partition from `offset` (stage 5's
    /// poll), checksums verified.
    pub fn poll(
        &mut self,
        topic: u32,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Result<Vec<Record>, ClientError> {
        let reply = self.call(code::POLL, &encode_poll(topic, partition, offset, count))?;
        decode_polled(&reply)
    }

    /// A poll by position ([`api::PollBy`]), checksums verified; with
    /// `auto_commit` the server has stored the consumer's offset past the
    /// last record returned before it answered.
    pub fn poll_by(&mut self, poll: &api::PollBy) -> Result<Vec<Record>, ClientError> {
        let reply = self.call(code::POLL_BY, &poll.encode())?;
        decode_polled(&reply)
    }

    /// Stores a consumer's offset: the next offset it will read.
    pub fn store_offset(&mut self, offset: &api::StoreOffset) -> Result<(), ClientError> {
        let _: api::Empty = self.call_json(code::STORE_OFFSET, offset)?;
        Ok(())
    }

    /// A consumer's stored offsets in every partition of a topic.
    pub fn get_offsets(
        &mut self,
        consumer: &str,
        topic: &api::TopicRef,
    ) -> Result<api::ConsumerOffsets, ClientError> {
        let request = api::GetOffsets {
            consumer: consumer.to_string(),
            topic: topic.clone(),
        };
        self.call_json(code::GET_OFFSETS, &request)
    }

    /// The server's counters.
    pub fn stats(&mut self) -> Result<api::Stats, ClientError> {
        self.call_json(code::STATS, &api::Empty {})
    }

    /// Logs this connection in.
    pub fn login(&mut self, login: &api::Login) -> Result<(), ClientError> {
        let _: api::Empty = self.call_json(code::LOGIN, login)?;
        Ok(())
    }

    /// Joins a consumer group (code 32), or joins again with `member`; the
    /// answer waits for the group's rebalance, so the read timeout is
    /// lifted to [`JOIN_TIMEOUT`] for this call. [`GroupConsumer`] does
    /// this, and everything after it, for you.
    pub fn join_group(&mut self, join: &api::JoinGroup) -> Result<api::GroupJoined, ClientError> {
        let before = self.stream.read_timeout()?;
        self.stream
            .set_read_timeout(Some(before.map_or(JOIN_TIMEOUT, |t| t.max(JOIN_TIMEOUT))))?;
        let joined = self.call_json(code::JOIN_GROUP, join);
        self.stream.set_read_timeout(before)?;
        joined
    }

    /// A group member's heartbeat (code 33): `Ok` while its generation
    /// stands; [`status::REBALANCING`], [`status::STALE_GENERATION`] or
    /// [`status::UNKNOWN_MEMBER`] when it must join again.
    pub fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), ClientError> {
        let request = api::Heartbeat {
            group: group.to_string(),
            member: member.to_string(),
            generation,
        };
        let _: api::Empty = self.call_json(code::HEARTBEAT, &request)?;
        Ok(())
    }

    /// A member leaves its group (code 34): the others rebalance at once.
    pub fn leave_group(&mut self, group: &str, member: &str) -> Result<(), ClientError> {
        let request = api::LeaveGroup {
            group: group.to_string(),
            member: member.to_string(),
        };
        let _: api::Empty = self.call_json(code::LEAVE_GROUP, &request)?;
        Ok(())
    }

    /// A member's poll of one of its partitions (code 35), from the group's
    /// committed offset or `poll.offset`; commits nothing. Checksums verified.
    pub fn group_poll(&mut self, poll: &api::GroupPoll) -> Result<Vec<Record>, ClientError> {
        let body = serde_json::to_vec(poll)
            .map_err(|error| ClientError::Invalid(format!("encoding the request: {error}")))?;
        let reply = self.call(code::GROUP_POLL, &body)?;
        decode_polled(&reply)
    }

    /// A member's commit (code 36): the next offset the group reads.
    pub fn commit_offset(&mut self, commit: &api::CommitOffset) -> Result<(), ClientError> {
        let _: api::Empty = self.call_json(code::COMMIT_OFFSET, commit)?;
        Ok(())
    }

    /// Every group the broker knows since it started (code 37).
    pub fn list_groups(&mut self) -> Result<Vec<api::GroupSummary>, ClientError> {
        let list: api::GroupList = self.call_json(code::LIST_GROUPS, &api::Empty {})?;
        Ok(list.groups)
    }

    /// A group's members, assignment and offsets (code 38).
    pub fn describe_group(&mut self, group: &str) -> Result<api::GroupDescription, ClientError> {
        let request = api::GroupName {
            group: group.to_string(),
        };
        self.call_json(code::DESCRIBE_GROUP, &request)
    }
}

/// How long [`Client::join_group`] waits for its answer: a rebalance waits
/// at most the longest session timeout a member may have (300 s), and a
/// little more for the server's timer.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(330);

/// A partitioning the produce frame can carry: a key for hashing has at
/// most 65535 bytes (its length is a `u16`).
fn check_partitioning(partitioning: &Partitioning) -> Result<(), ClientError> {
    if let Partitioning::Key(key) = partitioning
        && key.len() > usize::from(u16::MAX)
    {
        return Err(ClientError::Invalid(format!(
            "a key has at most {} bytes, got {}",
            u16::MAX,
            key.len()
        )));
    }
    Ok(())
}

/// The count field of a batch of `len` records.
fn batch_count(len: usize) -> Result<u32, ClientError> {
    u32::try_from(len).map_err(|_| ClientError::Invalid(format!("{len} records in one batch")))
}

/// A request frame: stage 3's 10-byte header, then the body, in one buffer
/// so it goes out in one write.
pub fn request_frame(code: u16, correlation: u32, body: &[u8]) -> Result<Vec<u8>, ClientError> {
    let len = body
        .len()
        .checked_add(MIN_FRAME_LEN as usize)
        .and_then(|len| u32::try_from(len).ok())
        .ok_or_else(|| ClientError::Invalid(format!("a body of {} bytes", body.len())))?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(&correlation.to_le_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// A poll reply: `count u32` and that many records, every length checked
/// against the bytes present, every extended record's section parsed and
/// every checksum verified.
pub fn decode_polled(reply: &[u8]) -> Result<Vec<Record>, ClientError> {
    let bad = |error: &dyn std::fmt::Display| ClientError::Decode(error.to_string());
    let mut reader = BodyReader::new(reply);
    let count = reader.u32("count").map_err(|e| bad(&e))?;
    let records = reply.get(4..).unwrap_or_default();
    if records.is_empty() {
        return match count {
            0 => Ok(Vec::new()),
            _ => Err(bad(&format!(
                "the reply says {count} records and holds none"
            ))),
        };
    }
    let extents = record::walk(records).map_err(|e| bad(&e))?;
    if extents.len() != count as usize {
        let found = extents.len();
        return Err(bad(&format!(
            "the reply says {count} records and holds {found}"
        )));
    }
    let mut out = Vec::with_capacity(extents.len());
    for (at, len) in extents {
        let bytes = &records[at..at + len];
        let header =
            header_at(bytes).ok_or_else(|| bad(&BodyError::TrailingBytes { extra: len }))?;
        if !checksum_matches(bytes) {
            return Err(bad(&format!("record {} fails its checksum", header.offset)));
        }
        let contents = record::contents(bytes).map_err(|e| bad(&e))?;
        out.push(Record {
            offset: header.offset,
            timestamp: header.timestamp,
            id: header.id,
            payload: contents.value.unwrap_or_default().to_vec(),
            null_value: contents.value.is_none(),
            key: contents.key.map(<[u8]>::to_vec),
            headers: contents
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect(),
            create_time: contents.create_time,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::TcpListener;
    use std::thread::JoinHandle;

    use stage6_broker::shards::protocol::Request;

    use super::*;
    use crate::api::{PollBy, PollKind, TopicRef};

    /// A server that reads one request, checks it with `check`, and answers
    /// with the raw bytes `reply` returns (given the request's correlation).
    fn one_shot(
        check: impl FnOnce(u16, Vec<u8>) + Send + 'static,
        reply: impl FnOnce(u32) -> Vec<u8> + Send + 'static,
    ) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut header = [0u8; HEADER_LEN];
            stream.read_exact(&mut header).unwrap();
            let len = u32::from_le_bytes(header[0..4].try_into().unwrap());
            let code = u16::from_le_bytes(header[4..6].try_into().unwrap());
            let correlation = u32::from_le_bytes(header[6..10].try_into().unwrap());
            let mut body = vec![0; (len - MIN_FRAME_LEN) as usize];
            stream.read_exact(&mut body).unwrap();
            check(code, body);
            stream.write_all(&reply(correlation)).unwrap();
        });
        (addr, thread)
    }

    fn frame(status: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(body.len() as u32 + MIN_FRAME_LEN).to_le_bytes());
        out.extend_from_slice(&status.to_le_bytes());
        out.extend_from_slice(&correlation.to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The book's worked example of a JSON command (the protocol reference
    /// includes this test, so the listing cannot drift from the code).
    #[test]
    fn client_frames_a_json_command_as_the_book_shows() {
        let body = serde_json::to_vec(&TopicRef::Name("orders".into())).unwrap();
        let frame = request_frame(code::DESCRIBE_TOPIC, 1, &body).unwrap();
        // ANCHOR: describe_frame
        let expected: &[u8] = &[
            0x17, 0x00, 0x00, 0x00, // frame_len 23: 6 + the 17-byte body
            0x19, 0x00, // code 25: describe topic
            0x01, 0x00, 0x00, 0x00, // correlation 1
            b'{', b'"', b'n', b'a', b'm', b'e', b'"', b':', // {"name":
            b'"', b'o', b'r', b'd', b'e', b'r', b's', b'"', b'}', // "orders"}
        ];
        // ANCHOR_END: describe_frame
        assert_eq!(frame, expected);
    }

    #[test]
    fn client_sends_json_commands_and_reads_json_replies() {
        let (addr, server) = one_shot(
            |code, body| {
                assert_eq!(code, code::DESCRIBE_TOPIC);
                assert_eq!(body, br#"{"name":"orders"}"#);
            },
            |correlation| {
                let info = api::TopicInfo {
                    stream: "default".into(),
                    name: "orders".into(),
                    id: 3,
                    partitions: 2,
                    fsync: "every-batch".into(),
                    segment_size: 1 << 20,
                    retention_bytes: None,
                    retention_seconds: None,
                    partition_info: Vec::new(),
                };
                frame(0, correlation, &serde_json::to_vec(&info).unwrap())
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let info = client
            .describe_topic(&TopicRef::Name("orders".into()))
            .unwrap();
        assert_eq!((info.id, info.partitions), (3, 2));
        server.join().unwrap();
    }

    #[test]
    fn client_reports_server_errors_with_status_and_message() {
        let (addr, server) = one_shot(
            |_, _| {},
            |correlation| frame(status::STREAM_NOT_FOUND, correlation, b"no stream x"),
        );
        let mut client = Client::connect(&addr).unwrap();
        let error = client.delete_stream("x").unwrap_err();
        assert_eq!(error.status(), Some(status::STREAM_NOT_FOUND));
        assert_eq!(
            error.to_string(),
            "stream not found (status 8): no stream x"
        );
        server.join().unwrap();
    }

    #[test]
    fn client_refuses_a_reply_over_the_limit_before_reading_it() {
        let (addr, server) = one_shot(
            |_, _| {},
            |correlation| {
                // A header claiming 4 GiB and no body at all.
                let mut header = frame(0, correlation, b"");
                header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
                header
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let error = client.stats().unwrap_err();
        assert!(
            matches!(&error, ClientError::Decode(message) if message.contains("over the")),
            "{error}"
        );
        server.join().unwrap();
    }

    #[test]
    fn client_refuses_a_reply_to_another_request_but_takes_a_malformed_with_zero() {
        let (addr, server) = one_shot(|_, _| {}, |correlation| frame(0, correlation + 1, b"{}"));
        let mut client = Client::connect(&addr).unwrap();
        let error = client.stats().unwrap_err();
        assert!(
            matches!(&error, ClientError::Decode(m) if m.contains("reply to request 2")),
            "{error}"
        );
        server.join().unwrap();
        // A frame too short to carry a correlation is answered with 0.
        let (addr, server) = one_shot(|_, _| {}, |_| frame(2, 0, b"frame too short"));
        let mut client = Client::connect(&addr).unwrap();
        let error = client.stats().unwrap_err();
        assert_eq!(error.status(), Some(2), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn client_produce_with_ids_sends_each_records_id() {
        let (addr, server) = one_shot(
            |code, body| {
                let request = Request::decode(code, body).unwrap().unwrap();
                let Request::Produce {
                    topic,
                    partitioning,
                    body,
                    records_at,
                } = request
                else {
                    panic!("not a produce: {request:?}");
                };
                assert_eq!((topic, partitioning), (1, Partitioning::Explicit(3)));
                let count = record::walk(&body[records_at..]).unwrap().len() as u32;
                let mut reply = count.to_le_bytes().to_vec();
                reply.extend_from_slice(&body[records_at..]);
                let records = decode_polled(&reply).unwrap();
                let got: Vec<_> = records.into_iter().map(|r| (r.id, r.payload)).collect();
                assert_eq!(got, vec![(7, b"a".to_vec()), (9, b"bc".to_vec())]);
            },
            |correlation| {
                // Stage 4's produce reply: partition, first offset, count,
                // durable.
                let mut body = 3u32.to_le_bytes().to_vec();
                body.extend_from_slice(&40u64.to_le_bytes());
                body.extend_from_slice(&2u32.to_le_bytes());
                body.push(1);
                frame(0, correlation, &body)
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let produced = client
            .produce_with_ids(1, Partitioning::Explicit(3), [(7, &b"a"[..]), (9, b"bc")])
            .unwrap();
        assert_eq!((produced.first_offset, produced.count), (40, 2));
        server.join().unwrap();
    }

    #[test]
    fn client_send_records_sends_keys_headers_and_reads_them_back() {
        let sent = vec![
            ProducerRecord {
                id: 1,
                ..ProducerRecord::value("plain")
            },
            ProducerRecord {
                id: 2,
                key: Some(b"k1".to_vec()),
                headers: vec![("h1".into(), Some(b"v1".to_vec())), ("h2".into(), None)],
                create_time: Some(1_767_225_600_000),
                value: Some(b"with key".to_vec()),
            },
            ProducerRecord {
                id: 3,
                key: Some(b"k1".to_vec()),
                value: None,
                ..ProducerRecord::default()
            },
        ];
        let expected = sent.clone();
        let (addr, server) = one_shot(
            move |code, body| {
                let Request::Produce {
                    body, records_at, ..
                } = Request::decode(code, body).unwrap().unwrap()
                else {
                    panic!("not a produce");
                };
                let records = &body[records_at..];
                // The plain one is stage 4's record, byte for byte.
                let mut plain = Vec::new();
                record::encode(&mut plain, 0, 0, 1, b"plain");
                assert!(records.starts_with(&plain));
                let mut reply = 3u32.to_le_bytes().to_vec();
                reply.extend_from_slice(records);
                let polled = decode_polled(&reply).unwrap();
                for (polled, sent) in polled.iter().zip(&expected) {
                    assert_eq!(polled.id, sent.id);
                    assert_eq!(polled.contents(), sent.contents());
                }
                assert!(polled[2].null_value && polled[2].payload.is_empty());
                assert_eq!(polled[1].key.as_deref(), Some(&b"k1"[..]));
                assert_eq!(polled[1].headers[1], ("h2".to_string(), None));
                assert_eq!(polled[1].create_time, Some(1_767_225_600_000));
                assert_eq!((polled[0].key.clone(), polled[0].create_time), (None, None));
            },
            |correlation| {
                let mut body = 0u32.to_le_bytes().to_vec();
                body.extend_from_slice(&0u64.to_le_bytes());
                body.extend_from_slice(&3u32.to_le_bytes());
                body.push(1);
                frame(0, correlation, &body)
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let produced = client
            .send_records(1, Partitioning::Key(b"k1".to_vec()), &sent)
            .unwrap();
        assert_eq!(produced.count, 3);
        server.join().unwrap();
    }

    #[test]
    fn client_poll_by_encodes_the_layout_and_verifies_checksums() {
        let poll = PollBy {
            topic: 1,
            partition: 0,
            kind: PollKind::Next,
            count: 5,
            consumer: "c".into(),
            auto_commit: true,
        };
        let expected = poll.encode();
        let (addr, server) = one_shot(
            move |code, body| {
                assert_eq!(code, code::POLL_BY);
                assert_eq!(body, expected);
            },
            |correlation| {
                let mut body = Vec::new();
                let records = [(7u64, 9u64, 0u64, &b"hello"[..])];
                encode_records(&mut body, records.into_iter());
                // Flip a payload byte: the checksum no longer matches.
                let last = body.len() - 1;
                body[last] ^= 1;
                frame(0, correlation, &body)
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let error = client.poll_by(&poll).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn client_polls_records_back() {
        let (addr, server) = one_shot(
            |code, _| assert_eq!(code, code::POLL),
            |correlation| {
                let mut body = Vec::new();
                let records = [(7u64, 9u64, 0u64, &b"a"[..]), (8, 10, 0, &b"bc"[..])];
                encode_records(&mut body, records.into_iter());
                frame(0, correlation, &body)
            },
        );
        let mut client = Client::connect(&addr).unwrap();
        let records = client.poll(1, 0, 7, 10).unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.timestamp, r.payload.clone()))
            .collect();
        assert_eq!(got, vec![(7, 9, b"a".to_vec()), (8, 10, b"bc".to_vec())]);
        server.join().unwrap();
    }

    #[test]
    fn client_says_why_it_cannot_connect() {
        // Bind then drop: nothing listens on that port any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let error = Client::connect(&addr).unwrap_err();
        assert!(matches!(error, ClientError::Connect { .. }));
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot connect to {addr}"))
        );
    }

    #[test]
    fn client_names_every_status() {
        for code in 0..=18 {
            assert_ne!(status_name(code), "unknown status", "status {code}");
        }
        assert_eq!(status_name(99), "unknown status");
    }

    /// A poll reply's body: the count, then each record.
    fn encode_records<'a>(
        body: &mut Vec<u8>,
        records: impl ExactSizeIterator<Item = (u64, u64, u64, &'a [u8])>,
    ) {
        body.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for (offset, timestamp, id, payload) in records {
            record::encode(body, offset, timestamp, id, payload);
        }
    }
}
