//! What opening a partition checks and repairs, segment by segment.
//!
//! A process killed mid-write, or a machine that lost power, can leave:
//! - the end of the active segment half-written: a **torn tail**, the last
//!   write's records cut anywhere, or a block of them missing;
//! - indexes **behind** the segment (entries not written yet), **ahead** of it
//!   (entries for records whose blocks never reached the disk), missing, or
//!   cut mid-entry;
//! - and, rarely, a damaged block in the middle: **corruption**.
//!
//! Recovery restores the invariant the partition relies on:
//!
//! > each segment holds records with dense offsets from its base, every one
//! > with a valid checksum; its offset index has one entry per record and its
//! > time index one entry per timestamp increase; nothing but zeros follows
//! > the last record of the active segment.
//!
//! The segment file is allocated ahead of its records, a step at a time (see
//! [`crate::storage::segment`]), so its length says only that the records
//! end at or before it: the end is found by walking records and checking
//! checksums. A file shorter than the segment size is normal, active or
//! sealed, whatever point of a grow a crash interrupted: the end of the
//! file reads like the zeros of its never-written part, and the active
//! segment grows again as appends need. The walk starts at the last index
//! entry that can be trusted, so a healthy reopen reads and verifies one
//! batch, not the log:
//! - the **trusted prefix** of the offset index is the entries that start at
//!   0, grow by at least a header each, and point inside the file; of the time
//!   index, the entries that start at relative offset 0 and grow in both
//!   fields. The walk starts at the earlier of the last trusted entry of
//!   either, so both are rebuilt from there;
//! - each record walked must have a whole header, fit in the file, carry the
//!   expected offset and a matching crc32c. The walk ends cleanly at a header
//!   of 32 zero bytes (the allocated, never-written part: a record's header
//!   is never all zeros, its checksum covers a non-zero timestamp) or at the
//!   end of the file, which is the same thing;
//! - a record that fails is a **torn tail** if no valid record follows it:
//!   the log ends before it, and its remains are overwritten with zeros and
//!   synced, so that no later recovery can mistake them for records. If a valid
//!   record with a later offset does follow it, that is **corruption**:
//!   `Error::Corrupt` names the segment and the position, and the partition is
//!   not opened. Damage with good records after it is not a crash's doing, and
//!   cutting the log there would throw acknowledged records away.
//!
//! Sealed segments (all but the last) were synced, indexes included, by the
//! time the one after them was sealed, so they are trusted by their index:
//! only their last batch is walked (to find where their records end), unless
//! the index is missing or short, and then they are walked like the active
//! one. A sealed segment with fewer records than the next segment's base
//! offset implies is corrupt.
//!
//! The **last sealed segment** is the exception (`recover_last_sealed`):
//! its sync runs in the background after the next segment is created (see
//! [`crate::storage::partition`]), so a machine that lost power meanwhile
//! can leave it with a torn tail, and index entries written through the page
//! cache pointing at records that never reached the disk. Unless the seal
//! mark ([`crate::storage::seal_mark`]) says its sync returned, it is walked
//! from its first record, its index ignored and rebuilt. If its records end
//! before the next segment's base offset, the records after the tear were never called durable (the
//! durable watermark waits for that sync), and neither were the next
//! segment's, which came after them: the next segment is removed, the
//! repair logged, and the cut segment becomes the active one. Offsets stay
//! dense, and what was acknowledged as durable is all there.
//!
//! Deliberate simplifications:
//! - records covered by the trusted index are not re-verified on open; a bit
//!   that flips in them later is caught when a poll reads them (the partition
//!   verifies every record it serves) and reported the same way;
//! - a zeroed header ends the log without a look further: a write that never
//!   reached the disk looks the same, and reading the rest of every segment
//!   at every start to tell them apart would cost more than it catches. A torn
//!   record (not zeros) is followed by that look, once: the rest of the segment
//!   is read, up to the end of its file;
//! - a payload that happens to contain a whole valid record with a later
//!   offset makes a torn tail look like corruption. The partition then refuses
//!   to open, which loses nothing.

use std::path::Path;

use crate::storage::aligned::{ALIGN, AlignedBuf, align_down_u64, align_up};
use crate::storage::config::Config;
use crate::storage::error::Error;
use crate::storage::index::{
    OFFSET_INDEX_EXTENSION, OffsetIndex, Position, TIME_INDEX_EXTENSION, TimeEntry, TimeIndex,
};
use crate::storage::partition::IndexedSegment;
use crate::storage::record::{RECORD_HEADER_LEN, checksum_matches, header_at};
use crate::storage::segment::{LOG_EXTENSION, Segment, file_name};

/// Bytes read at a time while walking or scanning a segment.
const WINDOW: usize = 1 << 20;

/// What recovery found and did when a partition was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments opened.
    pub segments: usize,
    /// Records in the partition after recovery.
    pub records: u64,
    /// Records whose checksum recovery verified (the walked ones).
    pub records_verified: u64,
    /// Bytes of a torn write overwritten with zeros (whole blocks, from the
    /// end of the last good record).
    pub torn_bytes_erased: u64,
    /// Offset index entries dropped: inconsistent, or past the records.
    pub index_entries_dropped: u64,
    /// Offset index entries written back from a walk of the records.
    pub index_entries_rebuilt: u64,
    /// Time index entries dropped.
    pub time_entries_dropped: u64,
    /// Time index entries written back from a walk of the records.
    pub time_entries_rebuilt: u64,
    /// Index files found without their segment's log and removed: what a
    /// retention deletion interrupted by a crash leaves (see
    /// [`crate::storage::retention`]).
    pub stray_files_removed: usize,
    /// Segments removed after a torn last sealed segment: they held only
    /// records that came after the tear (see `recover_last_sealed`).
    pub segments_discarded: usize,
}

/// Which segment of the partition is being recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A sealed segment before the last one: synced, so it must hold every
    /// record up to the next segment's base offset.
    Sealed { next_base: u64 },
    /// The last sealed segment, whose sync is not known to have returned:
    /// walked whole, its index not trusted; it may end early (then it is left
    /// ready for appends), never late.
    LastSealed { next_base: u64 },
    /// The active segment, left ready for appends.
    Active,
}

// ANCHOR: recover_segment
/// Opens and repairs the segment starting at `base` in `dir`, as `role`
/// says: a sealed segment is left sealed, the active one ready for appends.
pub(crate) async fn recover_segment(
    dir: &Path,
    base: u64,
    role: Role,
    config: &Config,
    report: &mut RecoveryReport,
) -> Result<IndexedSegment, Error> {
    let next_base = match role {
        Role::Sealed { next_base } | Role::LastSealed { next_base } => Some(next_base),
        Role::Active => None,
    };
    let path = dir.join(file_name(base, LOG_EXTENSION));
    // Any length will do, even none (a crash between creating the file and
    // its first step): the walk stops at the end of the file, and the
    // active segment's next append grows it.
    let mut log = Segment::open(
        &path,
        base,
        config.segment_size,
        config.preallocate_step,
        config.direct_io,
    )
    .await?;
    let sealed_count = next_base.map(|next| next.saturating_sub(base));
    let mut offsets = OffsetIndex::open(&dir.join(file_name(base, OFFSET_INDEX_EXTENSION))).await?;
    let mut times = TimeIndex::open(&dir.join(file_name(base, TIME_INDEX_EXTENSION))).await?;
    let (loaded, loaded_times) = (offsets.len() as u64, times.len() as u64);

    let trusted = match role {
        Role::LastSealed { .. } => 0,
        _ => trusted_positions(offsets.entries(), log.allocated(), sealed_count),
    };
    let trusted_times = trusted_times(times.entries(), trusted);
    let start = walk_start(
        trusted,
        times.entries().get(..trusted_times).unwrap_or_default(),
    );
    // Record 0 is at byte 0 whatever the index says: with nothing trusted,
    // its first entry is as untrusted as the rest (a whole entry holding a
    // wrong position once made the walk start there and refuse the segment).
    let from = match start {
        0 => 0,
        _ => offsets.position(start).unwrap_or(0),
    };
    offsets.truncate(start as usize).await?;
    let kept_times = times
        .entries()
        .get(..trusted_times)
        .unwrap_or_default()
        .partition_point(|entry| u64::from(entry.relative_offset) < start);
    times.truncate(kept_times).await?;

    let walked = walk(&log, start, from, sealed_count, &mut offsets, &mut times).await?;
    let records = offsets.len() as u64;
    // Short is a torn tail for the last sealed segment, corruption for any other.
    let short_allowed = matches!(role, Role::LastSealed { .. });
    if let Some(count) = sealed_count
        && (records > count || (records < count && !short_allowed))
    {
        return Err(corrupt(
            &log,
            walked.end,
            &format!(
                "sealed segment holds {records} records, but the next segment starts at offset {}",
                base + count
            ),
        ));
    }
    if let Some(erase_until) = walked.torn {
        log.erase_after(walked.end, erase_until).await?;
        report.torn_bytes_erased += erase_until - walked.end;
    }
    offsets.persist().await?;
    times.persist().await?;

    let kept = (trusted as u64).min(records);
    let kept_t = (trusted_times as u64).min(times.len() as u64);
    report.segments += 1;
    report.records += records;
    report.records_verified += walked.verified;
    report.index_entries_dropped += loaded - kept;
    report.index_entries_rebuilt += records - kept;
    report.time_entries_dropped += loaded_times - kept_t;
    report.time_entries_rebuilt += times.len() as u64 - kept_t;

    match sealed_count {
        Some(count) if records == count => {
            log.seal_at(walked.end);
            // Rebuilt: make the repair stick, so the next open trusts it. The
            // last sealed segment's indexes, whose background sync may not
            // have run, are synced whatever recovery found.
            if short_allowed || loaded != records || loaded_times != times.len() as u64 {
                if short_allowed {
                    log.sync().await?;
                }
                offsets.sync().await?;
                times.sync().await?;
            }
        }
        _ => {
            log.resume(walked.end, config.write_buffer_bytes()).await?;
            // What a crashed process left in the page cache is on disk after
            // this, so every record found starts out durable.
            log.sync().await?;
        }
    }
    Ok(IndexedSegment {
        log,
        offsets,
        times,
    })
}
// ANCHOR_END: recover_segment

// ANCHOR: recover_last_sealed
/// What recovery made of the last sealed segment.
pub(crate) enum LastSealed {
    /// Whole: every record up to the next segment's base, sealed again.
    Whole(IndexedSegment),
    /// Cut by a torn tail before the next segment's base: left ready for
    /// appends, as the active segment, and the next one must go.
    Cut(IndexedSegment),
}

/// Opens and repairs the last sealed segment (the one before the active
/// segment, which starts at `next_base`), whose background sync may not have
/// finished when the process or machine stopped (see the module docs).
pub(crate) async fn recover_last_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &Config,
    report: &mut RecoveryReport,
) -> Result<LastSealed, Error> {
    let role = Role::LastSealed { next_base };
    let segment = recover_segment(dir, base, role, config, report).await?;
    Ok(match segment.log.is_sealed() {
        true => LastSealed::Whole(segment),
        false => LastSealed::Cut(segment),
    })
}
// ANCHOR_END: recover_last_sealed

/// How many leading offset index entries are consistent with a file of `size`
/// bytes (and, for a sealed segment, with its record count).
fn trusted_positions(entries: &[Position], size: u64, limit: Option<u64>) -> u64 {
    // EXERCISE: trusted_positions
    // HINT: count the entries from the first while they are consistent: the first at 0,
    // HINT: each at least a record header after the one before, a whole header inside the
    // HINT: file (size), and, for a sealed segment, fewer than `limit`.
    let mut previous: Option<u64> = None;
    for (n, entry) in entries.iter().enumerate() {
        let position = u64::from(entry.0);
        let consistent = match previous {
            None => position == 0,
            Some(previous) => position >= previous + RECORD_HEADER_LEN as u64,
        };
        if !consistent || position + RECORD_HEADER_LEN as u64 > size || limit == Some(n as u64) {
            return n as u64;
        }
        previous = Some(position);
    }
    entries.len() as u64
    // EXERCISE_END
}

/// How many leading time index entries are consistent, for a segment of
/// which `records` are trusted.
fn trusted_times(entries: &[TimeEntry], records: u64) -> usize {
    let mut previous: Option<TimeEntry> = None;
    for (n, entry) in entries.iter().enumerate() {
        let consistent = match previous {
            None => entry.relative_offset == 0,
            Some(previous) => {
                entry.timestamp > previous.timestamp
                    && entry.relative_offset > previous.relative_offset
            }
        };
        if !consistent || u64::from(entry.relative_offset) >= records {
            return n;
        }
        previous = Some(*entry);
    }
    entries.len()
}

/// The relative offset to walk from: the last trusted offset entry's record
/// (its length is not in the index, and it may be the torn one), or the
/// last trusted time entry's if that is earlier (its timestamp's run may
/// have records the time index has not seen). No time entry at all: from 0.
fn walk_start(trusted: u64, times: &[TimeEntry]) -> u64 {
    match (trusted.checked_sub(1), times.last()) {
        (Some(last), Some(time)) => last.min(u64::from(time.relative_offset)),
        _ => 0,
    }
}

/// Where a walk ended.
struct Walked {
    /// End of the last valid record.
    end: u64,
    /// For a torn tail: the end of the last block holding any of its bytes,
    /// to be erased up to.
    torn: Option<u64>,
    /// Records walked and verified.
    verified: u64,
}

// ANCHOR: walk
/// Walks records from `relative` at `position`, verifying each, adding each to
/// the indexes, until the end of the records (or `limit` records).
async fn walk(
    log: &Segment,
    mut relative: u64,
    mut position: u64,
    limit: Option<u64>,
    offsets: &mut OffsetIndex,
    times: &mut TimeIndex,
) -> Result<Walked, Error> {
    let header_len = RECORD_HEADER_LEN as u64;
    let mut window = Window::default();
    let mut verified = 0;
    loop {
        let clean = Walked {
            end: position,
            torn: None,
            verified,
        };
        if limit.is_some_and(|limit| relative >= limit) || position + header_len > log.allocated() {
            return Ok(clean);
        }
        let bytes = window.get(log, position, RECORD_HEADER_LEN).await?;
        if bytes.iter().all(|&b| b == 0) {
            return Ok(clean); // the preallocated, never-written part
        }
        let Some(header) = header_at(bytes) else {
            return Ok(clean); // `get` returned 32 bytes: not taken
        };
        let expected = log.base_offset() + relative;
        let len = header.record_len();
        let valid = position + len <= log.allocated()
            && header.offset == expected
            && checksum_matches(window.get(log, position, len as usize).await?);
        if !valid {
            let scan = scan_after(log, position, expected).await?;
            if let Some((at, offset)) = scan.valid {
                return Err(corrupt(
                    log,
                    position,
                    &format!(
                        "record {expected} fails its checksum or offset check, and a \
                         valid record (offset {offset}) follows it at byte {at}"
                    ),
                ));
            }
            return Ok(Walked {
                torn: Some(scan.nonzero_end.max(align_up(position as usize + 1) as u64)),
                ..clean
            });
        }
        // Positions fit in u32: the segment size is validated below 4 GiB.
        offsets.push(Position(position as u32));
        times.push_if_newer(header.timestamp, relative as u32);
        relative += 1;
        position += len;
        verified += 1;
    }
}
// ANCHOR_END: walk

/// What a scan after a bad record found.
struct Scan {
    /// A valid record after it: its position and offset.
    valid: Option<(u64, u64)>,
    /// The end of the last block (from the bad record's on) that is not all zeros.
    nonzero_end: u64,
}

/// Looks after the bad record at `bad_at` (which should have had offset
/// `expected`) for a valid record with a later offset, reading the rest of
/// the segment; blocks of zeros are skipped.
async fn scan_after(log: &Segment, bad_at: u64, expected: u64) -> Result<Scan, Error> {
    let header_len = RECORD_HEADER_LEN as u64;
    let mut window = Window::default();
    let mut records = Window::default();
    let mut nonzero_end = bad_at;
    let mut chunk = align_down_u64(bad_at);
    while chunk < log.allocated() {
        let chunk_len = (log.allocated() - chunk).min(WINDOW as u64) as usize;
        // One block more than the chunk, so a header that starts in the chunk
        // is whole in the bytes read.
        let read_len = (log.allocated() - chunk).min((WINDOW + ALIGN) as u64) as usize;
        let bytes = window.get(log, chunk, read_len).await?;
        for block in (0..chunk_len).step_by(ALIGN) {
            if bytes[block..block + ALIGN].iter().all(|&b| b == 0) {
                continue; // no header of a later record starts in zeros
            }
            nonzero_end = chunk + (block + ALIGN) as u64;
            for i in block..block + ALIGN {
                let at = chunk + i as u64;
                if at <= bad_at || at + header_len > log.allocated() {
                    continue;
                }
                let Some(header) = header_at(&bytes[i..]) else {
                    continue;
                };
                // Record `expected + k` starts at least `k` headers after `bad_at`:
                // a cheap filter before any checksum is computed.
                let k = header.offset.wrapping_sub(expected);
                if header.offset <= expected || k > (at - bad_at) / header_len {
                    continue;
                }
                let len = header.record_len();
                if at + len > log.allocated() {
                    continue;
                }
                if checksum_matches(records.get(log, at, len as usize).await?) {
                    return Ok(Scan {
                        valid: Some((at, header.offset)),
                        nonzero_end,
                    });
                }
            }
        }
        chunk += chunk_len as u64;
    }
    Ok(Scan {
        valid: None,
        nonzero_end,
    })
}

/// A run of a segment's blocks read into an aligned buffer, re-read when a
/// request falls outside it.
#[derive(Default)]
struct Window {
    buf: Option<AlignedBuf>,
    /// File position of the buffer's first byte.
    start: u64,
}

impl Window {
    /// The bytes `position..position + len`, which the caller has checked lie
    /// inside the file.
    async fn get(&mut self, log: &Segment, position: u64, len: usize) -> Result<&[u8], Error> {
        let inside = |buf: &AlignedBuf, start: u64| {
            position >= start && position + len as u64 <= start + buf.len() as u64
        };
        let buf = match self.buf.take() {
            Some(buf) if inside(&buf, self.start) => buf,
            old => {
                let start = align_down_u64(position);
                let want = align_up((position - start) as usize + len).max(WINDOW);
                let want = want.min((log.allocated() - start) as usize);
                let buf = match old {
                    Some(buf) => buf,
                    None => AlignedBuf::with_capacity(want)?,
                };
                self.start = start;
                log.read_blocks(start, want, buf).await?
            }
        };
        let buf = self.buf.insert(buf);
        let from = (position - self.start) as usize;
        Ok(buf.as_slice().get(from..from + len).unwrap_or_default())
    }
}

fn corrupt(log: &Segment, position: u64, reason: &str) -> Error {
    Error::Corrupt {
        segment: log.path().to_path_buf(),
        position,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(list: &[u32]) -> Vec<Position> {
        list.iter().copied().map(Position).collect()
    }

    #[test]
    fn index_trusted_prefix_stops_at_the_first_inconsistency() {
        let size = 4096;
        assert_eq!(trusted_positions(&positions(&[0, 40, 80]), size, None), 3);
        assert_eq!(
            trusted_positions(&positions(&[0, 40, 50, 90]), size, None),
            2
        );
        assert_eq!(trusted_positions(&positions(&[8, 40]), size, None), 0);
        assert_eq!(trusted_positions(&positions(&[0, 4080]), size, None), 1);
        assert_eq!(
            trusted_positions(&positions(&[0, 40, 80]), size, Some(2)),
            2
        );
        let time = |timestamp, relative_offset| TimeEntry {
            timestamp,
            relative_offset,
        };
        assert_eq!(trusted_times(&[time(5, 0), time(6, 2)], 3), 2);
        assert_eq!(trusted_times(&[time(5, 0), time(6, 3)], 3), 1);
        assert_eq!(trusted_times(&[time(5, 0), time(5, 2)], 3), 1);
        assert_eq!(trusted_times(&[time(5, 1)], 3), 0);
        assert_eq!(walk_start(3, &[time(5, 0), time(6, 1)]), 1);
        assert_eq!(walk_start(3, &[time(5, 0)]), 0);
        assert_eq!(walk_start(3, &[]), 0);
        assert_eq!(walk_start(0, &[time(5, 0)]), 0);
    }
}
