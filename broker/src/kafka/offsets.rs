//! OffsetCommit and OffsetFetch: a Kafka group's committed offsets are the
//! stored offsets of the Rivulet consumer with the group's name, kept by
//! each partition's owner on disk (`stage6_broker::storage::consumer_offsets`).
//! So `rivulet poll TOPIC --consumer GROUP` reads on from where a Kafka
//! consumer of group `GROUP` committed, and the other way round.
//!
//! A commit goes through the group first ([`crate::groups::commit`]): the
//! member and generation it names must be the group's current ones
//! (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID otherwise: a member replaced in a
//! rebalance cannot commit over the partition's new owner). A consumer that
//! `assign`s its own partitions commits outside any generation
//! (`generation_id` -1, no member id), which is allowed only while the
//! group has no members.
//!
//! Kafka takes any offset; Rivulet refuses one past the partition's end
//! (OFFSET_OUT_OF_RANGE here), so a consumer cannot skip records not yet
//! written. Commit metadata strings are not kept.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use stage6_broker::shards::wire::{WireError, status};

use crate::api;
use crate::groups::commit::{CommitError, Target, commit};
use crate::jobs::{Done, GetOffset};
use crate::kafka::connection::Handler;
use crate::kafka::errors::{code_of, group_code};

impl Handler {
    // ANCHOR: offset_commit
    /// OffsetCommit: each partition's offset, checked by the group and
    /// stored for the group's consumer.
    pub async fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let group = request.group_id.0.as_str().to_string();
        let refusal = api::check_name("consumer", &group)
            .err()
            .map(|_| ResponseError::InvalidGroupId.code());
        let member = request.member_id.as_str();
        let generation = request.generation_id_or_member_epoch;
        let mut response = OffsetCommitResponse::default();
        for topic in request.topics {
            let mut answered = OffsetCommitResponseTopic::default();
            answered.name = topic.name.clone();
            for partition in topic.partitions {
                let mut part = OffsetCommitResponsePartition::default();
                part.partition_index = partition.partition_index;
                part.error_code = match refusal {
                    Some(code) => code,
                    None => {
                        let offset = u64::try_from(partition.committed_offset).ok();
                        let at = (&topic.name, partition.partition_index);
                        self.commit_offset(at, &group, member, generation, offset)
                            .await
                    }
                };
                answered.partitions.push(part);
            }
            response.topics.push(answered);
        }
        response
    }
    // ANCHOR_END: offset_commit

    /// Commits one offset as `member` of `group` in `generation`; the Kafka
    /// error code (0: stored).
    async fn commit_offset(
        &self,
        (topic, partition): (&TopicName, i32),
        group: &str,
        member: &str,
        generation: i32,
        offset: Option<u64>,
    ) -> i16 {
        let Some(offset) = offset else {
            return ResponseError::OffsetOutOfRange.code();
        };
        let Some((id, partition)) = self.partition_key(topic, partition) else {
            return ResponseError::UnknownTopicOrPartition.code();
        };
        let target = Target {
            topic: id,
            topic_name: topic.as_str(),
            partition,
        };
        let metrics = &self.shared.metrics;
        match commit(
            &self.shard,
            metrics,
            group,
            member,
            generation,
            target,
            offset,
        )
        .await
        {
            Ok(()) => 0,
            Err(CommitError::Group(error)) => group_code(&error),
            // The partition refuses an offset past its end.
            Err(CommitError::Storage(error)) if error.status == status::INVALID => {
                ResponseError::OffsetOutOfRange.code()
            }
            Err(CommitError::Storage(error)) => code_of(&error),
        }
    }

    /// The topic id and partition number of `topic`'s `partition`, if both exist.
    fn partition_key(&self, topic: &TopicName, partition: i32) -> Option<(u32, u32)> {
        let (id, meta) = self.shard.topic_named(topic.as_str()).ok()?;
        let partition = u32::try_from(partition)
            .ok()
            .filter(|p| *p < meta.partitions)?;
        Some((id, partition))
    }

    // ANCHOR: offset_fetch
    /// OffsetFetch: the group's stored offset of each partition asked (-1
    /// where it has none). Versions up to 7 ask for one group.
    pub async fn offset_fetch(
        &self,
        request: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let mut response = OffsetFetchResponse::default();
        if version >= 8 {
            for group in request.groups {
                let mut answered = OffsetFetchResponseGroup::default();
                let name = group.group_id.0.as_str().to_string();
                for topic in group.topics.unwrap_or_default() {
                    let mut out = OffsetFetchResponseTopics::default();
                    out.name = topic.name.clone();
                    for partition in topic.partition_indexes {
                        let (offset, error) = self.committed(&topic.name, partition, &name).await;
                        let mut part = OffsetFetchResponsePartitions::default();
                        part.partition_index = partition;
                        part.committed_offset = offset;
                        part.error_code = error;
                        out.partitions.push(part);
                    }
                    answered.topics.push(out);
                }
                answered.group_id = group.group_id;
                response.groups.push(answered);
            }
            return response;
        }
        let group = request.group_id.0.as_str().to_string();
        // `null` topics (version 2 and later): every topic's partitions.
        let topics: Vec<(TopicName, Vec<i32>)> = match request.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect(),
            None => self
                .shard
                .topics()
                .into_iter()
                .map(|(_, meta)| {
                    let name = TopicName(kafka_protocol::protocol::StrBytes::from_string(
                        meta.name.clone(),
                    ));
                    let partitions = (0..meta.partitions)
                        .filter_map(|p| i32::try_from(p).ok())
                        .collect();
                    (name, partitions)
                })
                .collect(),
        };
        for (name, partitions) in topics {
            let mut out = OffsetFetchResponseTopic::default();
            out.name = name.clone();
            for partition in partitions {
                let (offset, error) = self.committed(&name, partition, &group).await;
                let mut part = OffsetFetchResponsePartition::default();
                part.partition_index = partition;
                part.committed_offset = offset;
                part.error_code = error;
                out.partitions.push(part);
            }
            response.topics.push(out);
        }
        response
    }
    // ANCHOR_END: offset_fetch

    /// The group's committed offset of one partition (-1: none) and the
    /// Kafka error code.
    async fn committed(&self, topic: &TopicName, partition: i32, group: &str) -> (i64, i16) {
        if api::check_name("consumer", group).is_err() {
            return (-1, ResponseError::InvalidGroupId.code());
        }
        let Some(key) = self.partition_key(topic, partition) else {
            return (-1, ResponseError::UnknownTopicOrPartition.code());
        };
        let (done, answer) = flume::bounded(1);
        let job = GetOffset {
            consumer: group.to_string(),
            done,
        };
        self.shard.run_on(key, Box::new(job));
        match answer.recv_async().await {
            Ok(Ok(Done::Offset(stored))) => (
                stored
                    .offset
                    .and_then(|offset| i64::try_from(offset).ok())
                    .unwrap_or(-1),
                0,
            ),
            Ok(Ok(_)) => (-1, 0),
            Ok(Err(error)) => (-1, code_of(&error)),
            Err(_) => (-1, code_of(&WireError::storage("stopped"))),
        }
    }
}
