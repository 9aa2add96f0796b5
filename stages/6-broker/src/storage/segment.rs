//! One segment: a file of records allocated ahead of them in steps, written
//! with Direct I/O in whole blocks, and read back through aligned buffers.
//!
//! The file is named by the offset of its first record
//! (`00000000000000000000.log`, 20 digits so names sort as numbers) and holds
//! records in stage 4's format, bytes as they arrived, one after the other.
//!
//! Invariants:
//! - **The file is allocated ahead of the records, one step at a time.** A
//!   segment has a *capacity* (the configured segment size: where it rolls
//!   over) and a file length, its *allocated* part. A new file gets its first
//!   step (`Config::preallocate_step`, at most the capacity) with `fallocate`
//!   (mode 0, not `KEEP_SIZE`); before an append's bytes would reach past the
//!   allocated length, the file grows, by as much as it holds (one step, then
//!   two, four, up to sixteen at once: [`growth_target`]). So the length
//!   changes a few times per segment, not once per write, and only the first
//!   `fdatasync` after a grow has a new length to commit, together with the
//!   records' extents it commits anyway (see `Segment::grow_to`); a sync
//!   that makes records durable makes the length that holds them durable.
//!   An idle partition costs its first step (4 MiB by default). Rejected:
//!   the whole segment up front, which gave a file the full capacity from
//!   birth and so made an idle partition cost a gigabyte (a 1024-partition
//!   topic asked the disk for a terabyte before it held a record); and a
//!   file that grows with every write, which makes every sync commit a new
//!   length, the cost stage 2 measured.
//! - **The file's length says where the records may end, not where they
//!   do.** Recovery finds the end by walking records and checking their
//!   checksums, and the zeros of the allocated, never-written part and the
//!   end of the file both mean "no record here" (see
//!   [`crate::storage::recovery`]). A file shorter than its capacity is
//!   normal, for the active segment and for a sealed one (sealed where its
//!   next batch did not fit), and so is any length a crash in the middle of
//!   a grow leaves: synced records lie below the length their sync
//!   committed, and records past the length on disk were never synced.
//! - **Every write is whole 4096-byte blocks at a 4096-aligned position, from
//!   an aligned buffer** ([`AlignedBuf`]). The records rarely end on a block
//!   boundary, so the last, partial block (the *tail block*) stays in memory
//!   after a write, and the next write starts at that block's aligned position
//!   and rewrites it whole, now with more records in it (the tail-block
//!   writer). The bytes after the last record in a written block are zeros.
//! - **Two write buffers** (double buffering): while one is being written,
//!   appends fill the other, so the CPU's work (stamping, checksums, the copy
//!   into the buffer) overlaps the disk's instead of adding to it. At most one
//!   write is in flight: the next is submitted only once it completed, because
//!   consecutive writes share the tail block, and two writes of one block in
//!   flight at once may land in either order.
//! - A third buffer keeps the last completed write (`Recent`) until the next
//!   one completes, so consumers that keep up read from memory, as they did
//!   from the page cache before Direct I/O.
//! - A read from the file that continues the last one starts a read of the
//!   blocks after it (`ReadAhead`), so a consumer going through the
//!   partition in order has its next blocks on the way while it checks and
//!   sends these: the page cache's read-ahead, which Direct I/O gives up.
//!   Only blocks below the ones a write may still rewrite are read ahead.
//! - Bytes below the last completed write are in the file only; that
//!   write's whole blocks are in the file and its buffer; bytes of the write
//!   in flight are in its buffer; bytes from `block_start` to `end` are in
//!   the write buffer (the tail block among them is in two places after a
//!   write, and the newer one is read). Reads take each part from memory
//!   where it is there, from the file below it.
//!
//! With `direct_io` off, the same code runs: the same aligned buffers, the
//! same whole-block writes at the same positions, through the page cache. So
//! the two modes write identical files, and measuring one against the other
//! measures the page cache and nothing else. One addition: written blocks
//! are handed to the kernel's writeback every few megabytes
//! ([`crate::storage::writeback`]), so that a sealed segment is not a whole
//! segment of dirty pages for its sync to flood the disk with.
//!
//! Deliberate simplifications: a segment has one write in flight at a time
//! (more would need the tail block kept out of all but one of them); reads
//! allocate nothing when given a buffer, but the buffer is copied into from
//! the tail rather than shared with it. The file grows on the append that
//! needs the room, in that append's time (a grow in the background, ahead
//! of need, would keep the write in flight overlapped, at the price of a
//! task and its errors to manage). A segment dropped with a write in
//! flight lets it finish on its own, so a partition must be flushed before it
//! is dropped and opened again by the same process (the broker flushes at
//! shutdown): otherwise the late write could land after the reopening's
//! recovery read the file.

use std::cell::{Cell, RefCell};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};
use compio::runtime::JoinHandle;
use rustix::fs::{FallocateFlags, OFlags};
use rustix::io::Errno;

use crate::storage::aligned::{ALIGN, AlignedBuf, align_down, align_down_u64, align_up};
use crate::storage::error::{Error, IoContext};
use crate::storage::writeback;

/// The extension of segment files.
pub const LOG_EXTENSION: &str = "log";

/// A file to sync later, away from the code that wrote it: a second handle
/// on the same open file (compio's `File` shares its descriptor), with its
/// path for the error. What a sealed segment's background sync holds (see
/// [`crate::storage::partition`]), so the segment itself stays with its
/// partition.
#[derive(Debug, Clone)]
pub(crate) struct SyncHandle {
    file: File,
    path: PathBuf,
}

impl SyncHandle {
    pub(crate) fn new(file: &File, path: &Path) -> SyncHandle {
        SyncHandle {
            file: file.clone(),
            path: path.to_path_buf(),
        }
    }

    /// `fdatasync`s the file.
    pub(crate) async fn sync_data(&self) -> Result<(), Error> {
        self.file.sync_data().await.at(&self.path)
    }
}

/// The file name of the segment whose first record has offset `base_offset`.
pub fn file_name(base_offset: u64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The base offset a segment file name stands for, if it is one.
pub fn parse_file_name(name: &str, extension: &str) -> Option<u64> {
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The most a file grows by at once, in steps: 16 of the default 4 MiB,
/// 64 MiB (see [`growth_target`]).
pub const MAX_GROWTH_STEPS: u64 = 16;

/// The largest write of zeros when a torn write is erased.
const ERASE_CHUNK: usize = 1 << 20;

/// Bytes read from a segment: the requested range inside the aligned buffer
/// that the covering blocks were read into.
///
/// It implements compio's `IoBuf`, so it can be written to a socket as it is:
/// the poll path copies the bytes from the device once (DMA into this buffer)
/// and never again in user space.
#[derive(Debug)]
pub struct StoredBytes {
    buf: AlignedBuf,
    start: usize,
    end: usize,
}

impl StoredBytes {
    /// No bytes, in `buf` (kept for reuse).
    pub fn empty(buf: AlignedBuf) -> StoredBytes {
        StoredBytes {
            buf,
            start: 0,
            end: 0,
        }
    }

    /// The bytes as stored.
    pub fn as_slice(&self) -> &[u8] {
        self.buf
            .as_slice()
            .get(self.start..self.end)
            .unwrap_or_default()
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Keeps the first `len` bytes (a poll that serves the good records
    /// before a damaged one).
    pub fn truncate(&mut self, len: usize) {
        self.end = self.start + len.min(self.len());
    }

    /// The buffer, for the next read.
    pub fn into_buffer(self) -> AlignedBuf {
        self.buf
    }
}

impl IoBuf for StoredBytes {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

// ANCHOR: tail
/// The write side of the active segment: what is not in the file yet.
#[derive(Debug)]
struct Tail {
    /// Bytes from `block_start` to the segment's `end`: what appends fill.
    buf: AlignedBuf,
    /// The other buffer, while no write holds it (`None` until first needed).
    spare: Option<AlignedBuf>,
    /// File position of the buffer's first byte: a multiple of 4096.
    block_start: u64,
    /// Bytes of records handed to the file: written, or in flight (at most `end`).
    written_end: u64,
    /// The write in flight, if there is one.
    in_flight: Option<InFlight>,
    /// The last completed write's buffer, kept to serve reads of the newest
    /// records from memory (see [`Recent`]).
    recent: Option<Recent>,
}

/// The buffer of the write completed last, for the bytes `position..end`
/// that no later write touches (whole blocks: the next write starts at
/// `end`, with the tail block). Consumers mostly read what was just
/// produced; with the page cache bypassed, without this a poll of records
/// one write old is a read from the device. Costs a third write buffer per
/// active segment. Rejected: a cache of many megabytes per partition, which
/// is Iggy's answer, and a memory budget this teaching broker does not
/// manage.
#[derive(Debug)]
struct Recent {
    /// File position of its first byte: a multiple of 4096.
    position: u64,
    /// Where the next write starts: the bytes before it are final.
    end: u64,
    /// The bytes, from `position`.
    bytes: AlignedBuf,
}

/// A write handed to compio, running as its own task while appends go on.
/// A task, not a future kept here and polled later: the runtime polls a task
/// on its own, so its completion is handled while this segment's owner is
/// busy elsewhere.
#[derive(Debug)]
struct InFlight {
    /// File position of its first byte: a multiple of 4096.
    position: u64,
    /// Its bytes, shared with the task so that reads can serve them until
    /// they are in the file; records first, then zeros to the block boundary.
    bytes: Rc<AlignedBuf>,
    /// Where the next write starts (this one's whole blocks end there).
    settled_end: u64,
    /// The task, until it is awaited. Empty after the write failed: the
    /// bytes stay here to be read, and no later write is accepted.
    task: WriteTask,
}
// ANCHOR_END: tail

/// The write's task handle.
#[derive(Debug)]
struct WriteTask(Option<JoinHandle<std::io::Result<()>>>);

impl Drop for WriteTask {
    fn drop(&mut self) {
        // Dropping the handle would cancel the write halfway; let it finish.
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

/// Pending once, waking itself at once: lets the runtime run other tasks
/// (the write task just spawned) and submit their I/O, then goes on.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A write buffer shared between the write task and readers.
struct SharedBuf(Rc<AlignedBuf>);

impl IoBuf for SharedBuf {
    fn as_init(&self) -> &[u8] {
        self.0.as_slice()
    }
}

// ANCHOR: segment
/// One segment file (see the module docs).
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    base_offset: u64,
    file: File,
    /// Where the segment rolls over: records never pass it (the configured
    /// segment size).
    capacity: u64,
    /// The file's length, whole blocks, grown `step` at a time up to
    /// `capacity`: every byte appended lies below it.
    allocated: u64,
    /// How much the file grows at a time: a multiple of 4096.
    step: u64,
    /// Where the records end (written or buffered).
    end: u64,
    /// The write buffer, for the active segment; `None` once sealed.
    tail: Option<Tail>,
    /// The next blocks of a reader going through the file in order.
    read_ahead: RefCell<Option<ReadAhead>>,
    /// Where the next read in order starts: the block holding the end of the
    /// last read from the file.
    next_read: Cell<Option<u64>>,
    /// Page-cache mode only: the file position up to which the kernel was
    /// asked to start writing back (see [`crate::storage::writeback`]).
    writeback_from: Option<u64>,
}
// ANCHOR_END: segment

// ANCHOR: read_ahead
/// A read of the blocks that follow the last read from the file, started as
/// soon as that read returned and running while its records are verified
/// and sent: a consumer going through the partition in order finds its next
/// poll's blocks read, or on their way. The page cache does this for
/// buffered reads (its read-ahead); with Direct I/O a poll would otherwise
/// leave the disk idle while the CPU checks every record's crc32c.
///
/// Only for a read that starts where the last one ended (the block holding
/// its end), so readers that jump around cost nothing. One per segment: two
/// consumers in the same segment replace each other's, and a replaced read
/// is cancelled. Only blocks below the ones a write may still rewrite, so
/// the bytes read ahead are final. Rejected: reading ahead inside the poll
/// (two reads in flight per poll), which hides only half of the check.
#[derive(Debug)]
struct ReadAhead {
    /// File position of its first byte: a multiple of 4096.
    position: u64,
    /// Bytes it reads.
    len: usize,
    /// The read, and the buffer it reads into.
    task: JoinHandle<(std::io::Result<()>, AlignedBuf)>,
}
// ANCHOR_END: read_ahead

impl Segment {
    /// Creates the segment starting at `base_offset` in `dir`, for up to
    /// `capacity` bytes of records, its file allocated `step` bytes at a time
    /// (the first step now), with a write buffer of `buffer_bytes`.
    pub async fn create(
        dir: &Path,
        base_offset: u64,
        capacity: u64,
        step: u64,
        direct_io: bool,
        buffer_bytes: usize,
    ) -> Result<Segment, Error> {
        let path = dir.join(file_name(base_offset, LOG_EXTENSION));
        let file = open_file(&path, direct_io, true).await?;
        let mut segment = Segment {
            path,
            base_offset,
            file,
            capacity,
            allocated: 0,
            step: whole_step(step),
            end: 0,
            read_ahead: RefCell::default(),
            next_read: Cell::default(),
            writeback_from: (!direct_io).then_some(0),
            tail: Some(Tail {
                buf: AlignedBuf::with_capacity(buffer_bytes)?,
                spare: None,
                block_start: 0,
                written_end: 0,
                in_flight: None,
                recent: None,
            }),
        };
        // The first step, and the new file synced with its length and
        // extents, so that the first syncs of records are `fdatasync`s with
        // no metadata of their own to commit...
        let first = segment.step.min(capacity);
        segment.grow_to(first).await?;
        segment.file.sync_all().await.at(&segment.path)?;
        // ... and the directory entry: without it a power cut can lose the
        // whole file, synced records and all.
        sync_dir(dir).await?;
        Ok(segment)
    }

    /// Opens an existing segment file for recovery: its end is not known yet
    /// (see [`Segment::resume`] and [`Segment::seal_at`]). `capacity` and
    /// `step` are the configured ones; a file already longer than
    /// `capacity` (made under a larger segment size) keeps its length as its
    /// capacity, since its records may reach past the new one.
    pub async fn open(
        path: &Path,
        base_offset: u64,
        capacity: u64,
        step: u64,
        direct_io: bool,
    ) -> Result<Segment, Error> {
        let file = open_file(path, direct_io, false).await?;
        let len = file.metadata().await.at(path)?.len();
        // Whole blocks only: a length that is not (a grow cut short by a
        // crash or a full disk, on a file system of 1 KiB blocks) has no
        // record past its last whole block, as records are only written
        // below the length of a grow that completed, and those are whole
        // blocks. The next grow allocates from here, covering the rest.
        let allocated = align_down_u64(len);
        Ok(Segment {
            path: path.to_path_buf(),
            base_offset,
            file,
            capacity: capacity.max(allocated),
            allocated,
            step: whole_step(step),
            end: 0,
            tail: None,
            read_ahead: RefCell::default(),
            next_read: Cell::default(),
            writeback_from: (!direct_io).then_some(0),
        })
    }

    // ANCHOR: reserve
    /// Makes sure the file holds `len` more bytes of records after `end`,
    /// growing it if it does not (by [`growth_target`]). [`Segment::append`]
    /// calls it first; a partition calls it before it stamps a batch, so
    /// that a full disk refuses the batch before anything changed.
    ///
    /// A full disk is [`Error::NoSpace`], and leaves the segment as it was
    /// (a partial allocation is covered by the next try); any other error is
    /// returned as it is.
    pub async fn reserve(&mut self, len: u64) -> Result<(), Error> {
        if self.tail.is_none() {
            return Err(self.failure("append to a sealed segment"));
        }
        // Writes are whole blocks: the records' last block must be in the file.
        let needed = (self.end + len).next_multiple_of(ALIGN as u64);
        if needed <= self.allocated {
            return Ok(());
        }
        let target = growth_target(self.allocated, needed, self.step, self.capacity);
        self.grow_to(target).await
    }

    /// Grows the file to `len` bytes. A grow with a write in flight is
    /// safe: the write is below the old length, and the file system orders
    /// the two.
    ///
    /// No sync here. The new length is committed by the first `fdatasync`
    /// after it (a size change is metadata `fdatasync` must commit, and the
    /// first write into each new unwritten extent makes that sync commit the
    /// journal anyway): one metadata commit per grow, with the records'
    /// own, never one per write. Rejected: a `sync_all` right after each
    /// grow, which would make the length durable before any record is
    /// written past it, and nothing more: it adds a device flush per grow
    /// and, through the page cache, a writeback of every dirty page of the
    /// step in the middle of the appends, for no record made safer.
    async fn grow_to(&mut self, len: u64) -> Result<(), Error> {
        if len <= self.allocated {
            return Ok(());
        }
        preallocate(&self.file, &self.path, self.allocated, len)
            .await
            .map_err(Error::into_no_space)?;
        self.allocated = len;
        Ok(())
    }
    // ANCHOR_END: reserve

    /// The segment's log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the segment's first record.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Where the segment rolls over: bytes of records it may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The file's length (whole blocks): the records end at or before it.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Where the records end.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes left for records before the segment rolls over (not the
    /// file's: it grows as they come).
    pub fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.end)
    }

    /// Bytes appended but not written to the file yet.
    pub fn unwritten(&self) -> u64 {
        self.tail
            .as_ref()
            .map_or(0, |tail| self.end - tail.written_end)
    }

    /// Whether a write is in flight (handed to the file, not awaited yet).
    pub fn is_writing(&self) -> bool {
        self.tail
            .as_ref()
            .is_some_and(|tail| tail.in_flight.is_some())
    }

    /// Whether the segment takes no more appends.
    pub fn is_sealed(&self) -> bool {
        self.tail.is_none()
    }

    // ANCHOR: resume
    /// Makes this the active segment with its records ending at `end`:
    /// the tail block (the records' last, partial block) is read back into a
    /// new write buffer, so the next write rewrites it whole.
    pub async fn resume(&mut self, end: u64, buffer_bytes: usize) -> Result<(), Error> {
        let block_start = align_down_u64(end);
        let mut buf = AlignedBuf::with_capacity(buffer_bytes)?;
        let kept = (end - block_start) as usize;
        if kept > 0 {
            buf = self.read_blocks(block_start, ALIGN, buf).await?;
            // Past the records the block may hold a torn write's bytes: they
            // are cut here, and the next write puts zeros in their place.
            buf.truncate(kept);
        }
        self.end = end;
        self.tail = Some(Tail {
            buf,
            spare: None,
            block_start,
            written_end: end,
            in_flight: None,
            recent: None,
        });
        Ok(())
    }
    // ANCHOR_END: resume

    /// Marks the records as ending at `end`, with no write buffer: a sealed
    /// segment (or one found so by recovery).
    pub fn seal_at(&mut self, end: u64) {
        self.end = end;
        self.tail = None;
    }

    /// Drops the write buffers, once everything in them is written and no
    /// write is in flight ([`Segment::complete`]).
    pub fn seal(&mut self) {
        let idle = self
            .tail
            .as_ref()
            .is_none_or(|tail| tail.in_flight.is_none());
        if self.unwritten() == 0 && idle {
            self.tail = None;
        }
    }

    // ANCHOR: append
    /// Appends `bytes` (whole records) to the write buffer, writing the buffer
    /// out whenever it fills. The caller has checked they fit in the segment.
    /// The file first grows if they would reach past it ([`Segment::reserve`]).
    pub async fn append(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() as u64 > self.room() {
            return Err(self.failure("append past the segment's end"));
        }
        self.reserve(bytes.len() as u64).await?;
        // Bytes that would not fit behind what is buffered: write that first,
        // so writes stay whole batches of about the buffer's size, rather than
        // a full buffer followed by a small write of the batch's remainder.
        if bytes.len() > self.buffer_mut()?.spare() && self.unwritten() > 0 {
            self.write_behind().await?;
        }
        while !bytes.is_empty() {
            let copied = self.buffer_mut()?.extend_from_slice(bytes);
            bytes = &bytes[copied..];
            self.end += copied as u64;
            if !bytes.is_empty() {
                // Full: the buffer is whole blocks now, so this writes them
                // all and carries nothing over.
                self.write_behind().await?;
            }
        }
        Ok(())
    }
    // ANCHOR_END: append

    /// Writes the buffered bytes to the file as whole blocks and waits for
    /// the write: on return they are in the file (not synced).
    pub async fn write(&mut self) -> Result<(), Error> {
        self.write_behind().await?;
        self.complete().await
    }

    // ANCHOR: write
    /// Hands the buffered bytes to the file as one write of whole blocks, from
    /// the tail block's aligned position, and returns with the write in
    /// flight: appends go on into the other buffer, which starts with a copy
    /// of the new partial tail block. The write before it completes first.
    pub async fn write_behind(&mut self) -> Result<(), Error> {
        if self
            .tail
            .as_ref()
            .is_none_or(|tail| tail.written_end == self.end)
        {
            return Ok(()); // sealed, or nothing new
        }
        // Never two writes in flight: both would hold the tail block.
        self.complete().await?;
        let Some(tail) = self.tail.as_mut() else {
            return Ok(());
        };
        let buffer_bytes = tail.buf.capacity();
        let next = match tail.spare.take() {
            Some(buf) => buf,
            None => AlignedBuf::with_capacity(buffer_bytes)?,
        };
        let mut buf = std::mem::replace(&mut tail.buf, next);
        let data_len = buf.len();
        // The partial tail block goes on in the next buffer: the next write
        // starts at its aligned position and rewrites it whole. The
        // alternative, padding records to block boundaries, would cost up to
        // 4095 bytes of disk per write and make positions depend on flushes.
        let full = align_down(data_len);
        // EXERCISE: tail_block
        // HINT: `buf` (data_len bytes) is about to be written from the tail block's start;
        // HINT: its whole blocks end at `full`. Start the next buffer, tail.buf, with a copy
        // HINT: of the partial block after them, and pad `buf` with zeros to whole blocks.
        tail.buf.clear();
        tail.buf.extend_from_slice(&buf.as_slice()[full..data_len]);
        // Zeros after the records, up to the block boundary: the write is whole
        // blocks, and zeros are what recovery reads as "no record here".
        buf.pad_to_block();
        // EXERCISE_END
        let bytes = Rc::new(buf);
        let (file, position) = (self.file.clone(), tail.block_start);
        let shared = SharedBuf(Rc::clone(&bytes));
        let task = compio::runtime::spawn(async move {
            let mut file = &file;
            let BufResult(result, _) = file.write_all_at(shared, position).await;
            result
        });
        tail.in_flight = Some(InFlight {
            position,
            bytes,
            settled_end: position + full as u64,
            task: WriteTask(Some(task)),
        });
        tail.block_start += full as u64;
        tail.written_end = self.end;
        // A spawned task runs only when this one yields: without this, a
        // caller busy appending would not yield before its next write, and
        // the write would not reach the kernel until then (no overlap at all).
        YieldOnce(false).await;
        Ok(())
    }

    /// Waits for the write in flight, if there is one, and takes its buffer
    /// back for the next write. An error is returned as it is, and again at
    /// every later call: a failed write is never retried.
    pub async fn complete(&mut self) -> Result<(), Error> {
        let Some(flight) = self.tail.as_mut().and_then(|tail| tail.in_flight.as_mut()) else {
            return Ok(());
        };
        let Some(task) = flight.task.0.as_mut() else {
            return Err(self.failure("an earlier write failed"));
        };
        // Awaited in place, not taken out first: if this future is dropped
        // while it waits, the handle stays here and `WriteTask`'s drop lets
        // the write finish, where a handle taken out would cancel it halfway.
        let joined = task.await;
        flight.task.0 = None; // finished: a handle is polled to completion once
        let settled_end = flight.settled_end;
        let source = match joined {
            Ok(Ok(())) => None,
            Ok(Err(source)) => Some(source),
            Err(join) => Some(std::io::Error::other(join.to_string())),
        };
        if let Some(source) = source {
            return Err(Error::Io {
                path: self.path.clone(),
                source,
            });
        }
        if let Some(tail) = self.tail.as_mut()
            && let Some(flight) = tail.in_flight.take()
            && let Ok(bytes) = Rc::try_unwrap(flight.bytes)
        {
            // The task is done and no read holds the bytes (reads borrow the
            // segment, and this is `&mut`): the buffer is ours again. It
            // serves reads until the next write completes; the one it
            // replaces becomes the spare for the next write.
            let recent = Recent {
                position: flight.position,
                end: flight.settled_end,
                bytes,
            };
            if let Some(Recent { bytes: mut old, .. }) = tail.recent.replace(recent)
                && tail.spare.is_none()
            {
                old.clear();
                tail.spare = Some(old);
            }
        }
        self.start_writeback(settled_end);
        Ok(())
    }
    // ANCHOR_END: write

    /// Page-cache mode: once [`writeback::STEP`] bytes of whole blocks were
    /// written since the last request, asks the kernel to start writing them
    /// back, on a blocking-pool thread. Only blocks below `settled_end`: the
    /// tail block is written again by the next write.
    fn start_writeback(&mut self, settled_end: u64) {
        let Some(from) = self.writeback_from else {
            return;
        };
        if settled_end < from + writeback::STEP {
            return;
        }
        let file = match self.file.as_fd().try_clone_to_owned() {
            Ok(file) => file,
            Err(error) => {
                tracing::debug!("{}: no writeback started: {error}", self.path.display());
                return;
            }
        };
        let path = self.path.clone();
        compio::runtime::spawn_blocking(move || {
            if let Err(error) = writeback::start(&file, from, settled_end - from) {
                // The pages stay dirty; the next sync writes them and reports
                // a real failure.
                tracing::debug!("{}: writeback not started: {error}", path.display());
            }
        })
        .detach();
        self.writeback_from = Some(settled_end);
    }

    // ANCHOR: sync
    /// `fdatasync`: on return, everything written is on the device. O_DIRECT
    /// alone is not durable: the device's own cache still holds the blocks
    /// until this flushes it.
    pub async fn sync(&mut self) -> Result<(), Error> {
        self.complete().await?;
        self.file.sync_data().await.at(&self.path)
    }

    /// A handle to sync the file later (a sealed segment's, in the
    /// background): whatever was written before the sync starts is covered.
    pub(crate) fn sync_handle(&self) -> SyncHandle {
        SyncHandle::new(&self.file, &self.path)
    }
    // ANCHOR_END: sync

    // ANCHOR: read
    /// The bytes `start..end` (inside the records), read through `buf`: the
    /// part in the file with one aligned read of the blocks covering it, the
    /// parts in the write in flight and in the write buffer copied from there.
    pub async fn read(
        &self,
        start: u64,
        end: u64,
        mut buf: AlignedBuf,
    ) -> Result<StoredBytes, Error> {
        if start >= end || end > self.end {
            return Ok(StoredBytes::empty(buf));
        }
        // In memory, one after the other: the last completed write from
        // `memory_start`, the write in flight from `flight_start`, the write
        // buffer from `block_start`; below them, the file.
        let (block_start, tail, flight, recent) = match &self.tail {
            Some(tail) => (
                tail.block_start,
                Some(&tail.buf),
                tail.in_flight.as_ref(),
                tail.recent.as_ref(),
            ),
            None => (self.end.next_multiple_of(ALIGN as u64), None, None, None),
        };
        let flight_start = flight.map_or(block_start, |flight| flight.position);
        // Only if it ends where the next region starts (it always should).
        let recent = recent.filter(|recent| recent.end == flight_start);
        let memory_start = recent.map_or(flight_start, |recent| recent.position);
        // The buffer holds `aligned_start..end`: whole blocks from the file up
        // to `memory_start`, then bytes from memory.
        let aligned_start = align_down_u64(start);
        let whole = align_up((end - aligned_start) as usize);
        buf.reserve_total(whole)?;
        if aligned_start < memory_start {
            let file_end = (align_up(end as usize) as u64).min(memory_start);
            let len = (file_end - aligned_start) as usize;
            let in_order = self.next_read.get() == Some(aligned_start);
            let (read, spare) = match self.read_ahead.take() {
                Some(ahead) if ahead.position == aligned_start && ahead.len >= len => {
                    match ahead.task.await {
                        Ok((Ok(()), mut read)) => {
                            read.truncate(len);
                            if read.capacity() >= whole {
                                (read, Some(buf))
                            } else {
                                // No room after it for the parts from memory
                                // (a reader that caught up with the writes):
                                // copied into `buf`, which has it.
                                buf.clear();
                                buf.extend_from_slice(read.as_slice());
                                (buf, Some(read))
                            }
                        }
                        // Failed or cancelled: read again, and any error is
                        // this read's own.
                        _ => (self.read_blocks(aligned_start, len, buf).await?, None),
                    }
                }
                // Any other read ahead is dropped here, which cancels it.
                _ => (self.read_blocks(aligned_start, len, buf).await?, None),
            };
            buf = read;
            let next = align_down_u64(end);
            self.next_read.set(Some(next));
            // A block more than this read: the next read's records may end
            // one block further.
            if in_order && self.read_ahead_from(next, len + ALIGN, memory_start, spare) {
                // As for writes: the read reaches the kernel only once this
                // task yields, and the caller may not before its next read.
                YieldOnce(false).await;
            }
        } else {
            buf.clear();
        }
        // `&self` is held across the read, so no append or write has moved
        // the tail since `block_start` was read above.
        let mut copy = |from_memory: &[u8], memory_start: u64, upto: u64| {
            let from = aligned_start.max(memory_start);
            buf.truncate((from - aligned_start) as usize);
            let wanted =
                from_memory.get((from - memory_start) as usize..(upto - memory_start) as usize);
            buf.extend_from_slice(wanted.unwrap_or_default());
        };
        if let Some(recent) = recent
            && end > recent.position
        {
            copy(
                recent.bytes.as_slice(),
                recent.position,
                end.min(recent.end),
            );
        }
        if let Some(flight) = flight
            && end > flight_start
        {
            // Its tail block is in the write buffer too, newer: taken from there.
            copy(flight.bytes.as_slice(), flight_start, end.min(block_start));
        }
        if let Some(tail) = tail
            && end > block_start
        {
            copy(tail.as_slice(), block_start, end);
        }
        Ok(StoredBytes {
            buf,
            start: (start - aligned_start) as usize,
            end: (end - aligned_start) as usize,
        })
    }
    // ANCHOR_END: read

    /// Starts reading `len` bytes at `position` ahead of the reader, but not
    /// past `limit` (where the blocks a write may rewrite begin), into
    /// `spare` or a new buffer; says whether it did. Best effort: without
    /// memory, no read ahead.
    fn read_ahead_from(
        &self,
        position: u64,
        len: usize,
        limit: u64,
        spare: Option<AlignedBuf>,
    ) -> bool {
        let len = (len as u64).min(limit.saturating_sub(position)) as usize;
        if len == 0 {
            return false;
        }
        let Ok(mut buf) = spare.map_or_else(|| AlignedBuf::with_capacity(len), Ok) else {
            return false;
        };
        if buf.reserve_total(len).is_err() {
            return false;
        }
        buf.clear();
        let file = self.file.clone();
        let task = compio::runtime::spawn(async move {
            let BufResult(result, slice) = file.read_exact_at(buf.slice(..len), position).await;
            (result, slice.into_inner())
        });
        self.read_ahead.replace(Some(ReadAhead {
            position,
            len,
            task,
        }));
        true
    }

    // ANCHOR: read_blocks
    /// Reads `len` bytes (whole blocks) at `position` (a block boundary) into
    /// `buf`, whatever the records' end: for recovery, which is looking for it.
    pub async fn read_blocks(
        &self,
        position: u64,
        len: usize,
        mut buf: AlignedBuf,
    ) -> Result<AlignedBuf, Error> {
        buf.reserve_total(len)?;
        buf.clear();
        let BufResult(result, slice) = self.file.read_exact_at(buf.slice(..len), position).await;
        result.at(&self.path)?;
        Ok(slice.into_inner())
    }
    // ANCHOR_END: read_blocks

    /// Writes zeros over the records' bytes from `end` up to `until` (a block
    /// boundary), keeping the bytes before `end` in its block, and syncs:
    /// recovery's erasure of a torn write, so that no later recovery can
    /// mistake its remains for records.
    pub async fn erase_after(&mut self, end: u64, until: u64) -> Result<(), Error> {
        let first = align_down_u64(end);
        let buf = AlignedBuf::with_capacity(ALIGN)?;
        let mut buf = self.read_blocks(first, ALIGN, buf).await?;
        buf.truncate((end - first) as usize);
        // The whole first block, even when `end` is its start: padding an
        // empty buffer "to the block" would write nothing and leave that
        // block's old bytes (a cut on a block boundary did, before).
        buf.resize_zeroed(ALIGN);
        let mut file = &self.file;
        let BufResult(result, _) = file.write_all_at(buf, first).await;
        result.at(&self.path)?;
        let mut position = first + ALIGN as u64;
        let mut zeros = AlignedBuf::with_capacity(ERASE_CHUNK)?;
        while position < until {
            zeros.clear();
            zeros.resize_zeroed((until - position).min(ERASE_CHUNK as u64) as usize);
            let n = zeros.len() as u64;
            let BufResult(result, written) = file.write_all_at(zeros, position).await;
            result.at(&self.path)?;
            zeros = written;
            position += n;
        }
        self.sync().await
    }

    // ANCHOR: cut
    /// Cuts the records back to `end` (a record boundary below the current
    /// end), on disk and in memory, and leaves the segment ready for appends
    /// from there with a write buffer of `buffer_bytes`: for a partition
    /// truncated to an offset. Everything written must be complete (no write
    /// in flight, nothing buffered): the partition writes first.
    ///
    /// The bytes from `end` on are overwritten with zeros and synced, as
    /// recovery erases a torn tail, so no later recovery finds them; reads
    /// ahead of the cut are dropped, since they held bytes that are gone.
    pub async fn cut(&mut self, end: u64, buffer_bytes: usize) -> Result<(), Error> {
        if end > self.end || self.unwritten() > 0 || self.is_writing() {
            return Err(self.failure("cut past the records, or with a write pending"));
        }
        let until = align_up(self.end as usize) as u64;
        self.tail = None;
        if let Some(ahead) = self.read_ahead.borrow_mut().take() {
            drop(ahead.task); // cancelled: its bytes may be past the cut
        }
        self.next_read.set(None);
        if end < self.end {
            self.erase_after(end, until).await?;
        }
        self.resume(end, buffer_bytes).await
    }
    // ANCHOR_END: cut

    fn buffer_mut(&mut self) -> Result<&mut AlignedBuf, Error> {
        let failure = self.failure("append to a sealed segment");
        self.tail.as_mut().map(|tail| &mut tail.buf).ok_or(failure)
    }

    fn failure(&self, reason: &str) -> Error {
        Error::Failed {
            reason: format!("{}: {reason}", self.path.display()),
        }
    }
}

// ANCHOR: open_file
/// Opens a segment file for reading and writing, with `O_DIRECT` if asked.
async fn open_file(path: &Path, direct_io: bool, create: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(create);
    if direct_io {
        // The talk's `custom_flags(O_DIRECT | O_DSYNC)`, without O_DSYNC: that
        // would make every write wait for the device, which is the fsync
        // policy's decision, not the file's.
        options.custom_flags(OFlags::DIRECT.bits() as i32);
    }
    match options.open(path).await {
        Ok(file) => Ok(file),
        Err(source) if direct_io && source.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
            Err(Error::DirectIoUnsupported {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
// ANCHOR_END: open_file

// ANCHOR: preallocate
/// Gives the file the bytes `from..to` with real blocks behind them: one
/// step of a segment's growth (see the module docs).
///
/// `fallocate` mode 0: the file's length becomes `to` and the blocks are
/// reserved as "unwritten" extents, which read as zeros. Not `KEEP_SIZE`
/// (stage 2's choice, where the length had to stay the log's end): here the
/// length changes once per grow, and the next sync commits it once, so no
/// append after that has a size to commit. Writing to an unwritten extent
/// still converts it, a small journal entry that the next `fdatasync`
/// commits; zero-filling each step instead would avoid that at the price of
/// writing every segment twice.
///
/// compio 0.19 has no fallocate operation (io_uring has one since Linux 5.6),
/// so this is a plain system call on the shard's thread: it reserves extents
/// without writing them, once per step.
async fn preallocate(file: &File, path: &Path, from: u64, to: u64) -> Result<(), Error> {
    match rustix::fs::fallocate(file.as_fd(), FallocateFlags::empty(), from, to - from) {
        Ok(()) => Ok(()),
        // A file system without fallocate: a sparse file of the right length.
        // Reads of the holes are zeros, which is all recovery needs; appends
        // then allocate blocks as they go, which the measurements will show.
        Err(Errno::OPNOTSUPP) => file.set_len(to).await.at(path),
        Err(errno) => Err(Error::Io {
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}
// ANCHOR_END: preallocate

// ANCHOR: growth_target
/// The length a file of `allocated` bytes grows to when records need
/// `needed`: as much again as it holds, at least one `step` and at most
/// [`MAX_GROWTH_STEPS`], in whole steps, never past `capacity` unless the
/// records' last block needs it.
///
/// Each grow costs more than its `fallocate`: on ext4 the
/// `fallocate` waits for the write in flight, so the next write starts only
/// after the grow, with nothing overlapping it (double buffering's gain,
/// lost once per grow). A fixed step the size of a write (the default
/// `flush_bytes` is 1 MiB, and 4 MiB is a common choice) would lose it at
/// every write or every few. Growing by what the file holds keeps an idle
/// partition at one small step and gives a busy one a grow every 64 MiB, as
/// a fixed 64 MiB step would, without that step's 64 MiB for every idle
/// partition.
pub fn growth_target(allocated: u64, needed: u64, step: u64, capacity: u64) -> u64 {
    let growth = allocated.clamp(step, step.saturating_mul(MAX_GROWTH_STEPS));
    needed
        .max(allocated.saturating_add(growth))
        .checked_next_multiple_of(step)
        .unwrap_or(u64::MAX)
        .min(capacity)
        .max(needed)
}
// ANCHOR_END: growth_target

/// A growth step as the segment uses it: whole blocks, at least one.
fn whole_step(step: u64) -> u64 {
    step.max(1)
        .checked_next_multiple_of(ALIGN as u64)
        .unwrap_or(u64::MAX - u64::MAX % ALIGN as u64)
}

/// Syncs a directory, so the files created in it survive a power cut.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), Error> {
    let handle = File::open(dir).await.at(dir)?;
    handle.sync_all().await.at(dir)
}

/// Creates `dir` and the folders above it that are missing, and syncs the
/// folder above each one it created: a new folder's name is an entry in its
/// parent, and without that sync a power cut can lose the folder, synced
/// segments and all. (ext4 happens to commit it with the next file sync; the
/// rule does not rely on one file system's journal.)
pub(crate) async fn create_dir_synced(dir: &Path) -> Result<(), Error> {
    // The missing folders, innermost first; "" is the current folder.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|path| !path.as_os_str().is_empty()) {
        if compio::fs::metadata(path).await.is_ok() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    compio::fs::create_dir_all(dir).await.at(dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent).await?;
    }
    Ok(())
}

/// Removes a file; one that is not there is already removed (a retry, or
/// a crash, came first).
pub(crate) async fn remove_file(path: &Path) -> Result<(), Error> {
    match compio::fs::remove_file(path).await {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_files_grow_by_what_they_hold_from_one_step_to_sixteen() {
        const MIB: u64 = 1 << 20;
        let (step, capacity) = (4 * MIB, 1 << 30);
        // A new file's first step, then doubling: 4, 8, 16, 32, 64 MiB...
        let mut len = 0;
        let mut lengths = Vec::new();
        while len < 256 * MIB {
            len = growth_target(len, len + 4096, step, capacity);
            lengths.push(len / MIB);
        }
        assert_eq!(lengths, [4, 8, 16, 32, 64, 128, 192, 256]);
        // ... then 64 MiB at a time, up to the capacity and not past it.
        assert_eq!(
            growth_target(992 * MIB, 992 * MIB + 1, step, capacity),
            1 << 30
        );
        // A batch larger than the growth: whole steps past its end.
        assert_eq!(
            growth_target(4 * MIB, 20 * MIB + 1, step, capacity),
            24 * MIB
        );
        // A segment smaller than a step: its whole size; and a file left
        // short of whole steps by a crash comes back to them.
        assert_eq!(growth_target(0, 4096, step, 64 << 10), 64 << 10);
        assert_eq!(
            growth_target(5 * MIB, 5 * MIB + 1, step, capacity),
            12 * MIB
        );
        // The records' last block is in the file even past an odd capacity.
        assert_eq!(growth_target(4096, 12_288, 4096, 10_000), 12_288);
    }

    #[test]
    fn segment_names_sort_as_numbers_and_parse_back() {
        assert_eq!(file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(parse_file_name("00000000000000000042.log", "log"), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.index", "log"), None);
        assert_eq!(parse_file_name("42.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log", "log"), None);
        let max = file_name(u64::MAX, "log");
        assert_eq!(parse_file_name(&max, "log"), Some(u64::MAX));
    }
}
