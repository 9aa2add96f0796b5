//! Stages 4 to 6 as a load-generator target: one topic, its partitions the
//! load generator's partitions. The same bytes drive stages 5 and 6.

use std::net::SocketAddr;

use stage2_batching::FsyncPolicy;
use stage4_partitions::{Client, Partitioning, TopicsConfig};

use super::LocalServer;
use crate::loadgen::{Connection, Polled, Target};

/// The topic every run uses.
pub const TOPIC: u32 = 1;

/// A server speaking the protocol of stages 4 to 6.
#[derive(Debug)]
pub struct Stage4Target {
    name: String,
    addr: SocketAddr,
    fsync: String,
    _server: Option<LocalServer>,
}

impl Stage4Target {
    /// Drives the server at `addr`; `name` says which stage it is.
    pub fn remote(name: &str, addr: SocketAddr, fsync: &str) -> Stage4Target {
        Stage4Target {
            name: name.to_string(),
            addr,
            fsync: fsync.to_string(),
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
            name: "stage4".to_string(),
            addr: server.addr(),
            fsync: fsync.name(),
            _server: Some(server),
        })
    }
}

/// One connection of a [`Stage4Target`].
#[derive(Debug)]
pub struct Stage4Connection(Client);

impl Target for Stage4Target {
    type Connection = Stage4Connection;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn durability(&self) -> String {
        format!("stage 2 fsync policy {}", self.fsync)
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        Client::connect(self.addr)
            .await?
            .create_topic(TOPIC, partitions)
            .await?;
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<Stage4Connection> {
        Ok(Stage4Connection(Client::connect(self.addr).await?))
    }
}

impl Connection for Stage4Connection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let messages = payloads.iter().map(|p| (0, p.clone()));
        let produced = self
            .0
            .produce(TOPIC, Partitioning::Explicit(partition), messages)
            .await?;
        Ok(produced.first_offset)
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        let records = self.0.poll(TOPIC, partition, offset, count).await?;
        Ok(records
            .into_iter()
            .map(|r| Polled {
                offset: r.offset,
                payload: r.payload,
            })
            .collect())
    }
}
