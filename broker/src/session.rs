//! The broker's side of a connection: every frame is seen here first
//! (`stage6_broker::shards::extension::Session`). The broker's own commands
//! are answered here; stage 4's three are checked against access control
//! and handed to the engine.
//!
//! How each is served:
//! - metadata commands (streams, topics, stage 4's create-topic) go to shard
//!   0's metadata writer ([`crate::admin`]), whichever shard this is;
//! - polls by position, stored offsets and a partition's state are jobs run
//!   by the partition's owner ([`crate::jobs`]);
//! - produce and poll by offset are the engine's.
//!
//! Each session counts nothing itself: the engine tells the broker's
//! metrics what it appended and returned ([`crate::server`]), and a poll by
//! position is counted through the engine's [`Connection::polled`].

use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use stage6_broker::shards::connection::{Connection, MAX_POLL_RECORDS};
use stage6_broker::shards::extension::{Answer, Served, Session};
use stage6_broker::shards::frame::Frame;
use stage6_broker::shards::protocol::Request as EngineRequest;
use stage6_broker::shards::shard::{ShardState, TopicMeta, storage_stopped};
use stage6_broker::shards::wire::{WireError, status};
use tracing::{info, warn};

use crate::admin::{AdminRequest, Answered};
use crate::api::{self, TopicRef};
use crate::auth::{Action, AuthConfig};
use crate::jobs::{self, Done};
use crate::requests::{Admin, Request};
use crate::server::Shared;

/// One connection's session: who logged in, and its channels for answers.
pub struct BrokerSession {
    shard: Rc<ShardState>,
    shared: Arc<Shared>,
    /// Who logged in on this connection, when access control is on.
    user: Option<usize>,
    /// Answers of jobs other than polls (one request in flight: one slot).
    done_to: jobs::DoneTo,
    done: flume::Receiver<Result<Done, WireError>>,
    /// Answers of the metadata writer.
    admin_to: flume::Sender<Result<Answered, WireError>>,
    admin: flume::Receiver<Result<Answered, WireError>>,
}

impl BrokerSession {
    /// A session on `shard`.
    pub fn new(shard: &Rc<ShardState>, shared: Arc<Shared>) -> BrokerSession {
        let (done_to, done) = flume::bounded(1);
        let (admin_to, admin) = flume::bounded(1);
        BrokerSession {
            shard: Rc::clone(shard),
            shared,
            user: None,
            done_to,
            done,
            admin_to,
            admin,
        }
    }
}

/// Which of the two protocols' requests a frame holds.
enum Decoded {
    Engine(EngineRequest),
    Broker(Request),
}

impl Session for BrokerSession {
    fn serve<'a>(
        &'a mut self,
        connection: &'a mut Connection,
        frame: Frame,
    ) -> LocalBoxFuture<'a, Served> {
        Box::pin(async move {
            let decoded = match decode(frame) {
                Ok(decoded) => decoded,
                Err(error) => return Served::Close(error),
            };
            let shared = Arc::clone(&self.shared);
            let gated = match &shared.auth {
                Some(auth) => self.gate(auth, &decoded),
                None => Ok(None),
            };
            let answer = match gated {
                Ok(None) => self.handle(connection, decoded).await,
                Ok(Some(body)) => Ok(Answer::Whole(body)),
                Err(error) => Err(error),
            };
            Served::Answer(answer)
        })
    }
}

/// The frame's request, or the error that closes the connection: a body
/// that cannot be trusted, or a code neither protocol knows.
fn decode(frame: Frame) -> Result<Decoded, WireError> {
    let malformed =
        |error: &dyn std::fmt::Display| WireError::new(status::MALFORMED, error.to_string());
    if let Some(request) = Request::decode(frame.code, &frame.body) {
        return request
            .map(Decoded::Broker)
            .map_err(|error| malformed(&error));
    }
    match EngineRequest::decode(frame.code, frame.body) {
        Some(Ok(request)) => Ok(Decoded::Engine(request)),
        Some(Err(error)) => Err(malformed(&error)),
        None => Err(WireError::new(
            status::UNKNOWN_COMMAND,
            format!("unknown command code {}", frame.code),
        )),
    }
}

impl BrokerSession {
    // ANCHOR: handle
    /// Serves one request: metadata commands on shard 0's writer, topic
    /// lookups from the shard's own copy, storage from the partition's
    /// owner, wherever it runs.
    async fn handle(
        &mut self,
        connection: &mut Connection,
        request: Decoded,
    ) -> Result<Answer, WireError> {
        let request = match request {
            // Stage 4's create-topic names the topic in the metadata too.
            Decoded::Engine(EngineRequest::CreateTopic { topic, partitions }) => {
                return self
                    .admin(Admin::CreateTopicById { topic, partitions })
                    .await;
            }
            Decoded::Engine(request) => return connection.serve(request).await,
            Decoded::Broker(request) => request,
        };
        match request {
            Request::Admin(request) => self.admin(request).await,
            Request::PollBy(poll) => {
                connection.check_partition(poll.topic, poll.partition)?;
                if !poll.consumer.is_empty() {
                    api::check_name("consumer", &poll.consumer).map_err(WireError::invalid)?;
                } else if poll.kind == api::PollKind::Next || poll.auto_commit {
                    return Err(WireError::invalid(
                        "a poll of the next records, or with auto-commit, needs a consumer name",
                    ));
                }
                let job = jobs::PollBy {
                    kind: poll.kind,
                    count: u64::from(poll.count.min(MAX_POLL_RECORDS)),
                    consumer: poll.consumer,
                    auto_commit: poll.auto_commit,
                    buf: connection.buffer()?,
                    reply: connection.reply_to(),
                };
                self.shard
                    .run_on((poll.topic, poll.partition), Box::new(job));
                let reply = connection.reply().await?;
                connection.polled(poll.topic, reply)
            }
            Request::StoreOffset(store) => {
                api::check_name("consumer", &store.consumer).map_err(WireError::invalid)?;
                let (id, _) = find(&self.shard, &store.topic)?;
                connection.check_partition(id, store.partition)?;
                let job = jobs::StoreOffset {
                    consumer: store.consumer,
                    offset: store.offset,
                    done: self.done_to.clone(),
                };
                match self.run((id, store.partition), Box::new(job)).await? {
                    Done::Stored => json(&api::Empty {}),
                    _ => Err(storage_stopped()),
                }
            }
            Request::GetOffsets(get) => self.get_offsets(get).await,
            Request::DescribeTopic(reference) => self.describe(reference).await,
            Request::Stats => json(&self.stats()),
            // Access control is not on: every connection may do everything.
            Request::Login(_) => json(&api::Empty {}),
        }
    }
    // ANCHOR_END: handle

    /// Runs `job` on the partition's owner and waits for its answer.
    async fn run(
        &self,
        key: (u32, u32),
        job: Box<dyn stage6_broker::shards::extension::PartitionJob>,
    ) -> Result<Done, WireError> {
        self.shard.run_on(key, job);
        self.done
            .recv_async()
            .await
            .map_err(|_| storage_stopped())?
    }

    /// Hands a metadata command to shard 0's writer and waits for its answer.
    async fn admin(&self, request: Admin) -> Result<Answer, WireError> {
        match self.ask_writer(request).await? {
            Answered::Body(body) => Ok(Answer::Whole(body)),
            Answered::Topic(topic) => json(&topic),
        }
    }

    async fn ask_writer(&self, request: Admin) -> Result<Answered, WireError> {
        let message: AdminRequest = (request, self.admin_to.clone());
        self.shared
            .admin
            .send(message)
            .map_err(|_| storage_stopped())?;
        self.admin
            .recv_async()
            .await
            .map_err(|_| storage_stopped())?
    }

    /// A consumer's offsets in every partition of a topic, asked one
    /// partition at a time: the session's answer channel has one slot.
    async fn get_offsets(&self, get: api::GetOffsets) -> Result<Answer, WireError> {
        api::check_name("consumer", &get.consumer).map_err(WireError::invalid)?;
        let (id, meta) = find(&self.shard, &get.topic)?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for partition in 0..meta.partitions {
            let job = jobs::GetOffset {
                consumer: get.consumer.clone(),
                done: self.done_to.clone(),
            };
            let Done::Offset(offset) = self.run((id, partition), Box::new(job)).await? else {
                return Err(storage_stopped());
            };
            partitions.push(offset);
        }
        json(&api::ConsumerOffsets {
            consumer: get.consumer,
            topic: id,
            partitions,
        })
    }

    /// A topic as the metadata holds it, with each partition's state from
    /// its owner.
    async fn describe(&self, reference: TopicRef) -> Result<Answer, WireError> {
        let Answered::Topic(mut info) = self.ask_writer(Admin::Describe(reference)).await? else {
            return Err(storage_stopped());
        };
        for partition in 0..info.partitions {
            let job = jobs::Describe {
                done: self.done_to.clone(),
            };
            let Done::Described(state) = self.run((info.id, partition), Box::new(job)).await?
            else {
                return Err(storage_stopped());
            };
            info.partition_info.push(state);
        }
        json(&info)
    }

    /// The server's counters: every shard's summed, and this shard's copy of
    /// the topics.
    fn stats(&self) -> api::Stats {
        let metrics = &self.shared.metrics;
        let mut stats = api::Stats {
            uptime_seconds: metrics.started.elapsed().as_secs(),
            shards: u32::try_from(self.shard.shards()).unwrap_or(u32::MAX),
            io_driver: self.shard.driver().to_string(),
            connections: metrics.connections(),
            topics: u32::try_from(self.shard.topic_count()).unwrap_or(u32::MAX),
            ..api::Stats::default()
        };
        for counters in metrics.topic_totals().values() {
            stats.messages_in += counters.messages_in;
            stats.bytes_in += counters.bytes_in;
            stats.messages_out += counters.messages_out;
            stats.bytes_out += counters.bytes_out;
        }
        stats
    }

    // ANCHOR: gate
    /// Access control, when it is on: a login is answered here; anything else
    /// needs one, and the permission its topic asks for. `Ok(None)`: go ahead.
    fn gate(&mut self, auth: &AuthConfig, request: &Decoded) -> Result<Option<Vec<u8>>, WireError> {
        let shard = self.shard.id();
        if let Decoded::Broker(Request::Login(login)) = request {
            return match auth.login(login) {
                Some(found) => {
                    info!(user = auth.name(found), shard, "logged in");
                    self.user = Some(found);
                    Ok(Some(b"{}".to_vec()))
                }
                None => {
                    // Never the secrets: only that a login failed.
                    warn!(shard, "a login failed");
                    Err(WireError::new(
                        api::status::UNAUTHENTICATED,
                        "wrong user name, password or token",
                    ))
                }
            };
        }
        let Some(who) = self.user else {
            return Err(WireError::new(
                api::status::UNAUTHENTICATED,
                "access control is on: log in first (LOGIN, code 31)",
            ));
        };
        let name_of = |topic: u32| self.shard.topic(topic).ok().map(|meta| meta.name.clone());
        let named = |reference: &TopicRef| {
            find(&self.shard, reference)
                .ok()
                .map(|(_, meta)| meta.name.clone())
        };
        // The topic's name, and whether the request writes to it.
        let (topic, produce) = match request {
            Decoded::Engine(EngineRequest::Produce { topic, .. }) => (name_of(*topic), true),
            Decoded::Engine(EngineRequest::Poll { topic, .. }) => (name_of(*topic), false),
            Decoded::Broker(Request::PollBy(poll)) => (name_of(poll.topic), false),
            Decoded::Broker(Request::StoreOffset(store)) => (named(&store.topic), false),
            Decoded::Broker(Request::GetOffsets(get)) => (named(&get.topic), false),
            Decoded::Engine(EngineRequest::CreateTopic { .. })
            | Decoded::Broker(Request::Admin(
                Admin::CreateTopicById { .. }
                | Admin::CreateStream(_)
                | Admin::DeleteStream(_)
                | Admin::CreateTopic(_)
                | Admin::DeleteTopic(_),
            )) => {
                if auth.allows(who, Action::Admin) {
                    return Ok(None);
                }
                return Err(forbidden(auth, who, "create or delete streams and topics"));
            }
            Decoded::Broker(
                Request::Admin(Admin::ListStreams | Admin::ListTopics(_) | Admin::Describe(_))
                | Request::DescribeTopic(_)
                | Request::Stats
                | Request::Login(_),
            ) => return Ok(None),
        };
        // A topic that does not exist is let through: the request gets
        // `TopicNotFound` as it would anyway.
        let Some(topic) = topic else {
            return Ok(None);
        };
        let (action, verb) = if produce {
            (Action::Produce(&topic), "produce to")
        } else {
            (Action::Consume(&topic), "consume from")
        };
        if auth.allows(who, action) {
            return Ok(None);
        }
        Err(forbidden(auth, who, &format!("{verb} topic {topic:?}")))
    }
}

/// The answer to a logged-in user who may not do `what`.
fn forbidden(auth: &AuthConfig, who: usize, what: &str) -> WireError {
    WireError::new(
        api::status::FORBIDDEN,
        format!("user {:?} may not {what}", auth.name(who)),
    )
}
// ANCHOR_END: gate

/// The topic `reference` names, by id or by name, from this shard's copy.
fn find(shard: &ShardState, reference: &TopicRef) -> Result<(u32, Rc<TopicMeta>), WireError> {
    match reference {
        TopicRef::Id(id) => shard.topic(*id).map(|meta| (*id, meta)),
        TopicRef::Name(name) => shard.topic_named(name),
    }
}

fn json(value: &impl serde::Serialize) -> Result<Answer, WireError> {
    serde_json::to_vec(value)
        .map(Answer::Whole)
        .map_err(|error| WireError::storage(error.to_string()))
}
