//! The batching stream as a tokio task sees it: `append(...).await`, a
//! background saver, `flush().await` and `shutdown().await`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stage1_file_log::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batcher::{Appended, Batcher, Status};
use crate::error::Error;
use crate::policy::{Config, FsyncPolicy};

/// A stream that batches appends and syncs them as its [`FsyncPolicy`] says.
///
/// The [`Batcher`] sits behind a `std::sync::Mutex`, not a Tokio mutex, because
/// it is only ever locked inside `spawn_blocking` and never held across an
/// `.await`. Every step that may touch the disk runs in `spawn_blocking`: a
/// `write` or `fdatasync` blocks its thread, and doing that on a runtime worker
/// would stall every other task scheduled there for as long as the disk takes.
/// (`tokio::fs` makes the same choice, one blocking hop per operation.)
#[derive(Debug)]
pub struct BatchingStream {
    batcher: Arc<Mutex<Batcher>>,
    stop_saver: watch::Sender<bool>,
    saver: Option<JoinHandle<()>>,
}

impl BatchingStream {
    /// Opens (recovering) the stream in `dir` and starts its background saver.
    pub async fn open(id: u32, dir: impl Into<PathBuf>, config: Config) -> Result<Self, Error> {
        let dir = dir.into();
        let now = tokio::time::Instant::now().into_std();
        let batcher = blocking(move || Batcher::open(id, &dir, config, now)).await?;
        let batcher = Arc::new(Mutex::new(batcher));
        let (stop_saver, stopped) = watch::channel(false);
        let saver = tokio::spawn(saver(Arc::clone(&batcher), stopped));
        Ok(BatchingStream {
            batcher,
            stop_saver,
            saver: Some(saver),
        })
    }

    /// Appends a batch; see [`Appended`] for what the answer promises.
    pub async fn append(&self, messages: Vec<Message>) -> Result<Appended, Error> {
        self.locked(move |batcher, now| batcher.append(messages, now))
            .await
    }

    /// Writes and syncs everything accepted so far: on return it is durable.
    pub async fn flush(&self) -> Result<(), Error> {
        self.locked(|batcher, now| batcher.flush(now)).await
    }

    /// Up to `count` messages from `offset`, including ones not written yet.
    pub async fn poll(&self, offset: u64, count: u64) -> Result<Vec<Message>, Error> {
        self.locked(move |batcher, _| batcher.poll(offset, count))
            .await
    }

    /// The watermarks: what is durable, written, accepted.
    pub fn status(&self) -> Result<Status, Error> {
        Ok(lock(&self.batcher)?.status())
    }

    /// Stops the saver, then writes and syncs everything accepted.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop_saver.send(true);
        if let Some(saver) = self.saver.take() {
            saver
                .await
                .map_err(|error| Error::Task(error.to_string()))?;
        }
        self.flush().await
    }

    /// Runs `step` on the batcher in a blocking thread, with the current time.
    async fn locked<T, F>(&self, step: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batcher, std::time::Instant) -> Result<T, Error> + Send + 'static,
    {
        let batcher = Arc::clone(&self.batcher);
        // Tokio's clock, not std's, so that tests with paused time control it.
        let now = tokio::time::Instant::now().into_std();
        blocking(move || step(&mut *lock(&batcher)?, now)).await
    }
}

impl Drop for BatchingStream {
    /// Dropping without `shutdown` stops the saver and keeps only what was
    /// already written; `shutdown` is how a stream is closed without loss.
    fn drop(&mut self) {
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
    }
}

// ANCHOR: saver
/// The talk's background saver: wake up every interval and persist what is
/// buffered, until told to stop or the stream has failed.
async fn saver(batcher: Arc<Mutex<Batcher>>, mut stop: watch::Receiver<bool>) {
    // EXERCISE: saver
    // HINT: tick a tokio::time::interval of saver_period(config); at each tick run
    // HINT: Batcher::tick on a blocking thread (the `blocking` helper); return when
    // HINT: `stop` changes, or when a tick fails.
    let period = match lock(&batcher) {
        Ok(batcher) => saver_period(batcher.config()),
        Err(_) => return,
    };
    let mut interval = tokio::time::interval(period);
    interval.tick().await; // the first tick is immediate; nothing to save yet
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let batcher = Arc::clone(&batcher);
        let now = tokio::time::Instant::now().into_std();
        let step = blocking(move || lock(&batcher)?.tick(now)).await;
        if step.is_err() {
            // The batcher remembers the failure and refuses writes with it;
            // ticking on would only repeat it.
            return;
        }
    }
    // EXERCISE_END
}
// ANCHOR_END: saver

/// Ticks often enough for both the write interval and the sync interval.
fn saver_period(config: &Config) -> Duration {
    match config.fsync {
        FsyncPolicy::Interval(every) => every.min(config.saver_interval),
        _ => config.saver_interval,
    }
}

fn lock(batcher: &Mutex<Batcher>) -> Result<MutexGuard<'_, Batcher>, Error> {
    // A poisoned lock means a panic mid-step: the buffer may be half-updated,
    // so refuse rather than guess.
    batcher
        .lock()
        .map_err(|_| Error::Task("a previous step panicked while holding the stream".into()))
}

async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| Error::Task(error.to_string()))?
}
