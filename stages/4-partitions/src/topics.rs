//! Topics split into partitions, with a lock per partition: the talk's last
//! `Topic` layout.
//!
//! ```text
//! topics:     RwLock<HashMap<u32, Arc<Topic>>>        looked up per request, never held across .await
//! Topic:      partitions: Vec<Arc<RwLock<Batcher>>>  one lock per partition
//! ```
//!
//! Stage 3 had one lock per stream, so every producer of a stream queued behind
//! one write lock. Here a topic's producers spread over its partitions and
//! contend only when they pick the same one; a poll of partition 2 never waits
//! for a produce to partition 0. Order is kept per partition, which is all a
//! log can promise once it is split (and why key partitioning exists).
//!
//! On disk: `data_dir/<topic>/<partition>/` holds stage 1's files, and
//! `data_dir/<topic>/partitions` the partition count, written last, so a topic
//! whose creation was interrupted is not loaded half-made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use stage1_file_log::Message;
use stage2_batching::{Batcher, Config, FsyncPolicy};
use stage3_tcp_server::ServeError;
use stage3_tcp_server::connection::{ReplyBody, Service};
use stage3_tcp_server::streams::{blocking, keep_within, saver, saver_period};
use tokio::sync::RwLock as AsyncRwLock;
use tokio::task::JoinHandle;

use crate::protocol::record::encode_records;
use crate::protocol::{DecodeError, Partitioning, Request, Response, Status};

/// The complete topics in `data_dir`, as (id, partition count): folders named
/// by a topic id whose partition count file was written, so a topic whose
/// creation was interrupted is not loaded half-made. Creates `data_dir` if
/// needed. Stage 5 lays out its data the same way and uses this too.
pub fn topics_on_disk(data_dir: &Path) -> Result<Vec<(u32, u32)>, ServeError> {
    std::fs::create_dir_all(data_dir).map_err(ServeError::storage)?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(ServeError::storage)? {
        let path = entry.map_err(ServeError::storage)?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok());
        let count = std::fs::read_to_string(path.join(PARTITIONS_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let (Some(id), Some(count)) = (id, count) {
            found.push((id, count));
        }
    }
    Ok(found)
}

/// Whether a create request must create the topic: `false` if it exists with
/// as many partitions (not an error), an error if the count is out of range or
/// differs from the existing topic's.
pub fn must_create(
    topic: u32,
    partitions: u32,
    existing: Option<usize>,
) -> Result<bool, ServeError> {
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(status(
            Status::Invalid,
            format!("a topic has 1 to {MAX_PARTITIONS} partitions, not {partitions}"),
        ));
    }
    match existing {
        None => Ok(true),
        Some(n) if n == partitions as usize => Ok(false),
        Some(n) => Err(status(
            Status::Invalid,
            format!("topic {topic} exists with {n} partitions"),
        )),
    }
}

/// Records that every partition of the topic in `dir` exists: written last.
pub fn mark_complete(dir: &Path, partitions: u32) -> Result<(), ServeError> {
    std::fs::write(dir.join(PARTITIONS_FILE), partitions.to_string()).map_err(ServeError::storage)
}

/// The most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 1024;
const PARTITIONS_FILE: &str = "partitions";

/// What every partition is opened with.
#[derive(Debug, Clone)]
pub struct TopicsConfig {
    /// Topics live in `data_dir/<topic>/`.
    pub data_dir: PathBuf,
    /// Stage 2's thresholds and fsync policy, for every partition.
    pub partition: Config,
    /// The most records one poll returns.
    pub max_poll_records: u32,
    /// The most record bytes one poll returns.
    pub max_poll_bytes: usize,
}

impl TopicsConfig {
    /// Defaults under `data_dir` with the given fsync policy.
    pub fn new(data_dir: impl Into<PathBuf>, fsync: FsyncPolicy) -> TopicsConfig {
        TopicsConfig {
            data_dir: data_dir.into(),
            partition: Config::new(fsync),
            max_poll_records: 1000,
            max_poll_bytes: 8 << 20,
        }
    }
}

// ANCHOR: topic
/// A topic: its partitions, each behind its own lock. `P` is what a partition
/// is: stage 2's batcher here, stage 5's partition of wire records there.
#[derive(Debug)]
pub struct Topic<P = Batcher> {
    partitions: Vec<Arc<AsyncRwLock<P>>>,
    next_round_robin: AtomicU32,
}
// ANCHOR_END: topic

impl<P> Topic<P> {
    /// The partition a batch goes to ([`choose_partition`]).
    pub fn choose(&self, partitioning: &Partitioning) -> Result<u32, ServeError> {
        choose_partition(
            partitioning,
            self.partitions.len() as u32,
            &self.next_round_robin,
        )
    }

    /// Partition `partition`, or the protocol's "partition not found".
    pub fn partition(&self, partition: u32) -> Result<&Arc<AsyncRwLock<P>>, ServeError> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            status(
                Status::PartitionNotFound,
                format!(
                    "partition {partition} does not exist; the topic has {}",
                    self.partitions.len()
                ),
            )
        })
    }

    /// Every partition, in order.
    pub fn partitions(&self) -> &[Arc<AsyncRwLock<P>>] {
        &self.partitions
    }
}

/// The topics of a server by id, and their folders: what stages 4 and 5 share
/// whatever their partitions are. The map's lock is a `std::sync::RwLock`,
/// held only to look up or insert, never across an `.await`.
#[derive(Debug)]
pub struct TopicMap<P> {
    data_dir: PathBuf,
    topics: RwLock<HashMap<u32, Arc<Topic<P>>>>,
}

impl<P: Send + Sync + 'static> TopicMap<P> {
    /// An empty map of topics kept under `data_dir`.
    pub fn new(data_dir: &Path) -> TopicMap<P> {
        TopicMap {
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(HashMap::new()),
        }
    }

    /// The complete topics on disk ([`topics_on_disk`]), to open at start.
    pub fn on_disk(&self) -> Result<Vec<(u32, u32)>, ServeError> {
        topics_on_disk(&self.data_dir)
    }

    /// Topic `topic`, or the protocol's "topic not found".
    pub fn get(&self, topic: u32) -> Result<Arc<Topic<P>>, ServeError> {
        let map = self.topics.read().map_err(|_| ServeError::poisoned())?;
        map.get(&topic).cloned().ok_or_else(|| {
            status(
                Status::TopicNotFound,
                format!("topic {topic} does not exist; create it first"),
            )
        })
    }

    /// Every topic.
    pub fn all(&self) -> Result<Vec<Arc<Topic<P>>>, ServeError> {
        let map = self.topics.read().map_err(|_| ServeError::poisoned())?;
        Ok(map.values().cloned().collect())
    }

    /// Creates `topic` with `partitions` partitions, each opened (and recovered)
    /// by `open(partition, folder, now)` on a blocking thread; returns the new
    /// topic, or `None` if it existed already with as many partitions.
    pub async fn create<F>(
        &self,
        topic: u32,
        partitions: u32,
        open: F,
    ) -> Result<Option<Arc<Topic<P>>>, ServeError>
    where
        F: Fn(u32, PathBuf, std::time::Instant) -> Result<P, ServeError> + Clone + Send + 'static,
    {
        let existing = self.get(topic).ok().map(|t| t.partitions.len());
        if !must_create(topic, partitions, existing)? {
            return Ok(None);
        }
        let dir = self.data_dir.join(topic.to_string());
        let mut opened = Vec::new();
        for partition in 0..partitions {
            let (open, dir) = (open.clone(), dir.join(partition.to_string()));
            let now = tokio::time::Instant::now().into_std();
            let one = tokio::task::spawn_blocking(move || open(partition, dir, now))
                .await
                .map_err(ServeError::storage)??;
            opened.push(Arc::new(AsyncRwLock::new(one)));
        }
        mark_complete(&dir, partitions)?;
        let new = Arc::new(Topic {
            partitions: opened,
            next_round_robin: AtomicU32::new(0),
        });
        let mut map = self.topics.write().map_err(|_| ServeError::poisoned())?;
        if map.contains_key(&topic) {
            return Ok(None); // created meanwhile by another connection
        }
        map.insert(topic, Arc::clone(&new));
        Ok(Some(new))
    }
}

/// Every topic of the server.
#[derive(Debug)]
pub struct Topics {
    config: TopicsConfig,
    topics: TopicMap<Batcher>,
    savers: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// An error response with one of this protocol's statuses.
pub fn status(status: Status, message: impl Into<String>) -> ServeError {
    ServeError {
        status: status.into(),
        message: message.into(),
    }
}

impl Topics {
    /// Opens every complete topic in the data directory.
    pub async fn open(config: TopicsConfig) -> Result<Arc<Topics>, ServeError> {
        let topics = Arc::new(Topics {
            topics: TopicMap::new(&config.data_dir),
            config,
            savers: std::sync::Mutex::new(Vec::new()),
        });
        for (id, count) in topics.topics.on_disk()? {
            topics.create(id, count).await?;
        }
        Ok(topics)
    }

    /// Creates `topic` with `partitions` partitions; fine if it exists with as many.
    pub async fn create(self: &Arc<Self>, topic: u32, partitions: u32) -> Result<(), ServeError> {
        let config = self.config.partition.clone();
        let open = move |partition, dir: PathBuf, now| {
            Batcher::open(partition, &dir, config.clone(), now).map_err(ServeError::from)
        };
        let Some(new) = self.topics.create(topic, partitions, open).await? else {
            return Ok(());
        };
        let period = saver_period(&self.config.partition);
        if let Ok(mut savers) = self.savers.lock() {
            for partition in new.partitions() {
                savers.push(tokio::spawn(saver(Arc::clone(partition), period)));
            }
        }
        Ok(())
    }

    // ANCHOR: produce
    /// Appends a batch under its partition's write lock: producers to other
    /// partitions of the same topic do not wait.
    pub async fn produce(
        &self,
        topic: u32,
        partitioning: &Partitioning,
        messages: Vec<Message>,
    ) -> Result<Vec<u8>, ServeError> {
        // EXERCISE: produce
        // HINT: the topic (self.topics.get), its partition (topic.choose), that partition's
        // HINT: write lock alone (write_owned), Batcher::append in `blocking`; answer with
        // HINT: Response::produced.
        let topic = self.topics.get(topic)?;
        let partition = topic.choose(partitioning)?;
        let count = messages.len() as u32; // bounded by the frame size
        let mut guard = Arc::clone(topic.partition(partition)?).write_owned().await;
        let now = tokio::time::Instant::now().into_std();
        let appended = blocking(move || guard.append(messages, now)).await?;
        Ok(Response::produced(
            partition,
            appended.offsets.start,
            count,
            appended.durable,
        ))
        // EXERCISE_END
    }
    // ANCHOR_END: produce

    /// Reads under the partition's read lock, encoding stage 1's records into
    /// the wire format (the copy and checksum stage 5 no longer needs).
    pub async fn poll(
        &self,
        topic: u32,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Result<Vec<u8>, ServeError> {
        let stream = self.topics.get(topic)?.partition(partition)?.clone();
        let count = u64::from(count.min(self.config.max_poll_records));
        let guard = stream.read_owned().await;
        let mut messages = blocking(move || guard.poll(offset, count)).await?;
        keep_within(&mut messages, self.config.max_poll_bytes);
        let mut body = Vec::new();
        // Stage 4 stores no timestamp: 0 says "unknown" (stage 5 stores one).
        encode_records(
            &mut body,
            messages
                .iter()
                .map(|m| (m.offset, 0, m.id, m.payload.as_slice())),
        );
        Ok(body)
    }

    /// Stops the savers, then writes and syncs every partition.
    pub async fn shutdown(&self) -> Result<(), ServeError> {
        if let Ok(mut savers) = self.savers.lock() {
            savers.drain(..).for_each(|saver| saver.abort());
        }
        let topics = self.topics.all()?;
        for partition in topics.iter().flat_map(|topic| topic.partitions()) {
            let mut guard = Arc::clone(partition).write_owned().await;
            let now = tokio::time::Instant::now().into_std();
            blocking(move || guard.flush(now)).await?;
        }
        Ok(())
    }
}

// ANCHOR: choose_partition
/// The partition a batch goes to, in a topic of `count` partitions whose
/// round-robin counter is `round_robin`. Stage 5 places batches with it too.
pub fn choose_partition(
    partitioning: &Partitioning,
    count: u32,
    round_robin: &AtomicU32,
) -> Result<u32, ServeError> {
    // EXERCISE: choose_partition
    // HINT: Explicit names it; RoundRobin takes the counter's next value (fetch_add)
    // HINT: modulo count; Key is crc32c::crc32c(key) modulo count. A partition that is
    // HINT: not below count is Status::PartitionNotFound.
    let partition = match partitioning {
        Partitioning::Explicit(partition) => *partition,
        // Relaxed: the counter only spreads batches; no other memory
        // depends on its value, so no ordering is needed. (`max(1)`: a
        // topic has at least one partition; never divide by zero.)
        Partitioning::RoundRobin => round_robin.fetch_add(1, Ordering::Relaxed) % count.max(1),
        Partitioning::Key(key) => crc32c::crc32c(key) % count.max(1),
    };
    if partition >= count {
        return Err(status(
            Status::PartitionNotFound,
            format!("partition {partition} does not exist; the topic has {count}"),
        ));
    }
    Ok(partition)
    // EXERCISE_END
}
// ANCHOR_END: choose_partition

impl Service for Topics {
    type Request = Request;
    type DecodeError = DecodeError;

    fn decode(&self, code: u16, body: Vec<u8>) -> Option<Result<Request, DecodeError>> {
        Request::decode(code, &body)
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Result<ReplyBody, ServeError> {
        let body = match request {
            Request::CreateTopic { topic, partitions } => {
                self.create(topic, partitions).await.map(|()| Vec::new())
            }
            Request::Produce {
                topic,
                partitioning,
                records,
            } => {
                let messages = records
                    .into_iter()
                    .map(|r| Message::new(r.id, r.payload))
                    .collect();
                self.produce(topic, &partitioning, messages).await
            }
            Request::Poll {
                topic,
                partition,
                offset,
                count,
            } => self.poll(topic, partition, offset, count).await,
        }?;
        Ok(body.into())
    }

    async fn shutdown(&self) -> Result<(), ServeError> {
        Topics::shutdown(self).await
    }
}
