//! A client for the protocol of stages 4 to 6.

use std::net::SocketAddr;

use stage3_tcp_server::{FramedClient, RequestError};
use thiserror::Error;

use crate::protocol::record::{Record, RecordError};
use crate::protocol::{Partitioning, Request, Response, Status};

/// What a request can fail with, as the client sees it.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No usable response.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A response body did not parse, or a record failed its checksum.
    #[error("bad response: {0}")]
    Body(#[from] RecordError),
    /// The server answered with an error.
    #[error("server error {status:?}: {message}")]
    Server {
        /// The status (`None` for a code this client does not know).
        status: Option<Status>,
        /// The server's message.
        message: String,
    },
}

/// What a produce request was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// The partition the batch went to.
    pub partition: u32,
    /// Offset of its first record.
    pub first_offset: u64,
    /// Number of records.
    pub count: u32,
    /// Whether they are synced to disk.
    pub durable: bool,
}

/// A connection to a stage 4, 5 or 6 server.
#[derive(Debug)]
pub struct Client(FramedClient);

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        let framed = FramedClient::connect(addr)
            .await
            .map_err(RequestError::from)?;
        Ok(Client(framed))
    }

    /// Creates `topic` with `partitions` partitions (fine if it exists with as many).
    pub async fn create_topic(&mut self, topic: u32, partitions: u32) -> Result<(), ClientError> {
        self.call(Request::CreateTopic { topic, partitions })
            .await
            .map(|_| ())
    }

    /// Produces `(id, payload)` messages as one batch.
    pub async fn produce(
        &mut self,
        topic: u32,
        partitioning: Partitioning,
        messages: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<Produced, ClientError> {
        let records = messages
            .into_iter()
            .map(|(id, payload)| Record {
                offset: 0,
                timestamp: 0,
                id,
                payload,
            })
            .collect();
        let request = Request::Produce {
            topic,
            partitioning,
            records,
        };
        match self.call(request).await? {
            Response::Produced {
                partition,
                first_offset,
                count,
                durable,
            } => Ok(Produced {
                partition,
                first_offset,
                count,
                durable,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Polls up to `count` records of one partition from `offset`, checksums verified.
    pub async fn poll(
        &mut self,
        topic: u32,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Result<Vec<Record>, ClientError> {
        let request = Request::Poll {
            topic,
            partition,
            offset,
            count,
        };
        match self.call(request).await? {
            Response::Polled { records } => Ok(records),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a request and waits for its response.
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let (code, body) = request.encode();
        let (status, body) = self.0.request(code, &body).await?;
        match Status::from_code(status) {
            Some(Status::Ok) => Ok(Response::decode(code, &body)?),
            status => Err(ClientError::Server {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}

fn unexpected(response: Response) -> ClientError {
    ClientError::Server {
        status: None,
        message: format!("unexpected response {response:?}"),
    }
}
