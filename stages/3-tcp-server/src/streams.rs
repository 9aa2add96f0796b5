//! The talk's `Server`: streams by id, each behind its own `RwLock`.
//!
//! Two locks, two jobs:
//! - the map is a `std::sync::RwLock`, held only to look up or insert a stream
//!   and never across an `.await` (so a Tokio lock would only add cost);
//! - each stream is an `Arc<tokio::sync::RwLock<Batcher>>`, exactly the talk's
//!   `Arc<RwLock<Stream>>`: append takes the write lock, poll the read lock, so
//!   polls run in parallel with each other but never with an append, and an
//!   append waits for every poll in progress. This stage exists to measure that.
//!
//! Guards are owned (`write_owned`, `read_owned`) so they can move into
//! `spawn_blocking`, where the disk work happens (see stage 2 for why).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stage1_file_log::Message;
use stage2_batching::{Batcher, Config, FsyncPolicy};
use tokio::sync::RwLock as AsyncRwLock;
use tokio::task::JoinHandle;

use crate::connection::{ReplyBody, Service};
use crate::error::ServeError;
use crate::protocol::{BodyError, Request, Response};

/// One stream: stage 2's batcher behind the talk's lock.
pub type SharedStream = Arc<AsyncRwLock<Batcher>>;

/// What every stream is opened with.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// Each stream lives in `data_dir/<id>/`.
    pub data_dir: PathBuf,
    /// Stage 2's thresholds and fsync policy, for every stream.
    pub stream: Config,
    /// The most messages one poll returns.
    pub max_poll_messages: u32,
    /// The most bytes of records one poll returns (keeps replies under the frame limit).
    pub max_poll_bytes: usize,
}

impl StreamsConfig {
    /// Defaults under `data_dir` with the given fsync policy.
    pub fn new(data_dir: impl Into<PathBuf>, fsync: FsyncPolicy) -> StreamsConfig {
        StreamsConfig {
            data_dir: data_dir.into(),
            stream: Config::new(fsync),
            max_poll_messages: 1000,
            max_poll_bytes: 8 << 20,
        }
    }
}

/// Every stream of the server.
#[derive(Debug)]
pub struct Streams {
    config: StreamsConfig,
    // ANCHOR: server_state
    streams: RwLock<HashMap<u32, SharedStream>>,
    // ANCHOR_END: server_state
    savers: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Streams {
    /// Opens every stream already in the data directory (recovering each).
    pub async fn open(config: StreamsConfig) -> Result<Arc<Streams>, ServeError> {
        let streams = Arc::new(Streams {
            config,
            streams: RwLock::new(HashMap::new()),
            savers: std::sync::Mutex::new(Vec::new()),
        });
        std::fs::create_dir_all(&streams.config.data_dir).map_err(ServeError::storage)?;
        let entries = std::fs::read_dir(&streams.config.data_dir).map_err(ServeError::storage)?;
        for entry in entries {
            let name = entry.map_err(ServeError::storage)?.file_name();
            // Only folders named by a stream id are streams; anything else is left alone.
            if let Some(id) = name.to_str().and_then(|name| name.parse::<u32>().ok()) {
                streams.create(id).await?;
            }
        }
        Ok(streams)
    }

    /// Creates stream `id`, or does nothing if it exists.
    pub async fn create(self: &Arc<Self>, id: u32) -> Result<Response, ServeError> {
        if self.get(id).is_ok() {
            return Ok(Response::Created);
        }
        let dir = self.config.data_dir.join(id.to_string());
        let config = self.config.stream.clone();
        let now = tokio::time::Instant::now().into_std();
        let batcher = blocking(move || Batcher::open(id, &dir, config, now)).await?;
        let stream = Arc::new(AsyncRwLock::new(batcher));
        {
            let mut map = self.streams.write().map_err(|_| ServeError::poisoned())?;
            if map.contains_key(&id) {
                // Another connection created it meanwhile; theirs is the one in use.
                return Ok(Response::Created);
            }
            map.insert(id, Arc::clone(&stream));
        }
        let saver = tokio::spawn(saver(stream, saver_period(&self.config.stream)));
        if let Ok(mut savers) = self.savers.lock() {
            savers.push(saver);
        }
        Ok(Response::Created)
    }

    /// The stream with `id`.
    pub fn get(&self, id: u32) -> Result<SharedStream, ServeError> {
        let map = self.streams.read().map_err(|_| ServeError::poisoned())?;
        map.get(&id).cloned().ok_or(ServeError::not_found(id))
    }

    // ANCHOR: append
    /// Appends under the stream's write lock.
    pub async fn append(&self, id: u32, messages: Vec<Message>) -> Result<Response, ServeError> {
        // EXERCISE: stream_append
        // HINT: find the stream (self.get), take its write lock (write_owned: the guard
        // HINT: moves into `blocking`, where Batcher::append runs), answer Response::Appended.
        let stream = self.get(id)?;
        let count =
            u32::try_from(messages.len()).map_err(|_| ServeError::invalid("too many messages"))?;
        let mut guard = stream.write_owned().await; // waits for every poll in progress
        let now = tokio::time::Instant::now().into_std();
        let appended = blocking(move || guard.append(messages, now)).await?;
        Ok(Response::Appended {
            first_offset: appended.offsets.start,
            count,
            durable: appended.durable,
        })
        // EXERCISE_END
    }
    // ANCHOR_END: append

    // ANCHOR: poll
    /// Polls under the stream's read lock: polls share it, appends wait.
    pub async fn poll(&self, id: u32, offset: u64, count: u32) -> Result<Response, ServeError> {
        // EXERCISE: stream_poll
        // HINT: at most max_poll_messages, under the stream's read lock (read_owned), polled
        // HINT: in `blocking`; then keep_within max_poll_bytes.
        let stream = self.get(id)?;
        let count = u64::from(count.min(self.config.max_poll_messages));
        let guard = stream.read_owned().await;
        let mut messages = blocking(move || guard.poll(offset, count)).await?;
        keep_within(&mut messages, self.config.max_poll_bytes);
        Ok(Response::Polled { messages })
        // EXERCISE_END
    }
    // ANCHOR_END: poll

    /// Stops the savers, then writes and syncs every stream.
    pub async fn shutdown(&self) -> Result<(), ServeError> {
        if let Ok(mut savers) = self.savers.lock() {
            for saver in savers.drain(..) {
                saver.abort();
            }
        }
        let streams: Vec<SharedStream> = match self.streams.read() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => return Err(ServeError::poisoned()),
        };
        for stream in streams {
            let mut guard = stream.write_owned().await;
            let now = tokio::time::Instant::now().into_std();
            blocking(move || guard.flush(now)).await?;
        }
        Ok(())
    }
}

impl Service for Streams {
    type Request = Request;
    type DecodeError = BodyError;

    fn decode(&self, code: u16, body: Vec<u8>) -> Option<Result<Request, BodyError>> {
        Request::decode(code, &body)
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Result<ReplyBody, ServeError> {
        let response = match request {
            Request::CreateStream { stream } => self.create(stream).await?,
            Request::Append { stream, messages } => self.append(stream, messages).await?,
            Request::Poll {
                stream,
                offset,
                count,
            } => self.poll(stream, offset, count).await?,
        };
        Ok(response.encode().into())
    }

    async fn shutdown(&self) -> Result<(), ServeError> {
        Streams::shutdown(self).await
    }
}

/// Drops messages from the end until the records fit in `max_bytes`, keeping
/// at least one (it came in through a frame, so it fits in one going out).
pub fn keep_within(messages: &mut Vec<Message>, max_bytes: usize) {
    let mut total = 0;
    let keep = messages
        .iter()
        .take_while(|message| {
            total += message.encoded_len();
            total <= max_bytes
        })
        .count();
    messages.truncate(keep.max(1));
}

/// Stage 2's background saver, with the talk's lock: each tick takes the write
/// lock, so it too waits for polls and holds appends back while it syncs.
pub async fn saver(stream: SharedStream, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        let mut guard = Arc::clone(&stream).write_owned().await;
        let now = tokio::time::Instant::now().into_std();
        if blocking(move || guard.tick(now)).await.is_err() {
            return; // the batcher refuses writes from now on, with the reason
        }
    }
}

/// How often the saver ticks: the shorter of the saver and fsync intervals.
pub fn saver_period(config: &Config) -> Duration {
    match config.fsync {
        FsyncPolicy::Interval(every) => every.min(config.saver_interval),
        _ => config.saver_interval,
    }
}

/// Runs a storage step on a blocking thread, its error as a response.
pub async fn blocking<T, F>(f: F) -> Result<T, ServeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, stage2_batching::Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| ServeError::storage(error.to_string()))?
        .map_err(ServeError::from)
}
