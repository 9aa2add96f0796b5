//! The offset index: entry `n` is the byte position of record `n` in the log.
//!
//! Every entry is a little-endian `u32`, so finding a record is one read at
//! `4 * offset` (the talk's "Reading the index" slide) instead of a walk of the log.
//! The price of `u32` is a 4 GiB log, enforced by [`MAX_LOG_BYTES`].
//!
//! The index is derived data: it is never synced on its own, because everything
//! in it can be rebuilt from the log (see [`crate::recovery`]).

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes per index entry.
pub const ENTRY_LEN: u64 = 4;

/// The longest log a `u32` position can address.
pub const MAX_LOG_BYTES: u64 = u32::MAX as u64;

// ANCHOR: read_entry
/// Reads the position of record `offset` with one positional read.
///
/// A positional read (`pread`) rather than the talk's `seek` + `read`, so that
/// polling needs only `&self` and never moves a shared file cursor.
pub fn read_entry(index: &File, offset: u64) -> std::io::Result<u32> {
    // EXERCISE: read_entry
    // HINT: entry n is the 4 bytes at n * ENTRY_LEN; one positional read (read_exact_at).
    let mut entry = [0; ENTRY_LEN as usize];
    index.read_exact_at(&mut entry, offset * ENTRY_LEN)?;
    Ok(u32::from_le_bytes(entry))
    // EXERCISE_END
}
// ANCHOR_END: read_entry

/// Reads every whole entry; a partial entry at the end (a torn write) is ignored.
pub fn read_all(index: &File) -> std::io::Result<Vec<u32>> {
    // Sized from the file itself, so the allocation is what is on disk, no more.
    let len = usize::try_from(index.metadata()?.len()).unwrap_or(usize::MAX);
    let mut bytes = vec![0; len];
    index.read_exact_at(&mut bytes, 0)?;
    Ok(bytes
        .chunks_exact(ENTRY_LEN as usize)
        .map(|entry| {
            let mut le = [0; ENTRY_LEN as usize];
            le.copy_from_slice(entry);
            u32::from_le_bytes(le)
        })
        .collect())
}
