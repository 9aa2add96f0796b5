//! A server's Kafka listener as a load-generator target: one topic, named,
//! its partitions the load generator's partitions, driven with Kafka's own
//! requests (ApiVersions, CreateTopics, Produce, Fetch) encoded by the
//! `kafka-protocol` crate, the codec `rivulet-server`'s Kafka listener
//! decodes with. Beside [`RemoteTarget`](crate::RemoteTarget) on the same
//! server, it runs the same workload through the other door, so the two paths
//! are compared in one run.
//!
//! Every connection asks ApiVersions once, as a Kafka client does, and picks
//! for each request the highest version both sides know (within
//! [`PRODUCE_VERSIONS`], [`FETCH_VERSIONS`], [`CREATE_TOPICS_VERSIONS`]); a
//! server that offers none of them is refused at connect, naming the request.
//! A produce is one record batch (magic 2, no compression) holding the whole
//! batch of payloads, no key, no headers; a fetch asks for one partition from
//! an offset and keeps at most `count` records from that offset on.
//!
//! Deliberate simplifications against a real Kafka client (librdkafka, the
//! Java client): no Metadata request (the server addressed is taken to lead
//! every partition, as a single broker does), no idempotent producer (no
//! producer id, no sequence numbers), no fetch sessions, one request in
//! flight per connection, and acks=0 is not offered (the load generator needs
//! the offset an acknowledgement carries).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::target::{Connection, Polled, Target};

/// Produce versions this target speaks: 3 (the first with record batches,
/// magic 2) to 12. Version 13 names topics by id, not by name.
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 12);
/// Fetch versions this target speaks: 4 (the first with record batches) to
/// 12. Version 13 names topics by id, not by name.
pub const FETCH_VERSIONS: (i16, i16) = (4, 12);
/// CreateTopics versions this target speaks: every one the crate knows.
pub const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
/// The ApiVersions version asked first (the one KIP-511 clients send); a
/// server that does not know it answers in version 0 with its own range.
const API_VERSIONS_VERSION: i16 = 3;

/// The client id every request carries.
const CLIENT_ID: &str = "rivulet-loadgen";
/// How long the server may take over a produce or a topic creation, in
/// milliseconds (the run has its own, shorter, timeout per operation).
const REQUEST_TIMEOUT_MS: i32 = 30_000;
/// The largest response frame accepted: a fetch's is bounded by what it
/// asked for, so anything near this is a broken frame, not data.
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// Bytes a record adds to its value inside a record batch, at most, for
/// this target's records: length, attributes, timestamp and offset deltas,
/// key and value lengths, header count (varints at their widest for
/// values under 2 GiB and deltas under 2^31).
pub const RECORD_OVERHEAD: u32 = 5 + 1 + 10 + 5 + 1 + 5 + 1;
/// A record batch's header: base offset, length, leader epoch, magic, CRC,
/// attributes, last offset delta, timestamps, producer id and epoch, base
/// sequence, record count.
pub const BATCH_OVERHEAD: u32 = 61;

/// What a produce waits for, Kafka's `acks`. acks=0 (no answer at all) is
/// not offered: the load generator needs the offset an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=all` (-1): answered once every in-sync replica has the records.
    /// On `rivulet-server`, one node: once they are synced to disk, whatever
    /// the topic's fsync policy.
    All,
    /// `acks=1`: answered once the leader has appended the records. On
    /// `rivulet-server`: once the partition has appended them, as safe as
    /// the topic's fsync policy makes them (its native produce's promise).
    Leader,
}

impl Acks {
    /// The value sent in a ProduceRequest.
    pub fn code(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
        }
    }

    /// What an answer promises on `rivulet-server` (its Produce handler's
    /// documentation), in words.
    pub fn meaning(self) -> &'static str {
        match self {
            Acks::All => {
                "Kafka acks=all: answered once the records are synced to disk, whatever the \
                 topic's fsync policy"
            }
            Acks::Leader => {
                "Kafka acks=1: answered once the partition has appended the records, as safe \
                 as the topic's fsync policy makes them"
            }
        }
    }
}

/// The request versions a connection settled on with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// ApiVersions, as the server answered it.
    pub api_versions: i16,
    /// Produce.
    pub produce: i16,
    /// Fetch.
    pub fetch: i16,
    /// CreateTopics.
    pub create_topics: i16,
}

/// A server's Kafka listener, at an address.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    name: String,
    addr: SocketAddr,
    topic: String,
    server: String,
    acks: Acks,
    fetch_record_bytes: u32,
    max_wait_ms: i32,
}

impl KafkaTarget {
    /// Drives topic `topic` on the Kafka listener at `addr`; `name` names
    /// the runs (`rivulet-server/kafka`), and `server` says what the
    /// server's side of durability is ("rivulet-server, fsync policy
    /// every-batch"), stated after what the acks setting means. Acks are
    /// [`Acks::All`] unless [`KafkaTarget::with_acks`] says otherwise.
    pub fn new(name: &str, addr: SocketAddr, topic: &str, server: &str) -> KafkaTarget {
        KafkaTarget {
            name: name.to_string(),
            addr,
            topic: topic.to_string(),
            server: server.to_string(),
            acks: Acks::All,
            fetch_record_bytes: 1024 + RECORD_OVERHEAD,
            max_wait_ms: 0,
        }
    }

    /// Produces with `acks`.
    pub fn with_acks(mut self, acks: Acks) -> KafkaTarget {
        self.acks = acks;
        self
    }

    /// Sizes fetches for records that count `bytes` each against a fetch's
    /// byte limit on the server: a fetch of `count` records asks for room
    /// for `count` of them and half of one more, so the server returns
    /// exactly as many as the native poll of `count` does. Kafka bounds a
    /// fetch in bytes, not records, and brokers count differently: a Kafka
    /// broker counts a record's bytes in a batch (its value and up to
    /// [`RECORD_OVERHEAD`] more: the default, for 1 KiB values),
    /// `rivulet-server` its stored size
    /// (`stage6_broker::storage::record::encoded_len`).
    pub fn with_fetch_record_bytes(mut self, bytes: u32) -> KafkaTarget {
        self.fetch_record_bytes = bytes;
        self
    }

    /// Lets a fetch wait up to `ms` milliseconds for records (0, answering
    /// at once as the native poll does, unless said).
    pub fn with_max_wait_ms(mut self, ms: i32) -> KafkaTarget {
        self.max_wait_ms = ms;
        self
    }

    /// Where the listener is.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The topic driven.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The acks setting.
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// The versions a connection to this server settles on (one connection
    /// is opened to ask).
    pub async fn versions(&self) -> anyhow::Result<Versions> {
        Ok(self.open().await?.versions)
    }

    /// A new connection, ApiVersions asked and versions chosen.
    async fn open(&self) -> anyhow::Result<KafkaConnection> {
        let socket = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to the Kafka listener at {}", self.addr))?;
        // Requests are small and each waits for its answer: Nagle's
        // algorithm would only delay them.
        socket.set_nodelay(true)?;
        let mut connection = KafkaConnection {
            socket: BufReader::with_capacity(64 * 1024, socket),
            next_correlation: 1,
            versions: Versions {
                api_versions: API_VERSIONS_VERSION,
                produce: PRODUCE_VERSIONS.1,
                fetch: FETCH_VERSIONS.1,
                create_topics: CREATE_TOPICS_VERSIONS.1,
            },
            topic: TopicName(StrBytes::from_string(self.topic.clone())),
            acks: self.acks,
            fetch_record_bytes: self.fetch_record_bytes,
            max_wait_ms: self.max_wait_ms,
            frame: BytesMut::new(),
        };
        connection.negotiate().await.context("ApiVersions")?;
        Ok(connection)
    }
}

impl Target for KafkaTarget {
    type Connection = KafkaConnection;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn durability(&self) -> String {
        format!("{} ({})", self.acks.meaning(), self.server)
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        let mut connection = self.open().await?;
        let mut topic = CreatableTopic::default();
        topic.name = connection.topic.clone();
        topic.num_partitions = i32::try_from(partitions).context("too many partitions")?;
        topic.replication_factor = 1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = REQUEST_TIMEOUT_MS;
        let version = connection.versions.create_topics;
        let response = connection
            .call(&request, version)
            .await
            .context("CreateTopics")?;
        let Some(result) = response.topics.iter().find(|t| t.name == connection.topic) else {
            bail!("CreateTopics: no answer for topic {}", self.topic);
        };
        match result.error_code {
            0 | 36 => Ok(()), // created, or TOPIC_ALREADY_EXISTS
            code => Err(kafka_error(code, result.error_message.as_ref()))
                .with_context(|| format!("CreateTopics {} ({partitions} partitions)", self.topic)),
        }
    }

    async fn connect(&self) -> anyhow::Result<KafkaConnection> {
        self.open().await
    }
}

/// One connection of a [`KafkaTarget`].
#[derive(Debug)]
pub struct KafkaConnection {
    socket: BufReader<TcpStream>,
    next_correlation: i32,
    versions: Versions,
    topic: TopicName,
    acks: Acks,
    fetch_record_bytes: u32,
    max_wait_ms: i32,
    /// The request being written, reused from one request to the next.
    frame: BytesMut,
}

impl KafkaConnection {
    /// The versions this connection uses.
    pub fn versions(&self) -> Versions {
        self.versions
    }

    /// Asks ApiVersions and picks each request's version. A server that
    /// does not know the version asked answers UNSUPPORTED_VERSION in
    /// version 0, listing its own ApiVersions range: asked again in the
    /// highest of them.
    async fn negotiate(&mut self) -> anyhow::Result<()> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str(CLIENT_ID);
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut version = API_VERSIONS_VERSION;
        let mut response = self.api_versions(&request, version).await?;
        if response.error_code == ResponseError::UnsupportedVersion.code()
            && let Some(range) = find(&response, ApiKey::ApiVersions)
            && range.max_version < version
        {
            version = range.max_version.max(0);
            response = self.api_versions(&request, version).await?;
        }
        if response.error_code != 0 {
            return Err(kafka_error(response.error_code, None));
        }
        let pick = |key: ApiKey, (min, max): (i16, i16)| -> anyhow::Result<i16> {
            let Some(range) = find(&response, key) else {
                bail!("the server does not offer {key:?} at all");
            };
            let chosen = range.max_version.min(max);
            if chosen < min.max(range.min_version) {
                bail!(
                    "the server offers {key:?} versions {}..={}, this client speaks {min}..={max}",
                    range.min_version,
                    range.max_version
                );
            }
            Ok(chosen)
        };
        self.versions = Versions {
            api_versions: version,
            produce: pick(ApiKey::Produce, PRODUCE_VERSIONS)?,
            fetch: pick(ApiKey::Fetch, FETCH_VERSIONS)?,
            create_topics: pick(ApiKey::CreateTopics, CREATE_TOPICS_VERSIONS)?,
        };
        Ok(())
    }

    /// One ApiVersions round trip. Its response header is version 0 whatever
    /// the version (so a client can read an answer in a version it did not
    /// ask for); an UNSUPPORTED_VERSION answer is in version 0.
    async fn api_versions(
        &mut self,
        request: &ApiVersionsRequest,
        version: i16,
    ) -> anyhow::Result<ApiVersionsResponse> {
        let mut body = self.round_trip(request, version).await?;
        // The error code comes first in every version.
        let unsupported =
            body.len() >= 2 && (&body[..2]).get_i16() == ResponseError::UnsupportedVersion.code();
        let answered = if unsupported { 0 } else { version };
        ApiVersionsResponse::decode(&mut body, answered)
            .with_context(|| format!("decoding an ApiVersions v{answered} response"))
    }

    /// Sends `request` in `version` and decodes its response.
    async fn call<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        let mut body = self.round_trip(request, version).await?;
        R::Response::decode(&mut body, version)
            .with_context(|| format!("decoding a {:?} v{version} response", api_key::<R>()))
    }

    /// Writes one request frame (length, header, body) and reads its
    /// response frame; returns the response body after its header, the
    /// correlation id checked.
    async fn round_trip<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<Bytes> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        encode_request(&mut self.frame, request, version, correlation)?;
        let socket = self.socket.get_mut();
        socket.write_all(&self.frame).await?;
        socket.flush().await?;

        let len = self
            .socket
            .read_u32()
            .await
            .context("reading a response length")? as usize;
        if len > MAX_RESPONSE_BYTES {
            bail!("a response frame of {len} bytes (at most {MAX_RESPONSE_BYTES} expected)");
        }
        let mut body = vec![0; len];
        self.socket
            .read_exact(&mut body)
            .await
            .context("reading a response")?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .context("decoding a response header")?;
        if header.correlation_id != correlation {
            bail!(
                "a response with correlation id {} to request {correlation} ({:?})",
                header.correlation_id,
                api_key::<R>()
            );
        }
        Ok(body)
    }
}

impl Connection for KafkaConnection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let index = i32::try_from(partition).context("partition out of Kafka's range")?;
        let request = produce_request(&self.topic, index, payloads, self.acks, now_ms())?;
        let version = self.versions.produce;
        let response = self.call(&request, version).await.context("Produce")?;
        let answer = response
            .responses
            .iter()
            .filter(|t| t.name == self.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == index);
        let Some(answer) = answer else {
            bail!(
                "Produce: no answer for {} partition {partition}",
                self.topic.0
            );
        };
        if answer.error_code != 0 {
            return Err(kafka_error(
                answer.error_code,
                answer.error_message.as_ref(),
            ))
            .with_context(|| format!("Produce of {} records", payloads.len()));
        }
        u64::try_from(answer.base_offset)
            .with_context(|| format!("Produce: base offset {}", answer.base_offset))
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        let index = i32::try_from(partition).context("partition out of Kafka's range")?;
        let from = i64::try_from(offset).context("offset out of Kafka's range")?;
        let max_bytes = fetch_bytes(count, self.fetch_record_bytes);
        let request = fetch_request(&self.topic, index, from, max_bytes, self.max_wait_ms);
        let version = self.versions.fetch;
        let response = self.call(&request, version).await.context("Fetch")?;
        if response.error_code != 0 {
            return Err(kafka_error(response.error_code, None)).context("Fetch");
        }
        let answer = response
            .responses
            .iter()
            .filter(|t| t.topic == self.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == index);
        let Some(answer) = answer else {
            bail!(
                "Fetch: no answer for {} partition {partition}",
                self.topic.0
            );
        };
        if answer.error_code != 0 {
            return Err(kafka_error(answer.error_code, None))
                .with_context(|| format!("Fetch from offset {offset}"));
        }
        let Some(records) = answer.records.clone() else {
            return Ok(Vec::new());
        };
        records_from(records, offset, count).context("Fetch: decoding the record batches")
    }
}

/// The ProduceRequest for `payloads` on `topic`'s partition `partition`:
/// one record batch (magic 2, no compression), each payload a record's
/// value, no key, no headers, every record stamped `timestamp_ms`.
pub fn produce_request(
    topic: &TopicName,
    partition: i32,
    payloads: &[Vec<u8>],
    acks: Acks,
    timestamp_ms: i64,
) -> anyhow::Result<ProduceRequest> {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(record_batch(payloads, timestamp_ms)?);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = topic.clone();
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks.code();
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    request.topic_data = vec![topic_data];
    Ok(request)
}

/// `payloads` as one record batch, as a producer without idempotence sends
/// it: base offset 0 (the broker assigns offsets), no producer id, base
/// sequence -1.
pub fn record_batch(payloads: &[Vec<u8>], timestamp_ms: i64) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = payloads
        .iter()
        .zip(0i32..)
        .map(|(payload, delta)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(delta),
            // The encoder starts a new batch wherever `offset - sequence`
            // changes, and writes the first record's sequence, less its
            // offset delta, as the batch's base sequence: a sequence that
            // grows with the offset from -1 keeps one batch with no
            // sequence, which is what the decoder gives back too.
            sequence: NO_SEQUENCE.wrapping_add(delta),
            timestamp: timestamp_ms,
            key: None,
            value: Some(Bytes::copy_from_slice(payload)),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::with_capacity(
        BATCH_OVERHEAD as usize
            + payloads
                .iter()
                .map(|p| p.len() + RECORD_OVERHEAD as usize)
                .sum::<usize>(),
    );
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, &records, &options)
        .context("encoding a record batch")?;
    Ok(batch.freeze())
}

/// The FetchRequest for `topic`'s partition `partition` from `offset`, at
/// most `max_bytes` of records: a consumer's (replica id -1), no fetch
/// session, read-uncommitted, answered once one byte is there or
/// `max_wait_ms` has passed.
pub fn fetch_request(
    topic: &TopicName,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let mut wanted = FetchPartition::default();
    wanted.partition = partition;
    wanted.current_leader_epoch = -1;
    wanted.fetch_offset = offset;
    wanted.last_fetched_epoch = -1;
    wanted.log_start_offset = -1;
    wanted.partition_max_bytes = max_bytes;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = topic.clone();
    fetch_topic.partitions = vec![wanted];
    let mut request = FetchRequest::default();
    request.replica_id = (-1).into();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = max_bytes;
    request.isolation_level = 0;
    request.session_id = 0;
    // FINAL_EPOCH: a full fetch that opens no session.
    request.session_epoch = -1;
    request.topics = vec![fetch_topic];
    request
}

/// The bytes a fetch of `count` records asks for, each record counting
/// `record_bytes` against the limit: room for `count` records and half of
/// one more (so a broker that counts a little differently still returns
/// `count`, and never `count + 1`), and a batch header.
pub fn fetch_bytes(count: u32, record_bytes: u32) -> i32 {
    let bytes = u64::from(BATCH_OVERHEAD)
        + u64::from(count) * u64::from(record_bytes)
        + u64::from(record_bytes / 2);
    i32::try_from(bytes).unwrap_or(i32::MAX)
}

/// The records of a fetch answer's `records` bytes, from `offset` on, at
/// most `count` of them. Whole batches are decoded (their checksums
/// checked); a batch cut short at the end, which a Kafka broker may send
/// when the size limit falls inside it, is left out, and so are records
/// below `offset` (a broker answers with the whole batch that holds it).
pub fn records_from(mut records: Bytes, offset: u64, count: u32) -> anyhow::Result<Vec<Polled>> {
    let mut polled = Vec::with_capacity(count as usize);
    // Base offset (8 bytes), then the length of the rest of the batch (4).
    while records.len() >= 12 && polled.len() < count as usize {
        let len = (&records[8..12]).get_i32();
        let Ok(len) = usize::try_from(len) else {
            bail!("a record batch of length {len}");
        };
        if records.len() < 12 + len {
            break; // cut short
        }
        let mut batch = records.split_to(12 + len);
        let set = RecordBatchDecoder::decode(&mut batch)?;
        for record in set.records {
            if record.control || record.offset < 0 || (record.offset as u64) < offset {
                continue;
            }
            if polled.len() == count as usize {
                break;
            }
            let Some(value) = record.value else {
                bail!("record {} has no value", record.offset);
            };
            polled.push(Polled {
                offset: record.offset as u64,
                payload: value.to_vec(),
            });
        }
    }
    Ok(polled)
}

/// Writes `request` as a whole frame into `frame` (cleared first): its
/// length, its header in the version its API key and `version` call for,
/// then its body.
pub fn encode_request<R: Request>(
    frame: &mut BytesMut,
    request: &R,
    version: i16,
    correlation: i32,
) -> anyhow::Result<()> {
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    let header_version = R::header_version(version);
    let len = header.compute_size(header_version)? + request.compute_size(version)?;
    frame.clear();
    frame.reserve(4 + len);
    frame.put_u32(u32::try_from(len).context("a request over 4 GiB")?);
    header.encode(frame, header_version)?;
    request
        .encode(frame, version)
        .with_context(|| format!("encoding a {:?} v{version} request", api_key::<R>()))?;
    Ok(())
}

/// The API key of request type `R`, for messages.
fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// The version range the server gave for `key`.
fn find(
    response: &ApiVersionsResponse,
    key: ApiKey,
) -> Option<&kafka_protocol::messages::api_versions_response::ApiVersion> {
    response.api_keys.iter().find(|k| k.api_key == key as i16)
}

/// A Kafka error code as an error naming it as Kafka's documentation does
/// (`TOPIC_ALREADY_EXISTS (36)`), with the server's message if it sent one.
pub fn kafka_error(code: i16, message: Option<&StrBytes>) -> anyhow::Error {
    let name = match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "UNKNOWN".to_string(),
        Some(error) => upper_snake(&format!("{error}")),
    };
    match message {
        Some(message) if !message.is_empty() => {
            anyhow::anyhow!("Kafka error {name} ({code}): {}", message.as_str())
        }
        _ => anyhow::anyhow!("Kafka error {name} ({code})"),
    }
}

/// `TopicAlreadyExists` as `TOPIC_ALREADY_EXISTS`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Milliseconds since the Unix epoch, the records' creation time.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    //! The encodings checked by decoding them back with the same crate (as
    //! a Kafka listener built on it would), and a whole load run against a
    //! small Kafka server made of the crate's codec and a vector per
    //! partition.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{CreateTopicsResponse, FetchResponse, ProduceResponse};
    use kafka_protocol::protocol::decode_request_header_from_buffer;
    use tokio::net::TcpListener;

    use super::*;
    use crate::{LoadConfig, Stop, Warmup, run};

    fn topic() -> TopicName {
        TopicName(StrBytes::from_static_str("bench"))
    }

    /// A batch of `n` records from `base`, values `value(offset)`.
    fn stored_batch(base: i64, n: i64) -> Bytes {
        let payloads: Vec<Vec<u8>> = (base..base + n).map(value).collect();
        let mut batch = BytesMut::from(record_batch(&payloads, 7).unwrap().as_ref());
        batch[..8].copy_from_slice(&base.to_be_bytes());
        batch.freeze()
    }

    fn value(offset: i64) -> Vec<u8> {
        format!("message {offset}").into_bytes()
    }

    #[test]
    fn a_produce_request_decodes_back_as_one_batch_without_sequence() {
        let payloads: Vec<Vec<u8>> = (0..100).map(value).collect();
        let request = produce_request(&topic(), 3, &payloads, Acks::All, 1234).unwrap();
        let mut frame = BytesMut::new();
        for version in [3, 9, 12] {
            encode_request(&mut frame, &request, version, 77).unwrap();
            let mut frame = frame.clone().freeze();
            assert_eq!(frame.get_u32() as usize, frame.len());
            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            assert_eq!(header.request_api_key, ApiKey::Produce as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
            let decoded = ProduceRequest::decode(&mut frame, version).unwrap();
            assert!(frame.is_empty(), "v{version}: bytes left after the request");
            assert_eq!(decoded.acks, -1);
            let partition = &decoded.topic_data[0].partition_data[0];
            assert_eq!(decoded.topic_data[0].name, topic());
            assert_eq!(partition.index, 3);
            let mut records = partition.records.clone().unwrap();
            let info = RecordBatchDecoder::decode_batch_info(&mut records.clone()).unwrap();
            assert_eq!(info.len(), 1, "one batch");
            assert_eq!(info[0].record_count, 100);
            assert_eq!(info[0].min_offset, 0);
            assert_eq!(info[0].base_sequence, NO_SEQUENCE);
            assert_eq!(info[0].producer_id, NO_PRODUCER_ID);
            assert_eq!(info[0].compression, Compression::None);
            let set = RecordBatchDecoder::decode(&mut records).unwrap();
            assert!(records.is_empty());
            for (record, (payload, offset)) in set.records.iter().zip(payloads.iter().zip(0..)) {
                assert_eq!(record.offset, offset);
                assert_eq!(record.timestamp, 1234);
                assert_eq!(record.key, None);
                assert_eq!(record.value.as_deref(), Some(payload.as_slice()));
            }
        }
    }

    #[test]
    fn a_fetch_request_decodes_back() {
        let request = fetch_request(&topic(), 1, 5000, fetch_bytes(100, 1052), 0);
        let mut frame = BytesMut::new();
        encode_request(&mut frame, &request, 12, 9).unwrap();
        let mut frame = frame.freeze();
        frame.advance(4);
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Fetch as i16);
        let decoded = FetchRequest::decode(&mut frame, 12).unwrap();
        let partition = &decoded.topics[0].partitions[0];
        assert_eq!(decoded.topics[0].topic, topic());
        assert_eq!(partition.partition, 1);
        assert_eq!(partition.fetch_offset, 5000);
        assert_eq!(partition.partition_max_bytes, 61 + 100 * 1052 + 526);
        assert_eq!(decoded.min_bytes, 1);
    }

    #[test]
    fn a_fetch_answer_keeps_count_records_from_the_offset_asked() {
        let mut records = BytesMut::new();
        records.extend_from_slice(&stored_batch(0, 5));
        records.extend_from_slice(&stored_batch(5, 5));
        let cut = stored_batch(10, 5);
        records.extend_from_slice(&cut[..cut.len() - 3]);
        let records = records.freeze();

        let polled = records_from(records.clone(), 3, 4).unwrap();
        let offsets: Vec<u64> = polled.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [3, 4, 5, 6]);
        assert_eq!(polled[0].payload, value(3));
        // The batch cut short is left out, not an error.
        let polled = records_from(records.clone(), 3, 100).unwrap();
        assert_eq!(polled.last().map(|p| p.offset), Some(9));
        assert_eq!(polled.len(), 7);
        assert!(records_from(Bytes::new(), 0, 10).unwrap().is_empty());
        // A damaged batch is an error (its checksum fails).
        let mut damaged = BytesMut::from(records.as_ref());
        damaged[70] ^= 1;
        assert!(records_from(damaged.freeze(), 0, 10).is_err());
    }

    #[test]
    fn kafka_errors_are_named_as_kafka_names_them() {
        let message = StrBytes::from_static_str("topic bench exists");
        let error = kafka_error(36, Some(&message));
        assert_eq!(
            error.to_string(),
            "Kafka error TOPIC_ALREADY_EXISTS (36): topic bench exists"
        );
        assert_eq!(
            kafka_error(3, None).to_string(),
            "Kafka error UNKNOWN_TOPIC_OR_PARTITION (3)"
        );
        assert_eq!(
            kafka_error(-1, None).to_string(),
            "Kafka error UNKNOWN_SERVER_ERROR (-1)"
        );
    }

    /// Partitions of the fake server: the values stored, by partition.
    type Log = Arc<Mutex<HashMap<i32, Vec<Bytes>>>>;

    /// A Kafka server just large enough for the target: ApiVersions (Produce
    /// only up to 9, Fetch up to 11, to check the versions are picked from
    /// what it offers), CreateTopics, Produce, Fetch, one topic. A fetch
    /// answers from the start of the block of 10 holding the offset asked,
    /// as a broker answers from the start of a stored batch.
    async fn fake_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Log::default();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(socket, Arc::clone(&log)));
            }
        });
        addr
    }

    async fn serve(mut socket: TcpStream, log: Log) {
        while let Ok(len) = socket.read_u32().await {
            let mut frame = vec![0; len as usize];
            socket.read_exact(&mut frame).await.unwrap();
            let mut frame = Bytes::from(frame);
            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            let key = ApiKey::try_from(header.request_api_key).unwrap();
            let version = header.request_api_version;
            let mut out = BytesMut::new();
            let mut response_header = ResponseHeader::default();
            response_header.correlation_id = header.correlation_id;
            response_header
                .encode(&mut out, key.response_header_version(version))
                .unwrap();
            match key {
                ApiKey::ApiVersions => api_versions().encode(&mut out, version),
                ApiKey::CreateTopics => {
                    let request = CreateTopicsRequest::decode(&mut frame, version).unwrap();
                    create_topics(request, &log).encode(&mut out, version)
                }
                ApiKey::Produce => {
                    let request = ProduceRequest::decode(&mut frame, version).unwrap();
                    produce(request, &log).encode(&mut out, version)
                }
                ApiKey::Fetch => {
                    let request = FetchRequest::decode(&mut frame, version).unwrap();
                    fetch(request, &log).encode(&mut out, version)
                }
                other => panic!("the fake server got {other:?}"),
            }
            .unwrap();
            socket.write_u32(out.len() as u32).await.unwrap();
            socket.write_all(&out).await.unwrap();
        }
    }

    fn api_versions() -> ApiVersionsResponse {
        let mut response = ApiVersionsResponse::default();
        for (key, min, max) in [
            (ApiKey::Produce, 3, 9),
            (ApiKey::Fetch, 4, 11),
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::CreateTopics, 2, 7),
        ] {
            let mut range = ApiVersion::default();
            range.api_key = key as i16;
            range.min_version = min;
            range.max_version = max;
            response.api_keys.push(range);
        }
        response
    }

    fn create_topics(request: CreateTopicsRequest, log: &Log) -> CreateTopicsResponse {
        let mut response = CreateTopicsResponse::default();
        let mut log = log.lock().unwrap();
        for topic in request.topics {
            let mut result = CreatableTopicResult::default();
            result.error_code = if log.is_empty() { 0 } else { 36 };
            for partition in 0..topic.num_partitions {
                log.entry(partition).or_default();
            }
            result.name = topic.name;
            response.topics.push(result);
        }
        response
    }

    fn produce(request: ProduceRequest, log: &Log) -> ProduceResponse {
        let mut response = ProduceResponse::default();
        for topic in request.topic_data {
            let mut topic_response = TopicProduceResponse::default();
            topic_response.name = topic.name;
            for data in topic.partition_data {
                let mut records = data.records.unwrap();
                let set = RecordBatchDecoder::decode(&mut records).unwrap();
                let mut log = log.lock().unwrap();
                let stored = log.get_mut(&data.index).unwrap();
                let mut answer = PartitionProduceResponse::default();
                answer.index = data.index;
                answer.base_offset = stored.len() as i64;
                stored.extend(set.records.into_iter().map(|r| r.value.unwrap()));
                topic_response.partition_responses.push(answer);
            }
            response.responses.push(topic_response);
        }
        response
    }

    fn fetch(request: FetchRequest, log: &Log) -> FetchResponse {
        let mut response = FetchResponse::default();
        for topic in request.topics {
            let mut topic_response = FetchableTopicResponse::default();
            topic_response.topic = topic.topic;
            for wanted in topic.partitions {
                let log = log.lock().unwrap();
                let stored = &log[&wanted.partition];
                let from = (wanted.fetch_offset as usize / 10) * 10;
                let mut bytes = 0;
                let mut records = Vec::new();
                for (offset, value) in stored.iter().enumerate().skip(from) {
                    bytes += value.len() + 28;
                    if bytes > wanted.partition_max_bytes as usize {
                        break;
                    }
                    let mut record = Record {
                        transactional: false,
                        control: false,
                        delete_horizon: false,
                        partition_leader_epoch: 0,
                        producer_id: NO_PRODUCER_ID,
                        producer_epoch: NO_PRODUCER_EPOCH,
                        timestamp_type: TimestampType::Creation,
                        offset: offset as i64,
                        sequence: NO_SEQUENCE,
                        timestamp: 0,
                        key: None,
                        value: Some(value.clone()),
                        headers: Default::default(),
                    };
                    record.sequence = NO_SEQUENCE.wrapping_add(offset as i32);
                    records.push(record);
                }
                let mut data = PartitionData::default();
                data.partition_index = wanted.partition;
                data.high_watermark = stored.len() as i64;
                let mut encoded = BytesMut::new();
                let options = RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                };
                RecordBatchEncoder::encode(&mut encoded, &records, &options).unwrap();
                data.records = Some(encoded.freeze());
                topic_response.partitions.push(data);
            }
            response.responses.push(topic_response);
        }
        response
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_run_over_kafka_reads_back_every_message() {
        let addr = fake_server().await;
        let target = KafkaTarget::new("fake/kafka", addr, "bench", "a fake server in memory")
            .with_fetch_record_bytes(64 + RECORD_OVERHEAD);
        let versions = target.versions().await.unwrap();
        assert_eq!(
            (versions.produce, versions.fetch, versions.create_topics),
            (9, 11, 7)
        );
        assert!(target.durability().starts_with("Kafka acks=all"));
        let config = LoadConfig {
            message_size: rivulet_datasets::MessageSize::Fixed(64),
            batch: 50,
            poll_batch: 30,
            stop: Stop::Messages(2_000),
            warmup: Warmup::Messages(200),
            ..LoadConfig::default()
        };
        // `run` checks every acknowledged message is read back once, in
        // order, intact.
        let outcome = run(&target, &config, &indicatif::ProgressBar::hidden())
            .await
            .unwrap();
        assert!(outcome.figures.consumer.messages_per_s > 0.0);
        // Preparing again finds the topic there: not an error.
        target.prepare(2).await.unwrap();
    }
}
