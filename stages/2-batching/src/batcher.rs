//! The batching core, synchronous and clock-free, so every rule can be tested
//! exactly: a buffer of unsaved messages in front of stage 1's log.
//!
//! Three watermarks describe every message, and never go backwards:
//!
//! ```text
//!   0 ........ durable ........ written ........ next_offset
//!   | synced to disk | in the file, not synced | in memory only |
//! ```
//!
//! - offsets below `durable` survived an `fdatasync`: a power cut keeps them;
//! - offsets below `written` are in the log file (the page cache): a crash of
//!   the process keeps them, a power cut may not;
//! - offsets below `next_offset` are accepted: polls see them all.
//!
//! The async [`crate::BatchingStream`] wraps this in a mutex and a background
//! saver task; the rules live here.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use rustix::fs::FallocateFlags;
use stage1_file_log::index::MAX_LOG_BYTES;
use stage1_file_log::stream::LOG_FILE;
use stage1_file_log::{AppendMode, Message, Stream};

use crate::error::Error;
use crate::policy::{Config, FsyncPolicy};

/// What `append` accepted, and what it can promise about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The offsets given to the messages, in order.
    pub offsets: Range<u64>,
    /// Whether all of them are synced to disk already. When `false`, a caller
    /// that needs durability waits for `flush`.
    pub durable: bool,
}

/// The watermarks (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Offsets below this are synced.
    pub durable: u64,
    /// Offsets below this are written to the log file.
    pub written: u64,
    /// The offset the next message will get.
    pub next_offset: u64,
}

/// Stage 1's log with a buffer of unsaved messages in front of it.
#[derive(Debug)]
pub struct Batcher {
    config: Config,
    // Stage 1 in KeptHandle mode: it writes, this stage decides when to sync.
    log: Stream,
    // A second descriptor on the log file, for fdatasync and fallocate. Syncing
    // flushes the file (its inode), whichever descriptor asks, so stage 1's
    // log need not expose its own handle.
    sync_handle: File,
    unsaved: Vec<Message>,
    unsaved_bytes: usize,
    durable: u64,
    last_sync: Instant,
    preallocated_to: u64,
    failed: Option<String>,
}

impl Batcher {
    /// Opens (and recovers) the stream in `dir`. Recovery syncs what it kept,
    /// so everything found on disk starts out durable.
    pub fn open(id: u32, dir: &Path, config: Config, now: Instant) -> Result<Batcher, Error> {
        config.validate().map_err(Error::Config)?;
        let log = Stream::open(id, dir, AppendMode::KeptHandle)?;
        let log_path = dir.join(LOG_FILE);
        let sync_handle = OpenOptions::new()
            .write(true)
            .open(&log_path)
            .map_err(|source| stage1_file_log::Error::Io {
                path: log_path,
                source,
            })?;
        let durable = log.next_offset();
        let preallocated_to = log.log_len();
        Ok(Batcher {
            config,
            log,
            sync_handle,
            unsaved: Vec::new(),
            unsaved_bytes: 0,
            durable,
            last_sync: now,
            preallocated_to,
            failed: None,
        })
    }

    // ANCHOR: append
    /// Buffers `messages` and writes the buffer if a threshold is reached (or at
    /// once, under [`FsyncPolicy::Always`]).
    pub fn append(&mut self, messages: Vec<Message>, now: Instant) -> Result<Appended, Error> {
        self.check_not_failed()?;
        // Refuse here what the log could not take later: once buffered, a
        // message has an offset and may be acknowledged, so it must fit.
        let bytes: usize = messages.iter().map(Message::encoded_len).sum();
        let end = self.log.log_len() + (self.unsaved_bytes + bytes) as u64;
        if end > MAX_LOG_BYTES {
            return Err(stage1_file_log::Error::LogFull {
                log_len: self.log.log_len() + self.unsaved_bytes as u64,
                record_len: bytes as u64,
                limit: MAX_LOG_BYTES,
            }
            .into());
        }
        let first = self.next_offset();
        for (offset, mut message) in (first..).zip(messages) {
            message.offset = offset;
            self.unsaved.push(message);
        }
        self.unsaved_bytes += bytes;
        let offsets = first..self.next_offset();

        // EXERCISE: flush_decision
        // HINT: the buffer is full at flush_count messages or flush_bytes bytes. Always
        // HINT: flushes (write and sync) every time, EveryBatch when full; Interval and
        // HINT: Never only write when full (write_unsaved), and leave the sync to the saver.
        let full = self.unsaved.len() >= self.config.flush_count
            || self.unsaved_bytes >= self.config.flush_bytes;
        match self.config.fsync {
            FsyncPolicy::Always => self.flush(now)?,
            FsyncPolicy::EveryBatch if full => self.flush(now)?,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never if full => self.write_unsaved()?,
            _ => {}
        }
        // EXERCISE_END
        Ok(Appended {
            durable: self.durable >= offsets.end,
            offsets,
        })
    }
    // ANCHOR_END: append

    // ANCHOR: tick
    /// The background saver's step: write what is buffered, and sync as the
    /// policy says.
    pub fn tick(&mut self, now: Instant) -> Result<(), Error> {
        self.check_not_failed()?;
        match self.config.fsync {
            FsyncPolicy::Always | FsyncPolicy::EveryBatch => {
                if !self.unsaved.is_empty() {
                    self.flush(now)?;
                }
            }
            FsyncPolicy::Interval(every) => {
                // EXERCISE: fsync_due
                // HINT: write what is buffered; then sync, but only once `every` has passed
                // HINT: since the last sync (self.last_sync) and something written is not durable.
                self.write_unsaved()?;
                if now.duration_since(self.last_sync) >= every && self.durable < self.written() {
                    self.sync(now)?;
                }
                // EXERCISE_END
            }
            FsyncPolicy::Never => self.write_unsaved()?,
        }
        Ok(())
    }
    // ANCHOR_END: tick

    /// Writes everything buffered and syncs it: on return, every accepted
    /// message is durable. Used for `flush().await` and at shutdown.
    pub fn flush(&mut self, now: Instant) -> Result<(), Error> {
        self.write_unsaved()?;
        if self.durable < self.written() {
            self.sync(now)?;
        }
        Ok(())
    }

    // ANCHOR: write_unsaved
    fn write_unsaved(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.unsaved.is_empty() {
            return Ok(());
        }
        self.preallocate()?;
        let batch = std::mem::take(&mut self.unsaved);
        self.unsaved_bytes = 0;
        // One write for the whole batch (stage 1's append_batch): the talk's
        // `bytes.put(message.as_bytes())` loop followed by one `write_all`.
        if let Err(error) = self.log.append_batch(batch) {
            return Err(self.fail(format!("writing a batch: {error}")));
        }
        Ok(())
    }
    // ANCHOR_END: write_unsaved

    // ANCHOR: sync
    fn sync(&mut self, now: Instant) -> Result<(), Error> {
        // fdatasync, not fsync: it flushes the data and the metadata needed to
        // read it back (the file's size), and skips timestamps nobody reads.
        if let Err(error) = self.sync_handle.sync_data() {
            return Err(self.fail(format!("fdatasync failed: {error}")));
        }
        self.durable = self.written();
        self.last_sync = now;
        Ok(())
    }
    // ANCHOR_END: sync

    /// Reserves disk blocks ahead of the log so that appends do not allocate
    /// them one by one. `KEEP_SIZE`: the file's length stays the log's length,
    /// which is what stage 1's recovery reads as the end of the log.
    fn preallocate(&mut self) -> Result<(), Error> {
        let ahead = self.config.preallocate_bytes;
        let end = self.log.log_len() + self.unsaved_bytes as u64;
        if ahead == 0 || end <= self.preallocated_to {
            return Ok(());
        }
        let from = self.preallocated_to.max(self.log.log_len());
        let to = end + ahead;
        rustix::fs::fallocate(
            &self.sync_handle,
            FallocateFlags::KEEP_SIZE,
            from,
            to - from,
        )
        .map_err(|errno| self.fail(format!("preallocating the log: {errno}")))?;
        self.preallocated_to = to;
        Ok(())
    }

    /// Messages from `offset`: from the file, then from the buffer.
    pub fn poll(&self, offset: u64, count: u64) -> Result<Vec<Message>, Error> {
        // EXERCISE: buffered_poll
        // HINT: offsets below self.written() are in the log (self.log.poll), the rest in
        // HINT: self.unsaved, from its index 0 = offset written; mind offset + count overflowing.
        let mut messages = self.log.poll(offset, count)?;
        let written = self.written();
        let from_buffer = offset.max(written);
        let wanted_end = offset.saturating_add(count).min(self.next_offset());
        if from_buffer < wanted_end {
            let start = (from_buffer - written) as usize;
            let end = (wanted_end - written) as usize;
            messages.extend_from_slice(&self.unsaved[start..end]);
        }
        Ok(messages)
        // EXERCISE_END
    }

    /// The watermarks.
    pub fn status(&self) -> Status {
        Status {
            durable: self.durable,
            written: self.written(),
            next_offset: self.next_offset(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Why the stream refuses writes, if it does.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn written(&self) -> u64 {
        self.log.next_offset()
    }

    fn next_offset(&self) -> u64 {
        self.written() + self.unsaved.len() as u64
    }

    fn check_not_failed(&self) -> Result<(), Error> {
        match &self.failed {
            Some(reason) => Err(Error::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure; from now on every write is refused with it.
    fn fail(&mut self, reason: String) -> Error {
        let reason = self.failed.get_or_insert(reason).clone();
        Error::Failed { reason }
    }
}
