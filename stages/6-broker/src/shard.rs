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
//!   is its one writer: every create-topic is forwarded to it, and it tells
//!   every shard by message ([`ShardMessage::Publish`]). Rejected: one
//!   `Arc<HashMap>` swapped under a lock, which every produce on every core
//!   would read, bouncing the lock's cache line between cores; a create is
//!   rare, a produce is not, so the create pays a message per shard instead.
//!
//! Deliberate simplifications: a shard's partitions are not moved to another
//! shard when load is uneven (that is what work stealing would do, and the
//! price of not sharing); a failed partition stays failed until restart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use stage3_tcp_server::ServeError;
use stage4_partitions::protocol::Status;
use stage4_partitions::topics::{MAX_PARTITIONS, status};

use crate::config::Config;
use crate::error::Error;
use crate::partition::Partition;
use crate::router::{Key, Op, Reply, ShardMessage, owner, partition_dir};

/// What a shard's connections see of a topic.
#[derive(Debug)]
pub struct TopicMeta {
    /// Its partition count.
    pub partitions: u32,
    /// This shard's round-robin counter for it: each shard spreads its own
    /// connections' batches. One shared counter would be exact round robin,
    /// and a cache line written by every core on every produce.
    pub round_robin: AtomicU32,
}

/// Everything one shard has, reachable only from its thread.
#[derive(Debug)]
pub struct ShardState {
    /// This shard's number, from 0.
    pub id: usize,
    /// Every shard's inbox, this one's included, by shard number.
    pub inboxes: Vec<flume::Sender<ShardMessage>>,
    /// The storage settings of every partition.
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
    /// Shard 0 only: the create-topic queue of the metadata writer.
    pub creates: RefCell<Option<flume::Sender<ShardMessage>>>,
}

/// What a partition task is asked: a request from a connection, or the
/// saver's and shutdown's own steps.
#[derive(Debug)]
pub enum PartitionOp {
    /// A connection's request.
    Request(Op),
    /// The background saver's step ([`Partition::tick`]).
    Tick,
    /// Write and sync everything, and say how it went.
    Flush(flume::Sender<Result<(), String>>),
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

    // ANCHOR: route
    /// Hands `op` to the partition's task: directly if this shard owns it,
    /// through the owner's inbox if not. The answer comes back on the
    /// request's own reply channel either way.
    pub fn route(&self, key: Key, op: Op) {
        let shard = owner(key.0, key.1, self.inboxes.len());
        if shard == self.id {
            self.to_local(key, op);
        } else if let Some(inbox) = self.inboxes.get(shard) {
            // Unbounded: a connection has one request in flight, so an inbox
            // holds at most one message per open connection.
            if let Err(flume::SendError(message)) = inbox.send(ShardMessage::Storage { key, op })
                && let ShardMessage::Storage { op, .. } = message
            {
                answer(op, storage_stopped());
            }
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

    /// Opens the partitions of `topic` this shard owns, each in its own task.
    pub async fn open_topic(&self, topic: u32, partitions: u32) -> Result<(), ServeError> {
        for partition in 0..partitions {
            if owner(topic, partition, self.inboxes.len()) != self.id
                || self.partitions.borrow().contains_key(&(topic, partition))
            {
                continue;
            }
            let dir = partition_dir(&self.data, topic, partition);
            let opened = Partition::open(&dir, self.config.clone())
                .await
                .map_err(storage_error)?;
            let (queue, requests) = flume::unbounded();
            compio::runtime::spawn(partition_task(opened, partition, requests)).detach();
            self.partitions
                .borrow_mut()
                .insert((topic, partition), queue);
        }
        Ok(())
    }

    /// Adds a topic to this shard's copy of the metadata.
    pub fn publish(&self, topic: u32, partitions: u32) {
        self.topics.borrow_mut().entry(topic).or_insert_with(|| {
            Rc::new(TopicMeta {
                partitions,
                round_robin: AtomicU32::new(0),
            })
        });
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
/// other shards alike, until every sender is gone.
pub async fn partition_task(
    mut partition: Partition,
    number: u32,
    requests: flume::Receiver<PartitionOp>,
) {
    let mut reported = false;
    while let Ok(op) = requests.recv_async().await {
        match op {
            PartitionOp::Request(Op::Append {
                mut body,
                records_at,
                reply,
            }) => {
                let records = body.get_mut(records_at..).unwrap_or_default();
                let result = partition.append(records).await;
                let _ = reply.send(Reply::Produced(
                    result
                        .map(|appended| (number, appended))
                        .map_err(storage_error),
                ));
            }
            PartitionOp::Request(Op::Poll {
                offset,
                count,
                buf,
                reply,
            }) => {
                let result = partition.poll_into(offset, count, buf).await;
                let _ = reply.send(Reply::Polled(result.map_err(storage_error)));
            }
            PartitionOp::Tick => {
                // The error is the partition's from now on: every later
                // append is refused with it. Said once here for the operator.
                if let Err(error) = partition.tick(Instant::now()).await
                    && !reported
                {
                    eprintln!("rivulet-server: partition {number}: {error}");
                    reported = true;
                }
            }
            PartitionOp::Flush(done) => {
                let result = partition.flush().await.map_err(|error| error.to_string());
                let _ = done.send(result);
            }
        }
    }
}
// ANCHOR_END: partition_task

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

// ANCHOR: create_topic
/// Shard 0's metadata writer: creates topics one at a time, so two creates
/// of one topic cannot interleave. Step 1, every shard opens the partitions
/// it owns; the `partitions` file is written (so a restart finds the topic
/// whole or not at all); step 2, every shard learns the topic exists. Only
/// then is the client answered, so no shard routes a request to a partition
/// that is not open yet.
pub async fn metadata_writer(state: Rc<ShardState>, creates: flume::Receiver<ShardMessage>) {
    while let Ok(message) = creates.recv_async().await {
        if let ShardMessage::CreateTopic {
            topic,
            partitions,
            reply,
        } = message
        {
            let result = create_topic(&state, topic, partitions).await;
            let _ = reply.send(Reply::Created(result));
        }
    }
}

async fn create_topic(state: &ShardState, topic: u32, partitions: u32) -> Result<(), ServeError> {
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(status(
            Status::Invalid,
            format!("a topic has 1 to {MAX_PARTITIONS} partitions, not {partitions}"),
        ));
    }
    if let Ok(existing) = state.topic(topic) {
        return match existing.partitions {
            n if n == partitions => Ok(()),
            n => Err(status(
                Status::Invalid,
                format!("topic {topic} exists with {n} partitions"),
            )),
        };
    }
    let mut waits = Vec::with_capacity(state.inboxes.len());
    for inbox in &state.inboxes {
        let (done, wait) = flume::bounded(1);
        let open = ShardMessage::Open {
            topic,
            partitions,
            done,
        };
        inbox.send(open).map_err(|_| storage_stopped())?;
        waits.push(wait);
    }
    for wait in waits {
        wait.recv_async().await.map_err(|_| storage_stopped())??;
    }
    let file = state.data.join(topic.to_string()).join(PARTITIONS_FILE);
    compio::fs::write(&file, partitions.to_string().into_bytes())
        .await
        .0
        .map_err(storage_error_io)?;
    let mut waits = Vec::with_capacity(state.inboxes.len());
    for inbox in &state.inboxes {
        let (done, wait) = flume::bounded(1);
        let publish = ShardMessage::Publish {
            topic,
            partitions,
            done,
        };
        inbox.send(publish).map_err(|_| storage_stopped())?;
        waits.push(wait);
    }
    for wait in waits {
        wait.recv_async().await.map_err(|_| storage_stopped())?;
    }
    Ok(())
}
// ANCHOR_END: create_topic

/// The file, in a topic's folder, that holds its partition count: written
/// after every partition exists, so a topic is loaded whole or not at all.
pub const PARTITIONS_FILE: &str = "partitions";

/// Sends `error` to whoever asked for `op`.
pub fn answer(op: Op, error: ServeError) {
    let (reply, message) = match op {
        Op::Append { reply, .. } => (reply, Reply::Produced(Err(error))),
        Op::Poll { reply, .. } => (reply, Reply::Polled(Err(error))),
    };
    let _ = reply.send(message);
}

/// A storage error as the client sees it: a batch that can never fit is the
/// request's fault; anything else is the storage's.
pub fn storage_error(error: Error) -> ServeError {
    match error {
        Error::BatchTooLarge { .. } | Error::Batch(_) => status(Status::Invalid, error.to_string()),
        _ => status(Status::Storage, error.to_string()),
    }
}

fn storage_error_io(error: std::io::Error) -> ServeError {
    status(Status::Storage, error.to_string())
}

/// The answer when the shard that owns a partition has stopped.
pub fn storage_stopped() -> ServeError {
    status(Status::Storage, "the server is shutting down")
}
