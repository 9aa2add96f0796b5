//! Starting the kernel's writeback of a range of a file written through the
//! page cache, without waiting for it: `sync_file_range(SYNC_FILE_RANGE_WRITE)`.
//!
//! In page-cache mode (`direct_io` off) a segment's pages stay dirty until
//! the kernel's own writeback takes them (on a machine with plenty of memory,
//! when they are 30 s old or a tenth of memory is dirty) or a sync does. Left
//! alone, the sealing sync finds a whole segment dirty and floods the disk
//! with it, and the appends to the next segment wait on the file system
//! meanwhile. So a segment asks for the writeback of its written blocks every
//! `STEP` bytes, and the disk takes them a few megabytes at a time. This
//! makes nothing durable (the fsync policy still decides that, with
//! `fdatasync`), and a failure is reported by that later sync, so an error
//! here is only logged. Rejected: `posix_fadvise(DONTNEED)`, which starts the
//! same writeback but then drops the pages consumers are about to read.
//!
//! The second module of the crate with unsafe code (after [`crate::storage::aligned`]):
//! `sync_file_range` has no safe wrapper in the crates the engine uses.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};

/// Bytes of written blocks between two writeback requests: small enough that
/// a seal finds at most this much (and what is still on its way) left to
/// sync, large enough that the requests cost nothing beside the writes.
pub(crate) const STEP: u64 = 8 << 20;

/// Asks the kernel to start writing back `offset..offset + len` of `file`
/// and returns without waiting for it. Blocking if the device's queue is
/// full: run it off the shard's thread.
pub(crate) fn start(file: &OwnedFd, offset: u64, len: u64) -> std::io::Result<()> {
    let (offset, len) = match (i64::try_from(offset), i64::try_from(len)) {
        (Ok(offset), Ok(len)) => (offset, len),
        _ => return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
    };
    // SAFETY: the call reads no memory of ours; `file` is an open descriptor
    // owned for the duration of the call.
    let result = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    match result {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
