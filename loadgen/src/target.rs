//! The interface between the load generator and whatever it drives.
//!
//! Each stage gets a small adapter implementing [`Target`] (and its
//! [`Connection`]); the load generator knows nothing else about it. The
//! interface is the least a partitioned log can offer: append a batch to a
//! partition and get its first offset back, read from an offset. Anything
//! richer (consumer groups, server-side offsets) would exclude the early stages.
//!
//! Invariants an adapter must keep, which the run checks:
//! - offsets in a partition are dense and start at 0: a produce of `n` messages
//!   that returns `first` owns offsets `first..first + n`;
//! - a poll from `offset` returns messages in offset order starting exactly at
//!   `offset`, or none when there is nothing there yet;
//! - the payload bytes read back are the bytes sent.
//!
//! Errors are `anyhow::Error` rather than an associated error type: each
//! adapter wraps a different client's errors, and the run only reports them,
//! naming the actor and partition; a generic error parameter would spread
//! through every type of the run for nothing.

use std::future::Future;

/// One message read back by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Its offset in the partition.
    pub offset: u64,
    /// Its payload, as produced.
    pub payload: Vec<u8>,
}

/// Something the load generator can drive: an in-process log, or a server
/// reached through its client.
pub trait Target: Send + Sync + 'static {
    /// One actor's own connection (a socket, or a handle to shared memory).
    type Connection: Connection;

    /// A short name for tables and results files: `memory`, `stage3`.
    fn name(&self) -> String;

    /// What an acknowledgement promises, in words, stated beside every number:
    /// "fsync before ack", "page cache only: a power cut loses the last second",
    /// "nothing: process memory". It is the target's own durability setting.
    fn durability(&self) -> String;

    /// Creates the stream and partitions `0..partitions` the run needs.
    /// Idempotent: preparing what exists already is not an error.
    fn prepare(&self, partitions: u32) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Opens a connection. The run opens all of them before it starts the
    /// clock, so connecting is never measured.
    fn connect(&self) -> impl Future<Output = anyhow::Result<Self::Connection>> + Send;
}

/// One actor's connection: used by one task at a time, one request in flight.
pub trait Connection: Send + 'static {
    /// Appends `payloads` to `partition`, in order, and returns the offset
    /// assigned to the first once the target has acknowledged the batch.
    ///
    /// "Acknowledged" means whatever the target's durability setting promises
    /// ([`Target::durability`]): synced to disk, written to the page cache, or
    /// only stored in memory. The producer latency measured is send to this
    /// acknowledgement, so the run must state which it was.
    fn produce(
        &mut self,
        partition: u32,
        payloads: &[Vec<u8>],
    ) -> impl Future<Output = anyhow::Result<u64>> + Send;

    /// Reads up to `count` messages of `partition` from `offset` on: fewer when
    /// fewer are there, none at the end of the partition (not an error).
    fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> impl Future<Output = anyhow::Result<Vec<Polled>>> + Send;
}
