//! A shard: one thread, one compio runtime, the partitions it owns, and its
//! own copy of the topic metadata.
//!
//! ```text
//!   shard 0 (thread, runtime, core 0)        shard 1 (thread, runtime, core 1)
//!   listener ─► connection ─┬─ local ─► partition task (0, 0)
//!                           └─ inbox of shard 1 ──────────► partition task (0, 1)
//!                ◄─────────── reply channel of the connection ───────┘
//!   metadata copy + the one writer             metadata copy
//! ```
//!
//! Invariants:
//! - a `Partition` is a local variable of one task on its owner's thread
//!   ([`partition_task`]): nothing else can reach it, so it needs no lock. Its
//!   requests queue on a channel and are served one at a time, in order;
//!   different partitions of one shard interleave at every `.await`;
//! - [`ShardState`] is `Rc`, not `Arc`: it cannot leave its thread, and the
//!   compiler says so. Its `RefCell`s are borrowed for a lookup and released
//!   before any `.await`;
//! - the topic metadata (which topics exist, with how many partitions) is the
//!   only thing every shard knows, and each shard keeps its *own copy*. Shard 0
//!   is its one writer ([`crate::admin`]): every create or delete is forwarded
//!   to it, and it tells every shard by message ([`ShardMessage::Open`],
//!   [`ShardMessage::Publish`], [`ShardMessage::Close`]). Rejected: one `Arc<HashMap>` swapped under a
//!   lock, which every produce on every core would read, bouncing the lock's
//!   cache line between cores; a create is rare, a produce is not, so the
//!   create pays a message per shard instead;
//! - positions (a poll's first, last, next, by timestamp) and consumer
//!   offsets are resolved by the partition's task (`poll_by`), never by the
//!   connection: only the owner knows them, and between resolving and
//!   reading nothing else can append or store;
//! - a deleted topic's partition tasks end on [`PartitionOp::Close`], queued
//!   behind the requests already sent to them, so each of those is answered
//!   before the partition's files are closed.
//!
//! Deliberate simplifications: a shard's partitions are not moved to another
//! shard when load is uneven (that is what work stealing would do, and the
//! price of not sharing); a failed partition stays failed until restart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::time::{Duration, Instant};

use stage3_tcp_server::ServeError;
use stage4_partitions::protocol::Status;
use stage4_partitions::topics::status;
use tracing::{error, warn};

use crate::api::{self, PollKind, StoredOffset, TopicInfo, TopicRef};
use crate::auth::AuthConfig;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::router::{Admin, Key, Op, Reply, ReplyTo, ShardMessage, owner, partition_dir};

/// What a shard's connections see of a topic.
#[derive(Debug)]
pub struct TopicMeta {
    /// Its partition count.
    pub partitions: u32,
    /// This shard's round-robin counter for it: each shard spreads its own
    /// connections' batches. One shared counter would be exact round robin,
    /// and a cache line written by every core on every produce.
    pub round_robin: AtomicU32,
    /// The topic as clients are shown it (name, stream, settings in effect).
    pub info: TopicInfo,
}

/// Everything one shard has, reachable only from its thread.
#[derive(Debug)]
pub struct ShardState {
    /// This shard's number, from 0.
    pub id: usize,
    /// Every shard's inbox, this one's included, by shard number.
    pub inboxes: Vec<flume::Sender<ShardMessage>>,
    /// The server's default storage settings (a topic's own are resolved
    /// against them by the metadata writer).
    pub config: Config,
    /// Where topics live.
    pub data: PathBuf,
    /// The most bytes a frame may claim.
    pub max_frame_len: u32,
    /// The queue of each partition this shard owns.
    pub partitions: RefCell<HashMap<Key, flume::Sender<PartitionOp>>>,
    /// This shard's copy of the topic metadata.
    pub topics: RefCell<HashMap<u32, Rc<TopicMeta>>>,
    /// Closed (dropped) to tell the accept loop and connections to stop.
    pub stop: RefCell<Option<flume::Sender<()>>>,
    /// Listened to by the accept loop and connections: it ends when `stop` is dropped.
    pub stopped: flume::Receiver<()>,
    /// Shard 0 only: the queue of the metadata writer.
    pub admin: RefCell<Option<flume::Sender<(Admin, ReplyTo)>>>,
    /// Every shard's counters (this shard writes only its own).
    pub metrics: Arc<Metrics>,
    /// The io driver's name, for `stats`.
    pub driver: &'static str,
    /// Connections open over every shard, against `max_connections`.
    pub connections: Arc<AtomicUsize>,
    /// The most connections open at once, over every shard.
    pub max_connections: usize,
    /// Close a connection that sends no complete frame for this long.
    pub idle_timeout: Option<Duration>,
    /// Who may do what, when access control is on.
    pub auth: Option<Arc<AuthConfig>>,
}

/// What a partition task is asked: a request from a connection, or the
/// saver's, delete's and shutdown's own steps.
#[derive(Debug)]
pub enum PartitionOp {
    /// A connection's request.
    Request(Op),
    /// The background saver's step ([`Partition::tick`]).
    Tick,
    /// Write and sync everything, and say how it went.
    Flush(flume::Sender<Result<(), String>>),
    /// Stop: the topic is deleted. Sent once the partition is dropped (its
    /// files closed). Requests queued before it are answered first.
    Close(flume::Sender<()>),
}

/// An error reply with one of stage 6's status codes.
pub fn fail(code: u16, message: impl Into<String>) -> ServeError {
    ServeError {
        status: code,
        message: message.into(),
    }
}

/// The answer to a well-formed request with a value that cannot work.
pub fn invalid(message: impl Into<String>) -> ServeError {
    status(Status::Invalid, message)
}

impl ShardState {
    /// The shard's copy of `topic`'s metadata, or the error a client gets.
    pub fn topic(&self, topic: u32) -> Result<Rc<TopicMeta>, ServeError> {
        self.topics.borrow().get(&topic).cloned().ok_or_else(|| {
            status(
                Status::TopicNotFound,
                format!("topic {topic} does not exist; create it first"),
            )
        })
    }

    /// The topic `reference` names, by id or by name, from this shard's copy.
    pub fn find_topic(&self, reference: &TopicRef) -> Result<Rc<TopicMeta>, ServeError> {
        match reference {
            TopicRef::Id(id) => self.topic(*id),
            TopicRef::Name(name) => self
                .topics
                .borrow()
                .values()
                .find(|meta| &meta.info.name == name)
                .cloned()
                .ok_or_else(|| {
                    status(
                        Status::TopicNotFound,
                        format!("topic {name:?} does not exist; create it first"),
                    )
                }),
        }
    }

    // ANCHOR: route
    /// Hands `op` to the partition's task: directly if this shard owns it,
    /// through the owner's inbox if not. The answer comes back on the
    /// request's own reply channel either way.
    pub fn route(&self, key: Key, op: Op) {
        let shard = owner(key.0, key.1, self.inboxes.len());
        if shard == self.id {
            return self.to_local(key, op);
        }
        let Some(inbox) = self.inboxes.get(shard) else {
            return answer(op, storage_stopped());
        };
        // Unbounded: a connection has one request in flight, so an inbox
        // holds at most one message per open connection.
        if let Err(flume::SendError(ShardMessage::Storage { op, .. })) =
            inbox.send(ShardMessage::Storage { key, op })
        {
            answer(op, storage_stopped());
        }
    }
    // ANCHOR_END: route

    /// Hands `op` to one of this shard's partitions.
    pub fn to_local(&self, key: Key, op: Op) {
        let queue = self.partitions.borrow().get(&key).cloned();
        let Some(queue) = queue else {
            let (topic, partition) = key;
            return answer(
                op,
                status(
                    Status::PartitionNotFound,
                    format!("partition {partition} of topic {topic} does not exist"),
                ),
            );
        };
        if let Err(flume::SendError(PartitionOp::Request(op))) =
            queue.send(PartitionOp::Request(op))
        {
            answer(op, storage_stopped());
        }
    }

    /// Opens the partitions of `topic` this shard owns, each in its own task,
    /// with the topic's own storage settings.
    pub async fn open_topic(
        &self,
        topic: u32,
        partitions: u32,
        config: &Config,
    ) -> Result<(), ServeError> {
        for partition in 0..partitions {
            if owner(topic, partition, self.inboxes.len()) != self.id
                || self.partitions.borrow().contains_key(&(topic, partition))
            {
                continue;
            }
            let dir = partition_dir(&self.data, topic, partition);
            let mut opened = Partition::open(&dir, config.clone())
                .await
                .map_err(storage_error)?;
            // The fsync histogram of the shard that owns the partition: the
            // sync runs on this thread, so only this shard's counters are written.
            let metrics = Arc::clone(&self.metrics);
            let shard = self.id;
            opened.on_sync(Box::new(move |took| metrics.shard(shard).fsync(took)));
            let (queue, requests) = flume::unbounded();
            let shard = u32::try_from(self.id).unwrap_or(u32::MAX);
            compio::runtime::spawn(partition_task(opened, shard, partition, requests)).detach();
            self.partitions
                .borrow_mut()
                .insert((topic, partition), queue);
        }
        Ok(())
    }

    /// Adds a topic to this shard's copy of the metadata.
    pub fn publish(&self, info: TopicInfo) {
        self.topics.borrow_mut().entry(info.id).or_insert_with(|| {
            Rc::new(TopicMeta {
                partitions: info.partitions,
                round_robin: AtomicU32::new(0),
                info,
            })
        });
    }

    /// Forgets `topic` and stops this shard's partitions of it; returns
    /// once every one of their tasks has dropped its partition.
    pub async fn close_topic(&self, topic: u32) {
        self.topics.borrow_mut().remove(&topic);
        let queues: Vec<_> = {
            let mut partitions = self.partitions.borrow_mut();
            let keys: Vec<Key> = partitions
                .keys()
                .filter(|k| k.0 == topic)
                .copied()
                .collect();
            keys.iter()
                .filter_map(|key| partitions.remove(key))
                .collect()
        };
        for queue in queues {
            let (done, closed) = flume::bounded(1);
            if queue.send(PartitionOp::Close(done)).is_ok() {
                let _ = closed.recv_async().await;
            }
        }
    }

    /// Every partition queue of this shard, taken out of the map's borrow.
    fn queues(&self) -> Vec<flume::Sender<PartitionOp>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Writes and syncs every partition of this shard.
    pub async fn flush_all(&self) -> Result<(), String> {
        let mut first_error = Ok(());
        for queue in self.queues() {
            let (done, result) = flume::bounded(1);
            if queue.send(PartitionOp::Flush(done)).is_err() {
                continue;
            }
            if let Ok(Err(error)) = result.recv_async().await {
                first_error = first_error.and(Err(error));
            }
        }
        first_error
    }
}

// ANCHOR: partition_task
/// The task that owns one partition: it serves the partition's requests
/// one at a time, in the order they arrived, from local connections and
/// other shards alike, until every sender is gone or it is closed.
pub async fn partition_task(
    mut partition: Partition,
    shard: u32,
    number: u32,
    requests: flume::Receiver<PartitionOp>,
) {
    let mut reported = false;
    let mut last_problem: Option<String> = None;
    let mut closed = None;
    while let Ok(op) = requests.recv_async().await {
        match op {
            PartitionOp::Request(op) => serve_op(&mut partition, shard, number, op).await,
            PartitionOp::Tick => {
                // A failed write or sync is the partition's from now on:
                // every later append is refused with it. Said once here for
                // the operator. Other errors of the step (a retention unlink,
                // a consumer-offsets sync, a full disk) leave the partition
                // serving, and are retried by the next tick: said when the
                // problem changes, not ten times a second.
                if let Err(problem) = partition.tick(Instant::now()).await {
                    if partition.failure().is_none() {
                        let said = problem.to_string();
                        if last_problem.as_deref() != Some(said.as_str()) {
                            warn!(shard, partition = number, "background step: {said}");
                            last_problem = Some(said);
                        }
                    } else if !reported {
                        error!(shard, partition = number, "partition failed: {problem}");
                        reported = true;
                    }
                }
            }
            PartitionOp::Flush(done) => {
                let result = partition.flush().await.map_err(|error| error.to_string());
                let _ = done.send(result);
            }
            PartitionOp::Close(done) => {
                closed = Some(done);
                break;
            }
        }
    }
    drop(partition);
    if let Some(done) = closed {
        let _ = done.send(());
    }
    // Nothing should be queued behind `Close` (`close_topic` takes the queue
    // out of the map before it sends it), but a request dropped unanswered
    // would leave its connection waiting for ever: answer any that is.
    for op in requests.drain() {
        if let PartitionOp::Request(op) = op {
            answer(op, status(Status::TopicNotFound, "the topic was deleted"));
        }
    }
}
// ANCHOR_END: partition_task

/// Serves one request on the partition that owns it.
async fn serve_op(partition: &mut Partition, shard: u32, number: u32, op: Op) {
    match op {
        Op::Append {
            mut body,
            records_at,
            reply,
        } => {
            let records = body.get_mut(records_at..).unwrap_or_default();
            let result = partition.append(records).await;
            let _ = reply.send(Reply::Produced(
                result
                    .map(|appended| (number, appended))
                    .map_err(storage_error),
            ));
        }
        Op::Poll {
            offset,
            count,
            buf,
            reply,
        } => {
            let result = partition.poll_into(offset, count, buf).await;
            let _ = reply.send(Reply::Polled(result.map_err(storage_error)));
        }
        Op::PollBy {
            kind,
            count,
            consumer,
            auto_commit,
            buf,
            reply,
        } => {
            let result = poll_by(partition, kind, count, &consumer, auto_commit, buf).await;
            let _ = reply.send(Reply::Polled(result));
        }
        Op::StoreOffset {
            consumer,
            offset,
            reply,
        } => {
            // An offset past the end is refused by the partition (`Invalid`).
            let result = partition
                .store_consumer_offset(&consumer, offset)
                .await
                .map_err(storage_error);
            let _ = reply.send(Reply::Stored(result));
        }
        Op::GetOffset { consumer, reply } => {
            let _ = reply.send(Reply::Offset(Ok(StoredOffset {
                partition: number,
                offset: partition.consumer_offset(&consumer),
                next_offset: partition.next_offset(),
            })));
        }
        Op::Describe { reply } => {
            let mut info = partition.info();
            info.partition = number;
            info.shard = shard;
            let _ = reply.send(Reply::Described(Ok(info)));
        }
    }
}

// ANCHOR: poll_by
/// A poll by position: the kind is resolved here, on the owner, which alone
/// knows the partition's offsets and its consumers' offsets; with
/// auto-commit the consumer's offset is stored before the reply is sent, so
/// a consumer that saw the reply never sees these records again from `Next`.
async fn poll_by(
    partition: &mut Partition,
    kind: PollKind,
    count: u64,
    consumer: &str,
    auto_commit: bool,
    buf: crate::aligned::AlignedBuf,
) -> Result<crate::partition::Polled, ServeError> {
    let first = partition.first_offset();
    let next = partition.next_offset();
    let start = match kind {
        PollKind::Offset(offset) => offset,
        // No record at or after the time: the end, so the poll is empty.
        PollKind::Timestamp(timestamp) => partition.offset_at(timestamp).unwrap_or(next),
        PollKind::First => first,
        PollKind::Last => next.saturating_sub(count).max(first),
        PollKind::Next => partition.consumer_offset(consumer).unwrap_or(first),
    };
    let polled = partition
        .poll_into(start, count, buf)
        .await
        .map_err(storage_error)?;
    if auto_commit && polled.count > 0 {
        partition
            .store_consumer_offset(consumer, polled.first_offset + polled.count)
            .await
            .map_err(storage_error)?;
    }
    Ok(polled)
}
// ANCHOR_END: poll_by

// ANCHOR: saver
/// The shard's background saver: every `period`, each partition's `tick`,
/// queued behind whatever requests it already has.
pub async fn saver(state: Rc<ShardState>, period: Duration) {
    loop {
        compio::time::sleep(period).await;
        if state.stop.borrow().is_none() {
            return;
        }
        for queue in state.queues() {
            let _ = queue.send(PartitionOp::Tick);
        }
    }
}
// ANCHOR_END: saver

/// Sends `error` to whoever asked for `op`.
pub fn answer(op: Op, error: ServeError) {
    let (reply, message) = match op {
        Op::Append { reply, .. } => (reply, Reply::Produced(Err(error))),
        Op::Poll { reply, .. } | Op::PollBy { reply, .. } => (reply, Reply::Polled(Err(error))),
        Op::StoreOffset { reply, .. } => (reply, Reply::Stored(Err(error))),
        Op::GetOffset { reply, .. } => (reply, Reply::Offset(Err(error))),
        Op::Describe { reply } => (reply, Reply::Described(Err(error))),
    };
    let _ = reply.send(message);
}

/// A storage error as the client sees it: a batch that can never fit is the
/// request's fault; a partition that refuses writes after a failed write or
/// sync says so with its own status; anything else is the storage's.
pub fn storage_error(error: Error) -> ServeError {
    match error {
        Error::BatchTooLarge { .. } | Error::Batch(_) | Error::InvalidConsumerOffset { .. } => {
            invalid(error.to_string())
        }
        Error::Failed { .. } => fail(api::status::PARTITION_FAILED, error.to_string()),
        _ => status(Status::Storage, error.to_string()),
    }
}

/// The answer when the shard that owns a partition has stopped.
pub fn storage_stopped() -> ServeError {
    status(Status::Storage, "the server is shutting down")
}
