//! What the broker asks of a partition's owner: work that only the shard
//! owning the partition may do, sent to it as a job
//! (`stage6_broker::shards::extension::PartitionJob`) and run in order with
//! the partition's appends and polls.
//!
//! Why on the owner: positions (a poll's first, last, next, by timestamp)
//! and consumer offsets are known only there, and between resolving a
//! position and reading from it nothing else may append or store. A job
//! answers its asker itself: a poll through the connection's own reply
//! channel (so its records go to the socket without a copy, as the engine's
//! polls do), the rest through the session's [`Done`] channel.

use futures_util::future::LocalBoxFuture;
use stage6_broker::shards::extension::{PartitionAt, PartitionJob};
use stage6_broker::shards::router::{Reply, ReplyTo};
use stage6_broker::shards::shard::storage_error;
use stage6_broker::shards::wire::WireError;
use stage6_broker::{AlignedBuf, Partition, PartitionInfo, Polled};

use crate::api::{PollKind, StoredOffset};

/// A job's answer, other than a poll's.
#[derive(Debug)]
pub enum Done {
    /// A consumer offset was stored.
    Stored,
    /// A consumer's offset in one partition.
    Offset(StoredOffset),
    /// One partition's state.
    Described(PartitionInfo),
}

/// Where a job's [`Done`] goes: the asking session's own channel.
pub type DoneTo = flume::Sender<Result<Done, WireError>>;

// ANCHOR: poll_by
/// A poll by position. With auto-commit the consumer's offset is stored
/// before the reply is sent, so a consumer that saw the reply never sees
/// these records again from `Next`.
pub struct PollBy {
    /// Where to start.
    pub kind: PollKind,
    /// At most this many records.
    pub count: u64,
    /// The consumer (checked; empty if none).
    pub consumer: String,
    /// Store the offset after the last record returned, before replying.
    pub auto_commit: bool,
    /// The connection's buffer from its previous poll, for reuse.
    pub buf: AlignedBuf,
    /// The connection's reply channel.
    pub reply: ReplyTo,
}

impl PollBy {
    async fn poll(self, partition: &mut Partition) -> Result<Polled, WireError> {
        let first = partition.first_offset();
        let next = partition.next_offset();
        let start = match self.kind {
            PollKind::Offset(offset) => offset,
            // No record at or after the time: the end, so the poll is empty.
            PollKind::Timestamp(timestamp) => partition.offset_at(timestamp).unwrap_or(next),
            PollKind::First => first,
            PollKind::Last => next.saturating_sub(self.count).max(first),
            PollKind::Next => partition.consumer_offset(&self.consumer).unwrap_or(first),
        };
        let polled = partition
            .poll_into(start, self.count, self.buf)
            .await
            .map_err(storage_error)?;
        if self.auto_commit && polled.count > 0 {
            partition
                .store_consumer_offset(&self.consumer, polled.first_offset + polled.count)
                .await
                .map_err(storage_error)?;
        }
        Ok(polled)
    }
}

impl PartitionJob for PollBy {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        _: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            let reply = self.reply.clone();
            let _ = reply.send(Reply::Polled(self.poll(partition).await));
        })
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.reply.send(Reply::Polled(Err(error)));
    }
}
// ANCHOR_END: poll_by

/// Store a consumer's offset (one past the end is refused by the partition).
pub struct StoreOffset {
    /// The consumer (checked).
    pub consumer: String,
    /// The next offset it will read.
    pub offset: u64,
    /// Where the answer goes.
    pub done: DoneTo,
}

impl PartitionJob for StoreOffset {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        _: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            let stored = partition
                .store_consumer_offset(&self.consumer, self.offset)
                .await;
            let _ = self
                .done
                .send(stored.map(|()| Done::Stored).map_err(storage_error));
        })
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.done.send(Err(error));
    }
}

/// Read a consumer's stored offset and the partition's next offset.
pub struct GetOffset {
    /// The consumer (checked).
    pub consumer: String,
    /// Where the answer goes.
    pub done: DoneTo,
}

impl PartitionJob for GetOffset {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        at: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        let offset = StoredOffset {
            partition: at.partition,
            offset: partition.consumer_offset(&self.consumer),
            next_offset: partition.next_offset(),
        };
        let _ = self.done.send(Ok(Done::Offset(offset)));
        Box::pin(std::future::ready(()))
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.done.send(Err(error));
    }
}

/// Say the partition's state.
pub struct Describe {
    /// Where the answer goes.
    pub done: DoneTo,
}

impl PartitionJob for Describe {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        at: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        let mut info = partition.info();
        info.partition = at.partition;
        info.shard = at.shard;
        let _ = self.done.send(Ok(Done::Described(info)));
        Box::pin(std::future::ready(()))
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.done.send(Err(error));
    }
}

/// A partition's positions as a consumer group sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The oldest offset stored.
    pub first_offset: u64,
    /// The offset the next record will get.
    pub next_offset: u64,
    /// The consumer's stored offset, if any.
    pub committed: Option<u64>,
}

/// Where a [`GetPosition`]'s answer goes, with the partition it is about:
/// one channel collects a whole describe's answers, in any order.
pub type PositionTo = flume::Sender<((u32, u32), Result<Position, WireError>)>;

/// Read a partition's first and next offsets and a consumer's stored one
/// (a group's describe asks every partition at once).
pub struct GetPosition {
    /// The consumer (checked).
    pub consumer: String,
    /// The partition asked (topic id, partition), echoed in the answer.
    pub key: (u32, u32),
    /// Where the answer goes.
    pub done: PositionTo,
}

impl PartitionJob for GetPosition {
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        _: PartitionAt,
    ) -> LocalBoxFuture<'a, ()> {
        let position = Position {
            first_offset: partition.first_offset(),
            next_offset: partition.next_offset(),
            committed: partition.consumer_offset(&self.consumer),
        };
        let _ = self.done.send((self.key, Ok(position)));
        Box::pin(std::future::ready(()))
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.done.send((self.key, Err(error)));
    }
}
