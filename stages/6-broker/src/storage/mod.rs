//! The storage layer: one partition's log on disk, written with Direct I/O
//! from aligned buffers, on compio (the talk's "io_uring" and "DirectIO"
//! slides). Nothing here knows about threads, sockets or shards: a
//! [`partition::Partition`] is a value one task owns.
//!
//! In reading order:
//! - [`aligned`]: the 4096-aligned buffers Direct I/O needs;
//! - [`record`]: the record's bytes (stage 4's layout), walked, stamped, checked;
//! - [`segment`]: one log file, whole blocks written, the tail block kept in memory;
//! - [`index`]: the offset and time indexes beside each segment;
//! - [`recovery`]: where the records really end after a crash;
//! - [`fsync`] and [`config`]: when to sync, and every other switch;
//! - [`partition`]: segments rolled over, appends acknowledged as the policy says;
//! - [`retention`]: sealed segments deleted by size and age;
//! - [`seal_mark`]: which sealed segment's background sync last returned;
//! - [`writeback`]: page-cache mode's writeback, started a few megabytes at a time;
//! - [`consumer_offsets`]: named offsets stored beside the segments, synced
//!   after the records they point past;
//! - [`error`]: what can go wrong, typed.

pub mod aligned;
pub mod config;
pub mod consumer_offsets;
pub mod error;
pub mod fsync;
pub mod index;
pub mod partition;
pub mod record;
pub mod recovery;
pub mod retention;
pub mod seal_mark;
pub mod segment;
pub mod writeback;
