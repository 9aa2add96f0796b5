//! The seam: what a product built on the engine plugs into it.
//!
//! The engine serves stage 4's three requests (create topic, produce, poll)
//! thread-per-core, and nothing more. The broker (`broker/`, package
//! `rivulet-broker`) adds streams, named topics, consumer offsets, access
//! control and metrics without reaching into the engine's state, through
//! three things named here:
//!
//! - an [`Extension`], given to [`crate::shards::server::start_with`]: it says
//!   which topics to open at start, starts its own tasks on each shard, opens
//!   a [`Session`] per connection, and is told of what the engine counts
//!   (connections, syncs, records in and out);
//! - a [`Session`], which sees every frame of its connection first: it
//!   answers the commands it owns, checks access before handing one of the
//!   engine's requests to [`Connection::serve`], or passes the frame on;
//! - a [`PartitionJob`], which the broker sends to a partition's owner
//!   ([`crate::shards::shard::ShardState::run_on`]) to read or write what
//!   only the owner may touch, such as a consumer's stored offset;
//! - [`ExtraListener`]s: more ports, each accepted on every shard like the
//!   engine's own, whose connections the product serves in a protocol of its
//!   own ([`Extension::serve_stream`]): the broker's Kafka listener. The
//!   engine still counts them against the connection limits and ends them
//!   at shutdown; the product reaches partitions through
//!   [`ShardState::ask`] and [`ShardState::run_on`], as a [`Session`] does.
//!
//! Rejected: a broker that calls into the engine's modules directly (its
//! shard state, its router's messages). Every engine change would then be a
//! broker change, and a reader of the engine could not tell the lesson from
//! the product. Also rejected: generics (`Server<E: Extension>`), which
//! would put a type parameter on every engine type the book shows, for a
//! call per request that a virtual call serves as well.

use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use compio::net::TcpStream;
use futures_util::future::LocalBoxFuture;

use crate::shards::connection::Connection;
use crate::shards::frame::Frame;
use crate::shards::shard::ShardState;
use crate::shards::topics::{self, TopicSpec};
use crate::shards::wire::WireError;
use crate::storage::config::Config;
use crate::storage::partition::{Partition, Polled};
use crate::storage::recovery::RecoveryReport;

// ANCHOR: extension
/// What a product adds to the engine. Called from every shard's thread, so
/// it is `Send + Sync`; anything per shard it keeps on the shard's own
/// thread, started by [`Extension::start_shard`].
pub trait Extension: Send + Sync + 'static {
    /// The topics to open at start, with their storage settings. Called once,
    /// after the data folder is locked and before any shard starts. The
    /// engine's own answer: the topic folders with a `partitions` file.
    fn topics(&self, data: &Path, defaults: &Config) -> Result<Vec<TopicSpec>, String> {
        topics::on_disk(data, defaults)
    }

    /// On each shard's thread, once its topics are open and before it
    /// accepts connections: start what the product runs there.
    fn start_shard(&self, _shard: &Rc<ShardState>) {}

    /// A new connection on `shard`: the session that sees its frames first.
    fn session(&self, shard: &Rc<ShardState>) -> Box<dyn Session>;

    /// More ports to listen on, beside the engine's own; asked once, at
    /// start, before anything is bound. None by default.
    fn listeners(&self) -> Vec<ExtraListener> {
        Vec::new()
    }

    /// A connection accepted on `listeners()[listener]`, on `shard`: serve
    /// it until it ends, and end it between requests once
    /// [`ShardState::stopping`] resolves. It is counted against the
    /// connection limits until the future ends.
    fn serve_stream(
        &self,
        _shard: Rc<ShardState>,
        _listener: usize,
        _stream: TcpStream,
        _peer: SocketAddr,
    ) -> LocalBoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// A connection was accepted on `shard`.
    fn connection_opened(&self, _shard: usize) {}
    /// A connection on `shard` ended.
    fn connection_closed(&self, _shard: usize) {}
    /// A connection was refused at the connection limit.
    fn connection_refused(&self, _shard: usize) {}
    /// A partition on `shard` synced, taking `took`.
    fn synced(&self, _shard: usize, _took: Duration) {}
    /// A connection on `shard` produced to `topic`.
    fn produced(&self, _shard: usize, _topic: u32, _records: u64, _bytes: u64) {}
    /// A connection on `shard` polled from `topic`.
    fn polled(&self, _shard: usize, _topic: u32, _records: u64, _bytes: u64) {}
    /// A partition on `shard` was repaired as it opened (a torn tail erased,
    /// indexes rebuilt); the engine has logged what.
    fn recovered(&self, _shard: usize, _report: &RecoveryReport) {}
    /// A partition on `shard` failed: it could not be opened at start, or it
    /// refuses writes after a failed write or sync. It stays failed until a
    /// restart; the engine has logged why.
    fn partition_failed(&self, _shard: usize, _topic: u32, _partition: u32) {}
}
// ANCHOR_END: extension

/// A port the product listens on beside the engine's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraListener {
    /// The setting that chose the address, named in the error when the
    /// port is taken: `kafka.listen`.
    pub setting: &'static str,
    /// Where to listen (port 0 picks a free one).
    pub addr: SocketAddr,
}

/// How a request is answered.
#[derive(Debug)]
pub enum Answer {
    /// A body built in one buffer.
    Whole(Vec<u8>),
    /// A poll's records, as stored: written to the socket without a copy.
    Polled(Polled),
}

/// What a [`Session`] did with a frame.
#[derive(Debug)]
pub enum Served {
    /// Not the session's: the engine decodes and serves it (or refuses its
    /// code as unknown).
    Pass(Frame),
    /// Answered, with a body or an error; the connection stays open.
    Answer(Result<Answer, WireError>),
    /// The frame cannot be trusted: this error is sent, then the connection
    /// is closed (after a bad frame nobody knows where the next one starts).
    Close(WireError),
}

// ANCHOR: session
/// One connection's view of the product: it sees every frame first.
pub trait Session {
    /// Serves `frame`, or passes it to the engine.
    fn serve<'a>(
        &'a mut self,
        connection: &'a mut Connection,
        frame: Frame,
    ) -> LocalBoxFuture<'a, Served>;
}
// ANCHOR_END: session

/// Where a job runs: the partition's number and its owner shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionAt {
    /// The shard that owns the partition.
    pub shard: u32,
    /// The partition's number in its topic.
    pub partition: u32,
}

// ANCHOR: partition_job
/// Work the product needs done by a partition's owner, on its thread, in
/// order with the partition's other requests. The job answers whoever asked
/// for it itself (it carries its own reply channel).
pub trait PartitionJob: Send {
    /// Runs on the owner with the partition.
    fn run<'a>(
        self: Box<Self>,
        partition: &'a mut Partition,
        at: PartitionAt,
    ) -> LocalBoxFuture<'a, ()>;

    /// The partition does not exist, or its shard is stopping: tell the asker.
    fn fail(self: Box<Self>, error: WireError);
}
// ANCHOR_END: partition_job

// ANCHOR: shard_job
/// Work the product keeps on one chosen shard rather than on a partition's
/// owner: state that belongs to no partition, such as a consumer group's
/// members, lives on the shard a hash of its name picks, and every request
/// about it is sent there ([`ShardState::run_on_shard`]). Like a partition,
/// it then needs no lock: one thread ever touches it.
pub trait ShardJob: Send {
    /// Runs on the shard's thread.
    fn run(self: Box<Self>, shard: &Rc<ShardState>);

    /// The shard has stopped: tell the asker.
    fn fail(self: Box<Self>, error: WireError);
}
// ANCHOR_END: shard_job

impl std::fmt::Debug for dyn ShardJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardJob")
    }
}

/// The engine alone: no commands beyond stage 4's, nothing counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Extension for Plain {
    fn session(&self, _shard: &Rc<ShardState>) -> Box<dyn Session> {
        Box::new(Plain)
    }
}

impl Session for Plain {
    fn serve<'a>(&'a mut self, _: &'a mut Connection, frame: Frame) -> LocalBoxFuture<'a, Served> {
        Box::pin(std::future::ready(Served::Pass(frame)))
    }
}
