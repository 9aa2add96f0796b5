//! Rivulet's errors (and a group's refusals) as Kafka's error codes, and
//! the error response of every API the listener serves.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    CreateTopicsResponse, DeleteGroupsResponse, DeleteTopicsResponse, DescribeGroupsResponse,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse,
    MetadataResponse, OffsetCommitResponse, OffsetFetchResponse, ProduceResponse, RequestKind,
    ResponseKind, SyncGroupResponse,
};
use stage6_broker::shards::wire::{WireError, status};

use crate::groups::coordinator::GroupError;
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

// ANCHOR: group_code
/// The Kafka error code a client gets for a group's refusal.
pub fn group_code(error: &GroupError) -> i16 {
    let kafka = match error {
        GroupError::UnknownMember => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        // A partition another member of a Rivulet group owns: only a
        // Kafka client acting in a Rivulet group's generation gets this,
        // and Kafka's nearest word for mixing the two is this one.
        GroupError::NotAssigned => ResponseError::InconsistentGroupProtocol,
    };
    kafka.code()
}
// ANCHOR_END: group_code

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
        // The group APIs: one error for the whole request (DescribeGroups
        // and DeleteGroups: for each group named).
        RequestKind::JoinGroup(request) => {
            let mut response = JoinGroupResponse::default();
            response.error_code = code;
            response.generation_id = -1;
            // Not nullable before version 7.
            response.protocol_name = Some(Default::default());
            response.member_id = request.member_id.clone();
            ResponseKind::JoinGroup(response)
        }
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        RequestKind::ListGroups(_) => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        RequestKind::DescribeGroups(request) => {
            let mut response = DescribeGroupsResponse::default();
            for group in &request.groups {
                let mut answered = DescribedGroup::default();
                answered.group_id = group.clone();
                answered.error_code = code;
                response.groups.push(answered);
            }
            ResponseKind::DescribeGroups(response)
        }
        // Not served (a group's offsets are its consumer's, deleted with
        // its topics), but answered: `kafka-consumer-groups --delete` gets
        // an error, not a closed connection.
        RequestKind::DeleteGroups(request) => {
            let mut response = DeleteGroupsResponse::default();
            for group in &request.groups_names {
                let mut answered = DeletableGroupResult::default();
                answered.group_id = group.clone();
                answered.error_code = code;
                response.results.push(answered);
            }
            ResponseKind::DeleteGroups(response)
        }
        _ => return None,
    })
}
