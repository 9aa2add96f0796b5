//! The two indexes of a segment: where each record is, and when each one was
//! appended. Both are derived data: everything in them can be rebuilt from
//! the segment's records (see [`crate::storage::recovery`]).
//!
//! - The **offset index** (`<base>.index`): entry `n` is the byte position of
//!   record `base + n` in the segment, a little-endian `u32` (segments are
//!   under 4 GiB). Dense, one entry per record, like stage 1's: a poll finds
//!   both ends of its byte range with two lookups and no scan. Kafka's is
//!   sparse (an entry per 4 KiB) and scans from the nearest entry; dense costs
//!   4 bytes per record, held in memory for every segment (a deliberate
//!   simplification: a production broker would page or mmap sealed indexes).
//! - The **time index** (`<base>.timeindex`): 12-byte entries, a `u64`
//!   timestamp (µs) and the `u32` relative offset of the *first* record with
//!   that timestamp, one entry each time the timestamp grows. A batch is
//!   stamped with one timestamp, so this is about an entry per batch, and the
//!   partition never lets its clock go backwards, so entries are strictly
//!   increasing in both fields and a lookup is a binary search.
//!
//! Both files are written with ordinary buffered writes, never `O_DIRECT`:
//! their entries are a few bytes, and the page cache is the right place to
//! gather them. The partition writes new entries at each sync, whenever 4096
//! are waiting, and when the segment is sealed; it never syncs them per
//! append: an index that a crash left
//! behind (or ahead of) the segment is repaired on open, from the segment.
//! They are synced once when their segment is sealed, so that sealed segments
//! reopen without a walk.

use std::path::{Path, PathBuf};

use compio::BufResult;
use compio::fs::{File, OpenOptions};
use compio::io::AsyncWriteAtExt;

use crate::storage::error::{Error, IoContext};
use crate::storage::segment::SyncHandle;

/// The extension of offset index files.
pub const OFFSET_INDEX_EXTENSION: &str = "index";
/// The extension of time index files.
pub const TIME_INDEX_EXTENSION: &str = "timeindex";

/// One fixed-size entry of an index file.
pub trait Entry: Copy + std::fmt::Debug {
    /// Bytes per entry in the file.
    const LEN: usize;
    /// Appends the entry's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads an entry from exactly [`Entry::LEN`] bytes.
    fn decode(bytes: &[u8]) -> Self;
}

/// An offset index entry: the record's byte position in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position(pub u32);

impl Entry for Position {
    const LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Position {
        Position(u32::from_le_bytes(le(bytes, 0)))
    }
}

/// A time index entry: the first record appended at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// µs since the UNIX epoch.
    pub timestamp: u64,
    /// Offset of the record, relative to the segment's base offset.
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.relative_offset.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> TimeEntry {
        TimeEntry {
            timestamp: u64::from_le_bytes(le(bytes, 0)),
            relative_offset: u32::from_le_bytes(le(bytes, 8)),
        }
    }
}

/// `N` bytes at `at`, zeros where `bytes` is too short (never, for entries
/// cut by `chunks_exact`).
fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// An index held in memory, with the file it is saved to.
#[derive(Debug)]
pub struct IndexFile<E> {
    path: PathBuf,
    file: File,
    entries: Vec<E>,
    /// Entries `0..persisted` are in the file.
    persisted: usize,
}

/// The offset index of a segment.
pub type OffsetIndex = IndexFile<Position>;
/// The time index of a segment.
pub type TimeIndex = IndexFile<TimeEntry>;

impl<E: Entry> IndexFile<E> {
    /// Opens (or creates) the index file and reads its whole entries; a torn
    /// partial entry at its end is cut off.
    pub async fn open(path: &Path) -> Result<IndexFile<E>, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(path)
            .await
            .at(path)?;
        let bytes = compio::fs::read(path).await.at(path)?;
        let entries: Vec<E> = bytes.chunks_exact(E::LEN).map(E::decode).collect();
        if bytes.len() % E::LEN != 0 {
            file.set_len((entries.len() * E::LEN) as u64)
                .await
                .at(path)?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            persisted: entries.len(),
            entries,
        })
    }

    /// The entries.
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Entries not in the file yet.
    pub fn unpersisted(&self) -> usize {
        self.entries.len() - self.persisted
    }

    /// Adds an entry (in memory; [`IndexFile::persist`] saves it).
    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Keeps the first `len` entries, in memory and in the file.
    pub async fn truncate(&mut self, len: usize) -> Result<(), Error> {
        self.entries.truncate(len);
        if self.persisted > len {
            self.file
                .set_len((len * E::LEN) as u64)
                .await
                .at(&self.path)?;
            self.persisted = len;
        }
        Ok(())
    }

    // ANCHOR: persist
    /// Appends the entries not in the file yet: one buffered write.
    pub async fn persist(&mut self) -> Result<(), Error> {
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - self.persisted) * E::LEN);
        for entry in &self.entries[self.persisted..] {
            entry.encode(&mut bytes);
        }
        let mut file = &self.file;
        let position = (self.persisted * E::LEN) as u64;
        let BufResult(result, _) = file.write_all_at(bytes, position).await;
        result.at(&self.path)?;
        self.persisted = self.entries.len();
        Ok(())
    }
    // ANCHOR_END: persist

    /// Syncs the file (for a segment being sealed).
    pub async fn sync(&self) -> Result<(), Error> {
        self.file.sync_data().await.at(&self.path)
    }

    /// A handle to sync the file later (a sealed segment's, in the background).
    pub(crate) fn sync_handle(&self) -> SyncHandle {
        SyncHandle::new(&self.file, &self.path)
    }
}

impl OffsetIndex {
    /// The position of the record `relative_offset` records into the segment.
    pub fn position(&self, relative_offset: u64) -> Option<u64> {
        let n = usize::try_from(relative_offset).ok()?;
        self.entries.get(n).map(|position| u64::from(position.0))
    }

    /// How many records from `relative_offset` on (at most `max_count`) lie
    /// within `max_bytes` of its start, given that the records end at `end`;
    /// at least one if there is one, however large.
    pub fn count_within(
        &self,
        relative_offset: u64,
        max_count: u64,
        max_bytes: u64,
        end: u64,
    ) -> u64 {
        let Some(start) = self.position(relative_offset) else {
            return 0;
        };
        let available = self.entries.len() as u64 - relative_offset;
        // Where the first `k` records end: where record `k` starts, or `end`.
        let end_of = |k: u64| self.position(relative_offset + k).unwrap_or(end);
        // Ends grow with `k`: binary search for the largest `k` that fits.
        let (mut low, mut high) = (1, max_count.min(available));
        if high == 0 {
            return 0;
        }
        while low < high {
            let mid = (low + high).div_ceil(2);
            if end_of(mid) - start <= max_bytes {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        low
    }
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is later than the last one's.
    pub fn push_if_newer(&mut self, timestamp: u64, relative_offset: u32) {
        if self.last().is_none_or(|last| timestamp > last.timestamp) {
            self.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    // ANCHOR: lookup
    /// The relative offset of the first record appended at `timestamp` or
    /// later, if this segment has one.
    pub fn lookup(&self, timestamp: u64) -> Option<u32> {
        let n = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        self.entries.get(n).map(|entry| entry.relative_offset)
    }
    // ANCHOR_END: lookup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_encode_and_decode() {
        let mut bytes = Vec::new();
        Position(0x0102_0304).encode(&mut bytes);
        assert_eq!(bytes, [4, 3, 2, 1]);
        assert_eq!(Position::decode(&bytes), Position(0x0102_0304));
        let entry = TimeEntry {
            timestamp: 7,
            relative_offset: 9,
        };
        let mut bytes = Vec::new();
        entry.encode(&mut bytes);
        assert_eq!(bytes.len(), TimeEntry::LEN);
        assert_eq!(TimeEntry::decode(&bytes), entry);
    }
}
