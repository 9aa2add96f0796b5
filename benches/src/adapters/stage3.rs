//! Stage 3 as a load-generator target: a partition is a stream.

use std::net::SocketAddr;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::Response;
use stage3_tcp_server::{Client, StreamsConfig};

use super::LocalServer;
use crate::loadgen::{Connection, Polled, Target};

/// A stage 3 server, at an address or started here.
#[derive(Debug)]
pub struct Stage3Target {
    addr: SocketAddr,
    fsync: String,
    _server: Option<LocalServer>,
}

impl Stage3Target {
    /// Drives the server at `addr`, whose fsync policy the caller states.
    pub fn remote(addr: SocketAddr, fsync: &str) -> Stage3Target {
        Stage3Target {
            addr,
            fsync: fsync.to_string(),
            _server: None,
        }
    }

    /// Starts a stage 3 server on 127.0.0.1 with `fsync`, on `threads` threads.
    pub fn start(fsync: FsyncPolicy, threads: usize) -> anyhow::Result<Stage3Target> {
        let addr = "127.0.0.1:0".parse()?;
        let server = LocalServer::start(threads, move |dir| {
            stage3_tcp_server::Server::start(addr, StreamsConfig::new(dir, fsync))
        })?;
        Ok(Stage3Target {
            addr: server.addr(),
            fsync: fsync.name(),
            _server: Some(server),
        })
    }
}

impl Stage3Target {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One connection of a [`Stage3Target`]: stage 3's client, wrapped because
/// the `Connection` trait lives in `rivulet-loadgen` now and the orphan rule
/// forbids implementing a foreign trait on a foreign type.
#[derive(Debug)]
pub struct Stage3Connection(Client);

impl Target for Stage3Target {
    type Connection = Stage3Connection;

    fn name(&self) -> String {
        "stage3".to_string()
    }

    fn durability(&self) -> String {
        format!("stage 2 fsync policy {}", self.fsync)
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        let mut client = Client::connect(self.addr).await?;
        for stream in 0..partitions {
            client.create_stream(stream).await?;
        }
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<Stage3Connection> {
        Ok(Stage3Connection(Client::connect(self.addr).await?))
    }
}

impl Connection for Stage3Connection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let messages = payloads
            .iter()
            .map(|p| Message::new(0, p.clone()))
            .collect();
        match self.0.append(partition, messages).await? {
            Response::Appended { first_offset, .. } => Ok(first_offset),
            other => anyhow::bail!("unexpected response {other:?}"),
        }
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        let messages = self.0.poll(partition, offset, count).await?;
        Ok(messages
            .into_iter()
            .map(|m| Polled {
                offset: m.offset,
                payload: m.payload,
            })
            .collect())
    }
}
