//! Rivulet's errors as Kafka's error codes, and the error response of every
//! API the listener serves.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    CreateTopicsResponse, DeleteTopicsResponse, FetchResponse, FindCoordinatorResponse,
    InitProducerIdResponse, ListOffsetsResponse, MetadataResponse, OffsetCommitResponse,
    OffsetFetchResponse, ProduceResponse, RequestKind, ResponseKind,
};
use stage6_broker::shards::wire::{WireError, status};

use crate::kafka::versions::api_versions;

// ANCHOR: code_of
/// The Kafka error code a client gets for a Rivulet error.
pub fn code_of(error: &WireError) -> i16 {
    let kafka = match error.status {
        status::TOPIC_NOT_FOUND | status::PARTITION_NOT_FOUND => {
            ResponseError::UnknownTopicOrPartition
        }
        status::INVALID => ResponseError::InvalidRequest,
        crate::api::status::ALREADY_EXISTS => ResponseError::TopicAlreadyExists,
        status::FRAME_TOO_LARGE => ResponseError::MessageTooLarge,
        // A failed partition, a storage error, a shard stopping: the
        // client may retry elsewhere or later; Kafka says the same of a
        // log directory that failed.
        _ => ResponseError::KafkaStorageError,
    };
    kafka.code()
}
// ANCHOR_END: code_of

/// The response to `request` with `code` in every error field, or `None`
/// for an API this listener does not serve.
pub fn error_response(request: &RequestKind, code: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(code)),
        RequestKind::Produce(request) => {
            let mut response = ProduceResponse::default();
            for topic in &request.topic_data {
                let mut answered =
                    kafka_protocol::messages::produce_response::TopicProduceResponse::default();
                answered.name = topic.name.clone();
                for partition in &topic.partition_data {
                    let mut part = kafka_protocol::messages::produce_response::PartitionProduceResponse::default();
                    part.index = partition.index;
                    part.error_code = code;
                    part.base_offset = -1;
                    answered.partition_responses.push(part);
                }
                response.responses.push(answered);
            }
            ResponseKind::Produce(response)
        }
        RequestKind::Fetch(_) => {
            let mut response = FetchResponse::default();
            response.error_code = code;
            ResponseKind::Fetch(response)
        }
        RequestKind::ListOffsets(request) => {
            let mut response = ListOffsetsResponse::default();
            for topic in &request.topics {
                let mut answered = kafka_protocol::messages::list_offsets_response::ListOffsetsTopicResponse::default();
                answered.name = topic.name.clone();
                for partition in &topic.partitions {
                    let mut part = kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse::default();
                    part.partition_index = partition.partition_index;
                    part.error_code = code;
                    part.offset = -1;
                    part.timestamp = -1;
                    answered.partitions.push(part);
                }
                response.topics.push(answered);
            }
            ResponseKind::ListOffsets(response)
        }
        RequestKind::Metadata(request) => {
            let mut response = MetadataResponse::default();
            response.error_code = code;
            for topic in request.topics.iter().flatten() {
                let mut answered =
                    kafka_protocol::messages::metadata_response::MetadataResponseTopic::default();
                answered.name = topic.name.clone();
                answered.error_code = code;
                response.topics.push(answered);
            }
            ResponseKind::Metadata(response)
        }
        RequestKind::OffsetCommit(request) => {
            let mut response = OffsetCommitResponse::default();
            for topic in &request.topics {
                let mut answered = kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic::default();
                answered.name = topic.name.clone();
                for partition in &topic.partitions {
                    let mut part = kafka_protocol::messages::offset_commit_response::OffsetCommitResponsePartition::default();
                    part.partition_index = partition.partition_index;
                    part.error_code = code;
                    answered.partitions.push(part);
                }
                response.topics.push(answered);
            }
            ResponseKind::OffsetCommit(response)
        }
        RequestKind::OffsetFetch(_) => {
            let mut response = OffsetFetchResponse::default();
            response.error_code = code;
            ResponseKind::OffsetFetch(response)
        }
        RequestKind::InitProducerId(_) => {
            let mut response = InitProducerIdResponse::default();
            response.error_code = code;
            response.producer_id = kafka_protocol::messages::ProducerId(-1);
            response.producer_epoch = -1;
            ResponseKind::InitProducerId(response)
        }
        RequestKind::FindCoordinator(_) => {
            let mut response = FindCoordinatorResponse::default();
            response.error_code = code;
            ResponseKind::FindCoordinator(response)
        }
        RequestKind::CreateTopics(request) => {
            let mut response = CreateTopicsResponse::default();
            for topic in &request.topics {
                let mut answered =
                    kafka_protocol::messages::create_topics_response::CreatableTopicResult::default(
                    );
                answered.name = topic.name.clone();
                answered.error_code = code;
                response.topics.push(answered);
            }
            ResponseKind::CreateTopics(response)
        }
        RequestKind::DeleteTopics(request) => {
            let mut response = DeleteTopicsResponse::default();
            for name in &request.topic_names {
                let mut answered =
                    kafka_protocol::messages::delete_topics_response::DeletableTopicResult::default(
                    );
                answered.name = Some(name.clone());
                answered.error_code = code;
                response.responses.push(answered);
            }
            ResponseKind::DeleteTopics(response)
        }
        // Group membership is not served yet (issue 18), but clients that
        // try it get a clear error and keep their connection.
        RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
            kafka_protocol::messages::JoinGroupResponse::default().with_error_code(code),
        ),
        RequestKind::SyncGroup(_) => ResponseKind::SyncGroup(
            kafka_protocol::messages::SyncGroupResponse::default().with_error_code(code),
        ),
        RequestKind::Heartbeat(_) => ResponseKind::Heartbeat(
            kafka_protocol::messages::HeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::LeaveGroup(_) => ResponseKind::LeaveGroup(
            kafka_protocol::messages::LeaveGroupResponse::default().with_error_code(code),
        ),
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(
            kafka_protocol::messages::ListGroupsResponse::default().with_error_code(code),
        ),
        _ => return None,
    })
}
