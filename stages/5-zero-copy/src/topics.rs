//! Topics of partitions, each behind its own lock: stage 4's layout, with
//! [`Partition`]s (wire records on disk) where stage 4 had stage 2's batcher.
//!
//! ```text
//! topics:     RwLock<HashMap<u32, Arc<Topic>>>          looked up per request, never held across .await
//! Topic:      partitions: Vec<Arc<RwLock<Partition>>>  one lock per partition
//! ```
//!
//! The map of topics, their folders, creation and partition choice are stage
//! 4's (`TopicMap`, `Topic`, generic over what a partition is); what is stage
//! 5's own is what a produce and a poll do with a partition, and its saver.
//! Stage 3's server drives this through the `Service` trait.
//!
//! On disk: `data_dir/<topic>/<partition>/` holds a [`Partition`]'s files, and
//! `data_dir/<topic>/partitions` the partition count, written last, so a topic
//! whose creation was interrupted is not loaded half-made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stage2_batching::FsyncPolicy;
use stage3_tcp_server::ServeError;
use stage3_tcp_server::connection::{ReplyBody, Service};
use stage3_tcp_server::streams::saver_period;
use stage4_partitions::TopicsConfig;
use stage4_partitions::protocol::record::RecordError;
use stage4_partitions::protocol::{Partitioning, Response};
use stage4_partitions::topics::TopicMap;
use tokio::sync::RwLock as AsyncRwLock;
use tokio::task::JoinHandle;

use crate::batch::ReceivedBatch;
use crate::error::Error;
use crate::partition::{Partition, Polled};
use crate::protocol::Request;

/// One partition behind its lock, shared by connections and its saver.
pub type SharedPartition = Arc<AsyncRwLock<Partition>>;

/// Every topic of the server.
#[derive(Debug)]
pub struct Topics {
    config: TopicsConfig,
    topics: TopicMap<Partition>,
    savers: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Topics {
    /// Opens every complete topic in the data directory (recovering each partition).
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
        let open = move |_, dir: PathBuf, now| {
            Partition::open(&dir, config.clone(), now).map_err(ServeError::from)
        };
        let Some(new) = self.topics.create(topic, partitions, open).await? else {
            return Ok(());
        };
        // Only the policies that sync later need a saver.
        let fsync = self.config.partition.fsync;
        if matches!(fsync, FsyncPolicy::EveryBatch | FsyncPolicy::Interval(_)) {
            let period = saver_period(&self.config.partition);
            if let Ok(mut savers) = self.savers.lock() {
                for partition in new.partitions() {
                    savers.push(tokio::spawn(saver(Arc::clone(partition), period)));
                }
            }
        }
        Ok(())
    }

    // ANCHOR: produce
    /// Appends a batch under its partition's write lock: the batch moves, in
    /// the buffer it arrived in, to a blocking thread that stamps and writes it.
    pub async fn produce(
        &self,
        topic: u32,
        partitioning: &Partitioning,
        mut batch: ReceivedBatch,
    ) -> Result<Vec<u8>, ServeError> {
        let topic = self.topics.get(topic)?;
        let partition = topic.choose(partitioning)?;
        let mut guard = Arc::clone(topic.partition(partition)?).write_owned().await;
        let now = tokio::time::Instant::now().into_std();
        let appended = blocking(move || guard.append(&mut batch, now_micros(), now)).await?;
        let count = (appended.offsets.end - appended.offsets.start) as u32; // from a u32 count
        Ok(Response::produced(
            partition,
            appended.offsets.start,
            count,
            appended.durable,
        ))
    }
    // ANCHOR_END: produce

    // ANCHOR: poll
    /// Reads under the partition's read lock: the bytes as stored, to be sent
    /// as they are (no decode, no re-encode, no checksum).
    pub async fn poll(
        &self,
        topic: u32,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Result<ReplyBody, ServeError> {
        // EXERCISE: zero_copy_poll
        // HINT: the partition (self.topics.get, .partition), its read lock (read_owned),
        // HINT: Partition::read in `blocking` with this config's limits, and the bytes read
        // HINT: sent as they are: ReplyBody::counted.
        let shared = self.topics.get(topic)?.partition(partition)?.clone();
        let max_records = count.min(self.config.max_poll_records);
        let max_bytes = self.config.max_poll_bytes;
        let guard = shared.read_owned().await;
        let polled: Polled = blocking(move || guard.read(offset, max_records, max_bytes)).await?;
        Ok(ReplyBody::counted(polled.count, polled.records))
        // EXERCISE_END
    }
    // ANCHOR_END: poll

    /// Stops the savers, then syncs every partition.
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

impl Service for Topics {
    type Request = Request;
    type DecodeError = RecordError;

    fn decode(&self, code: u16, body: Vec<u8>) -> Option<Result<Request, RecordError>> {
        Request::decode(code, body)
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Result<ReplyBody, ServeError> {
        match request {
            Request::CreateTopic { topic, partitions } => self
                .create(topic, partitions)
                .await
                .map(|()| ReplyBody::Whole(Vec::new())),
            Request::Produce {
                topic,
                partitioning,
                batch,
            } => self
                .produce(topic, &partitioning, batch)
                .await
                .map(ReplyBody::Whole),
            Request::Poll {
                topic,
                partition,
                offset,
                count,
            } => self.poll(topic, partition, offset, count).await,
        }
    }

    async fn shutdown(&self) -> Result<(), ServeError> {
        Topics::shutdown(self).await
    }
}

/// The partition's saver: at each tick, sync what the policy says is due.
/// Takes the write lock only when there is something to sync.
async fn saver(partition: SharedPartition, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.tick().await; // the first tick is immediate; nothing to save yet
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now().into_std();
        if !partition.read().await.needs_tick(now) {
            continue;
        }
        let mut guard = Arc::clone(&partition).write_owned().await;
        if blocking(move || guard.tick(now)).await.is_err() {
            return; // the partition refuses writes from now on, with the reason
        }
    }
}

/// Microseconds since the UNIX epoch: the timestamp stamped on a batch.
/// (0 on a clock set before 1970, rather than an error for the producer.)
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// Runs a storage step on a blocking thread (a `write` or `fdatasync` blocks
/// its thread; on a runtime worker it would stall every task scheduled there).
async fn blocking<T, F>(f: F) -> Result<T, ServeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| ServeError::storage(error.to_string()))?
        .map_err(ServeError::from)
}
