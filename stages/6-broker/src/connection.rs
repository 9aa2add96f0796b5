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
//!
//! A connection that sends no complete frame for the server's idle timeout
//! is closed, between requests only (a silent peer, a half-open one whose
//! host vanished, or one that sends half a frame and stops): each holds a
//! socket and a task, and the connection limit counts it.
//!
//! Each connection counts what it produced and polled, per topic, in its own
//! shard's [`crate::metrics::ShardMetrics`], so no counter is written by two
//! threads.

use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use compio::net::TcpStream;
use futures_util::future::{Either, select};
use stage3_tcp_server::ServeError;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::{Response, Status};
use stage4_partitions::topics::{choose_partition, status};
use tracing::{debug, info, warn};

use crate::aligned::AlignedBuf;
use crate::api::{self, PollKind};
use crate::auth::{Action, AuthConfig};
use crate::frame::{FrameError, read_frame, write_frame, write_polled};
use crate::protocol::Request;
use crate::router::{Admin, Key, Op, Reply, ShardMessage};
use crate::shard::{ShardState, fail, invalid, storage_stopped};

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
    // Who logged in on this connection, when access control is on.
    let mut user: Option<usize> = None;
    loop {
        let frame = {
            let read = pin!(read_within(
                &mut stream,
                state.max_frame_len,
                state.idle_timeout
            ));
            let stopped = pin!(state.stopped.recv_async());
            match select(read, stopped).await {
                Either::Left((Some(frame), _)) => frame,
                Either::Left((None, _)) => {
                    debug!(shard = state.id, "closing an idle connection");
                    return;
                }
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
        let gated = match &state.auth {
            Some(auth) => gate(&state, auth, &mut user, &request),
            None => Ok(None),
        };
        let answer = match gated {
            Ok(None) => handle(&state, request, spare.take(), &reply_to, &replies).await,
            Ok(Some(body)) => Ok(Answer::Whole(body)),
            Err(error) => Err(error),
        };
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

/// The next frame, or `None` if none arrived whole within `idle`.
async fn read_within(
    stream: &mut TcpStream,
    max_frame_len: u32,
    idle: Option<Duration>,
) -> Option<Result<crate::frame::Frame, FrameError>> {
    match idle {
        Some(idle) => compio::time::timeout(idle, read_frame(stream, max_frame_len))
            .await
            .ok(),
        None => Some(read_frame(stream, max_frame_len).await),
    }
}

// ANCHOR: handle
/// Serves one request: metadata commands on shard 0's writer, topic lookups
/// from the shard's own copy, storage from the partition's owner, wherever
/// it runs.
async fn handle(
    state: &ShardState,
    request: Request,
    buf: Option<AlignedBuf>,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    let ask = |key, op| ask(state, key, op, replies);
    match request {
        Request::CreateTopic { topic, partitions } => {
            admin(
                state,
                Admin::CreateTopicById { topic, partitions },
                reply_to,
                replies,
            )
            .await
        }
        Request::Admin(request) => admin(state, request, reply_to, replies).await,
        Request::Produce {
            topic,
            partitioning,
            body,
            records_at,
        } => {
            produce(
                state,
                topic,
                &partitioning,
                body,
                records_at,
                reply_to,
                replies,
            )
            .await
        }
        Request::Poll {
            topic,
            partition,
            offset,
            count,
        } => {
            check_partition(state, topic, partition)?;
            let op = Op::Poll {
                offset,
                count: u64::from(count.min(MAX_POLL_RECORDS)),
                buf: buffer(buf)?,
                reply: reply_to.clone(),
            };
            polled(state, topic, ask((topic, partition), op).await?)
        }
        Request::PollBy(poll) => {
            check_partition(state, poll.topic, poll.partition)?;
            if !poll.consumer.is_empty() {
                api::check_name("consumer", &poll.consumer).map_err(invalid)?;
            } else if poll.kind == PollKind::Next || poll.auto_commit {
                return Err(invalid(
                    "a poll of the next records, or with auto-commit, needs a consumer name",
                ));
            }
            let op = Op::PollBy {
                kind: poll.kind,
                count: u64::from(poll.count.min(MAX_POLL_RECORDS)),
                consumer: poll.consumer,
                auto_commit: poll.auto_commit,
                buf: buffer(buf)?,
                reply: reply_to.clone(),
            };
            polled(
                state,
                poll.topic,
                ask((poll.topic, poll.partition), op).await?,
            )
        }
        Request::StoreOffset(store) => {
            api::check_name("consumer", &store.consumer).map_err(invalid)?;
            let meta = state.find_topic(&store.topic)?;
            check_partition(state, meta.info.id, store.partition)?;
            let op = Op::StoreOffset {
                consumer: store.consumer,
                offset: store.offset,
                reply: reply_to.clone(),
            };
            match ask((meta.info.id, store.partition), op).await? {
                Reply::Stored(result) => result.and_then(|()| json(&api::Empty {})),
                _ => Err(storage_stopped()),
            }
        }
        Request::GetOffsets(get) => get_offsets(state, get, reply_to, replies).await,
        Request::DescribeTopic(reference) => describe(state, &reference, reply_to, replies).await,
        Request::Stats => json(&stats(state)),
        // Access control is not on: every connection may do everything.
        Request::Login(_) => json(&api::Empty {}),
    }
}

/// A produce: the partition chosen on this shard, the batch appended by the
/// partition's owner, the answer counted in this shard's metrics.
async fn produce(
    state: &ShardState,
    topic: u32,
    partitioning: &Partitioning,
    body: Vec<u8>,
    records_at: usize,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    let meta = state.topic(topic)?;
    // Stage 4's choice, with this shard's own round-robin counter.
    let partition = choose_partition(partitioning, meta.partitions, &meta.round_robin)?;
    let bytes = (body.len() - records_at) as u64;
    let op = Op::Append {
        body,
        records_at,
        reply: reply_to.clone(),
    };
    let Reply::Produced(result) = ask(state, (topic, partition), op, replies).await? else {
        return Err(storage_stopped());
    };
    let (partition, appended) = result?;
    // From a batch of a u32 count: the difference fits.
    let count = (appended.offsets.end - appended.offsets.start) as u32;
    state
        .metrics
        .shard(state.id)
        .produced(topic, u64::from(count), bytes);
    Ok(Answer::Whole(Response::produced(
        partition,
        appended.offsets.start,
        count,
        appended.durable,
    )))
}
// ANCHOR_END: handle

/// A consumer's offsets in every partition of a topic, asked one partition
/// at a time: the connection's reply channel has one slot.
async fn get_offsets(
    state: &ShardState,
    get: api::GetOffsets,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    api::check_name("consumer", &get.consumer).map_err(invalid)?;
    let meta = state.find_topic(&get.topic)?;
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for partition in 0..meta.partitions {
        let op = Op::GetOffset {
            consumer: get.consumer.clone(),
            reply: reply_to.clone(),
        };
        let Reply::Offset(result) = ask(state, (meta.info.id, partition), op, replies).await?
        else {
            return Err(storage_stopped());
        };
        partitions.push(result?);
    }
    json(&api::ConsumerOffsets {
        consumer: get.consumer,
        topic: meta.info.id,
        partitions,
    })
}

/// A topic as this shard knows it, with each partition's state from its owner.
async fn describe(
    state: &ShardState,
    reference: &api::TopicRef,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    let meta = state.find_topic(reference)?;
    let mut info = meta.info.clone();
    for partition in 0..meta.partitions {
        let op = Op::Describe {
            reply: reply_to.clone(),
        };
        let Reply::Described(result) = ask(state, (meta.info.id, partition), op, replies).await?
        else {
            return Err(storage_stopped());
        };
        info.partition_info.push(result?);
    }
    json(&info)
}

// ANCHOR: gate
/// Access control, when it is on: a login is answered here; anything else
/// needs one, and the permission its topic asks for. `Ok(None)`: go ahead.
fn gate(
    state: &ShardState,
    auth: &AuthConfig,
    user: &mut Option<usize>,
    request: &Request,
) -> Result<Option<Vec<u8>>, ServeError> {
    if let Request::Login(login) = request {
        return match auth.login(login) {
            Some(found) => {
                info!(user = auth.name(found), shard = state.id, "logged in");
                *user = Some(found);
                Ok(Some(b"{}".to_vec()))
            }
            None => {
                // Never the secrets: only that a login failed.
                warn!(shard = state.id, "a login failed");
                Err(fail(
                    api::status::UNAUTHENTICATED,
                    "wrong user name, password or token",
                ))
            }
        };
    }
    let Some(who) = *user else {
        return Err(fail(
            api::status::UNAUTHENTICATED,
            "access control is on: log in first (LOGIN, code 31)",
        ));
    };
    let name_of = |topic: u32| state.topic(topic).ok().map(|meta| meta.info.name.clone());
    let named = |reference: &api::TopicRef| {
        state
            .find_topic(reference)
            .ok()
            .map(|meta| meta.info.name.clone())
    };
    // The topic's name, and whether the request writes to it.
    let (topic, produce) = match request {
        Request::Produce { topic, .. } => (name_of(*topic), true),
        Request::Poll { topic, .. } => (name_of(*topic), false),
        Request::PollBy(poll) => (name_of(poll.topic), false),
        Request::StoreOffset(store) => (named(&store.topic), false),
        Request::GetOffsets(get) => (named(&get.topic), false),
        Request::CreateTopic { .. }
        | Request::Admin(
            Admin::CreateTopicById { .. }
            | Admin::CreateStream(_)
            | Admin::DeleteStream(_)
            | Admin::CreateTopic(_)
            | Admin::DeleteTopic(_),
        ) => {
            if auth.allows(who, Action::Admin) {
                return Ok(None);
            }
            return Err(forbidden(auth, who, "create or delete streams and topics"));
        }
        Request::Admin(Admin::ListStreams | Admin::ListTopics(_))
        | Request::DescribeTopic(_)
        | Request::Stats
        | Request::Login(_) => return Ok(None),
    };
    // A topic that does not exist is let through: the request gets
    // `TopicNotFound` as it would anyway.
    let Some(topic) = topic else {
        return Ok(None);
    };
    let (action, verb) = if produce {
        (Action::Produce(&topic), "produce to")
    } else {
        (Action::Consume(&topic), "consume from")
    };
    if auth.allows(who, action) {
        return Ok(None);
    }
    Err(forbidden(auth, who, &format!("{verb} topic {topic:?}")))
}

/// The answer to a logged-in user who may not do `what`.
fn forbidden(auth: &AuthConfig, who: usize, what: &str) -> ServeError {
    fail(
        api::status::FORBIDDEN,
        format!("user {:?} may not {what}", auth.name(who)),
    )
}
// ANCHOR_END: gate

/// Hands `op` to the partition's owner and waits for its answer.
async fn ask(
    state: &ShardState,
    key: Key,
    op: Op,
    replies: &flume::Receiver<Reply>,
) -> Result<Reply, ServeError> {
    state.route(key, op);
    replies.recv_async().await.map_err(|_| storage_stopped())
}

/// Hands a metadata command to shard 0's writer and waits for its answer.
async fn admin(
    state: &ShardState,
    request: Admin,
    reply_to: &flume::Sender<Reply>,
    replies: &flume::Receiver<Reply>,
) -> Result<Answer, ServeError> {
    let message = ShardMessage::Admin {
        request,
        reply: reply_to.clone(),
    };
    let shard0 = state.inboxes.first().ok_or_else(storage_stopped)?;
    shard0.send(message).map_err(|_| storage_stopped())?;
    match replies.recv_async().await {
        Ok(Reply::Admin(result)) => result.map(Answer::Whole),
        _ => Err(storage_stopped()),
    }
}

/// A poll's answer, counted in this shard's metrics.
fn polled(state: &ShardState, topic: u32, reply: Reply) -> Result<Answer, ServeError> {
    match reply {
        Reply::Polled(result) => {
            let polled = result?;
            let bytes = polled.bytes.len() as u64;
            state
                .metrics
                .shard(state.id)
                .polled(topic, polled.count, bytes);
            Ok(Answer::Polled(polled))
        }
        _ => Err(storage_stopped()),
    }
}

/// Checks `topic` exists with a partition `partition`.
fn check_partition(state: &ShardState, topic: u32, partition: u32) -> Result<(), ServeError> {
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
    Ok(())
}

/// The connection's spare poll buffer, or a new empty one.
fn buffer(buf: Option<AlignedBuf>) -> Result<AlignedBuf, ServeError> {
    match buf {
        Some(buf) => Ok(buf),
        None => {
            AlignedBuf::with_capacity(0).map_err(|error| status(Status::Storage, error.to_string()))
        }
    }
}

fn json(value: &impl serde::Serialize) -> Result<Answer, ServeError> {
    serde_json::to_vec(value)
        .map(Answer::Whole)
        .map_err(|error| status(Status::Storage, error.to_string()))
}

/// The server's counters: every shard's summed, and this shard's copy of
/// the topics.
fn stats(state: &ShardState) -> api::Stats {
    let metrics = &state.metrics;
    let mut stats = api::Stats {
        uptime_seconds: metrics.started.elapsed().as_secs(),
        shards: u32::try_from(state.inboxes.len()).unwrap_or(u32::MAX),
        io_driver: state.driver.to_string(),
        connections: metrics.connections(),
        topics: u32::try_from(state.topics.borrow().len()).unwrap_or(u32::MAX),
        ..api::Stats::default()
    };
    for counters in metrics.topic_totals().values() {
        stats.messages_in += counters.messages_in;
        stats.bytes_in += counters.bytes_in;
        stats.messages_out += counters.messages_out;
        stats.bytes_out += counters.bytes_out;
    }
    stats
}

/// Answers a frame that cannot be trusted, and so ends the connection.
async fn refuse(stream: &mut TcpStream, status: Status, correlation: u32, message: &str) {
    let _ = write_frame(stream, status.into(), correlation, message.as_bytes()).await;
}
