//! Stage 5 as a load-generator target. It speaks stage 4's protocol byte for
//! byte, so it is driven by stage 4's adapter (the same client, the same
//! requests); this one only starts a stage 5 server and names the runs
//! `stage5`, so the two stages are compared on identical bytes.

use std::net::SocketAddr;

use stage2_batching::FsyncPolicy;
use stage4_partitions::TopicsConfig;

use super::LocalServer;
use super::stage4::{Stage4Connection, Stage4Target};
use crate::loadgen::Target;

/// A stage 5 server, driven through stage 4's adapter.
#[derive(Debug)]
pub struct Stage5Target {
    inner: Stage4Target,
    // Declared after `inner`, so the server outlives every use of its address.
    _server: Option<LocalServer>,
}

impl Stage5Target {
    /// Drives the stage 5 server at `addr`, started with `fsync`.
    pub fn remote(addr: SocketAddr, fsync: &str) -> Stage5Target {
        Stage5Target {
            inner: Stage4Target::remote("stage5", addr, fsync),
            _server: None,
        }
    }

    /// Starts a stage 5 server on 127.0.0.1 with `fsync`, on `threads` threads.
    pub fn start(fsync: FsyncPolicy, threads: usize) -> anyhow::Result<Stage5Target> {
        Stage5Target::start_on(fsync, threads, Vec::new())
    }

    /// [`Stage5Target::start`], its threads pinned to `cores` if any.
    pub fn start_on(
        fsync: FsyncPolicy,
        threads: usize,
        cores: Vec<usize>,
    ) -> anyhow::Result<Stage5Target> {
        let addr = "127.0.0.1:0".parse()?;
        let server = LocalServer::start_on(threads, cores, move |dir| {
            stage5_zero_copy::start(addr, TopicsConfig::new(dir, fsync))
        })?;
        Ok(Stage5Target {
            inner: Stage4Target::remote("stage5", server.addr(), &fsync.name()),
            _server: Some(server),
        })
    }
}

impl Target for Stage5Target {
    type Connection = Stage4Connection;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn durability(&self) -> String {
        self.inner.durability()
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        self.inner.prepare(partitions).await
    }

    async fn connect(&self) -> anyhow::Result<Stage4Connection> {
        self.inner.connect().await
    }
}
