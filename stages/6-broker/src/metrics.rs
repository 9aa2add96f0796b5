//! The broker's counters, written by the shards and read by the metrics
//! endpoint and the `stats` command.
//!
//! Shared nothing, as far as counters go: each shard has its own
//! [`ShardMetrics`], written only by its own thread, so no cache line is
//! written by two cores; the reader (a scrape, a few times a minute) sums the
//! shards. Rejected: one set of global atomics, which every produce on every
//! core would write, bouncing their cache lines between cores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Upper bounds of the fsync latency histogram's buckets, in seconds
/// (Prometheus `le` labels); a last `+Inf` bucket counts everything.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Messages and bytes, in and out, of one topic on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TopicCounters {
    /// Messages appended.
    pub messages_in: u64,
    /// Bytes appended (records as stored).
    pub bytes_in: u64,
    /// Messages returned by polls.
    pub messages_out: u64,
    /// Bytes returned by polls.
    pub bytes_out: u64,
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Connections open on this shard now.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused at the limit since start.
    pub connections_refused: AtomicU64,
    /// Per topic id. A mutex only this shard and the scraper take, so it is
    /// never contended in practice.
    pub topics: Mutex<HashMap<u32, TopicCounters>>,
    /// fsync latency: counts per bucket of [`FSYNC_BUCKETS`] plus `+Inf`.
    pub fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len() + 1],
    /// Sum of fsync latencies, in nanoseconds.
    pub fsync_nanos: AtomicU64,
}

impl ShardMetrics {
    /// A batch was appended to `topic`.
    pub fn produced(&self, topic: u32, messages: u64, bytes: u64) {
        self.with_topic(topic, |counters| {
            counters.messages_in += messages;
            counters.bytes_in += bytes;
        });
    }

    /// A poll of `topic` returned records.
    pub fn polled(&self, topic: u32, messages: u64, bytes: u64) {
        self.with_topic(topic, |counters| {
            counters.messages_out += messages;
            counters.bytes_out += bytes;
        });
    }

    fn with_topic(&self, topic: u32, change: impl FnOnce(&mut TopicCounters)) {
        // A poisoned lock only means a panic elsewhere mid-update of plain
        // counters: the numbers are still numbers.
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        change(topics.entry(topic).or_default());
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// One fsync (or fdatasync) took `took`.
    pub fn fsync(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = FSYNC_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FSYNC_BUCKETS.len());
        self.fsync_buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_nanos.fetch_add(nanos, Relaxed);
    }
}

/// Every shard's counters, and the topic names to label them with.
#[derive(Debug)]
pub struct Metrics {
    /// By shard number.
    pub shards: Vec<ShardMetrics>,
    /// Topic id to name, kept by the metadata writer.
    pub topic_names: RwLock<HashMap<u32, String>>,
    /// When the server started.
    pub started: Instant,
}

impl Metrics {
    /// Counters for `shards` shards, all zero.
    pub fn new(shards: usize) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..shards.max(1))
                .map(|_| ShardMetrics::default())
                .collect(),
            topic_names: RwLock::default(),
            started: Instant::now(),
        })
    }

    /// Shard `id`'s counters (shard 0's if there is no such shard).
    pub fn shard(&self, id: usize) -> &ShardMetrics {
        &self.shards[id.min(self.shards.len() - 1)]
    }

    /// Names topic `id` in the labels.
    pub fn name_topic(&self, id: u32, name: &str) {
        let mut names = self.topic_names.write().unwrap_or_else(|p| p.into_inner());
        names.insert(id, name.to_string());
    }

    /// Forgets a deleted topic's name and counters.
    pub fn forget_topic(&self, id: u32) {
        let mut names = self.topic_names.write().unwrap_or_else(|p| p.into_inner());
        names.remove(&id);
        for shard in &self.shards {
            shard
                .topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }

    /// Per-topic counters summed over the shards.
    pub fn topic_totals(&self) -> HashMap<u32, TopicCounters> {
        let mut totals: HashMap<u32, TopicCounters> = HashMap::new();
        for shard in &self.shards {
            let topics = shard.topics.lock().unwrap_or_else(|p| p.into_inner());
            for (&topic, counters) in topics.iter() {
                let total = totals.entry(topic).or_default();
                total.messages_in += counters.messages_in;
                total.bytes_in += counters.bytes_in;
                total.messages_out += counters.messages_out;
                total.bytes_out += counters.bytes_out;
            }
        }
        totals
    }

    /// Connections open now, over every shard.
    pub fn connections(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.connections.load(Relaxed))
            .sum()
    }
}
