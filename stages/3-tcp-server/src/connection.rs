//! One client connection: read a frame, answer it, repeat.
//!
//! Requests on one connection are answered one at a time, in order; clients
//! that want parallelism open more connections. A frame the server cannot
//! trust (too long, too short, unknown code, a body that does not parse) gets
//! an error response and the connection is closed: after a bad frame the
//! server cannot know where the next one starts. A valid request that fails
//! (a stream that does not exist, say) gets an error and the connection stays.

use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::error::ServeError;
use crate::protocol::frame::{FrameError, read_frame, write_frame};
use crate::protocol::{Request, Response, Status};
use crate::streams::Streams;

// ANCHOR: serve_connection
/// Serves `socket` until the client leaves or sends something untrustworthy.
pub async fn serve_connection(streams: Arc<Streams>, socket: TcpStream, max_frame_len: u32) {
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
        let request = match Request::decode(frame.code, &frame.body) {
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
        let sent = match handle(&streams, request).await {
            Ok(response) => {
                reply(
                    &mut writer,
                    Status::Ok,
                    frame.correlation,
                    &response.encode(),
                )
                .await
            }
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

async fn handle(streams: &Arc<Streams>, request: Request) -> Result<Response, ServeError> {
    match request {
        Request::CreateStream { stream } => streams.create(stream).await,
        Request::Append { stream, messages } => streams.append(stream, messages).await,
        Request::Poll {
            stream,
            offset,
            count,
        } => streams.poll(stream, offset, count).await,
    }
}

async fn reply(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    status: Status,
    correlation: u32,
    body: &[u8],
) -> std::io::Result<()> {
    write_frame(writer, status as u16, correlation, body).await?;
    writer.flush().await
}

async fn reply_error(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    status: Status,
    correlation: u32,
    message: &str,
) -> std::io::Result<()> {
    reply(writer, status, correlation, message.as_bytes()).await
}
