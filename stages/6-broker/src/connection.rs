//! One client connection, on the shard that accepted it: read a frame,
//! route it, write the answer, repeat.
//!
//! As in stages 3 to 5: requests on one connection are answered one at a
//! time, in order. A frame the server cannot trust (too long, too short, an
//! unknown code, a body that does not parse) gets an error response and the
//! connection is closed, since after a bad frame the server cannot know where
//! the next one starts. A valid request that fails (a topic that does not
//! exist) gets an error and the connection stays.
//!
//! Invariant: a connection has at most one request in flight, so its reply
//! channel has one slot and is made once, not once per request.

use std::pin::pin;
use std::rc::Rc;

use compio::net::TcpStream;
use futures_util::future::{Either, select};
use stage3_tcp_server::ServeError;
use stage4_partitions::protocol::{Response, Status};
use stage4_partitions::topics::{choose_partition, status};

use crate::aligned::AlignedBuf;
use crate::frame::{FrameError, read_frame, write_frame, write_polled};
use crate::protocol::Request;
use crate::router::{Op, Reply, ShardMessage};
use crate::shard::{ShardState, storage_stopped};

/// The most records one poll returns, as in stages 4 and 5.
pub const MAX_POLL_RECORDS: u32 = 1000;

/// What a request is answered with.
enum Answer {
    /// A body built in one buffer.
    Whole(Vec<u8>),
    /// A poll's records, as stored.
    Polled(crate::partition::Polled),
}

// ANCHOR: serve_connection
/// Serves `stream` until the client leaves, sends something untrustworthy,
/// or the shard stops (then only between requests: one being served is
/// answered first).
pub async fn serve_connection(state: Rc<ShardState>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true); // answers are small and awaited: do not delay them
    let (reply_to, replies) = flume::bounded(1);
    // The aligned buffer of the last poll, handed back for the next one.
    let mut spare: Option<AlignedBuf> = None;
    loop {
        let frame = {
            let read = pin!(read_frame(&mut stream, state.max_frame_len));
            let stopped = pin!(state.stopped.recv_async());
            match select(read, stopped).await {
                Either::Left((frame, _)) => frame,
                Either::Right(_) => return, // shutting down: no request is in flight
            }
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed | FrameError::Io(_)) => return,
            Err(error @ FrameError::TooLarge { correlation, .. }) => {
                let message = error.to_string();
                return refuse(&mut stream, Status::FrameTooLarge, correlation, &message).await;
            }
            Err(error @ FrameError::TooShort { .. }) => {
                return refuse(&mut stream, Status::Malformed, 0, &error.to_string()).await;
            }
        };
        let correlation = frame.correlation;
        let request = match Request::decode(frame.code, frame.body) {
            Some(Ok(request)) => request,
            Some(Err(error)) => {
                return refuse(
                    &mut stream,
                    Status::Malformed,
                    correlation,
                    &error.to_string(),
                )
                .await;
            }
            None => {
                let message = format!("unknown command code {}", frame.code);
                return refuse(&mut stream, Status::UnknownCommand, correlation, &message).await;
            }
        };
        let buf = spare.take();
        let answer = handle(&state, request, buf, &reply_to, &replies).await;
        let sent = match answer {
            Ok(Answer::Whole(body)) => write_frame(&mut stream, 0, correlation, &body).await,
            Ok(Answer::Polled(polled)) => {
                // Fewer than MAX_POLL_RECORDS records: the count fits a u32.
                let count = polled.count as u32;
                let (sent, bytes) =
                    write_polled(&mut stream, correlation, count, polled.bytes).await;
                spare = Some(bytes.into_buffer());
                sent
            }
            Err(error) => {
                write_frame(
                    &mut stream,
                    error.status,
                    correlation,
                    error.message.as_bytes(),
                )
                .await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
// ANCHOR_END: serve_connection

// ANCHOR: handle
/// Serves one request: metadata from the shard's own copy, storage from the
/// partition's owner, wherever it runs.
async fn handle(
    state: &ShardState,
    request: Request,
    buf: Option<AlignedBuf>,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    match request {
        Request::CreateTopic { topic, partitions } => {
            let create = ShardMessage::CreateTopic {
                topic,
                partitions,
                reply: reply_to.clone(),
            };
            let shard0 = state.inboxes.first().ok_or_else(storage_stopped)?;
            shard0.send(create).map_err(|_| storage_stopped())?;
            match replies.recv_async().await {
                Ok(Reply::Created(result)) => result.map(|()| Answer::Whole(Vec::new())),
                _ => Err(storage_stopped()),
            }
        }
        Request::Produce {
            topic,
            partitioning,
            body,
            records_at,
        } => {
            let meta = state.topic(topic)?;
            // Stage 4's choice, with this shard's own round-robin counter.
            let partition = choose_partition(&partitioning, meta.partitions, &meta.round_robin)?;
            let op = Op::Append {
                body,
                records_at,
                reply: reply_to.clone(),
            };
            state.route((topic, partition), op);
            match replies.recv_async().await {
                Ok(Reply::Produced(result)) => {
                    let (partition, appended) = result?;
                    // From a batch of a u32 count: the difference fits.
                    let count = (appended.offsets.end - appended.offsets.start) as u32;
                    Ok(Answer::Whole(Response::produced(
                        partition,
                        appended.offsets.start,
                        count,
                        appended.durable,
                    )))
                }
                _ => Err(storage_stopped()),
            }
        }
        Request::Poll {
            topic,
            partition,
            offset,
            count,
        } => {
            let meta = state.topic(topic)?;
            if partition >= meta.partitions {
                return Err(status(
                    Status::PartitionNotFound,
                    format!(
                        "partition {partition} does not exist; the topic has {}",
                        meta.partitions
                    ),
                ));
            }
            let buf = match buf {
                Some(buf) => buf,
                None => AlignedBuf::with_capacity(0)
                    .map_err(|error| status(Status::Storage, error.to_string()))?,
            };
            let op = Op::Poll {
                offset,
                count: u64::from(count.min(MAX_POLL_RECORDS)),
                buf,
                reply: reply_to.clone(),
            };
            state.route((topic, partition), op);
            match replies.recv_async().await {
                Ok(Reply::Polled(result)) => result.map(Answer::Polled),
                _ => Err(storage_stopped()),
            }
        }
    }
}
// ANCHOR_END: handle

/// Answers a frame that cannot be trusted, and so ends the connection.
async fn refuse(stream: &mut TcpStream, status: Status, correlation: u32, message: &str) {
    let _ = write_frame(stream, status.into(), correlation, message.as_bytes()).await;
}
