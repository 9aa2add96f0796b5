//! A small blocking client for the torture driver and the reliability tests:
//! plain `std::net::TcpStream`, stage 4's request encoding, stage 4's
//! response decoding (every polled record's checksum verified), and raw
//! frames for the tests that lie on purpose.
//!
//! Why its own client rather than stage 4's tokio `Client`: the driver kills
//! the server under its producers' feet, and a thread per connection with a
//! read timeout makes "the server is gone" and "the server hangs" two plain
//! errors, with no runtime to shut down in between. The tests include this
//! file by `#[path]`, so what they speak is what the driver speaks.

// The tests include this file and each uses its own share of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::record::Record;
use stage4_partitions::protocol::{Request, Response};
use stage6_broker::api::{PollBy, code};

/// Stage 3's frame header: `len u32`, `code u16`, `correlation u32`.
pub const HEADER_LEN: usize = 10;

/// The largest reply this client accepts: a poll is capped at 8 MiB by the
/// server's default, so anything far above it is a broken stream.
const MAX_REPLY_LEN: u32 = 64 << 20;

/// What a call can fail with.
#[derive(Debug)]
pub enum CallError {
    /// The connection failed, timed out or closed.
    Io(std::io::Error),
    /// The server answered with an error status and this message.
    Server {
        /// The status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A reply did not parse, or a record failed its checksum.
    Body(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(error) => write!(f, "connection: {error}"),
            CallError::Server { status, message } => write!(f, "status {status}: {message}"),
            CallError::Body(message) => write!(f, "bad reply: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<std::io::Error> for CallError {
    fn from(error: std::io::Error) -> CallError {
        CallError::Io(error)
    }
}

impl CallError {
    /// The server's status, if it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a produce was acknowledged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// The partition.
    pub partition: u32,
    /// Offset of the first record.
    pub first_offset: u64,
    /// Records appended.
    pub count: u32,
    /// Synced before the answer.
    pub durable: bool,
}

/// One connection; one request in flight at a time, as the protocol has it.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    correlation: u32,
}

/// Bytes of a whole frame: header and body.
pub fn frame(code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len() + 6).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&code.to_le_bytes());
    bytes.extend_from_slice(&correlation.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

impl Conn {
    /// Connects, with `timeout` on every read and write after.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            correlation: 0,
        })
    }

    /// The socket, for tests that write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes raw bytes, whatever they claim to be.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one reply frame: `(status, correlation, body)`. A reply longer
    /// than [`MAX_REPLY_LEN`] is refused before its body is allocated.
    pub fn read_reply(&mut self) -> std::io::Result<(u16, u32, Vec<u8>)> {
        let mut header = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut header)?;
        let [l0, l1, l2, l3, s0, s1, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        if !(6..=MAX_REPLY_LEN).contains(&len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("reply frame length {len}"),
            ));
        }
        let mut body = vec![0; len as usize - 6];
        self.stream.read_exact(&mut body)?;
        let status = u16::from_le_bytes([s0, s1]);
        Ok((status, u32::from_le_bytes([c0, c1, c2, c3]), body))
    }

    /// Whether the server closed the connection: a read returns end of
    /// file (or a reset) before `timeout`.
    pub fn is_closed_by_server(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue, // a reply's leftover bytes: keep reading
                Err(error) => {
                    return !matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }

    /// Sends a request and reads its reply: `Ok(body)` for status 0.
    pub fn call(&mut self, code: u16, body: &[u8]) -> Result<Vec<u8>, CallError> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        self.stream.write_all(&frame(code, correlation, body))?;
        let (status, got, body) = self.read_reply()?;
        if got != correlation {
            return Err(CallError::Body(format!(
                "reply to correlation {got}, expected {correlation}"
            )));
        }
        if status != 0 {
            return Err(CallError::Server {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    fn stage4(&mut self, request: Request) -> Result<Response, CallError> {
        let (code, body) = request.encode();
        let reply = self.call(code, &body)?;
        Response::decode(code, &reply).map_err(|error| CallError::Body(error.to_string()))
    }

    /// Stage 4's create topic (fine if it exists with as many partitions).
    pub fn create_topic(&mut self, topic: u32, partitions: u32) -> Result<(), CallError> {
        self.stage4(Request::CreateTopic { topic, partitions })
            .map(|_| ())
    }

    /// Produces `(id, payload)` records as one batch to one partition.
    pub fn produce(
        &mut self,
        topic: u32,
        partition: u32,
        messages: &[(u64, Vec<u8>)],
    ) -> Result<Produced, CallError> {
        let records = messages
            .iter()
            .map(|(id, payload)| Record {
                offset: 0,
                timestamp: 0,
                id: *id,
                payload: payload.clone(),
            })
            .collect();
        let request = Request::Produce {
            topic,
            partitioning: Partitioning::Explicit(partition),
            records,
        };
        match self.stage4(request)? {
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
            other => Err(CallError::Body(format!("unexpected reply {other:?}"))),
        }
    }

    /// Stage 4's poll by offset; checksums verified.
    pub fn poll(
        &mut self,
        topic: u32,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Result<Vec<Record>, CallError> {
        let request = Request::Poll {
            topic,
            partition,
            offset,
            count,
        };
        match self.stage4(request)? {
            Response::Polled { records } => Ok(records),
            other => Err(CallError::Body(format!("unexpected reply {other:?}"))),
        }
    }

    /// Stage 6's poll by position; answered like a poll, checksums verified.
    pub fn poll_by(&mut self, poll: &PollBy) -> Result<Vec<Record>, CallError> {
        let reply = self.call(code::POLL_BY, &poll.encode())?;
        // The reply is stage 5's poll reply: decode it as one.
        match Response::decode(code::POLL, &reply) {
            Ok(Response::Polled { records }) => Ok(records),
            Ok(other) => Err(CallError::Body(format!("unexpected reply {other:?}"))),
            Err(error) => Err(CallError::Body(error.to_string())),
        }
    }

    /// A JSON command: the request serialized, the reply parsed.
    pub fn json<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        code: u16,
        request: &Q,
    ) -> Result<A, CallError> {
        let body = serde_json::to_vec(request).map_err(|e| CallError::Body(e.to_string()))?;
        let reply = self.call(code, &body)?;
        serde_json::from_slice(&reply).map_err(|error| {
            CallError::Body(format!(
                "{error}: {}",
                String::from_utf8_lossy(&reply[..reply.len().min(200)])
            ))
        })
    }
}
