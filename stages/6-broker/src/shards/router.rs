//! Which shard owns a partition, and the messages shards send each other.
//!
//! Invariants:
//! - a partition is owned by exactly one shard, [`owner`]`(topic, partition,
//!   shards)`, for the life of the process; only that shard's thread ever
//!   touches its `Partition`;
//! - every message crosses on a `flume` channel, and every request carries
//!   the channel its answer goes back on.
//!
//! Why `flume`: a compio runtime is single-threaded and ships no channel that
//! crosses threads; flume's `send` is a plain function (it never blocks on an
//! unbounded channel) and its `recv_async` is a future that any executor can
//! poll, waking the receiving runtime from another thread. Rejected: a
//! `std::sync::mpsc` (its `recv` blocks the whole shard), and tokio's
//! channels (they work too, but would pull a second runtime's vocabulary
//! into a compio crate).

use std::path::PathBuf;

use crate::shards::extension::{PartitionJob, ShardJob};
use crate::shards::topics::TopicSpec;
use crate::shards::wire::WireError;
use crate::storage::aligned::AlignedBuf;
use crate::storage::config::Config;
use crate::storage::partition::{Appended, Polled};

/// A partition's address: topic id and partition number.
pub type Key = (u32, u32);

// ANCHOR: owner
/// The shard that owns `partition` of `topic`, out of `shards`.
///
/// The topic is hashed, the partition number added: a topic's partitions
/// land on consecutive shards, so `n` partitions spread over `n` shards
/// evenly, and different topics start on different shards. A hash of the
/// pair alone would spread topics as well, but could put two of a topic's
/// four partitions on one of two shards and none on the other.
pub fn owner(topic: u32, partition: u32, shards: usize) -> usize {
    // EXERCISE: owner
    // HINT: the topic's first shard is crc32c::crc32c of its id's little-endian bytes;
    // HINT: partition p goes p shards further, modulo the shards (at least 1), in u64.
    let start = u64::from(crc32c::crc32c(&topic.to_le_bytes()));
    ((start + u64::from(partition)) % shards.max(1) as u64) as usize
    // EXERCISE_END
}
// ANCHOR_END: owner

/// An answer, sent back to the connection that asked.
#[derive(Debug)]
pub enum Reply {
    /// A batch was appended, to this partition.
    Produced(Result<(u32, Appended), WireError>),
    /// Records were read.
    Polled(Result<Polled, WireError>),
}

/// Where a reply goes: the asking connection's own channel, reused for each
/// of its requests (a connection has one request in flight at a time, so a
/// channel of one slot never makes the owner wait).
pub type ReplyTo = flume::Sender<Reply>;

/// What one partition is asked to do, by whichever shard's connection.
pub enum Op {
    /// Append the records in `body[records_at..]` (already checked whole).
    Append {
        /// The produce frame's body, moved (not copied) between threads.
        body: Vec<u8>,
        /// Where the records start.
        records_at: usize,
        /// Where the answer goes.
        reply: ReplyTo,
    },
    /// Read up to `count` records from `offset`, into `buf`.
    Poll {
        /// First offset.
        offset: u64,
        /// At most this many records.
        count: u64,
        /// The connection's buffer from its previous poll, for reuse.
        buf: AlignedBuf,
        /// Where the answer goes.
        reply: ReplyTo,
    },
    /// Anything else the broker needs done by the partition's owner (a poll
    /// from a consumer's stored offset, storing one, describing the
    /// partition): the job answers its asker itself.
    Run(Box<dyn PartitionJob>),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Append { records_at, .. } => write!(f, "Append(records at {records_at})"),
            Op::Poll { offset, count, .. } => write!(f, "Poll({offset}, {count})"),
            Op::Run(_) => f.write_str("Run(job)"),
        }
    }
}

// ANCHOR: message
/// What arrives in a shard's inbox.
#[derive(Debug)]
pub enum ShardMessage {
    /// A request for a partition this shard owns: the cross-shard hop.
    Storage {
        /// The partition.
        key: Key,
        /// The request.
        op: Op,
    },
    /// Stage 4's create-topic, for shard 0's catalog writer (the engine's
    /// own, used when no broker handles the command).
    CreateTopic {
        /// Topic id.
        topic: u32,
        /// Partition count.
        partitions: u32,
        /// Whether it went well.
        done: flume::Sender<Result<(), WireError>>,
    },
    /// Open the partitions of `topic` this shard owns (create-topic, step 1).
    Open {
        /// Topic id.
        topic: u32,
        /// Partition count.
        partitions: u32,
        /// The topic's storage settings, resolved.
        config: Config,
        /// Whether it went well.
        done: flume::Sender<Result<(), WireError>>,
    },
    /// The topic exists as `topic` says (create-topic, step 2).
    Publish {
        /// The topic: id, name, partitions.
        topic: TopicSpec,
        /// Sent once the shard's copy of the metadata has it.
        done: flume::Sender<()>,
    },
    /// Forget `topic` and stop its partitions' tasks (delete-topic): sent
    /// once every one of this shard's partitions of it has stopped.
    Close {
        /// Topic id.
        topic: u32,
        /// Sent when they have.
        done: flume::Sender<()>,
    },
    /// The product's work for this shard ([`ShardJob`]).
    Run(Box<dyn ShardJob>),
    /// Stop accepting, close idle connections, let busy ones answer, and
    /// report when none is left (shutdown, step 1).
    Drain {
        /// Sent when the shard's last connection is closed.
        done: flume::Sender<()>,
    },
    /// Write and sync every partition, then stop (shutdown, step 2).
    Finish {
        /// Every partition's flush result.
        done: flume::Sender<Result<(), String>>,
    },
}
// ANCHOR_END: message

/// Where a shard finds its partitions' files: `data/<topic>/<partition>/`,
/// as in stage 5.
pub fn partition_dir(data: &std::path::Path, topic: u32, partition: u32) -> PathBuf {
    data.join(topic.to_string()).join(partition.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_spreads_a_topics_partitions_over_every_shard() {
        for shards in 1..8 {
            for topic in [0, 1, 7, 1000] {
                let mut owned = vec![0; shards];
                for partition in 0..shards as u32 * 3 {
                    owned[owner(topic, partition, shards)] += 1;
                }
                assert_eq!(owned, vec![3; shards], "topic {topic}, {shards} shards");
            }
        }
    }
}
