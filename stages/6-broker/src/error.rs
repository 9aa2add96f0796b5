//! Everything that can go wrong in the storage core, as types a caller can match on.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::aligned::AllocError;
use crate::config::ConfigError;

/// An error from a [`crate::Partition`] or one of its parts.
#[derive(Debug, Error)]
pub enum Error {
    /// The file system refused an open, read, write, sync or preallocation.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// `O_DIRECT` was refused when the file was opened (tmpfs, for one, does
    /// not support it).
    #[error(
        "Direct I/O is not supported for {}: the file system refused O_DIRECT \
         ({source}); use a disk-backed file system or set direct_io = false",
        path.display()
    )]
    DirectIoUnsupported {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The configuration does not hold together; the message names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An aligned buffer could not be allocated.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The bytes given to `append` are not whole records.
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    /// A batch larger than a whole segment: records are never split across
    /// segments, so it cannot be stored.
    #[error("a batch of {bytes} bytes cannot fit in a segment of {segment_size} bytes")]
    BatchTooLarge {
        /// The batch's size.
        bytes: u64,
        /// The configured segment size.
        segment_size: u64,
    },
    /// Stored bytes that are not the record that must be there.
    ///
    /// A torn tail (the end of the last write before a crash) is repaired on
    /// open and is never this error. This is damage with valid records after
    /// it, or a record whose checksum fails when it is polled: the record is
    /// not served, and the files are left for an operator to inspect.
    #[error("corrupt segment {} at byte {position}: {reason}", segment.display())]
    Corrupt {
        /// The segment's log file.
        segment: PathBuf,
        /// Where the bad record starts in it.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// An earlier write or sync failed, so the partition takes no more writes.
    ///
    /// Never retried: after a failed `fsync` the kernel may already have dropped
    /// the dirty pages and marked them clean ("fsyncgate"), so a second sync can
    /// succeed while the data is gone. Reopening recovers from the log.
    #[error("partition refuses writes after an earlier failure ({reason}); reopen it to recover")]
    Failed {
        /// What failed first.
        reason: String,
    },
}

/// Why the bytes given to `append` are not a batch of records.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// No records at all.
    #[error("no records")]
    Empty,
    /// A header or payload runs past the end of the bytes.
    #[error("record at byte {at} needs {needed} bytes, {available} are left")]
    Truncated {
        /// Where the record starts in the batch.
        at: usize,
        /// Bytes the record's header says it has (or a header's 32).
        needed: usize,
        /// Bytes left from `at`.
        available: usize,
    },
}

/// Attaches the file's path to an `io::Error`, so a message says which file failed.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
