//! Stages 4 to 6 as a load-generator target: one topic, its partitions the
//! load generator's partitions. The same bytes drive stages 5 and 6.
//!
//! Driving a running server is `rivulet_loadgen::RemoteTarget` (shared with
//! stage 6's `rivulet bench`); this adapter adds a stage 4 server started in
//! this process.

use std::net::SocketAddr;

use stage2_batching::FsyncPolicy;
use stage4_partitions::TopicsConfig;

use super::LocalServer;
use crate::loadgen::{RemoteConnection, RemoteTarget, Target};

/// The topic every run uses.
pub const TOPIC: u32 = 1;

/// A server speaking the protocol of stages 4 to 6.
#[derive(Debug)]
pub struct Stage4Target {
    remote: RemoteTarget,
    _server: Option<LocalServer>,
}

impl Stage4Target {
    /// Drives the server at `addr`; `name` says which stage it is.
    pub fn remote(name: &str, addr: SocketAddr, fsync: &str) -> Stage4Target {
        Stage4Target {
            remote: RemoteTarget::new(name, addr, TOPIC, &durability(fsync)),
            _server: None,
        }
    }

    /// Starts a stage 4 server on 127.0.0.1 with `fsync`, on `threads` threads.
    pub fn start(fsync: FsyncPolicy, threads: usize) -> anyhow::Result<Stage4Target> {
        let addr = "127.0.0.1:0".parse()?;
        let server = LocalServer::start(threads, move |dir| {
            stage4_partitions::start(addr, TopicsConfig::new(dir, fsync))
        })?;
        Ok(Stage4Target {
            remote: RemoteTarget::new("stage4", server.addr(), TOPIC, &durability(&fsync.name())),
            _server: Some(server),
        })
    }
}

/// What an acknowledgement promises under stage 2's policy `fsync`.
fn durability(fsync: &str) -> String {
    format!("stage 2 fsync policy {fsync}")
}

/// One connection of a [`Stage4Target`].
pub type Stage4Connection = RemoteConnection;

impl Target for Stage4Target {
    type Connection = Stage4Connection;

    fn name(&self) -> String {
        self.remote.name()
    }

    fn durability(&self) -> String {
        self.remote.durability()
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        self.remote.prepare(partitions).await
    }

    async fn connect(&self) -> anyhow::Result<Stage4Connection> {
        self.remote.connect().await
    }
}
