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
//!   is its one writer (the engine's catalog writer, or the broker's metadata
//!   writer): every create or delete is forwarded to it, and it tells every
//!   shard by message ([`ShardMessage::Open`],
//!   [`ShardMessage::Publish`], [`ShardMessage::Close`]). Rejected: one `Arc<HashMap>` swapped under a
//!   lock, which every produce on every core would read, bouncing the lock's
//!   cache line between cores; a create is rare, a produce is not, so the
//!   create pays a message per shard instead;
//! - whatever only the owner may read or change (a consumer's stored offset,
//!   the partition's first and next offsets between resolving and reading)
//!   is done by the partition's task, as a job the broker sends
//!   ([`Op::Run`], [`crate::shards::extension::PartitionJob`]), never by the
//!   connection;
//! - a deleted topic's partition tasks end on [`PartitionOp::Close`], queued
//!   behind the requests already sent to them, so each of those is answered
//!   before the partition's files are closed.
//!
//! Deliberate simplifications: a shard's partitions are not moved to another
//! shard when load is uneven (that is what work stealing would do, and the
//! price of not sharing); a failed partition stays failed until restart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use crate::shards::extension::{Extension, PartitionAt, PartitionJob, ShardJob};
use crate::shards::limits::Limits;
use crate::shards::router::{Key, Op, Reply, ShardMessage, owner, partition_dir};
use crate::shards::topics::{CatalogRequest, TopicSpec};
use crate::shards::wire::{WireError, status};
use crate::storage::config::Config;
use crate::storage::error::Error;
use crate::storage::partition::Partition;
use crate::storage::recovery::RecoveryReport;

/// What a shard's connections see of a topic.
#[derive(Debug)]
pub struct TopicMeta {
    /// Its name.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
    /// This shard's round-robin counter for it: each shard spreads its own
    /// connections' batches. One shared counter would be exact round robin,
    /// and a cache line written by every core on every produce.
    pub round_robin: AtomicU32,
}

/// Everything one shard has, reachable only from its thread. The broker
/// reaches it through the methods below, never its fields.
pub struct ShardState {
    /// This shard's number, from 0.
    pub(crate) id: usize,
    /// Every shard's inbox, this one's included, by shard number.
    pub(crate) inboxes: Vec<flume::Sender<ShardMessage>>,
    /// The server's default storage settings.
    pub(crate) config: Config,
    /// Where topics live.
    pub(crate) data: PathBuf,
    /// The most bytes a frame may claim.
    pub(crate) max_frame_len: u32,
    /// The queue of each partition this shard owns.
    pub(crate) partitions: RefCell<HashMap<Key, flume::Sender<PartitionOp>>>,
    /// This shard's copy of the topic metadata.
    pub(crate) topics: RefCell<HashMap<u32, Rc<TopicMeta>>>,
    /// Closed (dropped) to tell the accept loop and connections to stop.
    pub(crate) stop: RefCell<Option<flume::Sender<()>>>,
    /// Listened to by the accept loop and connections: it ends when `stop` is dropped.
    pub(crate) stopped: flume::Receiver<()>,
    /// Shard 0 only: the queue of the engine's catalog writer.
    pub(crate) catalog: RefCell<Option<flume::Sender<CatalogRequest>>>,
    /// The io driver's name.
    pub(crate) driver: &'static str,
    /// What every shard enforces together: connections in all and per
    /// peer, request bytes in flight ([`crate::shards::limits`]).
    pub(crate) limits: Arc<Limits>,
    /// Close a connection that sends no complete frame for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// What the product adds (the engine's [`crate::shards::extension::Plain`] alone).
    pub(crate) extension: Arc<dyn Extension>,
}

impl std::fmt::Debug for ShardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardState")
            .field("id", &self.id)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
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

impl ShardState {
    /// This shard's number, from 0.
    pub fn id(&self) -> usize {
        self.id
    }

    /// How many shards the server runs.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// The io driver this shard runs on (`io-uring` or `polling`).
    pub fn driver(&self) -> &'static str {
        self.driver
    }

    /// The server's default storage settings.
    pub fn defaults(&self) -> &Config {
        &self.config
    }

    /// The data folder.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Topics this shard knows.
    pub fn topic_count(&self) -> usize {
        self.topics.borrow().len()
    }

    /// The shard's copy of `topic`'s metadata, or the error a client gets.
    pub fn topic(&self, topic: u32) -> Result<Rc<TopicMeta>, WireError> {
        self.topics.borrow().get(&topic).cloned().ok_or_else(|| {
            WireError::new(
                status::TOPIC_NOT_FOUND,
                format!("topic {topic} does not exist; create it first"),
            )
        })
    }

    /// Every topic this shard knows, by id.
    pub fn topics(&self) -> Vec<(u32, Rc<TopicMeta>)> {
        let mut topics: Vec<_> = self
            .topics
            .borrow()
            .iter()
            .map(|(id, meta)| (*id, Rc::clone(meta)))
            .collect();
        topics.sort_by_key(|(id, _)| *id);
        topics
    }

    /// The topic named `name` and its id, from this shard's copy.
    pub fn topic_named(&self, name: &str) -> Result<(u32, Rc<TopicMeta>), WireError> {
        self.topics
            .borrow()
            .iter()
            .find(|(_, meta)| meta.name == name)
            .map(|(id, meta)| (*id, Rc::clone(meta)))
            .ok_or_else(|| {
                WireError::new(
                    status::TOPIC_NOT_FOUND,
                    format!("topic {name:?} does not exist; create it first"),
                )
            })
    }

    /// Resolves when the shard is told to stop: a connection of the
    /// product's own protocol ends between requests then, as the engine's do.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let stopped = self.stopped.clone();
        async move {
            // Never sent to: it ends (an error) when the stop sender is dropped.
            let _ = stopped.recv_async().await;
        }
    }

    /// How long a connection may send no complete request before it is
    /// closed (`None`: for ever).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The most bytes a request may claim, checked before allocating.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// What every shard enforces together (the request budget, for a
    /// protocol of the product's own to reserve large bodies from).
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Hands `op` to the partition's owner and waits for the answer on the
    /// asking connection's `replies`.
    pub async fn ask(
        &self,
        key: Key,
        op: Op,
        replies: &flume::Receiver<Reply>,
    ) -> Result<Reply, WireError> {
        self.route(key, op);
        replies.recv_async().await.map_err(|_| storage_stopped())
    }

    /// Runs `job` on the partition's owner; the job answers its asker.
    pub fn run_on(&self, key: Key, job: Box<dyn PartitionJob>) {
        self.route(key, Op::Run(job));
    }

    /// Runs `job` on shard `shard` (modulo the shards): here, at once, if it
    /// is this one; else through that shard's inbox. The job answers its asker.
    pub fn run_on_shard(self: &Rc<Self>, shard: usize, job: Box<dyn ShardJob>) {
        let shard = shard % self.inboxes.len().max(1);
        if shard == self.id {
            return job.run(self);
        }
        match self.inboxes.get(shard) {
            Some(inbox) => {
                if let Err(flume::SendError(ShardMessage::Run(job))) =
                    inbox.send(ShardMessage::Run(job))
                {
                    job.fail(storage_stopped());
                }
            }
            None => job.fail(storage_stopped()),
        }
    }

    // ANCHOR: route
    /// Hands `op` to the partition's task: directly if this shard owns it,
    /// through the owner's inbox if not. The answer comes back on the
    /// request's own reply channel either way.
    pub fn route(&self, key: Key, op: Op) {
        // EXERCISE: route
        // HINT: the owner of key's partition among self.inboxes.len() shards: this shard
        // HINT: hands op to its own partition (self.to_local); another gets it through its
        // HINT: inbox as ShardMessage::Storage. An inbox that is gone: answer(op, storage_stopped()).
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
        // EXERCISE_END
    }
    // ANCHOR_END: route

    /// Hands `op` to one of this shard's partitions.
    pub(crate) fn to_local(&self, key: Key, op: Op) {
        let queue = self.partitions.borrow().get(&key).cloned();
        let Some(queue) = queue else {
            let (topic, partition) = key;
            return answer(
                op,
                WireError::new(
                    status::PARTITION_NOT_FOUND,
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
    pub(crate) async fn open_topic(
        &self,
        topic: u32,
        partitions: u32,
        config: &Config,
        on_failure: OnFailure,
    ) -> Result<(), WireError> {
        for partition in 0..partitions {
            if owner(topic, partition, self.inboxes.len()) != self.id
                || self.partitions.borrow().contains_key(&(topic, partition))
            {
                continue;
            }
            let dir = partition_dir(&self.data, topic, partition);
            let shard = u32::try_from(self.id).unwrap_or(u32::MAX);
            let (queue, requests) = flume::unbounded();
            match Partition::open(&dir, config.clone()).await {
                Ok(mut opened) => {
                    self.report_recovery(topic, partition, opened.recovery());
                    // Told to the product (the broker's fsync histogram) with
                    // this shard's number: the sync runs on this thread.
                    let extension = Arc::clone(&self.extension);
                    let id = self.id;
                    opened.on_sync(Box::new(move |took| extension.synced(id, took)));
                    let failed = self.on_failed(topic, partition);
                    let task = partition_task(opened, shard, partition, requests, failed);
                    compio::runtime::spawn(task).detach();
                }
                Err(error) if on_failure == OnFailure::MarkFailed => {
                    let reason = failed_at_start(topic, partition, &dir, &error);
                    error!(shard, topic, partition, "{}", reason.message);
                    (self.on_failed(topic, partition))();
                    compio::runtime::spawn(failed_partition_task(reason, requests)).detach();
                }
                Err(error) => return Err(storage_error(error)),
            }
            self.partitions
                .borrow_mut()
                .insert((topic, partition), queue);
        }
        Ok(())
    }

    /// Says what recovery repaired, if anything, in the log and to the
    /// product's counters: a repair is never silent.
    fn report_recovery(&self, topic: u32, partition: u32, report: &RecoveryReport) {
        let repairs = repairs(report);
        if repairs.is_empty() {
            return;
        }
        warn!(
            shard = self.id,
            topic,
            partition,
            "recovered: {} ({} records kept)",
            repairs.join(", "),
            report.records
        );
        self.extension.recovered(self.id, report);
    }

    /// What tells the product that partition `partition` of `topic` failed.
    fn on_failed(&self, topic: u32, partition: u32) -> Box<dyn Fn()> {
        let extension = Arc::clone(&self.extension);
        let id = self.id;
        Box::new(move || extension.partition_failed(id, topic, partition))
    }

    /// Adds a topic to this shard's copy of the metadata.
    pub(crate) fn publish(&self, topic: &TopicSpec) {
        self.topics.borrow_mut().entry(topic.id).or_insert_with(|| {
            Rc::new(TopicMeta {
                name: topic.name.clone(),
                partitions: topic.partitions,
                round_robin: AtomicU32::new(0),
            })
        });
    }

    /// Forgets `topic` and stops this shard's partitions of it; returns
    /// once every one of their tasks has dropped its partition.
    pub(crate) async fn close_topic(&self, topic: u32) {
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
    pub(crate) async fn flush_all(&self) -> Result<(), String> {
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
    failed: Box<dyn Fn()>,
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
                        failed();
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
            answer(
                op,
                WireError::new(status::TOPIC_NOT_FOUND, "the topic was deleted"),
            );
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
        Op::Run(job) => {
            let at = PartitionAt {
                shard,
                partition: number,
            };
            job.run(partition, at).await;
        }
    }
}

/// Whether a partition that cannot be opened fails the whole operation (a
/// create: the client is told, and the create undone) or is marked failed
/// while everything else is served (start-up: one damaged partition must not
/// keep the rest of the broker down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Return the error.
    Refuse,
    /// Serve the partition as failed, with the reason and how to repair it.
    MarkFailed,
}

/// The answer every request to a partition that failed to open gets.
fn failed_at_start(topic: u32, partition: u32, dir: &Path, error: &Error) -> WireError {
    WireError::new(
        status::PARTITION_FAILED,
        format!(
            "partition {partition} of topic {topic} could not be opened at start: {error}. \
             Its files are left as they are. To repair it: stop the server, restore {dir} \
             from a backup, or move it aside (the partition then starts empty, its records \
             and consumer offsets gone), and start again",
            dir = dir.display()
        ),
    )
}

// ANCHOR: failed_partition_task
/// The task of a partition that could not be opened at start: every request
/// is answered with why, so that the rest of the broker serves on; it holds
/// no files, so there is nothing to flush.
async fn failed_partition_task(reason: WireError, requests: flume::Receiver<PartitionOp>) {
    while let Ok(op) = requests.recv_async().await {
        match op {
            PartitionOp::Request(op) => answer(op, reason.clone()),
            PartitionOp::Tick => {}
            PartitionOp::Flush(done) => {
                let _ = done.send(Ok(()));
            }
            PartitionOp::Close(done) => {
                let _ = done.send(());
                return;
            }
        }
    }
}
// ANCHOR_END: failed_partition_task

/// Each thing recovery repaired, in words, for the log.
fn repairs(report: &RecoveryReport) -> Vec<String> {
    let counted = [
        (report.torn_bytes_erased, "bytes of a torn write erased"),
        (report.index_entries_dropped, "offset index entries dropped"),
        (report.index_entries_rebuilt, "offset index entries rebuilt"),
        (report.time_entries_dropped, "time index entries dropped"),
        (report.time_entries_rebuilt, "time index entries rebuilt"),
        (
            report.stray_files_removed as u64,
            "stray index files removed",
        ),
    ];
    counted
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect()
}

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
pub(crate) fn answer(op: Op, error: WireError) {
    match op {
        Op::Append { reply, .. } => {
            let _ = reply.send(Reply::Produced(Err(error)));
        }
        Op::Poll { reply, .. } => {
            let _ = reply.send(Reply::Polled(Err(error)));
        }
        Op::Run(job) => job.fail(error),
    }
}

/// A storage error as the client sees it: a batch that can never fit is the
/// request's fault; a partition that refuses writes after a failed write or
/// sync says so with its own status; anything else is the storage's.
pub fn storage_error(error: Error) -> WireError {
    match error {
        Error::BatchTooLarge { .. } | Error::Batch(_) | Error::InvalidConsumerOffset { .. } => {
            WireError::invalid(error.to_string())
        }
        Error::Failed { .. } => WireError::new(status::PARTITION_FAILED, error.to_string()),
        _ => WireError::storage(error.to_string()),
    }
}

/// The answer when the shard that owns a partition has stopped.
pub fn storage_stopped() -> WireError {
    WireError::storage("the server is shutting down")
}
