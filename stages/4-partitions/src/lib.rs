//! Stage 4 of Rivulet: topics split into partitions, a lock per partition.
//!
//! The talk's "Partitioning" slides. A topic's messages are spread over N
//! partitions, each its own log behind its own lock, so producers of one topic
//! stop queueing behind one write lock. Producers choose the partition
//! explicitly, by round robin, or by a key's hash ([`protocol::Partitioning`]).
//!
//! This is also where the wire protocol of stages 4 to 6 starts: stage 3's
//! framing (used as a dependency, with its connection loop) and a record format
//! designed for the final broker ([`protocol::record`]), with a checksum and a
//! timestamp. Storage is still stage 2's batcher over stage 1's log.
//!
//! Modules: [`protocol`], [`topics`] (the state and its locks), [`client`].

pub mod client;
pub mod protocol;
pub mod topics;

pub use client::{Client, ClientError, Produced};
pub use protocol::Partitioning;
pub use topics::{Topics, TopicsConfig};

use std::net::SocketAddr;

use stage3_tcp_server::protocol::frame::DEFAULT_MAX_FRAME_LEN;
use stage3_tcp_server::{ServeError, Server};

/// Opens the topics under `config` and serves them on `addr` (port 0 picks one).
pub async fn start(addr: SocketAddr, config: TopicsConfig) -> Result<Server, ServeError> {
    let topics = Topics::open(config).await?;
    Server::serve(addr, topics, DEFAULT_MAX_FRAME_LEN).await
}
