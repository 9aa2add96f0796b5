//! Shard 0's metadata writer: streams and topics created, listed and
//! deleted, one command at a time.
//!
//! Invariants:
//! - the writer task owns the [`Metadata`] value: no other code reads or
//!   changes it, so it needs no lock, and two commands never interleave (two
//!   creates of one name cannot both succeed);
//! - create: the topic is written to `metadata.json` *first*, then the
//!   engine's steps (`stage6_broker::shards::topics`): every shard opens the
//!   partitions it owns, the `partitions` file is written (stage 4's layout,
//!   for tools that read it), every shard learns the topic exists; only then
//!   is the client answered. So no shard routes a request to a partition
//!   that is not open yet, and a crash mid-create leaves a topic that
//!   start-up opens (creating what is missing);
//! - delete: the topic leaves `metadata.json` first (its id kept in
//!   `deleting`), then every shard forgets it and stops its partitions' tasks
//!   (requests already queued are answered first), then its folder is
//!   removed, then its id leaves `deleting`. A crash in between leaves a
//!   folder that start-up removes ([`Metadata::load`]). After the reply,
//!   produce and poll get `TopicNotFound` on every shard.

use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use stage6_broker::Config;
use stage6_broker::shards::shard::ShardState;
use stage6_broker::shards::topics::{TopicSpec, check_partitions};
use stage6_broker::shards::wire::{WireError, status};
use tracing::{info, warn};

use crate::api::{self, TopicInfo};
use crate::metadata::{Metadata, TopicRecord, resolve, topic_info};
use crate::metrics::Metrics;
use crate::requests::Admin;

/// What the writer answers: a reply body, or a topic for the session to
/// fill in (describe).
#[derive(Debug)]
pub enum Answered {
    /// The reply body (JSON, or empty for stage 4's binary create-topic).
    Body(Vec<u8>),
    /// One topic as the metadata holds it.
    Topic(TopicInfo),
}

/// A command for the writer, and where its answer goes.
pub type AdminRequest = (Admin, flume::Sender<Result<Answered, WireError>>);

type Answer = Result<Vec<u8>, WireError>;

// ANCHOR: metadata_writer
/// Shard 0's metadata writer: serves the metadata commands sent to it, one
/// at a time, until the shard stops.
pub async fn metadata_writer(
    state: Rc<ShardState>,
    metadata: Metadata,
    metrics: Arc<Metrics>,
    queue: flume::Receiver<AdminRequest>,
) {
    let mut writer = Writer {
        state,
        metadata,
        metrics,
    };
    while let Ok((request, reply)) = queue.recv_async().await {
        let answer = match request {
            Admin::Describe(reference) => match writer.metadata.find(&reference) {
                Some(topic) => Ok(Answered::Topic(writer.info(topic))),
                None => Err(topic_not_found(&reference)),
            },
            request => writer.serve(request).await.map(Answered::Body),
        };
        let _ = reply.send(answer);
    }
}
// ANCHOR_END: metadata_writer

struct Writer {
    state: Rc<ShardState>,
    metadata: Metadata,
    metrics: Arc<Metrics>,
}

fn to_json(value: &impl Serialize) -> Answer {
    serde_json::to_vec(value).map_err(|error| WireError::storage(error.to_string()))
}

fn empty() -> Answer {
    to_json(&api::Empty {})
}

fn invalid(message: impl Into<String>) -> WireError {
    WireError::invalid(message)
}

fn topic_not_found(reference: &api::TopicRef) -> WireError {
    WireError::new(
        status::TOPIC_NOT_FOUND,
        format!("topic {} does not exist", reference),
    )
}

impl Writer {
    async fn serve(&mut self, request: Admin) -> Answer {
        match request {
            Admin::CreateTopicById { topic, partitions } => {
                self.create_by_id(topic, partitions).await
            }
            Admin::CreateStream(api::CreateStream { name }) => {
                api::check_name("stream", &name).map_err(invalid)?;
                if self.metadata.streams.contains(&name) {
                    return Err(WireError::new(
                        api::status::ALREADY_EXISTS,
                        format!("stream {name:?} exists already"),
                    ));
                }
                self.metadata.streams.insert(name.clone());
                if let Err(error) = self.save() {
                    self.metadata.streams.remove(&name);
                    return Err(error);
                }
                info!(stream = %name, "stream created");
                to_json(&self.metadata.stream_info(&name))
            }
            Admin::ListStreams => to_json(&api::StreamList {
                streams: self
                    .metadata
                    .streams
                    .iter()
                    .map(|name| self.metadata.stream_info(name))
                    .collect(),
            }),
            Admin::DeleteStream(api::StreamName { name }) => {
                if !self.metadata.streams.contains(&name) {
                    return Err(stream_not_found(&name));
                }
                let topics: Vec<u32> = self
                    .metadata
                    .topics
                    .values()
                    .filter(|topic| topic.stream == name)
                    .map(|topic| topic.id)
                    .collect();
                for id in topics {
                    self.delete_topic(id).await?;
                }
                self.metadata.streams.remove(&name);
                self.save()?;
                info!(stream = %name, "stream deleted");
                empty()
            }
            Admin::CreateTopic(create) => self.create_named(create).await,
            Admin::ListTopics(api::ListTopics { stream }) => {
                if let Some(stream) = &stream
                    && !self.metadata.streams.contains(stream)
                {
                    return Err(stream_not_found(stream));
                }
                let topics = self
                    .metadata
                    .topics
                    .values()
                    .filter(|topic| stream.as_ref().is_none_or(|s| &topic.stream == s))
                    .map(|topic| self.info(topic))
                    .collect();
                to_json(&api::TopicList { topics })
            }
            Admin::DeleteTopic(reference) => {
                let id = match self.metadata.find(&reference) {
                    Some(topic) => topic.id,
                    None => return Err(topic_not_found(&reference)),
                };
                self.delete_topic(id).await?;
                empty()
            }
            Admin::Describe(_) => Err(invalid("describe is answered by the writer's loop")),
        }
    }

    /// Stage 4's binary create: idempotent for the same partition count.
    async fn create_by_id(&mut self, topic: u32, partitions: u32) -> Answer {
        check_partitions(partitions)?;
        if let Some(existing) = self.metadata.topics.get(&topic) {
            return match existing.partitions {
                n if n == partitions => Ok(Vec::new()),
                n => Err(invalid(format!("topic {topic} exists with {n} partitions"))),
            };
        }
        if self.metadata.deleting.contains(&topic) {
            return Err(invalid(format!("topic {topic} is being deleted; retry")));
        }
        let mut scratch = self.metadata.clone();
        let record = scratch.adopt(topic, partitions).clone();
        self.create(record, self.state.defaults().clone()).await?;
        Ok(Vec::new())
    }

    async fn create_named(&mut self, create: api::CreateTopic) -> Answer {
        let stream = create
            .stream
            .clone()
            .unwrap_or_else(|| api::DEFAULT_STREAM.to_string());
        api::check_name("stream", &stream).map_err(invalid)?;
        api::check_name("topic", &create.name).map_err(invalid)?;
        check_partitions(create.partitions)?;
        let config = resolve(self.state.defaults(), &create.settings)
            .map_err(|error| invalid(error.to_string()))?;
        let same = |topic: &TopicRecord| {
            topic.name == create.name
                && topic.stream == stream
                && topic.partitions == create.partitions
                && topic.settings == create.settings
                && create.id.is_none_or(|id| id == topic.id)
        };
        // Asking again for what exists is not an error: a client that lost
        // the reply can retry.
        let clash = self
            .metadata
            .topic_by_name(&create.name)
            .or_else(|| create.id.and_then(|id| self.metadata.topics.get(&id)));
        if let Some(existing) = clash {
            if same(existing) {
                return to_json(&self.info(existing));
            }
            return Err(WireError::new(
                api::status::ALREADY_EXISTS,
                format!(
                    "topic {:?} (id {}) exists already with other settings",
                    existing.name, existing.id
                ),
            ));
        }
        let id = match create.id {
            Some(id) if self.metadata.deleting.contains(&id) => {
                return Err(invalid(format!("topic id {id} is being deleted; retry")));
            }
            Some(id) => id,
            None => self
                .metadata
                .free_id()
                .ok_or_else(|| invalid("every topic id is taken"))?,
        };
        let record = TopicRecord {
            id,
            name: create.name,
            stream,
            partitions: create.partitions,
            settings: create.settings,
        };
        let info = self.create(record, config).await?;
        to_json(&info)
    }

    // ANCHOR: create_topic
    /// Creates a checked topic: metadata first, then every shard's
    /// partitions, then every shard's copy (see the module docs).
    async fn create(
        &mut self,
        record: TopicRecord,
        config: Config,
    ) -> Result<TopicInfo, WireError> {
        let id = record.id;
        let new_stream = self.metadata.streams.insert(record.stream.clone());
        self.metadata.topics.insert(id, record.clone());
        // Marked as being created until every partition exists: a start-up
        // that finds the mark without the topic's `partitions` file finishes
        // undoing the create rather than re-creating what failed.
        self.metadata.creating.insert(id);
        if let Err(error) = self.save() {
            // Not saved: undone in memory too, or the next save would.
            self.forget(id, new_stream.then_some(&record.stream));
            return Err(error);
        }
        let opened = self
            .state
            .open_everywhere(record.id, record.partitions, &config)
            .await;
        if let Err(error) = opened {
            warn!(topic = id, "create failed, undoing it: {}", error.message);
            self.undo_create(id, new_stream.then_some(&record.stream))
                .await;
            return Err(error);
        }
        self.metadata.creating.remove(&id);
        // If this save fails the topic is whole on disk (its `partitions`
        // file is written), and start-up keeps it: nothing to undo.
        if let Err(error) = self.save() {
            warn!(
                topic = id,
                "topic created; marking it complete failed: {}", error.message
            );
        }
        let info = topic_info(&record, &config);
        let spec = TopicSpec {
            id,
            name: record.name.clone(),
            partitions: record.partitions,
            config,
        };
        self.state.publish_everywhere(&spec).await?;
        self.metrics.name_topic(id, &record.name);
        info!(topic = id, name = %record.name, stream = %record.stream,
            partitions = record.partitions, "topic created");
        Ok(info)
    }
    // ANCHOR_END: create_topic

    // ANCHOR: undo_create
    /// Undoes a create that failed part way, whatever else fails: every
    /// shard closes the partitions it opened (their descriptors, and the
    /// space of their files, are freed) and the folder is removed, *then* the
    /// topic leaves the metadata in memory, and then on disk. On a full disk
    /// the removal is what makes room for that save; if the save fails all
    /// the same, the file still holds the topic with its `creating` mark, and
    /// the next start-up finishes the undo ([`Metadata::load`]). Rejected:
    /// undoing in the order of a delete (metadata first), which on a full
    /// disk failed at the first step and left the topic listed, its files
    /// open, and a start-up that re-created it.
    async fn undo_create(&mut self, id: u32, new_stream: Option<&String>) {
        if let Err(error) = self.state.close_everywhere(id).await {
            warn!(topic = id, "undoing the create: {}", error.message);
        }
        self.forget(id, new_stream);
        match self.save() {
            Ok(()) => info!(topic = id, "create undone"),
            Err(error) => warn!(
                topic = id,
                "create undone; the metadata file still names it until the next \
                 save or start-up: {}",
                error.message
            ),
        }
    }
    // ANCHOR_END: undo_create

    /// Drops topic `id` (and a stream its create made) from the metadata in memory.
    fn forget(&mut self, id: u32, new_stream: Option<&String>) {
        self.metadata.topics.remove(&id);
        self.metadata.creating.remove(&id);
        if let Some(stream) = new_stream {
            self.metadata.streams.remove(stream);
        }
    }

    // ANCHOR: delete_topic
    /// Deletes topic `id`: out of the metadata file, then out of every
    /// shard, then off the disk (see the module docs).
    async fn delete_topic(&mut self, id: u32) -> Result<(), WireError> {
        let Some(record) = self.metadata.topics.remove(&id) else {
            return Ok(());
        };
        self.metadata.deleting.insert(id);
        if let Err(error) = self.save() {
            self.metadata.deleting.remove(&id);
            self.metadata.topics.insert(id, record);
            return Err(error);
        }
        // Left in `deleting` if the folder is not removed: the next start-up
        // removes it.
        self.state.close_everywhere(id).await?;
        self.metadata.deleting.remove(&id);
        // Failing here is harmless: start-up finds nothing left to remove.
        let _ = self.save();
        self.metrics.forget_topic(id);
        info!(topic = id, name = %record.name, "topic deleted");
        Ok(())
    }
    // ANCHOR_END: delete_topic

    fn info(&self, record: &TopicRecord) -> TopicInfo {
        // A stored topic's settings were checked when it was created; the
        // defaults stand in only if the server's own defaults changed since
        // so that they no longer combine.
        let defaults = self.state.defaults();
        let config = resolve(defaults, &record.settings).unwrap_or_else(|_| defaults.clone());
        topic_info(record, &config)
    }

    fn save(&self) -> Result<(), WireError> {
        self.metadata.save(self.state.data()).map_err(|error| {
            warn!("saving the metadata failed: {error}");
            WireError::storage(error.to_string())
        })
    }
}

fn stream_not_found(name: &str) -> WireError {
    WireError::new(
        api::status::STREAM_NOT_FOUND,
        format!("stream {name:?} does not exist"),
    )
}
