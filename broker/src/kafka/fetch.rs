//! Fetch, a long poll, and ListOffsets.
//!
//! A Fetch names partitions and offsets, `min_bytes` and `max_wait_ms`: the
//! broker answers as soon as it has `min_bytes` of records, or when
//! `max_wait_ms` has passed with less (Kafka's long poll). So an idle
//! consumer sends one request per `max_wait_ms` (librdkafka: 500 ms), not
//! one per microsecond. Waiting is not polling: every append, from either
//! protocol, notifies [`crate::server::Shared::appended`], and a waiting
//! fetch reads again only when told (or at its deadline). Rejected: reading
//! again every few milliseconds, which costs a cross-shard hop per waiting
//! consumer per tick and still answers late by up to a tick.
//!
//! `max_bytes` and each partition's `partition_max_bytes` cut the records
//! returned, but never below one record per partition that has one (else a
//! record larger than the limit could never be read: Kafka's rule too).

use std::collections::HashMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use tracing::warn;

use crate::kafka::connection::Handler;
use crate::kafka::errors::code_of;
use crate::kafka::jobs::{Bounds, Find, Position, Read, ReadFrom};
use crate::kafka::translate::{batch_from_records, stored_records};

/// Records one partition's read may return at most: a fetch's byte limits
/// cut far sooner for any record of a few bytes.
const MAX_RECORDS_PER_READ: u64 = 100_000;

/// The longest a fetch may wait, whatever it asks (a client asking for an
/// hour would hold a request budget share and a task all that time).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One partition a fetch asked for.
struct Wanted {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// The topic's id and the partition's number, if both exist.
    key: Option<(u32, u32)>,
}

impl Handler {
    // ANCHOR: fetch
    /// Serves a Fetch: reads every partition asked, and if fewer than
    /// `min_bytes` came back, waits for an append or the deadline and reads
    /// again.
    pub async fn fetch(&self, request: FetchRequest) -> FetchResponse {
        let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(usize::MAX);
        let mut wanted = Vec::new();
        let mut names = Vec::new();
        for (t, topic) in request.topics.iter().enumerate() {
            let found = self.shard.topic_named(topic.topic.as_str()).ok();
            names.push(topic.topic.clone());
            for partition in &topic.partitions {
                let key = found.as_ref().and_then(|(id, meta)| {
                    u32::try_from(partition.partition)
                        .ok()
                        .filter(|p| *p < meta.partitions)
                        .map(|p| (*id, p))
                });
                wanted.push(Wanted {
                    topic: t,
                    partition: partition.partition,
                    offset: partition.fetch_offset,
                    max_bytes: usize::try_from(partition.partition_max_bytes).unwrap_or(0),
                    key,
                });
            }
        }
        loop {
            // Listening before reading: an append between the read and the
            // wait still wakes it.
            let appended = self.shared.appended.listen();
            let (response, bytes) = self.read_all(&wanted, &names, max_bytes).await;
            if bytes >= min_bytes || Instant::now() >= deadline {
                return response;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = pin!(compio::time::sleep(left));
            let stopping = pin!(self.shard.stopping());
            match select(appended, select(timeout, stopping)).await {
                Either::Left(_) => {}
                Either::Right(_) => {
                    // The deadline, or the shard stopping: answer with what is there.
                    return self.read_all(&wanted, &names, max_bytes).await.0;
                }
            }
        }
    }
    // ANCHOR_END: fetch

    /// One read of every wanted partition, at once on their owners; the
    /// response and how many record bytes it carries.
    async fn read_all(
        &self,
        wanted: &[Wanted],
        names: &[kafka_protocol::messages::TopicName],
        max_bytes: usize,
    ) -> (FetchResponse, usize) {
        let (answer, answers) = flume::unbounded();
        let mut asked = 0;
        for (index, partition) in wanted.iter().enumerate() {
            let (Some(key), Ok(offset)) = (partition.key, u64::try_from(partition.offset)) else {
                continue;
            };
            let job = ReadFrom {
                offset,
                max_records: MAX_RECORDS_PER_READ,
                // Stored records are a little larger than Kafka's, so a
                // partition's limit in stored bytes reads about what fits.
                max_bytes: partition.max_bytes.min(max_bytes) as u64,
                index,
                answer: answer.clone(),
            };
            self.shard.run_on(key, Box::new(job));
            asked += 1;
        }
        drop(answer);
        let mut reads = HashMap::with_capacity(asked);
        while reads.len() < asked {
            let Ok((index, read)) = answers.recv_async().await else {
                break;
            };
            reads.insert(index, read);
        }
        let mut response = FetchResponse::default();
        response.responses = names
            .iter()
            .map(|name| {
                let mut topic = FetchableTopicResponse::default();
                topic.topic = name.clone();
                topic
            })
            .collect();
        let mut total = 0;
        let metrics = self.shared.metrics.shard(self.shard.id());
        for (index, partition) in wanted.iter().enumerate() {
            let mut data = PartitionData::default();
            data.partition_index = partition.partition;
            data.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
            match reads.remove(&index) {
                None if partition.key.is_none() => {
                    data.error_code = ResponseError::UnknownTopicOrPartition.code();
                }
                None => data.error_code = ResponseError::OffsetOutOfRange.code(),
                Some(Err(error)) => data.error_code = code_of(&error),
                Some(Ok(Read::OutOfRange(bounds))) => {
                    set_bounds(&mut data, bounds);
                    data.error_code = ResponseError::OffsetOutOfRange.code();
                }
                Some(Ok(Read::Records(polled, bounds))) => {
                    set_bounds(&mut data, bounds);
                    // Never below one record: the first partition with data
                    // always gets one, whatever the limits.
                    let room = partition.max_bytes.min(max_bytes.saturating_sub(total));
                    match self.batch(polled.bytes.as_slice(), room, total == 0) {
                        Ok(Some((batch, records, bytes))) => {
                            total += batch.len();
                            if let Some((topic, _)) = partition.key {
                                metrics.polled(topic, records, bytes);
                            }
                            data.records = Some(batch);
                        }
                        // An empty record set, not a null one: some clients
                        // read null as a broken response.
                        Ok(None) => data.records = Some(bytes::Bytes::new()),
                        Err(error) => {
                            warn!("fetch: {error}");
                            data.error_code = ResponseError::CorruptMessage.code();
                        }
                    }
                }
            }
            response.responses[partition.topic].partitions.push(data);
        }
        (response, total)
    }

    /// The records of `polled` that fit `room` bytes (at least one if
    /// `at_least_one`), as one Kafka batch: the batch, and how many records
    /// and stored bytes it carries; `None` if there are none to send.
    fn batch(
        &self,
        polled: &[u8],
        room: usize,
        at_least_one: bool,
    ) -> Result<Option<(bytes::Bytes, u64, u64)>, String> {
        let stored = stored_records(polled).map_err(|error| error.to_string())?;
        let mut taken = 0;
        let mut bytes = 0usize;
        for record in &stored {
            let len = record.stored_len;
            if bytes + len > room && !(at_least_one && taken == 0) {
                break;
            }
            bytes += len;
            taken += 1;
        }
        if taken == 0 {
            return Ok(None);
        }
        let batch = batch_from_records(&stored[..taken])?;
        Ok(Some((batch, taken as u64, bytes as u64)))
    }

    // ANCHOR: list_offsets
    /// ListOffsets: the first offset (timestamp -2), the next (-1), or the
    /// first appended at or after a time. Rivulet's time index holds append
    /// times, so "at or after" means by the server's clock, not by the
    /// producers' CreateTime as in Kafka.
    pub async fn list_offsets(&self, request: ListOffsetsRequest) -> ListOffsetsResponse {
        let mut response = ListOffsetsResponse::default();
        for topic in request.topics {
            let mut answered = ListOffsetsTopicResponse::default();
            answered.name = topic.name.clone();
            let found = self.shard.topic_named(topic.name.as_str());
            for partition in topic.partitions {
                let mut part = ListOffsetsPartitionResponse::default();
                part.partition_index = partition.partition_index;
                part.timestamp = -1;
                part.offset = -1;
                let key = found.as_ref().ok().and_then(|(id, meta)| {
                    u32::try_from(partition.partition_index)
                        .ok()
                        .filter(|p| *p < meta.partitions)
                        .map(|p| (*id, p))
                });
                let position = match partition.timestamp {
                    -1 => Some(Position::Latest),
                    -2 => Some(Position::Earliest),
                    t => u64::try_from(t).ok().map(Position::At),
                };
                match (key, position) {
                    (None, _) => part.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    (_, None) => part.error_code = ResponseError::InvalidRequest.code(),
                    (Some(key), Some(position)) => {
                        let (answer, answers) = flume::bounded(1);
                        let job = Find {
                            position,
                            index: 0,
                            answer,
                        };
                        self.shard.run_on(key, Box::new(job));
                        match answers.recv_async().await {
                            Ok((_, Ok(offset))) => {
                                part.offset = offset
                                    .and_then(|offset| i64::try_from(offset).ok())
                                    .unwrap_or(-1);
                            }
                            Ok((_, Err(error))) => part.error_code = code_of(&error),
                            Err(_) => {
                                part.error_code = ResponseError::KafkaStorageError.code();
                            }
                        }
                    }
                }
                answered.partitions.push(part);
            }
            response.topics.push(answered);
        }
        response
    }
    // ANCHOR_END: list_offsets
}

/// A partition's bounds in a fetch answer.
fn set_bounds(data: &mut PartitionData, bounds: Bounds) {
    let next = i64::try_from(bounds.next).unwrap_or(i64::MAX);
    data.high_watermark = next;
    data.last_stable_offset = next;
    data.log_start_offset = i64::try_from(bounds.first).unwrap_or(i64::MAX);
}
