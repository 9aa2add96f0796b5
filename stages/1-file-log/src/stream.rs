//! A stream: one log file of records plus its offset index, in one directory.
//!
//! Invariants, restored by [`Stream::open`] and kept by every method:
//! - `stream.log` holds whole records with offsets `0..next_offset`, in order,
//!   and is exactly `log_len` bytes long;
//! - `stream.index` holds `next_offset` entries, entry `n` being the position of
//!   record `n`.
//!
//! Deliberate simplifications, each the subject of a later stage: one writer and
//! no locking (stage 3), one record per write (stage 2 batches), a fresh `Vec` per
//! encode and decode (stage 5), a single log file of at most 4 GiB (stage 6).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext};
use crate::index::{self, ENTRY_LEN, MAX_LOG_BYTES};
use crate::message::Message;
use crate::recovery::{self, Files, RecoveryReport};

/// File name of the log inside a stream's directory.
pub const LOG_FILE: &str = "stream.log";
/// File name of the index inside a stream's directory.
pub const INDEX_FILE: &str = "stream.index";

// ANCHOR: append_mode
/// How `append` gets a record to the disk: the talk's progression, step by step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendMode {
    /// The talk's first version: open the file, write, close, on every append.
    /// Costs an `open` and a `close` system call per message, for both files.
    OpenPerAppend,
    /// Open once and keep the handles: one `write` per file per message. The
    /// bytes reach the page cache, not the disk; a power cut can lose them.
    KeptHandle,
    /// The talk's "durable file storage": `sync_all` after every append, so an
    /// acknowledged message survives a power cut. Costs a disk flush per message.
    SyncEveryAppend,
}
// ANCHOR_END: append_mode

impl AppendMode {
    /// Every mode, in the order the talk introduces them.
    pub const ALL: [AppendMode; 3] = [
        AppendMode::OpenPerAppend,
        AppendMode::KeptHandle,
        AppendMode::SyncEveryAppend,
    ];

    /// A short name for tables and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            AppendMode::OpenPerAppend => "open-per-append",
            AppendMode::KeptHandle => "kept-handle",
            AppendMode::SyncEveryAppend => "sync-every-append",
        }
    }
}

/// An append-only stream of messages with an offset index.
#[derive(Debug)]
pub struct Stream {
    id: u32,
    mode: AppendMode,
    max_log_bytes: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    // Opened read + append in every mode: polls read through them, and in the
    // kept-handle modes appends write through them.
    log: File,
    index: File,
    next_offset: u64,
    log_len: u64,
    recovery: RecoveryReport,
    failed: bool,
}

impl Stream {
    /// Opens the stream in `dir`, creating it if empty, and recovers from a crash.
    pub fn open(id: u32, dir: impl AsRef<Path>, mode: AppendMode) -> Result<Stream, Error> {
        Stream::open_with_limit(id, dir, mode, MAX_LOG_BYTES)
    }

    /// Like [`Stream::open`], with a log size limit below the 4 GiB of a `u32`
    /// position (values above it are lowered to it). Lets a test reach the limit
    /// without writing 4 GiB.
    pub fn open_with_limit(
        id: u32,
        dir: impl AsRef<Path>,
        mode: AppendMode,
        max_log_bytes: u64,
    ) -> Result<Stream, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).at(dir)?;
        let log_path = dir.join(LOG_FILE);
        let index_path = dir.join(INDEX_FILE);
        let created = !log_path.exists();
        let log = open_read_append(&log_path)?;
        let index = open_read_append(&index_path)?;
        if created {
            // A new file's name lives in the directory, which has its own sync:
            // without it a power cut can lose the whole file, synced data and all.
            File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        }
        let max_log_bytes = max_log_bytes.min(MAX_LOG_BYTES);
        let files = Files {
            log: &log,
            log_path: &log_path,
            index: &index,
            index_path: &index_path,
        };
        let recovered = recovery::recover(&files, max_log_bytes)?;
        Ok(Stream {
            id,
            mode,
            max_log_bytes,
            log_path,
            index_path,
            log,
            index,
            next_offset: recovered.report.messages,
            log_len: recovered.log_len,
            recovery: recovered.report,
            failed: false,
        })
    }

    // ANCHOR: append
    /// Appends `message`, giving it the next offset, which is returned.
    ///
    /// The offset is durable on return only in [`AppendMode::SyncEveryAppend`].
    pub fn append(&mut self, mut message: Message) -> Result<u64, Error> {
        message.offset = self.next_offset;
        let record = message.as_bytes()?;
        let entry = self.position_at(0, record.len())?.to_le_bytes();
        self.commit(&record, &entry, 1)?;
        Ok(message.offset)
    }
    // ANCHOR_END: append

    // ANCHOR: append_batch
    /// Appends `messages` with consecutive offsets, which are returned, using one
    /// write per file for the whole batch instead of one per message.
    ///
    /// Stage 2 builds its batching on this. In [`AppendMode::SyncEveryAppend`]
    /// the batch is synced once. All or nothing: a batch that would pass the log
    /// limit is refused whole.
    pub fn append_batch(
        &mut self,
        messages: impl IntoIterator<Item = Message>,
    ) -> Result<Range<u64>, Error> {
        let first = self.next_offset;
        let mut records = Vec::new();
        let mut entries = Vec::new();
        for (offset, mut message) in (first..).zip(messages) {
            message.offset = offset;
            let position = self.position_at(records.len(), message.encoded_len())?;
            entries.extend_from_slice(&position.to_le_bytes());
            message.encode_into(&mut records)?;
        }
        let count = entries.len() as u64 / ENTRY_LEN;
        self.commit(&records, &entries, count)?;
        Ok(first..first + count)
    }
    // ANCHOR_END: append_batch

    /// The index entry of a record starting `at` bytes past the log's end, if a
    /// record of `len` bytes there keeps the log within its limit.
    fn position_at(&self, at: usize, len: usize) -> Result<u32, Error> {
        let start = self.log_len + at as u64;
        let log_full = || Error::LogFull {
            log_len: self.log_len,
            record_len: (at + len) as u64,
            limit: self.max_log_bytes,
        };
        if start + len as u64 > self.max_log_bytes {
            return Err(log_full());
        }
        // Cannot fail once within the limit (at most u32::MAX), but never cast.
        u32::try_from(start).map_err(|_| log_full())
    }

    /// Writes encoded records and their index entries, then counts them in.
    fn commit(&mut self, records: &[u8], entries: &[u8], count: u64) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Failed { id: self.id });
        }
        if let Err(error) = self.write_record(records, entries) {
            // Part of the records may be on disk: memory and files may disagree
            // until a reopen recovers from the log, so refuse to write on.
            self.failed = true;
            return Err(error);
        }
        self.log_len += records.len() as u64;
        self.next_offset += count;
        Ok(())
    }

    // ANCHOR: write_record
    fn write_record(&self, records: &[u8], entries: &[u8]) -> Result<(), Error> {
        match self.mode {
            AppendMode::OpenPerAppend => {
                append_and_close(&self.log_path, records)?;
                append_and_close(&self.index_path, entries)?;
            }
            AppendMode::KeptHandle => {
                (&self.log).write_all(records).at(&self.log_path)?;
                (&self.index).write_all(entries).at(&self.index_path)?;
            }
            AppendMode::SyncEveryAppend => {
                (&self.log).write_all(records).at(&self.log_path)?;
                // Only the log is synced: the index is derived from it and
                // rebuilt on open, so a second flush per message would buy nothing.
                self.log.sync_all().at(&self.log_path)?;
                (&self.index).write_all(entries).at(&self.index_path)?;
            }
        }
        Ok(())
    }
    // ANCHOR_END: write_record

    // ANCHOR: poll
    /// Returns up to `count` messages from `offset` on; fewer at the end of the
    /// log, none past it.
    ///
    /// Two index reads give the byte range of exactly the requested records,
    /// and one read fetches them: nothing before `offset` or after them is read.
    pub fn poll(&self, offset: u64, count: u64) -> Result<Vec<Message>, Error> {
        let available = self.next_offset.saturating_sub(offset);
        let count = count.min(available);
        if count == 0 {
            return Ok(Vec::new());
        }
        let start = self.position_of(offset)?;
        let end = if offset + count < self.next_offset {
            self.position_of(offset + count)?
        } else {
            self.log_len
        };
        let mut bytes = vec![0; (end - start) as usize];
        self.log
            .read_exact_at(&mut bytes, start)
            .at(&self.log_path)?;

        let mut messages = Vec::with_capacity(count as usize);
        let mut rest = bytes.as_slice();
        for expected in offset..offset + count {
            let message = Message::from_bytes(rest).map_err(|e| self.corrupt(start, e))?;
            if message.offset != expected {
                let reason = format!("offset {} where {expected} belongs", message.offset);
                return Err(self.corrupt(start, reason));
            }
            rest = &rest[message.encoded_len()..];
            messages.push(message);
        }
        Ok(messages)
    }
    // ANCHOR_END: poll

    fn position_of(&self, offset: u64) -> Result<u64, Error> {
        let entry = index::read_entry(&self.index, offset).at(&self.index_path)?;
        Ok(u64::from(entry))
    }

    fn corrupt(&self, position: u64, reason: impl ToString) -> Error {
        Error::Corrupt {
            path: self.log_path.clone(),
            position,
            reason: reason.to_string(),
        }
    }

    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// How `append` writes.
    pub fn mode(&self) -> AppendMode {
        self.mode
    }

    /// The offset the next append will get; also the number of messages.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Bytes in the log.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// What recovery found and repaired when this stream was opened.
    pub fn recovery(&self) -> RecoveryReport {
        self.recovery
    }
}

fn open_read_append(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .at(path)
}

/// The talk's first version, per file: open, write, close (on drop).
fn append_and_close(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new().append(true).open(path).at(path)?;
    file.write_all(bytes).at(path)
}
