//! A partition: segments named by base offset, appended to in batches, polled
//! by offset range and looked up by time, synced as the fsync policy says.
//!
//! ```text
//!   00000000000000000000.log   .index  .timeindex    sealed: synced, trusted
//!   00000000000000052345.log   .index  .timeindex    sealed
//!   00000000000000104690.log   .index  .timeindex    active: appends go here
//! ```
//!
//! Stage 2's watermarks, with stage 2's meaning, never going backwards:
//!
//! ```text
//!   0 ........ durable ........ written ........ next_offset
//!   | synced to disk | in the file, not synced | in the write buffer |
//! ```
//!
//! Invariants:
//! - offsets are dense across segments: a segment's base offset is the
//!   previous segment's base plus its record count;
//! - a batch is never split across segments: a batch that does not fit in
//!   the active segment's room seals it and starts the next one;
//! - a sealed segment was written and synced (whatever the fsync policy) and
//!   its indexes synced before the next one was created, so recovery can trust
//!   it;
//! - an append answers with its offsets and whether they are durable; under
//!   [`FsyncPolicy::Always`] the sync that covers them returned before the
//!   answer;
//! - a write, sync or preallocation error is never retried: the partition
//!   refuses every later write ([`Error::Failed`]), and reopening it recovers
//!   from what is on disk;
//! - a poll serves only records whose checksum it has just verified.
//!
//! Deliberate simplifications: a poll returns records from one segment at
//! most (the caller polls again from where it ended, as Kafka's fetch does);
//! the partition is used by one task at a time (`&mut self` to append, and
//! a shard owns its partitions); retention (deleting old segments) is not here.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use stage2_batching::{Appended, FsyncPolicy, Status};

use crate::aligned::AlignedBuf;
use crate::config::Config;
use crate::error::{Error, IoContext};
use crate::index::{
    OFFSET_INDEX_EXTENSION, OffsetIndex, Position, TIME_INDEX_EXTENSION, TimeIndex,
};
use crate::record::{self, checksum_matches, header_at};
use crate::recovery::{RecoveryReport, recover_segment};
use crate::segment::{LOG_EXTENSION, Segment, StoredBytes, file_name, parse_file_name, sync_dir};

/// Index entries are written once this many are waiting (or at a sync, or
/// when the segment is sealed): 16 KiB of offset index, one buffered write.
/// Written with every data write instead, they would cost two more system
/// calls per write; left for the sync alone, a partition under `never` would
/// leave recovery the whole segment to walk. This bounds the walk.
const INDEX_PERSIST_ENTRIES: usize = 4096;

/// A segment with its two indexes.
#[derive(Debug)]
pub(crate) struct IndexedSegment {
    pub(crate) log: Segment,
    pub(crate) offsets: OffsetIndex,
    pub(crate) times: TimeIndex,
}

impl IndexedSegment {
    async fn create(dir: &Path, base: u64, config: &Config) -> Result<IndexedSegment, Error> {
        let log = Segment::create(
            dir,
            base,
            config.segment_size,
            config.direct_io,
            config.write_buffer_bytes(),
        )
        .await?;
        let mut offsets =
            OffsetIndex::open(&dir.join(file_name(base, OFFSET_INDEX_EXTENSION))).await?;
        let mut times = TimeIndex::open(&dir.join(file_name(base, TIME_INDEX_EXTENSION))).await?;
        // Leftovers of an earlier life of this base offset describe other bytes.
        offsets.truncate(0).await?;
        times.truncate(0).await?;
        sync_dir(dir).await?;
        Ok(IndexedSegment {
            log,
            offsets,
            times,
        })
    }

    /// Records in the segment.
    fn count(&self) -> u64 {
        self.offsets.len() as u64
    }
}

/// Records read by a poll: `count` whole records from `first_offset`, as
/// they are stored (and sent).
#[derive(Debug)]
pub struct Polled {
    /// Offset of the first record.
    pub first_offset: u64,
    /// How many records.
    pub count: u64,
    /// Their bytes, every checksum verified.
    pub bytes: StoredBytes,
}

// ANCHOR: partition
/// A partition's storage (see the module docs).
#[derive(Debug)]
pub struct Partition {
    dir: PathBuf,
    config: Config,
    /// In offset order; never empty; the last one is the active segment.
    segments: Vec<IndexedSegment>,
    next_offset: u64,
    written: u64,
    durable: u64,
    /// The timestamp of the last append: the clock never goes backwards.
    last_timestamp: u64,
    last_sync: Instant,
    failed: Option<String>,
    recovery: RecoveryReport,
}
// ANCHOR_END: partition

impl Partition {
    // ANCHOR: open
    /// Opens the partition in `dir` (creating it if empty), recovering every
    /// segment (see [`crate::recovery`]).
    pub async fn open(dir: &Path, config: Config) -> Result<Partition, Error> {
        config.validate()?;
        compio::fs::create_dir_all(dir).await.at(dir)?;
        let bases = segment_bases(dir)?;
        let mut recovery = RecoveryReport::default();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (n, &base) in bases.iter().enumerate() {
            let next = bases.get(n + 1).copied();
            segments.push(recover_segment(dir, base, next, &config, &mut recovery).await?);
        }
        if segments.is_empty() {
            segments.push(IndexedSegment::create(dir, 0, &config).await?);
        }
        let (next_offset, last_timestamp) = match segments.last() {
            Some(active) => (
                active.log.base_offset() + active.count(),
                segments
                    .iter()
                    .rev()
                    .find_map(|segment| segment.times.last())
                    .map_or(0, |entry| entry.timestamp),
            ),
            None => (0, 0),
        };
        Ok(Partition {
            dir: dir.to_path_buf(),
            config,
            segments,
            next_offset,
            // Recovery synced what it found: all of it starts out durable.
            written: next_offset,
            durable: next_offset,
            last_timestamp,
            last_sync: Instant::now(),
            failed: None,
            recovery,
        })
    }
    // ANCHOR_END: open

    /// Appends a batch of records (stage 4's format, concatenated, the count
    /// not included), stamping their offsets, the current time and their
    /// checksums into `records` in place.
    pub async fn append(&mut self, records: &mut [u8]) -> Result<Appended, Error> {
        self.append_at(records, now_micros()).await
    }

    // ANCHOR: append
    /// [`Partition::append`] at a given time (µs since the UNIX epoch; a time
    /// before the last append's is taken as the last append's).
    pub async fn append_at(
        &mut self,
        records: &mut [u8],
        timestamp: u64,
    ) -> Result<Appended, Error> {
        self.check_not_failed()?;
        let extents = record::walk(records)?;
        let bytes = records.len() as u64;
        if bytes > self.config.segment_size {
            return Err(Error::BatchTooLarge {
                bytes,
                segment_size: self.config.segment_size,
            });
        }
        if bytes > self.active().log.room() {
            self.roll_over().await?;
        }
        let first = self.next_offset;
        let timestamp = timestamp.max(self.last_timestamp);
        record::stamp(records, &extents, first, timestamp);

        let active = self.active_mut();
        let start = active.log.end();
        let relative = first - active.log.base_offset();
        if let Err(error) = active.log.append(records).await {
            return Err(self.fail(error));
        }
        for &(at, _) in &extents {
            // Below 4 GiB: the segment size is validated so.
            active.offsets.push(Position((start + at as u64) as u32));
        }
        active.times.push_if_newer(timestamp, relative as u32);
        self.next_offset += extents.len() as u64;
        self.last_timestamp = timestamp;
        let offsets = first..self.next_offset;

        let full = self.next_offset - self.written >= self.config.flush_count as u64
            || self.active().log.unwritten() >= self.config.flush_bytes as u64;
        match self.config.fsync {
            FsyncPolicy::Always => self.flush().await?,
            FsyncPolicy::EveryBatch if full => self.flush().await?,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never if full => self.write().await?,
            _ => {}
        }
        Ok(Appended {
            durable: self.durable >= offsets.end,
            offsets,
        })
    }
    // ANCHOR_END: append

    // ANCHOR: tick
    /// The background saver's step: write what is buffered, and sync as the
    /// policy says (stage 2's rules).
    pub async fn tick(&mut self, now: Instant) -> Result<(), Error> {
        self.check_not_failed()?;
        match self.config.fsync {
            FsyncPolicy::Always | FsyncPolicy::EveryBatch => self.flush().await,
            FsyncPolicy::Interval(every) => {
                self.write().await?;
                if now.duration_since(self.last_sync) >= every && self.durable < self.written {
                    self.sync().await?;
                }
                Ok(())
            }
            FsyncPolicy::Never => self.write().await,
        }
    }
    // ANCHOR_END: tick

    /// Writes everything buffered and syncs it: on return, every accepted
    /// record is durable. For `flush` requests and at shutdown.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.write().await?;
        if self.durable < self.written {
            self.sync().await?;
        }
        Ok(())
    }

    // ANCHOR: write
    /// Writes the active segment's buffer (whole blocks, the tail block kept)
    /// and the new index entries.
    async fn write(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.written == self.next_offset {
            return Ok(());
        }
        if let Err(error) = self.active_mut().log.write().await {
            return Err(self.fail(error));
        }
        self.written = self.next_offset;
        if self.active().offsets.unpersisted() >= INDEX_PERSIST_ENTRIES {
            self.persist_indexes().await?;
        }
        Ok(())
    }

    /// Writes the active segment's new index entries (buffered writes).
    async fn persist_indexes(&mut self) -> Result<(), Error> {
        let active = self.active_mut();
        let result = match active.offsets.persist().await {
            Ok(()) => active.times.persist().await,
            Err(error) => Err(error),
        };
        result.map_err(|error| self.fail(error))
    }

    async fn sync(&mut self) -> Result<(), Error> {
        // The index entries go out with each sync (not synced themselves):
        // after a crash, recovery walks at most what was written since.
        self.persist_indexes().await?;
        // fdatasync: the data, and the metadata needed to read it (the
        // extents preallocation left unwritten), not timestamps nobody reads.
        if let Err(error) = self.active().log.sync().await {
            return Err(self.fail(error));
        }
        self.durable = self.written;
        self.last_sync = Instant::now();
        Ok(())
    }
    // ANCHOR_END: write

    // ANCHOR: roll_over
    /// Seals the active segment and creates the next one at `next_offset`.
    ///
    /// The sealed segment is written and synced whatever the policy, and its
    /// indexes too: one sync per segment is noise next to its size, and it
    /// is what lets recovery trust sealed segments without walking them.
    async fn roll_over(&mut self) -> Result<(), Error> {
        self.write().await?;
        if self.durable < self.written {
            self.sync().await?;
        }
        self.persist_indexes().await?;
        let active = self.active_mut();
        let synced = match active.offsets.sync().await {
            Ok(()) => active.times.sync().await,
            Err(error) => Err(error),
        };
        if let Err(error) = synced {
            return Err(self.fail(error));
        }
        self.active_mut().log.seal();
        match IndexedSegment::create(&self.dir, self.next_offset, &self.config).await {
            Ok(next) => self.segments.push(next),
            Err(error) => return Err(self.fail(error)),
        }
        Ok(())
    }
    // ANCHOR_END: roll_over

    /// Up to `max_count` records from `offset` (fewer at a segment's end, or
    /// past `max_poll_bytes`), as stored. Nothing if `offset` is not below
    /// `next_offset`.
    pub async fn poll(&self, offset: u64, max_count: u64) -> Result<Polled, Error> {
        self.poll_into(offset, max_count, AlignedBuf::with_capacity(0)?)
            .await
    }

    // ANCHOR: poll
    /// [`Partition::poll`] into a buffer from an earlier poll
    /// ([`StoredBytes::into_buffer`]), so that a consumer's polls allocate nothing.
    pub async fn poll_into(
        &self,
        offset: u64,
        max_count: u64,
        buf: AlignedBuf,
    ) -> Result<Polled, Error> {
        let nothing = |buf| Polled {
            first_offset: offset,
            count: 0,
            bytes: StoredBytes::empty(buf),
        };
        let Some(segment) = self.segment_of(offset) else {
            return Ok(nothing(buf));
        };
        let relative = offset - segment.log.base_offset();
        let count = segment.offsets.count_within(
            relative,
            max_count,
            self.config.max_poll_bytes,
            segment.log.end(),
        );
        let (Some(start), true) = (segment.offsets.position(relative), count > 0) else {
            return Ok(nothing(buf));
        };
        let end = segment
            .offsets
            .position(relative + count)
            .unwrap_or(segment.log.end());
        let bytes = segment.log.read(start, end, buf).await?;
        verify(&bytes, offset, count, &segment.log, start)?;
        Ok(Polled {
            first_offset: offset,
            count,
            bytes,
        })
    }
    // ANCHOR_END: poll

    /// The offset of the first record appended at `timestamp` (µs since the
    /// UNIX epoch) or later, if there is one.
    pub fn offset_at(&self, timestamp: u64) -> Option<u64> {
        // Segments' time ranges follow each other: skip those that end before it.
        let n = self.segments.partition_point(|segment| {
            segment
                .times
                .last()
                .is_some_and(|last| last.timestamp < timestamp)
        });
        let segment = self.segments.get(n)?;
        let relative = segment.times.lookup(timestamp)?;
        Some(segment.log.base_offset() + u64::from(relative))
    }

    /// The watermarks.
    pub fn status(&self) -> Status {
        Status {
            durable: self.durable,
            written: self.written,
            next_offset: self.next_offset,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What recovery found when the partition was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The base offset of each segment, in order.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments
            .iter()
            .map(|segment| segment.log.base_offset())
            .collect()
    }

    /// Why the partition refuses writes, if it does.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn segment_of(&self, offset: u64) -> Option<&IndexedSegment> {
        if offset >= self.next_offset {
            return None;
        }
        let n = self
            .segments
            .partition_point(|segment| segment.log.base_offset() <= offset);
        self.segments.get(n.checked_sub(1)?)
    }

    fn active(&self) -> &IndexedSegment {
        // `segments` is never empty: `open` creates the first segment.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut IndexedSegment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
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
    /// The error itself is returned, this once, as it is.
    fn fail(&mut self, error: Error) -> Error {
        self.failed.get_or_insert_with(|| error.to_string());
        error
    }
}

/// Checks that `bytes` are `count` whole records with offsets from `first`,
/// each with a matching checksum: the last check before they are served.
fn verify(
    bytes: &StoredBytes,
    first: u64,
    count: u64,
    log: &Segment,
    start: u64,
) -> Result<(), Error> {
    let bytes = bytes.as_slice();
    let mut at = 0;
    for expected in first..first + count {
        let corrupt = |reason: String| Error::Corrupt {
            segment: log.path().to_path_buf(),
            position: start + at as u64,
            reason,
        };
        let header = header_at(bytes.get(at..).unwrap_or_default())
            .ok_or_else(|| corrupt(format!("record {expected} is cut short")))?;
        let len = header.record_len() as usize;
        let record = bytes
            .get(at..at + len)
            .ok_or_else(|| corrupt(format!("record {expected} is cut short")))?;
        if header.offset != expected || !checksum_matches(record) {
            return Err(corrupt(format!(
                "record {expected} fails its checksum or offset check; it is not served"
            )));
        }
        at += len;
    }
    if at != bytes.len() {
        return Err(Error::Corrupt {
            segment: log.path().to_path_buf(),
            position: start + at as u64,
            reason: "bytes after the last record polled".to_string(),
        });
    }
    Ok(())
}

/// The base offsets of the segment files in `dir`, in order.
///
/// `std::fs::read_dir` on the shard's thread: compio 0.19 has no directory
/// listing operation, and this runs once, when the partition opens.
fn segment_bases(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(|name| parse_file_name(name, LOG_EXTENSION))
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Microseconds since the UNIX epoch (0 if the clock is before it).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}
