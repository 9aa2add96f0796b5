//! Stage 6 as a load-generator target. It speaks stage 4's protocol byte for
//! byte, so it is driven by stage 4's adapter (the same client, the same
//! requests), as stage 5 is; this one starts a stage 6 broker in this process
//! (its shards on their own threads, each with its own compio runtime) and
//! names the runs `stage6`. Its fsync policy is the engine's own
//! (`stage6_broker::FsyncPolicy`: stage 2's names and meanings, its own copy).

use std::net::SocketAddr;

use anyhow::Context;
use stage6_broker::{FsyncPolicy, Server, ServerConfig};

use super::stage4::{Stage4Connection, Stage4Target};
use crate::loadgen::Target;

/// A stage 6 broker, driven through stage 4's adapter.
#[derive(Debug)]
pub struct Stage6Target {
    inner: Stage4Target,
    // Declared in this order: the server stops (and syncs) before its data
    // folder is removed.
    server: Option<Server>,
    _data: Option<tempfile::TempDir>,
}

impl Stage6Target {
    /// Drives the stage 6 broker at `addr`, started with `fsync`.
    pub fn remote(addr: SocketAddr, fsync: &str) -> Stage6Target {
        Stage6Target {
            inner: Stage4Target::remote("stage6", addr, fsync),
            server: None,
            _data: None,
        }
    }

    /// Starts a broker on 127.0.0.1 with `fsync` and the rest of `config`
    /// (its address and data folder are chosen here), named `name` in the
    /// results (the ablation names each switch's run).
    pub fn start_with(
        name: &str,
        fsync: FsyncPolicy,
        config: ServerConfig,
    ) -> anyhow::Result<Stage6Target> {
        let data = tempfile::tempdir_in(crate::bench_data_dir()).context("server data folder")?;
        let mut config = config;
        config.listen = "127.0.0.1:0".parse()?;
        config.data = data.path().to_path_buf();
        config.storage.fsync = fsync;
        let server = stage6_broker::start(config).context("starting the stage 6 broker")?;
        Ok(Stage6Target {
            inner: Stage4Target::remote(name, server.addr(), &fsync.name()),
            server: Some(server),
            _data: Some(data),
        })
    }

    /// Starts a broker with every switch at its default (not pinned, Direct
    /// I/O, compio's driver choice) but `shards` shards.
    pub fn start(fsync: FsyncPolicy, shards: usize) -> anyhow::Result<Stage6Target> {
        let config = ServerConfig {
            shards,
            ..ServerConfig::new()
        };
        Stage6Target::start_with("stage6", fsync, config)
    }

    /// The io driver the broker started here runs on, if it was started here.
    pub fn driver(&self) -> Option<&'static str> {
        self.server.as_ref().map(Server::driver)
    }
}

impl Drop for Stage6Target {
    fn drop(&mut self) {
        if let Some(server) = self.server.take()
            && let Err(error) = server.shutdown()
        {
            eprintln!("stage 6 broker shutdown: {error}");
        }
    }
}

impl Target for Stage6Target {
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
