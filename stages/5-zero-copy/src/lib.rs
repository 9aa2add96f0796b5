//! Stage 5 of Rivulet: records read in place, batches stamped in place, and no
//! allocation per message.
//!
//! The talk's "Zero-copy (de)serialization" slides. Stage 4 turned every record
//! into an owned `Record` on the way in, into a stage 1 `Message` for its
//! storage, and back into a freshly checksummed wire record on every poll: a
//! copy and an allocation per message, three times. Here the wire record *is*
//! the disk record, so a batch is:
//!
//! - **validated once** where it lies, in the frame's own buffer
//!   ([`view::BatchView`]); after that, [`view::RecordView`]s read fields with
//!   `from_le_bytes` at fixed places, copying nothing;
//! - **stamped in place**: offsets, the timestamp and each checksum are written
//!   into that same buffer ([`batch::ReceivedBatch::stamp`], the talk's
//!   `write_value_at`), and the whole records region goes to the log in one
//!   write ([`partition`]);
//! - **polled as stored**: one positional read of the byte range the index
//!   gives, sent back as it is, with no decode, re-encode or checksum.
//!
//! The wire protocol is stage 4's, byte for byte (its codes, statuses, record
//! format and `stage4_partitions::Client`), served by stage 3's framing and
//! connection loop through the `Service` trait. [`rkyv_layout`] archives the same
//! batch with rkyv 0.8, to measure the general-purpose zero-copy library beside
//! the hand-rolled layout; [`alloc_count`] is the counting allocator that the
//! tests and the codec bench use to prove "a constant number of allocations
//! per batch".
//!
//! Modules, in reading order: [`view`], [`batch`], [`partition`] (with
//! [`recovery`]), [`protocol`], [`topics`], [`rkyv_layout`], [`alloc_count`],
//! [`error`].

pub mod alloc_count;
pub mod batch;
pub mod error;
pub mod partition;
pub mod protocol;
pub mod recovery;
pub mod rkyv_layout;
pub mod topics;
pub mod view;

pub use batch::ReceivedBatch;
pub use error::Error;
pub use partition::Partition;
pub use topics::Topics;
pub use view::{BatchView, RecordView};

use std::net::SocketAddr;

use stage3_tcp_server::protocol::frame::DEFAULT_MAX_FRAME_LEN;
use stage3_tcp_server::{ServeError, Server};
use stage4_partitions::TopicsConfig;

/// Opens the topics under `config` and serves them on `addr` (port 0 picks one),
/// with stage 3's server and stage 4's configuration.
pub async fn start(addr: SocketAddr, config: TopicsConfig) -> Result<Server, ServeError> {
    let topics = Topics::open(config).await?;
    Server::serve(addr, topics, DEFAULT_MAX_FRAME_LEN).await
}
