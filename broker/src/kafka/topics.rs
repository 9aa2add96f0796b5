//! Metadata, CreateTopics, DeleteTopics and FindCoordinator: what a Kafka
//! client learns of the broker and its topics, and how it makes and removes
//! them.
//!
//! One node answers everything, so every partition's leader, replica and
//! in-sync replica is node [`NODE_ID`], at the address the client reached.
//! Creates and deletes go to shard 0's metadata writer, exactly as Rivulet's
//! own commands do (`crate::admin`), so the two protocols cannot race.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use stage6_broker::shards::shard::TopicMeta;
use stage6_broker::shards::wire::WireError;

use crate::admin::Answered;
use crate::api::{self, TopicRef};
use crate::kafka::connection::Handler;
use crate::kafka::errors::code_of;
use crate::kafka::{CLUSTER_ID, NODE_ID};
use crate::requests::Admin;

impl Handler {
    // ANCHOR: metadata
    /// Metadata: this node, and the topics asked for (every topic if none
    /// is named), creating the missing ones if the client allows it and
    /// `kafka.auto_create_topics` is on.
    pub async fn metadata(&self, request: MetadataRequest) -> MetadataResponse {
        let mut response = MetadataResponse::default();
        response.brokers.push(self.broker());
        response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
        response.controller_id = BrokerId(NODE_ID);
        let topics = match request.topics {
            // `null`: every topic.
            None => self
                .shard
                .topics()
                .into_iter()
                .map(|(_, meta)| topic_metadata(&meta))
                .collect(),
            Some(asked) => {
                let mut topics = Vec::with_capacity(asked.len());
                for topic in asked {
                    let Some(name) = topic.name else {
                        // Asked by topic id: this broker has none to give.
                        let mut unknown = MetadataResponseTopic::default();
                        unknown.error_code = ResponseError::UnknownTopicId.code();
                        topics.push(unknown);
                        continue;
                    };
                    let create = request.allow_auto_topic_creation;
                    topics.push(self.topic_or_create(&name, create).await);
                }
                topics
            }
        };
        response.topics = topics;
        response
    }
    // ANCHOR_END: metadata

    /// This node, at the address the client reached it on.
    fn broker(&self) -> MetadataResponseBroker {
        let mut broker = MetadataResponseBroker::default();
        broker.node_id = BrokerId(NODE_ID);
        broker.host = StrBytes::from_string(self.advertised.0.clone());
        broker.port = i32::from(self.advertised.1);
        broker
    }

    /// `name`'s metadata; created first if it is missing and may be.
    async fn topic_or_create(&self, name: &TopicName, create: bool) -> MetadataResponseTopic {
        match self.topic_meta(name, create).await {
            Ok((_, meta)) => topic_metadata(&meta),
            Err(error) => {
                let mut unknown = MetadataResponseTopic::default();
                unknown.name = Some(name.clone());
                unknown.error_code = error;
                unknown
            }
        }
    }

    /// The id and this shard's metadata of topic `name`, created with the
    /// default partition count if it is missing, `create` allows it, and the
    /// listener's settings do; else the Kafka error code.
    pub async fn topic_meta(
        &self,
        name: &TopicName,
        create: bool,
    ) -> Result<(u32, Rc<TopicMeta>), i16> {
        if let Ok(found) = self.shard.topic_named(name.as_str()) {
            return Ok(found);
        }
        if !(create && self.config.auto_create_topics) {
            return Err(ResponseError::UnknownTopicOrPartition.code());
        }
        let created = self
            .create_topic(name.as_str(), self.config.default_partitions)
            .await;
        // Another client may have created it in between (the writer then
        // answers "exists already"): what matters is whether it exists now.
        match self.shard.topic_named(name.as_str()) {
            Ok(found) => Ok(found),
            Err(error) => Err(match created {
                Err(refused) => create_error(&refused),
                Ok(()) => code_of(&error),
            }),
        }
    }

    /// Asks shard 0's metadata writer to create topic `name` in the default
    /// stream with the server's default settings.
    async fn create_topic(&self, name: &str, partitions: u32) -> Result<(), WireError> {
        api::check_name("topic", name).map_err(WireError::invalid)?;
        let create = api::CreateTopic {
            stream: None,
            name: name.to_string(),
            id: None,
            partitions,
            settings: api::TopicSettings::default(),
        };
        self.ask_writer(Admin::CreateTopic(create)).await.map(drop)
    }

    /// One command for shard 0's metadata writer, and its answer.
    async fn ask_writer(&self, command: Admin) -> Result<Answered, WireError> {
        let (done, answer) = flume::bounded(1);
        let stopped = || WireError::storage("the server is shutting down");
        self.shared
            .admin
            .send((command, done))
            .map_err(|_| stopped())?;
        answer.recv_async().await.map_err(|_| stopped())?
    }

    /// CreateTopics: each topic through the metadata writer.
    pub async fn create_topics(&self, request: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut response = CreateTopicsResponse::default();
        for topic in request.topics {
            let mut result = CreatableTopicResult::default();
            result.name = topic.name.clone();
            let partitions = match topic.num_partitions {
                -1 => Ok(self.config.default_partitions),
                n => u32::try_from(n).map_err(|_| ResponseError::InvalidPartitions),
            };
            let outcome = match partitions {
                Err(error) => Err((error.code(), format!("{} partitions", topic.num_partitions))),
                // One node: one copy of each partition, nothing more.
                Ok(_) if !matches!(topic.replication_factor, -1 | 1) => Err((
                    ResponseError::InvalidReplicationFactor.code(),
                    "this broker is a single node: replication factor 1 (or -1)".to_string(),
                )),
                Ok(_) if request.validate_only => Ok(()),
                Ok(partitions) => self
                    .create_topic(topic.name.as_str(), partitions)
                    .await
                    .map_err(|error| (create_error(&error), error.message)),
            };
            if let Err((code, message)) = outcome {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            } else if let Ok((_, meta)) = self.shard.topic_named(topic.name.as_str()) {
                result.num_partitions = i32::try_from(meta.partitions).unwrap_or(i32::MAX);
                result.replication_factor = 1;
            }
            response.topics.push(result);
        }
        response
    }

    /// DeleteTopics: each topic, by name, through the metadata writer.
    pub async fn delete_topics(
        &self,
        request: DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        // Versions up to 5 list names; 6 and later (not advertised) list
        // states with a name or an id.
        let names: Vec<TopicName> = if version <= 5 {
            request.topic_names
        } else {
            request.topics.into_iter().filter_map(|t| t.name).collect()
        };
        let mut response = DeleteTopicsResponse::default();
        for name in names {
            let mut result = DeletableTopicResult::default();
            let reference = TopicRef::Name(name.as_str().to_string());
            if let Err(error) = self.ask_writer(Admin::DeleteTopic(reference)).await {
                result.error_code = code_of(&error);
                result.error_message = Some(StrBytes::from_string(error.message));
            }
            result.name = Some(name);
            response.responses.push(result);
        }
        response
    }

    /// FindCoordinator: this node coordinates every group (membership
    /// itself is issue 18; offsets are served now).
    pub fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let host = StrBytes::from_string(self.advertised.0.clone());
        let port = i32::from(self.advertised.1);
        let mut response = FindCoordinatorResponse::default();
        if version >= 4 {
            for key in request.coordinator_keys {
                let mut coordinator = Coordinator::default();
                coordinator.key = key;
                coordinator.node_id = BrokerId(NODE_ID);
                coordinator.host = host.clone();
                coordinator.port = port;
                response.coordinators.push(coordinator);
            }
        } else {
            response.node_id = BrokerId(NODE_ID);
            response.host = host;
            response.port = port;
        }
        response
    }
}

/// A topic's metadata: its partitions, each led by this node.
fn topic_metadata(meta: &TopicMeta) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(TopicName(StrBytes::from_string(meta.name.clone())));
    for index in 0..meta.partitions {
        let mut partition = MetadataResponsePartition::default();
        partition.partition_index = i32::try_from(index).unwrap_or(i32::MAX);
        partition.leader_id = BrokerId(NODE_ID);
        partition.leader_epoch = 0;
        partition.replica_nodes = vec![BrokerId(NODE_ID)];
        partition.isr_nodes = vec![BrokerId(NODE_ID)];
        topic.partitions.push(partition);
    }
    topic
}

/// A failed create's Kafka error code.
fn create_error(error: &WireError) -> i16 {
    match error.status {
        stage6_broker::shards::wire::status::INVALID => ResponseError::InvalidTopicException.code(),
        _ => code_of(error),
    }
}
