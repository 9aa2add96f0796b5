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
//! Every frame goes to the connection's [`Session`](crate::shards::extension::Session) first (the product's
//! part, [`crate::shards::extension`]); what it passes on, the engine
//! decodes and serves: stage 4's create topic, produce and poll.
//!
//! Invariant: a connection has at most one request in flight, so its reply
//! channel has one slot and is made once, not once per request.
//!
//! A connection that sends no complete frame for the server's idle timeout
//! is closed, between requests only (a silent peer, a half-open one whose
//! host vanished, or one that sends half a frame and stops): each holds a
//! socket and a task, and the connection limit counts it.
//!
//! A large request's body is read only once the server-wide budget of
//! request bytes in flight has room for it ([`crate::shards::limits`]); until
//! then it waits, unread, within the same idle timeout. Its share of the
//! budget is given back once it has been answered.

use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compio::net::TcpStream;
use futures_util::future::{Either, select};
use tracing::{debug, warn};

use crate::shards::extension::{Answer, Served};
use crate::shards::frame::{Frame, FrameError, FrameReader, Header, write_frame, write_polled};
use crate::shards::limits::{Limits, MAX_PAUSE, Reservation, and_more};
use crate::shards::protocol::{Produced, Request};
use crate::shards::router::{Key, Op, Reply, ReplyTo, ShardMessage};
use crate::shards::shard::{ShardState, storage_stopped};
use crate::shards::wire::{Partitioning, WireError, status};
use crate::storage::aligned::AlignedBuf;

/// The most records one poll returns, as in stages 4 and 5.
pub const MAX_POLL_RECORDS: u32 = 1000;

/// What a connection has that a request may use: its shard, its peer's
/// address, its reply channel, and the aligned buffer of its last poll.
#[derive(Debug)]
pub struct Connection {
    shard: Rc<ShardState>,
    peer: SocketAddr,
    reply_to: ReplyTo,
    replies: flume::Receiver<Reply>,
    /// The aligned buffer of the last poll, handed back for the next one.
    spare: Option<AlignedBuf>,
}

impl Connection {
    /// The shard this connection lives on.
    pub fn shard(&self) -> &Rc<ShardState> {
        &self.shard
    }

    /// The client's address (for limits per peer, such as failed logins).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Where this connection's answers come back, for an [`Op`] or a job.
    pub fn reply_to(&self) -> ReplyTo {
        self.reply_to.clone()
    }

    /// Hands `op` to the partition's owner and waits for its answer.
    pub async fn ask(&self, key: Key, op: Op) -> Result<Reply, WireError> {
        self.shard.ask(key, op, &self.replies).await
    }

    /// Waits for the answer to a job sent with [`Connection::reply_to`].
    pub async fn reply(&self) -> Result<Reply, WireError> {
        self.replies
            .recv_async()
            .await
            .map_err(|_| storage_stopped())
    }

    /// The last poll's buffer, or a new empty one, for the next poll.
    pub fn buffer(&mut self) -> Result<AlignedBuf, WireError> {
        match self.spare.take() {
            Some(buf) => Ok(buf),
            None => {
                AlignedBuf::with_capacity(0).map_err(|error| WireError::storage(error.to_string()))
            }
        }
    }

    /// Counts a poll's answer (for the product's metrics) and passes it on.
    pub fn polled(&self, topic: u32, reply: Reply) -> Result<Answer, WireError> {
        match reply {
            Reply::Polled(result) => {
                let polled = result?;
                let bytes = polled.bytes.len() as u64;
                self.shard
                    .extension
                    .polled(self.shard.id, topic, polled.count, bytes);
                Ok(Answer::Polled(polled))
            }
            Reply::Produced(_) => Err(storage_stopped()),
        }
    }
}

// ANCHOR: serve_connection
/// Serves `stream`, from `peer`, until the client leaves, sends something
/// untrustworthy, or the shard stops (then only between requests: one being
/// served is answered first).
pub async fn serve_connection(state: Rc<ShardState>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true); // answers are small and awaited: do not delay them
    let mut session = state.extension.session(&state);
    let (reply_to, replies) = flume::bounded(1);
    let mut connection = Connection {
        shard: Rc::clone(&state),
        peer,
        reply_to,
        replies,
        spare: None,
    };
    let mut reader = FrameReader::new();
    // One wait for the stop for the connection's life, not one per request:
    // a new one registers with the channel (an allocation and a lock), and
    // unregisters again when the request comes first, as it nearly always does.
    let mut stopped = pin!(state.stopped.recv_async());
    loop {
        let read = {
            let read = pin!(read_request(&mut stream, &mut reader, &state));
            match select(read, stopped.as_mut()).await {
                Either::Left((Some(read), _)) => read,
                Either::Left((None, _)) => {
                    debug!(shard = state.id, "closing an idle connection");
                    return;
                }
                Either::Right(_) => return, // shutting down: no request is in flight
            }
        };
        // `_budget` is held until this request has been answered.
        let (frame, _budget) = match read {
            Ok(read) => read,
            Err(Unread::Gone) => return,
            Err(Unread::Refused { correlation, error }) => {
                return refuse(&mut stream, correlation, error).await;
            }
        };
        let correlation = frame.correlation;
        let answer = match session.serve(&mut connection, frame).await {
            Served::Answer(answer) => answer,
            Served::Close(error) => return refuse(&mut stream, correlation, error).await,
            Served::Pass(frame) => match decode(frame) {
                Ok(request) => connection.serve(request).await,
                Err(error) => return refuse(&mut stream, correlation, error).await,
            },
        };
        let sent = match answer {
            Ok(Answer::Whole(body)) => write_frame(&mut stream, 0, correlation, &body).await,
            Ok(Answer::Polled(polled)) => {
                // Fewer than MAX_POLL_RECORDS records: the count fits a u32.
                let count = polled.count as u32;
                let (sent, bytes) =
                    write_polled(&mut stream, correlation, count, polled.bytes).await;
                connection.spare = Some(bytes.into_buffer());
                sent
            }
            Err(error) => {
                let message = error.message.as_bytes();
                write_frame(&mut stream, error.status, correlation, message).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
// ANCHOR_END: serve_connection

/// Why no request was read: the connection is gone, or it gets this error
/// and is closed (after a frame it cannot trust, or one it has no room for,
/// nobody knows where the next frame starts).
enum Unread {
    Gone,
    Refused { correlation: u32, error: WireError },
}

impl From<FrameError> for Unread {
    fn from(error: FrameError) -> Unread {
        match error {
            FrameError::Closed | FrameError::Io(_) => Unread::Gone,
            FrameError::TooLarge { correlation, .. } => Unread::Refused {
                correlation,
                error: WireError::new(status::FRAME_TOO_LARGE, error.to_string()),
            },
            FrameError::TooShort { .. } => Unread::Refused {
                correlation: 0,
                error: WireError::new(status::MALFORMED, error.to_string()),
            },
        }
    }
}

// ANCHOR: read_request
/// The next request and its share of the request budget, or `None` if it
/// did not arrive whole within the idle timeout: its header (read with
/// whatever came after it, [`FrameReader`]), then room in the budget for
/// its body (waiting for it, the rest unread), then the body.
async fn read_request(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    state: &ShardState,
) -> Option<Result<(Frame, Reservation), Unread>> {
    let deadline = state.idle_timeout.map(|idle| Instant::now() + idle);
    let header = match within(deadline, reader.header(stream, state.max_frame_len)).await? {
        Ok(header) => header,
        Err(error) => return Some(Err(error.into())),
    };
    let Some(budget) = reserve_within(&state.limits, header.body_len(), deadline).await else {
        return Some(Err(no_room(state, &header)));
    };
    let body = reader.body(stream, header.body_len(), budget.bytes());
    let body = match within(deadline, body).await? {
        Ok(body) => body,
        Err(error) => return Some(Err(error.into())),
    };
    let frame = Frame {
        code: header.code,
        correlation: header.correlation,
        body,
    };
    Some(Ok((frame, budget)))
}

/// Room in the budget for a body of `bytes`, waiting (a pause that doubles
/// up to [`MAX_PAUSE`]) until there is, or `None` once `deadline` has passed.
/// Also used by the product's own protocols (the broker's Kafka listener).
pub async fn reserve_within(
    limits: &Arc<Limits>,
    bytes: usize,
    deadline: Option<Instant>,
) -> Option<Reservation> {
    let mut pause = Duration::from_millis(1);
    let mut waited = false;
    loop {
        if let Some(reservation) = limits.reserve(bytes) {
            if waited {
                debug!(bytes, "a request had to wait for the budget");
            }
            return Some(reservation);
        }
        if deadline.is_some_and(|deadline| Instant::now() + pause > deadline) {
            return None;
        }
        waited = true;
        compio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The error a request gets when the budget had no room for it in time.
fn no_room(state: &ShardState, header: &Header) -> Unread {
    let limits = &state.limits;
    let message = format!(
        "no room for a request of {} bytes: the server's limit of {} request bytes in \
         flight stayed taken by other connections; retry later, or send smaller requests",
        header.body_len(),
        limits.max_in_flight()
    );
    if let Some(more) = limits.refusals.event(Instant::now()) {
        warn!(
            shard = state.id,
            "request refused: {message}{}",
            and_more(more)
        );
    }
    Unread::Refused {
        correlation: header.correlation,
        error: WireError::new(status::FRAME_TOO_LARGE, message),
    }
}
// ANCHOR_END: read_request

/// One of the engine's requests, or the error that closes the connection.
fn decode(frame: Frame) -> Result<Request, WireError> {
    match Request::decode(frame.code, frame.body) {
        Some(Ok(request)) => Ok(request),
        Some(Err(error)) => Err(WireError::new(status::MALFORMED, error.to_string())),
        None => Err(WireError::new(
            status::UNKNOWN_COMMAND,
            format!("unknown command code {}", frame.code),
        )),
    }
}

/// `future`'s output, or `None` if `deadline` passes first (`None`: no deadline).
pub async fn within<F: std::future::Future>(
    deadline: Option<Instant>,
    future: F,
) -> Option<F::Output> {
    match deadline {
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            compio::time::timeout(left, future).await.ok()
        }
        None => Some(future.await),
    }
}

impl Connection {
    // ANCHOR: handle
    /// Serves one of the engine's requests: a create on shard 0's catalog
    /// writer, topic lookups from the shard's own copy, storage from the
    /// partition's owner, wherever it runs. The broker calls this too, for
    /// the requests it lets through.
    pub async fn serve(&mut self, request: Request) -> Result<Answer, WireError> {
        match request {
            Request::CreateTopic { topic, partitions } => {
                let (done, created) = flume::bounded(1);
                let message = ShardMessage::CreateTopic {
                    topic,
                    partitions,
                    done,
                };
                let shard0 = self.shard.inboxes.first().ok_or_else(storage_stopped)?;
                shard0.send(message).map_err(|_| storage_stopped())?;
                created
                    .recv_async()
                    .await
                    .map_err(|_| storage_stopped())??;
                Ok(Answer::Whole(Vec::new()))
            }
            Request::Produce {
                topic,
                partitioning,
                body,
                records_at,
            } => self.produce(topic, &partitioning, body, records_at).await,
            Request::Poll {
                topic,
                partition,
                offset,
                count,
            } => {
                self.check_partition(topic, partition)?;
                let op = Op::Poll {
                    offset,
                    count: u64::from(count.min(MAX_POLL_RECORDS)),
                    buf: self.buffer()?,
                    reply: self.reply_to(),
                };
                let reply = self.ask((topic, partition), op).await?;
                self.polled(topic, reply)
            }
        }
    }

    /// A produce: the partition chosen on this shard, the batch appended by
    /// the partition's owner, the answer counted for the product's metrics.
    async fn produce(
        &self,
        topic: u32,
        partitioning: &Partitioning,
        body: Vec<u8>,
        records_at: usize,
    ) -> Result<Answer, WireError> {
        let meta = self.shard.topic(topic)?;
        // Stage 4's choice, with this shard's own round-robin counter.
        let partition = partitioning.choose(meta.partitions, &meta.round_robin)?;
        let bytes = (body.len() - records_at) as u64;
        let op = Op::Append {
            body,
            records_at,
            reply: self.reply_to(),
        };
        let Reply::Produced(result) = self.ask((topic, partition), op).await? else {
            return Err(storage_stopped());
        };
        let (partition, appended) = result?;
        // From a batch of a u32 count: the difference fits.
        let count = (appended.offsets.end - appended.offsets.start) as u32;
        let shard = &self.shard;
        shard
            .extension
            .produced(shard.id, topic, u64::from(count), bytes);
        let produced = Produced {
            partition,
            first_offset: appended.offsets.start,
            count,
            durable: appended.durable,
        };
        Ok(Answer::Whole(produced.encode()))
    }
    // ANCHOR_END: handle

    /// Checks `topic` exists with a partition `partition`.
    pub fn check_partition(&self, topic: u32, partition: u32) -> Result<(), WireError> {
        let meta = self.shard.topic(topic)?;
        if partition >= meta.partitions {
            return Err(WireError::new(
                status::PARTITION_NOT_FOUND,
                format!(
                    "partition {partition} does not exist; the topic has {}",
                    meta.partitions
                ),
            ));
        }
        Ok(())
    }
}

/// Answers a frame that cannot be trusted, and so ends the connection.
async fn refuse(stream: &mut TcpStream, correlation: u32, error: WireError) {
    let _ = write_frame(stream, error.status, correlation, error.message.as_bytes()).await;
}
