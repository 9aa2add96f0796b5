//! Stage 6 of Rivulet, its storage core: segments written with Direct I/O from
//! aligned buffers, on compio (io_uring, or its polling fallback), with
//! offset and time indexes and recovery.
//!
//! The talk's "io_uring" and "DirectIO" slides. Stages 1 to 5 wrote through
//! the page cache with blocking or tokio file calls: every byte was copied
//! into the kernel's cache, written back when the kernel chose, and a
//! `write` could stall behind writeback. Here:
//!
//! - **compio** drives the I/O: a file read or write is an owned-buffer
//!   operation ([`compio::BufResult`]) submitted to io_uring, and the shard's
//!   thread never blocks in a system call. The same code runs on compio's
//!   polling driver ([`driver`]), for kernels without io_uring and for the
//!   comparison;
//! - **Direct I/O** (`O_DIRECT`) moves bytes between the device and our own
//!   4096-aligned buffers ([`aligned`]), past the page cache. So every write
//!   is whole blocks, and the partial block at the end of the records stays
//!   in memory and is rewritten whole by the next write ([`segment`]). It is
//!   a switch ([`Config::direct_io`]): off, the same calls go through the
//!   page cache;
//! - a partition is **segments** ([`segment`]) with an offset index and a
//!   time index each ([`index`]), rolled over at a configured size, each file
//!   preallocated to its full size; **recovery** ([`recovery`]) finds where the
//!   records end by their checksums, truncates torn tails, rebuilds indexes,
//!   and refuses to serve a corrupt record;
//! - stage 2's **fsync policies** and watermarks decide when a write is
//!   synced ([`partition`]); acknowledgements say what is durable.
//!
//! The records are stage 4's ([`record`]): the bytes a producer sent are the
//! bytes stored and the bytes a poll returns ([`partition::Polled`]).
//!
//! On top of the storage, the talk's "Thread-per-core" and "Shared nothing"
//! slides: [`server`] runs one thread per core, each a compio runtime that
//! accepts its own connections ([`connection`]) and owns its partitions
//! ([`shard`]); a request for a partition another shard owns crosses to it
//! on a channel ([`router`]) and is answered back through the connection's
//! shard. Stage 5's frames are unchanged on the wire ([`frame`],
//! [`protocol`]); the server binary is `rivulet-server`.
//!
//! Then what makes it a broker to deploy: stage 6's own commands ([`api`]:
//! streams, named topics with their own settings, polls by position,
//! consumer offsets), kept by one metadata writer ([`admin`], [`metadata`]);
//! retention by size and age ([`retention`]); consumer offsets stored beside
//! the segments ([`consumer_offsets`]); optional access control ([`auth`]);
//! per-shard counters served as Prometheus text ([`metrics`], [`http`]);
//! the operator's settings file ([`settings`]); and a client ([`client`]).
//!
//! Modules, in reading order: [`aligned`], [`segment`], [`index`],
//! [`recovery`], [`partition`], [`retention`], [`consumer_offsets`],
//! [`config`], [`driver`], [`record`], [`error`]; then [`router`],
//! [`shard`], [`frame`], [`protocol`], [`connection`], [`server`]; then
//! [`api`], [`admin`], [`metadata`], [`auth`], [`metrics`], [`http`],
//! [`settings`], [`client`].

pub mod admin;
pub mod aligned;
pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod connection;
pub mod consumer_offsets;
pub mod driver;
pub mod error;
pub mod frame;
pub mod http;
pub mod index;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod protocol;
pub mod record;
pub mod recovery;
pub mod retention;
pub mod router;
pub mod segment;
pub mod server;
pub mod settings;
pub mod shard;

pub use aligned::{ALIGN, AlignedBuf};
pub use config::{Config, ConfigError};
pub use driver::IoDriver;
pub use error::{BatchError, Error};
pub use partition::{Appended, FsyncPolicy, Partition, Polled, Status};
pub use recovery::RecoveryReport;
pub use segment::StoredBytes;
pub use server::{QueueDepths, Server, ServerConfig, ServerError, start};
