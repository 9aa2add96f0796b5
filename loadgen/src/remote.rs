//! A running server of stages 4 to 6 as a load-generator target: one topic,
//! its partitions the load generator's partitions, driven with stage 4's
//! requests on stage 3's framing, so the same bytes drive stages 4, 5 and 6.
//!
//! It lives here rather than in `bench`'s adapters so that stage 6's
//! `rivulet bench` can drive the broker it talks to; `bench`'s stage 4
//! adapter wraps it and adds a server started in-process.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use stage3_tcp_server::FramedClient;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::record::Record;
use stage4_partitions::protocol::{Request, Response};

use crate::target::{Connection, Polled, Target};

/// A request sent first on every connection, such as stage 6's login: its
/// code and body, which this crate does not interpret (it knows no stage 6
/// type), and an ok status is all it checks.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The request code.
    pub code: u16,
    /// Its body.
    pub body: Vec<u8>,
}

/// A server speaking the protocol of stages 4 to 6, at an address.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    name: String,
    addr: SocketAddr,
    topic: u32,
    durability: String,
    create_topic: bool,
    handshake: Option<Handshake>,
}

impl RemoteTarget {
    /// Drives `topic` on the server at `addr`; `name` says which stage or
    /// server it is, `durability` what its acknowledgements promise (stated
    /// beside every number). `prepare` creates the topic with stage 4's
    /// create-topic command.
    pub fn new(name: &str, addr: SocketAddr, topic: u32, durability: &str) -> RemoteTarget {
        RemoteTarget {
            name: name.to_string(),
            addr,
            topic,
            durability: durability.to_string(),
            create_topic: true,
            handshake: None,
        }
    }

    /// Sends `handshake` first on every connection (stage 6's login, on a
    /// broker with access control on).
    pub fn with_handshake(mut self, handshake: Handshake) -> RemoteTarget {
        self.handshake = Some(handshake);
        self
    }

    /// A new connection, handshake done. Stage 4's client is not used
    /// because it cannot send a request that is not stage 4's; the frames
    /// are the same (stage 3's framing, stage 4's encodings).
    async fn open(&self) -> anyhow::Result<RemoteConnection> {
        let framed = FramedClient::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        let mut connection = RemoteConnection {
            framed,
            topic: self.topic,
        };
        if let Some(handshake) = &self.handshake {
            connection
                .call(handshake.code, &handshake.body)
                .await
                .context("handshake (login)")?;
        }
        Ok(connection)
    }

    /// Leaves the topic to the caller: `prepare` does nothing. For a server
    /// whose topics are made another way (stage 6's named topics).
    pub fn with_existing_topic(mut self) -> RemoteTarget {
        self.create_topic = false;
        self
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The topic driven.
    pub fn topic(&self) -> u32 {
        self.topic
    }
}

/// One connection of a [`RemoteTarget`].
#[derive(Debug)]
pub struct RemoteConnection {
    framed: FramedClient,
    topic: u32,
}

impl RemoteConnection {
    /// Sends a request and returns the ok body; an error status is an error
    /// carrying the server's message.
    async fn call(&mut self, code: u16, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (status, reply) = self.framed.request(code, body).await?;
        if status != 0 {
            bail!("server error {status}: {}", String::from_utf8_lossy(&reply));
        }
        Ok(reply)
    }

    /// Sends a stage 4 request and decodes its ok reply.
    async fn stage4(&mut self, request: Request) -> anyhow::Result<Response> {
        let (code, body) = request.encode();
        let reply = self.call(code, &body).await?;
        Ok(Response::decode(code, &reply)?)
    }
}

impl Target for RemoteTarget {
    type Connection = RemoteConnection;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn durability(&self) -> String {
        self.durability.clone()
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        if self.create_topic {
            let request = Request::CreateTopic {
                topic: self.topic,
                partitions,
            };
            self.open().await?.stage4(request).await?;
        }
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<RemoteConnection> {
        self.open().await
    }
}

impl Connection for RemoteConnection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let records = payloads
            .iter()
            .map(|payload| Record {
                offset: 0,
                timestamp: 0,
                id: 0,
                payload: payload.clone(),
            })
            .collect();
        let request = Request::Produce {
            topic: self.topic,
            partitioning: Partitioning::Explicit(partition),
            records,
        };
        match self.stage4(request).await? {
            // The run takes `first..first + n` as this batch's: an ack for
            // fewer records, or for another partition, must not pass as one
            // for all of them, or a lost message could be counted as stored.
            Response::Produced {
                partition: acked_partition,
                first_offset,
                count,
                ..
            } if acked_partition == partition && count as usize == payloads.len() => {
                Ok(first_offset)
            }
            other => bail!(
                "unexpected reply to a produce of {} messages to partition {partition}: {other:?}",
                payloads.len()
            ),
        }
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        let request = Request::Poll {
            topic: self.topic,
            partition,
            offset,
            count,
        };
        match self.stage4(request).await? {
            // Checksums verified by the decoder.
            Response::Polled { records } => Ok(records
                .into_iter()
                .map(|r| Polled {
                    offset: r.offset,
                    payload: r.payload,
                })
                .collect()),
            other => bail!("unexpected reply to a poll: {other:?}"),
        }
    }
}
