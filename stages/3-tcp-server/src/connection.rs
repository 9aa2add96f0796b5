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
use crate::protocol::frame::{FrameError, read_frame, write_frame};

/// What a server does with requests. The framing, the connection loop and the
/// error handling are the same whatever the commands are, so stage 4 reuses
/// them with its own commands by implementing this.
pub trait Service: Send + Sync + 'static {
    /// A decoded request.
    type Request: Send;
    /// Why a body did not decode; sent to the client as the error message.
    type DecodeError: std::fmt::Display + Send;
    /// Decodes the body of a request with `code`; `None` if the code is unknown.
    fn decode(&self, code: u16, body: &[u8]) -> Option<Result<Self::Request, Self::DecodeError>>;
    /// Serves a request; the body of the ok response, or the error to send.
    fn handle(
        self: &Arc<Self>,
        request: Self::Request,
    ) -> impl Future<Output = Result<Vec<u8>, ServeError>> + Send;
    /// Writes and syncs everything before the server exits.
    fn shutdown(&self) -> impl Future<Output = Result<(), ServeError>> + Send;
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
        let request = match service.decode(frame.code, &frame.body) {
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
            Ok(body) => reply(&mut writer, Status::Ok.into(), frame.correlation, &body).await,
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
