//! A partition: a log of wire records and its offset index, in one folder.
//!
//! This is where the wire format becomes the disk format: a produced batch's
//! records region, stamped in place, is written to the log as it is, and a poll
//! reads a byte range back and sends it as it is.
//!
//! Invariants, restored by [`Partition::open`] (see [`crate::recovery`]) and
//! kept by every method:
//! - `partition.log` holds whole records with offsets `0..next_offset`, in
//!   order, each with a valid checksum when written, and is `log_len` bytes long;
//! - `partition.index` holds `next_offset` entries, entry `n` the position of
//!   record `n` (stage 1's `index` module: `u32` positions, so at most 4 GiB);
//! - stage 2's watermarks, `durable ≤ written ≤ next_offset`, never go back.
//!   Here `written == next_offset` always: there is no buffer.
//!
//! Why no buffer? Stage 2 kept messages in memory to merge many small appends
//! into one write. A produce here is already one batch in one buffer, so it
//! goes from the request's buffer to the file in one write, and only the
//! *sync* is deferred, by the same [`FsyncPolicy`] with the same answer: an
//! [`Appended`] whose `durable` says whether the sync covering it has returned.
//! A batch of one message is then one `write` per produce; a producer that sends
//! single messages pays for it, as a producer that should batch.
//!
//! Deliberate simplifications: one log file (stage 6 splits it into segments),
//! buffered I/O through the page cache (stage 6 uses Direct I/O), and a lock
//! around the whole partition, taken by the caller (stage 6 gives each
//! partition to one thread instead).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::FallocateFlags;
use stage1_file_log::RecoveryReport;
use stage1_file_log::index::{self, ENTRY_LEN, MAX_LOG_BYTES};
use stage2_batching::{Appended, Config, FsyncPolicy, Status};

use crate::batch::ReceivedBatch;
use crate::error::{Error, IoContext};
use crate::recovery::{self, Files};

/// File name of the log inside a partition's folder. Not stage 1's name: the
/// records are another format, and a stage 4 folder must not be read as one.
pub const LOG_FILE: &str = "partition.log";
/// File name of the index inside a partition's folder.
pub const INDEX_FILE: &str = "partition.index";

/// Records read by a poll: how many, and their bytes as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Number of records in `records`.
    pub count: u32,
    /// The records, exactly as they are in the log.
    pub records: Vec<u8>,
}

/// A log of wire records with an offset index and stage 2's fsync policies.
#[derive(Debug)]
pub struct Partition {
    config: Config,
    max_log_bytes: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    // Read + write, not append: every write says its position (`pwrite`), and
    // polls read with `pread`, so no shared cursor is ever moved.
    log: File,
    index: File,
    next_offset: u64,
    log_len: u64,
    durable: u64,
    unsynced_messages: usize,
    unsynced_bytes: usize,
    last_sync: Instant,
    preallocated_to: u64,
    recovery: RecoveryReport,
    failed: Option<String>,
}

impl Partition {
    /// Opens the partition in `dir`, creating it if empty, and recovers from a
    /// crash. Recovery syncs what it kept, so everything found starts durable.
    pub fn open(dir: &Path, config: Config, now: Instant) -> Result<Partition, Error> {
        Partition::open_with_limit(dir, config, now, MAX_LOG_BYTES)
    }

    /// Like [`Partition::open`], with a log size limit below the 4 GiB of a
    /// `u32` position (values above it are lowered to it), for tests.
    pub fn open_with_limit(
        dir: &Path,
        config: Config,
        now: Instant,
        max_log_bytes: u64,
    ) -> Result<Partition, Error> {
        config.validate().map_err(Error::Config)?;
        std::fs::create_dir_all(dir).at(dir)?;
        let log_path = dir.join(LOG_FILE);
        let index_path = dir.join(INDEX_FILE);
        let created = !log_path.exists();
        let log = open_read_write(&log_path)?;
        let index = open_read_write(&index_path)?;
        if created {
            // A new file's name lives in the directory, which has its own sync.
            File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        }
        let files = Files {
            log: &log,
            log_path: &log_path,
            index: &index,
            index_path: &index_path,
        };
        let max_log_bytes = max_log_bytes.min(MAX_LOG_BYTES);
        let recovered = recovery::recover(&files, max_log_bytes)?;
        let next_offset = recovered.report.messages;
        Ok(Partition {
            config,
            max_log_bytes,
            log_path,
            index_path,
            log,
            index,
            next_offset,
            log_len: recovered.log_len,
            durable: next_offset,
            unsynced_messages: 0,
            unsynced_bytes: 0,
            last_sync: now,
            preallocated_to: recovered.log_len,
            recovery: recovered.report,
            failed: None,
        })
    }

    // ANCHOR: append
    /// Stamps `batch` with the next offsets and `timestamp`, writes its records
    /// with one write, and syncs as the policy says.
    pub fn append(
        &mut self,
        batch: &mut ReceivedBatch,
        timestamp: u64,
        now: Instant,
    ) -> Result<Appended, Error> {
        self.check_not_failed()?;
        let first = self.next_offset;
        let len = batch.records().len() as u64;
        if self.log_len + len > self.max_log_bytes {
            return Err(Error::LogFull {
                log_len: self.log_len,
                batch_len: len,
                limit: self.max_log_bytes,
            });
        }
        batch.stamp(first, timestamp);
        // The batch's index entries: one buffer per batch, not one per message.
        let mut entries = Vec::with_capacity(batch.count() as usize * ENTRY_LEN as usize);
        let mut position = self.log_len;
        for record in batch.view() {
            // Below max_log_bytes, at most u32::MAX (checked above): it fits.
            entries.extend_from_slice(&(position as u32).to_le_bytes());
            position += record.as_bytes().len() as u64;
        }
        self.preallocate(len)?;
        // The log first, then the index: an index entry never points at
        // records that are not written (recovery rebuilds a lagging index).
        if let Err(error) = self.log.write_all_at(batch.records(), self.log_len) {
            return Err(self.fail(format!("writing a batch to the log: {error}")));
        }
        let at = first * ENTRY_LEN;
        if let Err(error) = self.index.write_all_at(&entries, at) {
            return Err(self.fail(format!("writing index entries: {error}")));
        }
        self.log_len += len;
        self.next_offset += u64::from(batch.count());
        self.unsynced_messages += batch.count() as usize;
        self.unsynced_bytes += len as usize;
        let offsets = first..self.next_offset;

        let full = self.unsynced_messages >= self.config.flush_count
            || self.unsynced_bytes >= self.config.flush_bytes;
        match self.config.fsync {
            FsyncPolicy::Always => self.flush(now)?,
            FsyncPolicy::EveryBatch if full => self.flush(now)?,
            _ => {}
        }
        Ok(Appended {
            durable: self.durable >= offsets.end,
            offsets,
        })
    }
    // ANCHOR_END: append

    // ANCHOR: read
    /// Up to `max_records` records from `offset` (fewer at the end of the log,
    /// none past it), cut to `max_bytes` but never to fewer than one: their
    /// bytes as stored, read with one positional read.
    pub fn read(&self, offset: u64, max_records: u32, max_bytes: usize) -> Result<Polled, Error> {
        // EXERCISE: partition_read
        // HINT: the index gives where record `offset` starts (position_of) and where the
        // HINT: last one wanted ends (end_of); fewer records while over max_bytes, never
        // HINT: fewer than one; then one read_exact_at of exactly those bytes.
        let available = self.next_offset.saturating_sub(offset);
        let mut count = u64::from(max_records).min(available);
        if count == 0 {
            return Ok(Polled {
                count: 0,
                records: Vec::new(), // allocates nothing
            });
        }
        let start = self.position_of(offset)?;
        let mut end = self.end_of(offset + count)?;
        if end - start > max_bytes as u64 && count > 1 {
            // Binary search for the most records that fit, through the index.
            let (mut fits, mut too_many) = (1, count);
            while too_many - fits > 1 {
                let middle = fits + (too_many - fits) / 2;
                if self.end_of(offset + middle)? - start <= max_bytes as u64 {
                    fits = middle;
                } else {
                    too_many = middle;
                }
            }
            count = fits;
            end = self.end_of(offset + count)?;
        }
        // Zeroed, then overwritten by the read: reading into uninitialised
        // memory needs `unsafe` (or the unstable `read_buf`), and a memset is
        // cheap beside the copy out of the page cache.
        let mut records = vec![0; (end - start) as usize];
        self.log
            .read_exact_at(&mut records, start)
            .at(&self.log_path)?;
        Ok(Polled {
            count: count as u32, // at most max_records
            records,
        })
        // EXERCISE_END
    }
    // ANCHOR_END: read

    /// Where record `offset` starts.
    fn position_of(&self, offset: u64) -> Result<u64, Error> {
        let entry = index::read_entry(&self.index, offset).at(&self.index_path)?;
        let position = u64::from(entry);
        if position >= self.log_len {
            return Err(Error::Corrupt {
                path: self.index_path.clone(),
                position: offset * ENTRY_LEN,
                reason: format!("entry {offset} points past the log's end"),
            });
        }
        Ok(position)
    }

    /// Where the record before `offset` ends.
    fn end_of(&self, offset: u64) -> Result<u64, Error> {
        if offset >= self.next_offset {
            Ok(self.log_len)
        } else {
            self.position_of(offset)
        }
    }

    // ANCHOR: tick
    /// The background saver's step: sync as the policy says.
    pub fn tick(&mut self, now: Instant) -> Result<(), Error> {
        self.check_not_failed()?;
        match self.config.fsync {
            // Always syncs before it answers; Never never syncs.
            FsyncPolicy::Always | FsyncPolicy::Never => Ok(()),
            // A batch below the thresholds is synced by the saver at the latest.
            FsyncPolicy::EveryBatch => self.flush(now),
            FsyncPolicy::Interval(every) if now.duration_since(self.last_sync) >= every => {
                self.flush(now)
            }
            FsyncPolicy::Interval(_) => Ok(()),
        }
    }
    // ANCHOR_END: tick

    /// Syncs everything written: on return, every accepted record is durable.
    /// Used by the policies, the saver and shutdown.
    pub fn flush(&mut self, now: Instant) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.durable == self.next_offset {
            return Ok(());
        }
        // fdatasync, not fsync: the data and the size needed to read it back,
        // not the timestamps nobody reads. The index is derived data and is
        // never synced on its own (recovery rebuilds it from the log).
        if let Err(error) = self.log.sync_data() {
            return Err(self.fail(format!("fdatasync failed: {error}")));
        }
        self.durable = self.next_offset;
        self.unsynced_messages = 0;
        self.unsynced_bytes = 0;
        self.last_sync = now;
        Ok(())
    }

    /// Reserves disk blocks ahead of the log (stage 2's `fallocate(KEEP_SIZE)`:
    /// the file's length stays the log's length, which recovery reads as its end).
    fn preallocate(&mut self, len: u64) -> Result<(), Error> {
        let ahead = self.config.preallocate_bytes;
        let end = self.log_len + len;
        if ahead == 0 || end <= self.preallocated_to {
            return Ok(());
        }
        let from = self.preallocated_to.max(self.log_len);
        let to = end + ahead;
        rustix::fs::fallocate(&self.log, FallocateFlags::KEEP_SIZE, from, to - from)
            .map_err(|errno| self.fail(format!("preallocating the log: {errno}")))?;
        self.preallocated_to = to;
        Ok(())
    }

    /// The watermarks (stage 2's): durable, written, next offset.
    pub fn status(&self) -> Status {
        Status {
            durable: self.durable,
            written: self.next_offset,
            next_offset: self.next_offset,
        }
    }

    /// Whether the saver has anything to do now.
    pub fn needs_tick(&self, now: Instant) -> bool {
        self.durable < self.next_offset
            && match self.config.fsync {
                FsyncPolicy::EveryBatch => true,
                FsyncPolicy::Interval(every) => now.duration_since(self.last_sync) >= every,
                FsyncPolicy::Always | FsyncPolicy::Never => false,
            }
    }

    /// Bytes in the log.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What recovery found and repaired when this partition was opened.
    pub fn recovery(&self) -> RecoveryReport {
        self.recovery
    }

    /// Why the partition refuses writes, if it does.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
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

fn open_read_write(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}
