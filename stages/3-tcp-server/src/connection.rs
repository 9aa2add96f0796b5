//! One client connection: read a frame, answer it, repeat.
//!
//! Requests on one connection are answered one at a time, in order; clients
//! that want parallelism open more connections. A frame the server cannot
//! trust (too long, too short, unknown code, a body that does not parse) gets
//! an error response and the connection is closed: after a bad frame the
//! server cannot know where the next one starts. A valid request that fails
//! (a stream that does not exist, say) gets an error and the connection stays.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::error::ServeError;
use crate::protocol::Status;
use crate::protocol::frame::{FrameError, read_frame, write_frame, write_frame_parts};

/// What a server does with requests. The framing, the connection loop and the
/// error handling are the same whatever the commands are, so stage 4 reuses
/// them with its own commands by implementing this.
pub trait Service: Send + Sync + 'static {
    /// A decoded request.
    type Request: Send;
    /// Why a body did not decode; sent to the client as the error message.
    type DecodeError: std::fmt::Display + Send;
    /// Decodes the body of a request with `code`; `None` if the code is unknown.
    ///
    /// The body is handed over, not lent: a request may keep the frame's own
    /// buffer (stage 5 stamps and stores a produced batch in it) instead of
    /// copying what it needs out of it.
    fn decode(&self, code: u16, body: Vec<u8>) -> Option<Result<Self::Request, Self::DecodeError>>;
    /// Serves a request; the body of the ok response, or the error to send.
    fn handle(
        self: &Arc<Self>,
        request: Self::Request,
    ) -> impl Future<Output = Result<ReplyBody, ServeError>> + Send;
    /// Writes and syncs everything before the server exits.
    fn shutdown(&self) -> impl Future<Output = Result<(), ServeError>> + Send;
}

// ANCHOR: reply_body
/// The body of an ok response, as the connection writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// A body built in one buffer (every reply of stages 3 and 4).
    Whole(Vec<u8>),
    /// `count u32`, then `count` items' bytes left in the buffer they were read
    /// into: the count is written beside them, never copied in front of them.
    /// Stage 5 answers a poll with the records as read from disk this way.
    Counted {
        /// The count, little-endian, as it goes on the wire.
        count: [u8; 4],
        /// The items, as they are.
        items: Vec<u8>,
    },
}
// ANCHOR_END: reply_body

impl ReplyBody {
    /// `count` items whose bytes are `items`.
    pub fn counted(count: u32, items: Vec<u8>) -> ReplyBody {
        ReplyBody::Counted {
            count: count.to_le_bytes(),
            items,
        }
    }

    /// The body as the slices written one after another.
    pub fn as_slices(&self) -> [&[u8]; 2] {
        match self {
            ReplyBody::Whole(body) => [body, &[]],
            ReplyBody::Counted { count, items } => [count, items],
        }
    }
}

impl From<Vec<u8>> for ReplyBody {
    fn from(body: Vec<u8>) -> ReplyBody {
        ReplyBody::Whole(body)
    }
}

// ANCHOR: serve_connection
/// Serves `socket` until the client leaves or sends something untrustworthy.
pub async fn serve_connection<S: Service>(service: Arc<S>, socket: TcpStream, max_frame_len: u32) {
    let _ = socket.set_nodelay(true); // answers are small and awaited: do not delay them
    let (reader, writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    loop {
        let frame = match read_frame(&mut reader, max_frame_len).await {
            Ok(frame) => frame,
            Err(FrameError::Closed | FrameError::Io(_)) => return,
            Err(error @ FrameError::TooLarge { correlation, .. }) => {
                let _ = reply_error(
                    &mut writer,
                    Status::FrameTooLarge,
                    correlation,
                    &error.to_string(),
                )
                .await;
                return;
            }
            Err(error @ FrameError::TooShort { .. }) => {
                let _ = reply_error(&mut writer, Status::Malformed, 0, &error.to_string()).await;
                return;
            }
        };
        let request = match service.decode(frame.code, frame.body) {
            Some(Ok(request)) => request,
            Some(Err(error)) => {
                let _ = reply_error(
                    &mut writer,
                    Status::Malformed,
                    frame.correlation,
                    &error.to_string(),
                )
                .await;
                return;
            }
            None => {
                let message = format!("unknown command code {}", frame.code);
                let _ = reply_error(
                    &mut writer,
                    Status::UnknownCommand,
                    frame.correlation,
                    &message,
                )
                .await;
                return;
            }
        };
        let sent = match service.handle(request).await {
            Ok(body) => reply_ok(&mut writer, frame.correlation, &body).await,
            Err(error) => {
                reply_error(&mut writer, error.status, frame.correlation, &error.message).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
// ANCHOR_END: serve_connection

async fn reply_ok(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    correlation: u32,
    body: &ReplyBody,
) -> std::io::Result<()> {
    match body {
        // Whole bodies keep stages 3 and 4's one buffered write.
        ReplyBody::Whole(body) => write_frame(writer, Status::Ok.into(), correlation, body).await?,
        ReplyBody::Counted { .. } => {
            write_frame_parts(writer, Status::Ok.into(), correlation, &body.as_slices()).await?
        }
    }
    writer.flush().await
}

async fn reply(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    status: u16,
    correlation: u32,
    body: &[u8],
) -> std::io::Result<()> {
    write_frame(writer, status, correlation, body).await?;
    writer.flush().await
}

async fn reply_error(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    status: impl Into<u16>,
    correlation: u32,
    message: &str,
) -> std::io::Result<()> {
    reply(writer, status.into(), correlation, message.as_bytes()).await
}
