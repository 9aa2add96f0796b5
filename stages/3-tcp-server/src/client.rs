//! A client for stage 3's protocol: one connection, one request at a time.

use std::net::SocketAddr;

use stage1_file_log::Message;
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::protocol::frame::{DEFAULT_MAX_FRAME_LEN, FrameError, read_frame, write_frame};
use crate::protocol::{BodyError, Request, Response, Status};

/// A request that got no usable response frame.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A response frame could not be read.
    #[error("reading a response: {0}")]
    Frame(#[from] FrameError),
    /// The response does not belong to the request.
    #[error("response correlation {got} does not match request {sent}")]
    Correlation {
        /// The id sent.
        sent: u32,
        /// The id received.
        got: u32,
    },
}

// ANCHOR: framed_client
/// The client side of the framing, whatever the commands: one connection, one
/// request in flight, correlation ids checked. Stage 3's [`Client`] and stage
/// 4's are built on it.
#[derive(Debug)]
pub struct FramedClient {
    socket: BufReader<TcpStream>,
    next_correlation: u32,
}

impl FramedClient {
    /// Connects to `addr`, with Nagle's algorithm off: requests are small and
    /// each waits for its answer, so batching them in the kernel only adds delay.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<FramedClient> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        Ok(FramedClient {
            socket: BufReader::new(socket),
            next_correlation: 1,
        })
    }

    /// Sends a request frame and returns the response's status code and body.
    pub async fn request(
        &mut self,
        code: u16,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), RequestError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        write_frame(self.socket.get_mut(), code, correlation, body).await?;
        self.socket.get_mut().flush().await?;
        let frame = read_frame(&mut self.socket, DEFAULT_MAX_FRAME_LEN).await?;
        if frame.correlation != correlation {
            return Err(RequestError::Correlation {
                sent: correlation,
                got: frame.correlation,
            });
        }
        Ok((frame.code, frame.body))
    }
}
// ANCHOR_END: framed_client

/// What a stage 3 request can fail with, as the client sees it.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No usable response.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A response body did not parse.
    #[error("malformed response: {0}")]
    Body(#[from] BodyError),
    /// The server answered with an error.
    #[error("server error {status:?}: {message}")]
    Server {
        /// The status.
        status: Status,
        /// The server's message.
        message: String,
    },
}

/// A connection to a stage 3 server.
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

    /// Creates stream `stream` if it does not exist.
    pub async fn create_stream(&mut self, stream: u32) -> Result<(), ClientError> {
        self.call(Request::CreateStream { stream })
            .await
            .map(|_| ())
    }

    /// Appends messages (their ids and payloads); returns the first offset,
    /// the count, and whether they are durable.
    pub async fn append(
        &mut self,
        stream: u32,
        messages: Vec<Message>,
    ) -> Result<Response, ClientError> {
        self.call(Request::Append { stream, messages }).await
    }

    /// Polls up to `count` messages from `offset`.
    pub async fn poll(
        &mut self,
        stream: u32,
        offset: u64,
        count: u32,
    ) -> Result<Vec<Message>, ClientError> {
        match self
            .call(Request::Poll {
                stream,
                offset,
                count,
            })
            .await?
        {
            Response::Polled { messages } => Ok(messages),
            _ => Ok(Vec::new()),
        }
    }

    /// Sends a request and waits for its response.
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let (code, body) = request.encode();
        let (status, body) = self.0.request(code, &body).await?;
        match Status::from_code(status) {
            Some(Status::Ok) => Ok(Response::decode(code, &body)?),
            status => Err(ClientError::Server {
                status: status.unwrap_or(Status::Storage),
                message: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}
