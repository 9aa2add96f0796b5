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
//! ("In the file" includes the one write that may be in flight while appends
//! fill the other buffer, see [`crate::storage::segment`]: a sync waits for it.)
//!
//! Invariants:
//! - offsets are dense across segments: a segment's base offset is the
//!   previous segment's base plus its record count;
//! - a batch is never split across segments: a batch that does not fit in
//!   the active segment's room seals it and starts the next one;
//! - a sealed segment was written before the next one was created, and is
//!   synced (whatever the fsync policy), its indexes too, **in the
//!   background** (`Partition::roll_over`): until that sync returns no
//!   record at or after it is called durable, and the next roll waits for
//!   it, so at most one sealed segment, the last, is ever unsynced. Recovery
//!   trusts the others, and checks the last one like the active segment
//!   (see [`crate::storage::recovery`]);
//! - an append answers with its offsets and whether they are durable; under
//!   [`FsyncPolicy::Always`] the sync that covers them returned before the
//!   answer;
//! - a write or sync error is never retried: the partition refuses every
//!   later write ([`Error::Failed`]), and reopening it recovers from what is
//!   on disk;
//! - a full disk when the next segment is created, or when the active
//!   segment's file grows by its next step (see [`crate::storage::segment`]),
//!   is not a failure: nothing was written, so the batch is refused with
//!   [`Error::NoSpace`] (a half-made segment's files are removed), the
//!   active segment stays active and intact, and a later append succeeds
//!   once space is freed (retention runs from [`Partition::tick`]). The
//!   index files are written through the page cache and can meet a full
//!   disk at any write: they are derived data (recovery rebuilds them from
//!   the log), so their entries stay in memory and are written again later,
//!   except when a segment is sealed, which needs them on disk and refuses
//!   the batch with `NoSpace` instead;
//! - a poll serves only records whose checksum it has just verified.
//!
//! Retention ([`crate::storage::retention`]) deletes whole sealed segments from the
//! front, so the first stored offset ([`Partition::first_offset`]) grows. **A
//! consumer polling a deleted offset gets the first available one**: the
//! poll is served from `first_offset`, and [`Polled::first_offset`] shows the
//! jump (Kafka's `auto.offset.reset=earliest`, without the round trip of an
//! "out of range" error; the rejected alternative, an error, would leave
//! every lagging consumer stuck until an operator intervened). A poll at or
//! after `next_offset` returns no records.
//!
//! Consumer offsets are stored beside the segments ([`crate::storage::consumer_offsets`])
//! and are as durable as the fsync policy makes records: under
//! [`FsyncPolicy::Always`] a store is synced before it returns; otherwise it
//! is synced with the partition's next sync ([`Partition::tick`],
//! [`Partition::flush`], shutdown).
//!
//! Deliberate simplifications: a poll returns records from one segment at
//! most (the caller polls again from where it ended, as Kafka's fetch does);
//! the partition is used by one task at a time (`&mut self` to append, and
//! a shard owns its partitions); a partition dropped without
//! [`Partition::flush`] may leave a write in flight, finishing on its own,
//! so flush one before this process opens it again (the broker does at
//! shutdown).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use compio::runtime::JoinHandle;

pub use crate::storage::fsync::FsyncPolicy;

use crate::storage::aligned::AlignedBuf;
use crate::storage::config::Config;
use crate::storage::consumer_offsets::ConsumerOffsets;
use crate::storage::error::{Error, IoContext};
use crate::storage::index::{
    OFFSET_INDEX_EXTENSION, OffsetIndex, Position, TIME_INDEX_EXTENSION, TimeIndex,
};
use crate::storage::record::{self, checksum_matches, header_at};
use crate::storage::recovery::{
    LastSealed, RecoveryReport, Role, recover_last_sealed, recover_segment,
};
use crate::storage::retention::{self, SealedSegment};
use crate::storage::seal_mark::SealMark;
use crate::storage::segment::{
    LOG_EXTENSION, Segment, StoredBytes, SyncHandle, create_dir_synced, file_name, parse_file_name,
    sync_dir,
};

/// Index entries are written once this many are waiting (or at a sync, or
/// when the segment is sealed): 16 KiB of offset index, one buffered write.
/// Written with every data write instead, they would cost two more system
/// calls per write; left for the sync alone, a partition under `never` would
/// leave recovery the whole segment to walk. This bounds the walk.
const INDEX_PERSIST_ENTRIES: usize = 4096;

/// Where an append's timestamps come from.
#[derive(Debug, Clone, Copy)]
enum Timestamps {
    /// One for the whole batch, just stamped.
    Batch(u64),
    /// Each record's own, as another partition stamped it.
    AsStored,
}

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
            config.preallocate_step,
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

    /// The files a seal syncs, in the order it syncs them: the records
    /// first, then the indexes that point into them.
    fn sync_handles(&self) -> [SyncHandle; 3] {
        [
            self.log.sync_handle(),
            self.offsets.sync_handle(),
            self.times.sync_handle(),
        ]
    }
}

// ANCHOR: seal_sync
/// A sealed segment's sync, running in the background while appends go on
/// into the next segment. Rejected: syncing it in the append that rolls,
/// which under `never` or a long interval made that one append wait for a
/// whole segment of dirty pages to reach the disk, once per segment (the
/// `segment_roll` bench's `baseline` row is that build).
#[derive(Debug)]
struct SealSync {
    /// The sealed segment's base offset, for the log.
    base: u64,
    /// The sync: the time it took, or its error. `None` once awaited.
    task: Option<JoinHandle<Result<Duration, Error>>>,
}

impl SealSync {
    /// Syncs the segment's files, then says so in the seal mark.
    fn start(segment: &IndexedSegment, mark: &SealMark) -> SealSync {
        let files = segment.sync_handles();
        let (mark, base) = (mark.clone(), segment.log.base_offset());
        let task = compio::runtime::spawn(async move {
            let started = Instant::now();
            for file in &files {
                file.sync_data().await?;
            }
            mark.record(base).await?;
            Ok(started.elapsed())
        });
        SealSync {
            base,
            task: Some(task),
        }
    }

    fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }
}

impl Drop for SealSync {
    fn drop(&mut self) {
        // A partition dropped without a flush: dropping the handle would
        // cancel the sync; let it finish on its own, as a write does.
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}
// ANCHOR_END: seal_sync

/// What an append was given and promised: stage 2's answer, kept here so
/// that the broker's acknowledgements never change with a lesson's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The offsets given to the records, in order.
    pub offsets: std::ops::Range<u64>,
    /// Whether every one of them is synced to disk already.
    pub durable: bool,
}

/// The watermarks: synced below `durable`, written below `written`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Offsets below this are synced.
    pub durable: u64,
    /// Offsets below this are written to the log file.
    pub written: u64,
    /// The offset the next record will get.
    pub next_offset: u64,
}

/// One partition's state, as `describe` shows it (the broker fills in the
/// partition's number and its shard).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// The shard that owns it.
    pub shard: u32,
    /// Oldest offset still stored (after retention).
    pub first_offset: u64,
    /// The offset the next record will get.
    pub next_offset: u64,
    /// Records below this are synced to disk.
    pub durable_offset: u64,
    /// Segment files.
    pub segments: u32,
    /// Bytes of records stored.
    pub bytes: u64,
    /// Why the partition refuses writes, if it does.
    pub failed: Option<String>,
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
    consumer_offsets: ConsumerOffsets,
    sync_observer: SyncObserver,
    /// The last sealed segment's sync, while it runs (see [`SealSync`]).
    sealing: Option<SealSync>,
    /// Where a sealed segment's finished sync is recorded for recovery.
    seal_mark: SealMark,
    /// Index entries could not be written for lack of space: said once in
    /// the log, until a write succeeds again.
    indexes_behind: bool,
    /// Where the last poll that found a damaged record found it: said in
    /// the log once, not at every poll that meets it.
    reported_corruption: Cell<Option<u64>>,
}
// ANCHOR_END: partition

/// What [`Partition::on_sync`] calls after each data sync, with its duration.
/// A wrapper, so that `Partition` can derive `Debug`.
#[derive(Default)]
struct SyncObserver(Option<Box<dyn Fn(Duration)>>);

impl std::fmt::Debug for SyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SyncObserver(set)"
        } else {
            "SyncObserver(none)"
        })
    }
}

impl Partition {
    // ANCHOR: open
    /// Opens the partition in `dir` (creating it if empty), recovering every
    /// segment (see [`crate::storage::recovery`]).
    ///
    /// A full disk (a new partition's first segment cannot be created) is
    /// [`Error::NoSpace`]; opening again once there is space completes it.
    pub async fn open(dir: &Path, config: Config) -> Result<Partition, Error> {
        Partition::open_or_recover(dir, config)
            .await
            .map_err(Error::into_no_space)
    }

    async fn open_or_recover(dir: &Path, config: Config) -> Result<Partition, Error> {
        config.validate()?;
        create_dir_synced(dir).await?;
        let bases = segment_bases(dir)?;
        let mut recovery = RecoveryReport {
            // What a retention deletion interrupted after its first step left.
            stray_files_removed: retention::remove_strays(dir, &bases).await?,
            ..RecoveryReport::default()
        };
        let (seal_mark, marked) = SealMark::open(dir).await?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        // The last sealed segment is trusted only if its sync is known to
        // have returned.
        let last_sealed = bases
            .len()
            .checked_sub(2)
            .filter(|&n| marked != Some(bases[n]));
        for (n, &base) in bases.iter().enumerate() {
            let next = bases.get(n + 1).copied();
            let role = match next {
                Some(next_base) if Some(n) == last_sealed => Role::LastSealed { next_base },
                Some(next_base) => Role::Sealed { next_base },
                None => Role::Active,
            };
            let Role::LastSealed { next_base } = role else {
                segments.push(recover_segment(dir, base, role, &config, &mut recovery).await?);
                continue;
            };
            match recover_last_sealed(dir, base, next_base, &config, &mut recovery).await? {
                LastSealed::Whole(segment) => {
                    // Walked and synced by recovery: trusted from now on.
                    seal_mark.record(base).await?;
                    segments.push(segment);
                }
                LastSealed::Cut(segment) => {
                    let end = base + segment.count();
                    tracing::warn!(
                        "{}: repaired: segment {base} ends at offset {end}, before the next \
                         segment's first offset {next_base} (its sync had not finished when \
                         the process or machine stopped); segment {next_base} held only \
                         records after it, never called durable, and is removed",
                        dir.display()
                    );
                    retention::delete_segment(dir, next_base).await?;
                    recovery.segments_discarded += 1;
                    segments.push(segment);
                    break;
                }
            }
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
        let mut consumer_offsets = ConsumerOffsets::open(dir).await?;
        // Never past the log: the sync order keeps an offset from reaching
        // its file before its records, and this catches what slipped past it
        // (an older version's file, a log recovery cut short).
        for (consumer, stored, now) in consumer_offsets.clamp(next_offset).await? {
            tracing::warn!(
                "{}: consumer {consumer:?}'s stored offset {stored} is past the log's end; \
                 set to {now}",
                dir.display()
            );
        }
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
            consumer_offsets,
            sync_observer: SyncObserver::default(),
            sealing: None,
            seal_mark,
            indexes_behind: false,
            reported_corruption: Cell::new(None),
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
        self.make_room(records.len() as u64).await?;
        let first = self.next_offset;
        let timestamp = timestamp.max(self.last_timestamp);
        record::stamp(records, &extents, first, timestamp);
        self.store(records, &extents, Timestamps::Batch(timestamp))
            .await
    }

    /// Room for `bytes` of records in the active segment: a batch is never
    /// split, so one that does not fit rolls over to a new segment, and the
    /// file grows before anything is stamped or buffered (a full disk at its
    /// next step refuses the batch and fails nothing; any other I/O error
    /// fails the partition).
    async fn make_room(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes > self.config.segment_size {
            return Err(Error::BatchTooLarge {
                bytes,
                segment_size: self.config.segment_size,
            });
        }
        if bytes > self.active().log.room() {
            self.roll_over().await?;
        }
        match self.active_mut().log.reserve(bytes).await {
            Ok(()) => Ok(()),
            Err(error @ Error::NoSpace { .. }) => Err(error),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Buffers stamped records (room made), indexes them, and writes or
    /// syncs as the policy says: the part of an append after the stamps.
    async fn store(
        &mut self,
        records: &[u8],
        extents: &record::Extents,
        timestamps: Timestamps,
    ) -> Result<Appended, Error> {
        let (first, last_timestamp) = (self.next_offset, self.last_timestamp);
        let active = self.active_mut();
        let start = active.log.end();
        let base = active.log.base_offset();
        if let Err(error) = active.log.append(records).await {
            return Err(self.fail(error));
        }
        let active = self.active_mut();
        for &(at, _) in extents {
            // Below 4 GiB: the segment size is validated so.
            active.offsets.push(Position((start + at as u64) as u32));
        }
        let newest = match timestamps {
            Timestamps::Batch(timestamp) => {
                active.times.push_if_newer(timestamp, (first - base) as u32);
                timestamp
            }
            Timestamps::AsStored => {
                let mut newest = last_timestamp;
                for (offset, &(at, _)) in (first..).zip(extents) {
                    let stamped = header_at(&records[at..]).map_or(0, |h| h.timestamp);
                    active.times.push_if_newer(stamped, (offset - base) as u32);
                    newest = newest.max(stamped);
                }
                newest
            }
        };
        self.next_offset += extents.len() as u64;
        self.last_timestamp = newest;
        let offsets = first..self.next_offset;

        let full = self.next_offset - self.written >= self.config.flush_count as u64
            || self.active().log.unwritten() >= self.config.flush_bytes as u64;
        match self.config.fsync {
            FsyncPolicy::Always => self.flush().await?,
            FsyncPolicy::EveryBatch if full => self.flush().await?,
            // Written behind: the appends that follow fill the other buffer
            // while this write is in flight (see `crate::storage::segment`).
            FsyncPolicy::Interval(_) | FsyncPolicy::Never if full => self.write_behind().await?,
            _ => {}
        }
        Ok(Appended {
            durable: self.durable >= offsets.end,
            offsets,
        })
    }
    // ANCHOR_END: append

    // ANCHOR: append_replicated
    /// Appends records exactly as another partition stored them: what a
    /// follower does with the records it fetched from its partition's leader
    /// (replication, issue 21). Nothing is stamped, so the follower's bytes
    /// are the leader's, offsets, timestamps and checksums included. Each
    /// record must carry this partition's next offset, in order, and a
    /// checksum that matches its bytes; a batch that does not is refused
    /// whole ([`Error::NotReplicable`]) and nothing is stored.
    pub async fn append_replicated(&mut self, records: &[u8]) -> Result<Appended, Error> {
        self.check_not_failed()?;
        let extents = record::walk(records)?;
        for (expected, &(at, len)) in (self.next_offset..).zip(&extents) {
            let record = &records[at..at + len];
            let found = header_at(record).map_or(0, |header| header.offset);
            if found != expected || !checksum_matches(record) {
                return Err(Error::NotReplicable {
                    expected,
                    found,
                    checksum_matches: checksum_matches(record),
                });
            }
        }
        self.make_room(records.len() as u64).await?;
        self.store(records, &extents, Timestamps::AsStored).await
    }
    // ANCHOR_END: append_replicated

    // ANCHOR: tick
    /// The background saver's step: write what is buffered, and sync as the
    /// policy says (stage 2's rules).
    ///
    /// Then retention ([`Partition::enforce_retention`]), so a saver that
    /// ticks applies it with no more wiring; with nothing to delete it costs
    /// a comparison or two.
    pub async fn tick(&mut self, now: Instant) -> Result<(), Error> {
        self.check_not_failed()?;
        // A sealed segment's sync that has returned is collected here, so
        // its error, if any, fails the partition now and not at the next roll.
        if self.sealing.as_ref().is_some_and(SealSync::is_finished) {
            self.finish_sealing().await?;
        }
        match self.config.fsync {
            FsyncPolicy::Always | FsyncPolicy::EveryBatch => self.flush().await?,
            FsyncPolicy::Interval(every) => {
                self.write().await?;
                if now.duration_since(self.last_sync) >= every {
                    if self.durable < self.written {
                        self.sync().await?;
                    } else {
                        self.sync_consumer_offsets().await?;
                    }
                }
            }
            FsyncPolicy::Never => self.write().await?,
        }
        self.enforce_retention(SystemTime::now()).await?;
        Ok(())
    }
    // ANCHOR_END: tick

    /// Writes everything buffered and syncs it: on return, every accepted
    /// record is durable, and every stored consumer offset. For `flush`
    /// requests and at shutdown.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.write().await?;
        if self.durable < self.written {
            self.sync().await?;
        }
        // Under `always` every record was durable already, but a sealed
        // segment's indexes may still be syncing.
        self.finish_sealing().await?;
        self.sync_consumer_offsets().await
    }

    // ANCHOR: write
    /// Writes the active segment's buffer (whole blocks, the tail block kept)
    /// and the new index entries; on return the records are in the file.
    async fn write(&mut self) -> Result<(), Error> {
        self.write_behind().await?;
        if let Err(error) = self.active_mut().log.complete().await {
            return Err(self.fail(error));
        }
        if self.config.fsync == FsyncPolicy::Never {
            // Under `never` the records are as safe as they get once written.
            self.release_consumer_offsets().await;
        }
        Ok(())
    }

    /// The offset below which records are safe for a consumer offset to
    /// point past: synced, or (under `never`, which syncs nothing) written.
    fn safe_offset(&self) -> u64 {
        match self.config.fsync {
            FsyncPolicy::Never => self.written,
            _ => self.durable,
        }
    }

    /// Writes the consumer offsets held until the records below them were
    /// safe (see [`crate::storage::consumer_offsets`]). A failure is the
    /// offsets file's, not the records': it is said, and the file is
    /// rewritten whole at its next store or sync.
    async fn release_consumer_offsets(&mut self) {
        let safe = self.safe_offset();
        if let Err(error) = self.consumer_offsets.release(safe).await {
            tracing::warn!("{}: {error}", self.dir.display());
        }
    }

    /// [`Partition::write`], returning with the write still in flight.
    async fn write_behind(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.written == self.next_offset {
            return Ok(());
        }
        if let Err(error) = self.active_mut().log.write_behind().await {
            return Err(self.fail(error));
        }
        self.written = self.next_offset;
        if self.active().offsets.unpersisted() >= INDEX_PERSIST_ENTRIES {
            self.persist_indexes_if_space().await?;
        }
        Ok(())
    }

    /// Writes the active segment's new index entries (buffered writes). A
    /// full disk is returned as [`Error::NoSpace`] and does not fail the
    /// partition: the entries stay in memory for the next try.
    async fn persist_indexes(&mut self) -> Result<(), Error> {
        let active = self.active_mut();
        let result = match active.offsets.persist().await {
            Ok(()) => active.times.persist().await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                self.indexes_behind = false;
                Ok(())
            }
            Err(error) if error.is_no_space() => Err(error.into_no_space()),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// [`Partition::persist_indexes`] where records were already accepted: a
    /// full disk only leaves the index files behind (recovery rebuilds what
    /// they miss), so it is said once in the log and not returned.
    async fn persist_indexes_if_space(&mut self) -> Result<(), Error> {
        match self.persist_indexes().await {
            Err(error @ Error::NoSpace { .. }) => {
                if !self.indexes_behind {
                    tracing::warn!(
                        "{}: index entries kept in memory for now: {error}",
                        self.dir.display()
                    );
                    self.indexes_behind = true;
                }
                Ok(())
            }
            other => other,
        }
    }

    async fn sync(&mut self) -> Result<(), Error> {
        // The index entries go out with each sync (not synced themselves):
        // after a crash, recovery walks at most what was written since.
        self.persist_indexes_if_space().await?;
        // fdatasync: the data, and the metadata needed to read it (the
        // extents preallocation left unwritten), not timestamps nobody reads.
        let started = Instant::now();
        if let Err(error) = self.active_mut().log.sync().await {
            return Err(self.fail(error));
        }
        if let Some(observe) = &self.sync_observer.0 {
            observe(started.elapsed());
        }
        // The sealed segment's records come before the active one's: the
        // watermark passes them only once its sync has returned too.
        self.finish_sealing().await?;
        self.durable = self.written;
        self.last_sync = Instant::now();
        // Records came first; the offsets that waited for them follow. A
        // consumer offsets error is not the records' to fail.
        self.release_consumer_offsets().await;
        if let Err(error) = self.sync_consumer_offsets().await {
            tracing::warn!("{}: {error}", self.dir.display());
        }
        Ok(())
    }

    /// Waits for the last sealed segment's sync, if it has not been awaited
    /// yet. Its error fails the partition, as any sync error does: the
    /// pages it did not write may be gone from the page cache, so a retry
    /// could report success for data that never reached the disk.
    async fn finish_sealing(&mut self) -> Result<(), Error> {
        let Some(sealing) = self.sealing.as_mut() else {
            return Ok(());
        };
        let Some(task) = sealing.task.as_mut() else {
            self.sealing = None;
            return Ok(());
        };
        // Awaited in place: if this future is dropped while it waits, the
        // handle stays, and `SealSync`'s drop lets the sync finish.
        let joined = task.await;
        let base = sealing.base;
        sealing.task = None;
        self.sealing = None;
        match joined {
            Ok(Ok(took)) => {
                if let Some(observe) = &self.sync_observer.0 {
                    observe(took);
                }
                Ok(())
            }
            Ok(Err(error)) => Err(self.fail(error)),
            Err(join) => Err(self.fail(Error::Io {
                path: self.dir.join(file_name(base, LOG_EXTENSION)),
                source: std::io::Error::other(join.to_string()),
            })),
        }
    }

    /// Syncs the consumer offsets stored since the last sync. Its own file,
    /// so a failure here does not fail the partition's records: the offsets
    /// file is rewritten whole at the next store or sync instead.
    async fn sync_consumer_offsets(&mut self) -> Result<(), Error> {
        self.consumer_offsets.sync().await
    }
    // ANCHOR_END: write

    // ANCHOR: roll_over
    /// Seals the active segment and creates the next one at `next_offset`.
    ///
    /// The sealed segment is written here, and synced whatever the policy,
    /// its indexes too, but in the background ([`SealSync`]): this append
    /// goes on into the next segment while the disk catches up. What keeps
    /// that safe:
    /// - the durable watermark passes the sealed segment's records only once
    ///   its sync returned ([`Partition::sync`] waits for it), so nothing is
    ///   acknowledged as durable early, whatever the policy;
    /// - the next roll waits for it first, so only the last sealed segment
    ///   can be unsynced when the machine stops, and recovery checks that
    ///   one as it does the active segment;
    /// - its error fails the partition, at the next tick, sync or roll.
    ///
    /// A full disk while the next segment is made is [`Error::NoSpace`], not
    /// a failure: the active segment is sealed only once its successor
    /// exists, so until then it stays the active one, whole and written, and
    /// the half-made files are removed for the next try.
    async fn roll_over(&mut self) -> Result<(), Error> {
        self.write().await?;
        // Under a steady stream this one had a whole segment's time to finish.
        self.finish_sealing().await?;
        self.persist_indexes().await?;
        let next = match IndexedSegment::create(&self.dir, self.next_offset, &self.config).await {
            Ok(next) => next,
            Err(error) if error.is_no_space() => {
                // Created, preallocated in part or not at all: it holds no
                // record, and its name must be free for the next try.
                if let Err(cleanup) = retention::delete_segment(&self.dir, self.next_offset).await {
                    return Err(self.fail(cleanup));
                }
                return Err(error.into_no_space());
            }
            Err(error) => return Err(self.fail(error)),
        };
        // Written above, so no write is in flight: sealing drops the buffers.
        self.active_mut().log.seal();
        self.sealing = Some(SealSync::start(self.active(), &self.seal_mark));
        self.segments.push(next);
        Ok(())
    }
    // ANCHOR_END: roll_over

    // ANCHOR: truncate_to
    /// Removes every record at or after `offset`, on disk and in memory: the
    /// next append gets `offset`. What a replica does when the partition's
    /// new leader does not have its last records (Kafka truncates a follower
    /// to the leader's epoch boundary the same way); those records were
    /// never acknowledged to a client as replicated.
    ///
    /// The order keeps every step a valid, shorter log for recovery, so a
    /// crash anywhere loses nothing more and running it again finishes it:
    /// the segments after the cut go first, the last one first (a missing
    /// tail of segments is what retention's opposite end looks like); then
    /// the cut segment's bytes from `offset` on are zeroed and synced
    /// (recovery's own erasure of a torn tail); then its indexes, which
    /// recovery rebuilds from the log if a crash comes before them. Any I/O
    /// error fails the partition, as a failed write does.
    pub async fn truncate_to(&mut self, offset: u64) -> Result<(), Error> {
        self.check_not_failed()?;
        let (first, next) = (self.first_offset(), self.next_offset);
        if offset < first || offset > next {
            return Err(Error::TruncateOutOfRange {
                offset,
                first,
                next,
            });
        }
        if offset == next {
            return Ok(());
        }
        // Nothing buffered, nothing in flight, no seal still syncing.
        self.write().await?;
        self.finish_sealing().await?;
        match self.cut_to(offset).await {
            Ok(()) => {}
            Err(error) => return Err(self.fail(error)),
        }
        self.next_offset = offset;
        self.written = offset;
        self.durable = self.durable.min(offset);
        self.reported_corruption.set(None);
        for (consumer, stored, now) in self.consumer_offsets.clamp(offset).await? {
            tracing::warn!(
                "{}: consumer {consumer:?}'s stored offset {stored} is past the truncated \
                 log's end; set to {now}",
                self.dir.display()
            );
        }
        tracing::info!(
            "{}: truncated from offset {next} to {offset}",
            self.dir.display()
        );
        Ok(())
    }

    /// [`Partition::truncate_to`]'s file work: the segments after `offset`,
    /// then the cut in the one that holds it.
    async fn cut_to(&mut self, offset: u64) -> Result<(), Error> {
        while self.segments.len() > 1 && self.active().log.base_offset() > offset {
            let base = self.active().log.base_offset();
            self.segments.pop();
            retention::delete_segment(&self.dir, base).await?;
        }
        let reopened = self.active().log.is_sealed();
        let buffer_bytes = self.config.write_buffer_bytes();
        let active = self.active_mut();
        let base = active.log.base_offset();
        let relative = offset - base;
        let end = match active.offsets.position(relative) {
            Some(position) => position,
            None => active.log.end(), // the cut is at its end: nothing to erase
        };
        active.log.cut(end, buffer_bytes).await?;
        active.offsets.truncate(relative as usize).await?;
        let kept_times = active
            .times
            .entries()
            .partition_point(|entry| u64::from(entry.relative_offset) < relative);
        active.times.truncate(kept_times).await?;
        active.offsets.sync().await?;
        active.times.sync().await?;
        if reopened {
            // A sealed segment takes appends again: the seal mark must not
            // vouch for it when it is sealed next, before that seal's sync
            // has returned. It names the segment before it, or none.
            let before = self.segments.len().checked_sub(2);
            let named = before.map_or(u64::MAX, |n| self.segments[n].log.base_offset());
            self.seal_mark.record(named).await?;
        }
        sync_dir(&self.dir).await
    }
    // ANCHOR_END: truncate_to

    /// Drops every record and starts the partition over, empty, at `offset`
    /// (at or past its next offset): a follower so far behind its leader
    /// that the leader's retention deleted the records it needs next.
    ///
    /// The new, empty segment is made first and the old ones deleted oldest
    /// first. A crash before the last old segment is gone leaves that
    /// segment followed by an empty one whose base its records do not reach,
    /// which recovery cuts back (see `recover_last_sealed`): the old log,
    /// whole, and the restart is made again.
    pub async fn restart_at(&mut self, offset: u64) -> Result<(), Error> {
        self.check_not_failed()?;
        if offset < self.next_offset {
            return Err(Error::RestartBehind {
                offset,
                next: self.next_offset,
            });
        }
        self.write().await?;
        self.finish_sealing().await?;
        let fresh = IndexedSegment::create(&self.dir, offset, &self.config).await?;
        let old = std::mem::replace(&mut self.segments, vec![fresh]);
        for segment in old {
            let base = segment.log.base_offset();
            drop(segment);
            if let Err(error) = retention::delete_segment(&self.dir, base).await {
                return Err(self.fail(error));
            }
        }
        if let Err(error) = self.seal_mark.record(u64::MAX).await {
            return Err(self.fail(error));
        }
        self.next_offset = offset;
        self.written = offset;
        self.durable = offset;
        self.reported_corruption.set(None);
        tracing::info!("{}: restarted empty at offset {offset}", self.dir.display());
        Ok(())
    }

    // ANCHOR: enforce_retention
    /// Deletes the sealed segments the retention rules expire at `now`
    /// (see [`crate::storage::retention`]), oldest first, never the active one.
    /// Returns the deleted segments' base offsets.
    ///
    /// An error deleting a segment's log leaves that segment stored; an
    /// error after it (a stray index) is returned, and the next open removes
    /// the stray. Neither fails the partition: no record was written.
    pub async fn enforce_retention(&mut self, now: SystemTime) -> Result<Vec<u64>, Error> {
        let configured =
            self.config.retention_bytes.is_some() || self.config.retention_age.is_some();
        if !configured || self.segments.len() < 2 {
            return Ok(Vec::new());
        }
        let now = micros_since_epoch(now);
        let total = self.stored_bytes();
        let sealed = &self.segments[..self.segments.len() - 1];
        let summary = |segment: &IndexedSegment| SealedSegment {
            bytes: segment.log.end(),
            // A sealed segment has records; one without is never too old.
            newest_timestamp: segment.times.last().map_or(u64::MAX, |t| t.timestamp),
        };
        // The cheap check first: nothing goes unless the oldest one does.
        if retention::expired(&self.config, &[summary(&sealed[0])], total, now) == 0 {
            return Ok(Vec::new());
        }
        let sealed: Vec<SealedSegment> = sealed.iter().map(summary).collect();
        let count = retention::expired(&self.config, &sealed, total, now);
        let mut deleted = Vec::with_capacity(count);
        for _ in 0..count {
            let base = self.segments[0].log.base_offset();
            retention::remove_log(&self.dir, base).await?;
            // The log is gone: so is the segment, whatever happens next.
            self.segments.remove(0);
            deleted.push(base);
            retention::remove_indexes(&self.dir, base).await?;
        }
        tracing::info!(
            "{}: retention deleted {count} segment(s); first offset now {}",
            self.dir.display(),
            self.first_offset()
        );
        Ok(deleted)
    }
    // ANCHOR_END: enforce_retention

    // ANCHOR: store_consumer_offset
    /// Stores `offset` as the next offset `consumer` will read. Durable as the
    /// fsync policy says: under `Always` synced before it returns, otherwise
    /// with the partition's next sync. An offset past `next_offset`, or a name
    /// of no or more than 255 bytes, is [`Error::InvalidConsumerOffset`].
    pub async fn store_consumer_offset(
        &mut self,
        consumer: &str,
        offset: u64,
    ) -> Result<(), Error> {
        if offset > self.next_offset {
            return Err(Error::InvalidConsumerOffset {
                reason: format!(
                    "offset {offset} is past the partition's end (next offset {})",
                    self.next_offset
                ),
            });
        }
        // A full disk here is said as such; the offsets file is rewritten
        // whole at the next store or sync (see `crate::storage::consumer_offsets`).
        let safe = self.safe_offset();
        self.consumer_offsets
            .store(consumer, offset, safe)
            .await
            .map_err(Error::into_no_space)?;
        if self.config.fsync == FsyncPolicy::Always {
            self.consumer_offsets
                .sync()
                .await
                .map_err(Error::into_no_space)?;
        }
        Ok(())
    }
    // ANCHOR_END: store_consumer_offset

    /// The next offset `consumer` will read, if it stored one.
    pub fn consumer_offset(&self, consumer: &str) -> Option<u64> {
        self.consumer_offsets.get(consumer)
    }

    /// Every consumer's stored offset, by name.
    pub fn consumer_offsets(&self) -> Vec<(String, u64)> {
        self.consumer_offsets.all()
    }

    /// Calls `observe` after every successful sync of a segment's records,
    /// with how long the sync took (for the metrics' fsync histogram).
    pub fn on_sync(&mut self, observe: Box<dyn Fn(Duration)>) {
        self.sync_observer = SyncObserver(Some(observe));
    }

    /// Up to `max_count` records from `offset` (fewer at a segment's end, or
    /// past `max_poll_bytes`), as stored. Nothing if `offset` is not below
    /// `next_offset`; from `first_offset` if `offset` is below it (deleted
    /// by retention), which the answer's `first_offset` shows.
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
        self.poll_within(offset, max_count, self.config.max_poll_bytes, buf)
            .await
    }

    /// [`Partition::poll_into`] with the reader's own byte limit, when it is
    /// below the topic's `max_poll_bytes` (a Kafka fetch names one per
    /// partition; reading more than it takes would be read for nothing).
    /// One record is always returned, however large.
    pub async fn poll_within(
        &self,
        offset: u64,
        max_count: u64,
        max_bytes: u64,
        buf: AlignedBuf,
    ) -> Result<Polled, Error> {
        // Deleted by retention: the first available record instead.
        let offset = offset.max(self.first_offset());
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
            max_bytes.min(self.config.max_poll_bytes),
            segment.log.end(),
        );
        let (Some(start), true) = (segment.offsets.position(relative), count > 0) else {
            return Ok(nothing(buf));
        };
        let end = segment
            .offsets
            .position(relative + count)
            .unwrap_or(segment.log.end());
        let mut bytes = segment.log.read(start, end, buf).await?;
        let (good, good_len) = match verify(&bytes, offset, count, &segment.log, start) {
            Ok(()) => (count, bytes.len()),
            Err(Checked {
                good,
                good_len,
                error,
            }) => {
                self.report_corruption(&error);
                if good == 0 {
                    // The first record asked for is the bad one: the
                    // consumer is told, and nothing is served.
                    return Err(error);
                }
                (good, good_len)
            }
        };
        // The good records before a bad one are served: the consumer gets
        // them now, and the error at the bad record on its next poll.
        bytes.truncate(good_len);
        Ok(Polled {
            first_offset: offset,
            count: good,
            bytes,
        })
    }
    // ANCHOR_END: poll

    /// Says, once per damaged place, that a poll found a record that fails
    /// its checksum: a consumer retrying the same poll must not flood the log.
    fn report_corruption(&self, error: &Error) {
        let Error::Corrupt { position, .. } = error else {
            return;
        };
        if self.reported_corruption.replace(Some(*position)) != Some(*position) {
            tracing::error!(
                "{}: {error}; the records before it are served. To repair: stop the server, \
                 copy this partition's folder aside, and restore it from a backup",
                self.dir.display()
            );
        }
    }

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

    /// The oldest offset still stored (retention deletes from the front);
    /// `next_offset` if there is no record.
    pub fn first_offset(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.next_offset, |segment| segment.log.base_offset())
    }

    /// The offset the next record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Records below this offset are synced to disk.
    pub fn durable_offset(&self) -> u64 {
        self.durable
    }

    /// Bytes of records stored, in every segment.
    pub fn stored_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.log.end()).sum()
    }

    /// The partition's state for `stats` and `describe`; `partition` and
    /// `shard` are left 0 for the caller, which knows them, to fill.
    pub fn info(&self) -> PartitionInfo {
        PartitionInfo {
            partition: 0,
            shard: 0,
            first_offset: self.first_offset(),
            next_offset: self.next_offset,
            durable_offset: self.durable,
            segments: u32::try_from(self.segments.len()).unwrap_or(u32::MAX),
            bytes: self.stored_bytes(),
            failed: self.failed.clone(),
        }
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
/// Where [`verify`] stopped: the good records before the first bad one, and why.
struct Checked {
    good: u64,
    good_len: usize,
    error: Error,
}

fn verify(
    bytes: &StoredBytes,
    first: u64,
    count: u64,
    log: &Segment,
    start: u64,
) -> Result<(), Checked> {
    let bytes = bytes.as_slice();
    let mut at = 0;
    for expected in first..first + count {
        let corrupt = |reason: String| Checked {
            good: expected - first,
            good_len: at,
            error: Error::Corrupt {
                segment: log.path().to_path_buf(),
                position: start + at as u64,
                reason,
            },
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
        return Err(Checked {
            good: count,
            good_len: at,
            error: Error::Corrupt {
                segment: log.path().to_path_buf(),
                position: start + at as u64,
                reason: "bytes after the last record polled".to_string(),
            },
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
    micros_since_epoch(SystemTime::now())
}

/// `time` in microseconds since the UNIX epoch (0 before it).
fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}
