//! The shards: one thread per core, each a compio runtime that accepts its
//! own connections and owns its partitions (the talk's "Thread-per-core" and
//! "Shared nothing" slides).
//!
//! In reading order:
//! - [`driver`]: io_uring or polling, and the runtime each shard builds;
//! - [`router`]: which shard owns a partition, and the messages shards send;
//! - [`shard`]: a shard's state and the task that owns each partition;
//! - [`wire`], [`frame`] and [`protocol`]: stage 4's bytes, read with owned buffers;
//! - [`connection`]: one client, one request at a time, a poll sent without a copy;
//! - [`limits`]: connections in all and per peer, and request bytes in flight, over every shard;
//! - [`topics`]: creating and deleting a topic on every shard;
//! - [`extension`]: the seam where the broker plugs in;
//! - [`server`]: starting the shards, and stopping them without losing a request.

pub mod connection;
pub mod driver;
pub mod extension;
pub mod frame;
pub mod limits;
pub mod protocol;
pub mod router;
pub mod server;
pub mod shard;
pub mod topics;
pub mod wire;
