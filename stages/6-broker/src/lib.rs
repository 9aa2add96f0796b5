//! Stage 6 of Rivulet: the engine. Thread-per-core shards on compio
//! (io_uring, or its polling fallback), each owning its partitions, whose
//! segments are written with Direct I/O from aligned buffers.
//!
//! The talk's last three steps, in two layers, one folder each:
//!
//! 1. [`storage`], the "io_uring" and "DirectIO" slides. Stages 1 to 5 wrote
//!    through the page cache with blocking or tokio file calls. Here a file
//!    read or write is an owned-buffer operation submitted to io_uring
//!    ([`compio::BufResult`]), and `O_DIRECT` moves bytes between the device
//!    and our own 4096-aligned buffers, past the page cache: every write is
//!    whole blocks, and the partial block at the end of the records stays in
//!    memory and is rewritten whole by the next write. A partition is
//!    segments with an offset index and a time index each, rolled over at a
//!    configured size; recovery finds where the records end by their
//!    checksums; stage 2's fsync policies decide when a write is synced.
//! 2. [`shards`], the "Thread-per-core" and "Shared nothing" slides: one
//!    thread per core, each a compio runtime that accepts its own
//!    connections and owns its partitions; a request for a partition another
//!    shard owns crosses to it on a channel and is answered back through the
//!    connection's shard. Stage 4's frames are unchanged on the wire, and a
//!    poll's records go from the segment's buffer to the socket without a
//!    copy, as in stage 5.
//!
//! The records are stage 4's: the bytes a producer sent are the bytes stored
//! and the bytes a poll returns.
//!
//! This crate is the lesson, and a library. The broker an operator runs
//! (`rivulet-server`: streams and named topics, consumer offsets, access
//! control, metrics, a config file) is the `rivulet-broker` package in
//! `broker/`, built on this engine through one seam,
//! [`shards::extension`].

pub mod shards;
pub mod storage;

pub use shards::driver::IoDriver;
pub use shards::server::{
    QueueDepths, Server, ServerConfig, ServerError, cores, default_shards, start, start_with,
};
pub use storage::aligned::{ALIGN, AlignedBuf};
pub use storage::config::{Config, ConfigError};
pub use storage::error::{BatchError, Error};
pub use storage::fsync::FsyncPolicy;
pub use storage::partition::{Appended, Partition, PartitionInfo, Polled, Status};
pub use storage::recovery::RecoveryReport;
pub use storage::segment::StoredBytes;
