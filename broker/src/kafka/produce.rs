//! Produce: each partition's record batches translated into Rivulet records
//! on this shard, appended by the partition's owner, answered with the first
//! offset given.
//!
//! What `acks` means here (one node, so "the in-sync replicas" is this
//! node's disk):
//!
//! - `acks=0`: the records are appended as for `acks=1`, and no response is
//!   sent (Kafka's rule: the client does not read one);
//! - `acks=1`: answered once the partition has appended the records, as
//!   the topic's fsync policy makes them safe (with `every-batch` or
//!   `interval-…` a crash may lose the last acknowledged records, as a
//!   Kafka leader's page cache may);
//! - `acks=all` (`-1`): answered only once the records are synced to disk,
//!   whatever the topic's policy: if the append did not sync them, the
//!   partition is synced before the answer.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::connection::Handler;
use crate::kafka::jobs::{Append, Bounds};
use crate::kafka::translate::{Limits, TranslateError, records_from_batch};

impl Handler {
    // ANCHOR: produce
    /// Serves a Produce; `None` for acks=0 (no response is sent).
    pub async fn produce(&self, request: ProduceRequest) -> Option<ProduceResponse> {
        let acks = request.acks;
        let limits = Limits {
            max_inflated: self.shard.max_frame_len() as usize,
        };
        let mut response = ProduceResponse::default();
        let (answer, answers) = flume::unbounded();
        // (topic, partition) of each append sent, by its index.
        let mut sent: Vec<(usize, usize, u32, u64, u32)> = Vec::new();
        for (t, topic) in request.topic_data.into_iter().enumerate() {
            let mut answered = TopicProduceResponse::default();
            answered.name = topic.name.clone();
            let meta = self.topic_meta(&topic.name, true).await;
            for (p, data) in topic.partition_data.into_iter().enumerate() {
                let mut part = PartitionProduceResponse::default();
                part.index = data.index;
                part.base_offset = -1;
                answered.partition_responses.push(part);
                let fail = |answered: &mut TopicProduceResponse, code: i16, message: String| {
                    let part = &mut answered.partition_responses[p];
                    part.error_code = code;
                    part.error_message = Some(StrBytes::from_string(message));
                };
                let (id, meta) = match &meta {
                    Ok(meta) => meta,
                    Err(code) => {
                        fail(
                            &mut answered,
                            *code,
                            format!("topic {}", topic.name.as_str()),
                        );
                        continue;
                    }
                };
                let Some(partition) = u32::try_from(data.index)
                    .ok()
                    .filter(|index| *index < meta.partitions)
                else {
                    let code = ResponseError::UnknownTopicOrPartition.code();
                    fail(&mut answered, code, format!("no partition {}", data.index));
                    continue;
                };
                let translated = match data.records.as_ref() {
                    Some(records) => records_from_batch(records, limits),
                    None => Err(TranslateError::Empty),
                };
                let translated = match translated {
                    Ok(translated) => translated,
                    Err(error) => {
                        let code = match error {
                            TranslateError::TooLarge { .. } => ResponseError::MessageTooLarge,
                            TranslateError::Transactional => {
                                ResponseError::UnsupportedForMessageFormat
                            }
                            _ => ResponseError::CorruptMessage,
                        };
                        fail(&mut answered, code.code(), error.to_string());
                        continue;
                    }
                };
                let bytes = translated.records.len() as u64;
                let job = Append {
                    records: translated.records,
                    sync: acks == -1,
                    producer: translated.producer,
                    topic: *id,
                    index: sent.len(),
                    answer: answer.clone(),
                };
                sent.push((t, p, *id, bytes, translated.count));
                self.shard.run_on((*id, partition), Box::new(job));
            }
            response.responses.push(answered);
        }
        drop(answer);
        let mut results: HashMap<usize, _> = HashMap::with_capacity(sent.len());
        while results.len() < sent.len() {
            let Ok((index, result)) = answers.recv_async().await else {
                break; // every job answers or fails; a stopped shard drops them
            };
            results.insert(index, result);
        }
        let metrics = self.shared.metrics.shard(self.shard.id());
        for (index, &(t, p, topic, bytes, count)) in sent.iter().enumerate() {
            let part = &mut response.responses[t].partition_responses[p];
            match results.remove(&index) {
                Some(Ok((first, Bounds { first: start, .. }))) => {
                    part.base_offset = i64::try_from(first).unwrap_or(i64::MAX);
                    part.log_start_offset = i64::try_from(start).unwrap_or(i64::MAX);
                    part.log_append_time_ms = -1;
                    metrics.produced(topic, u64::from(count), bytes);
                }
                Some(Err((code, message))) => {
                    part.error_code = code;
                    part.error_message = Some(StrBytes::from_string(message));
                }
                None => part.error_code = ResponseError::KafkaStorageError.code(),
            }
        }
        if !sent.is_empty() {
            // Wake the long polls waiting for records (`crate::kafka::fetch`).
            self.shared.appended.notify(usize::MAX);
        }
        (acks != 0).then_some(response)
    }
    // ANCHOR_END: produce
}
