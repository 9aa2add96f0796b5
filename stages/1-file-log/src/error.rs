//! Everything that can go wrong in a stream, as a type a caller can match on.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::message::RecordError;

/// An error from [`crate::Stream`].
#[derive(Debug, Error)]
pub enum Error {
    /// The file system refused a read, write, sync or open.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The message cannot be encoded as a record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The index stores positions as `u32`, so the log cannot grow past 4 GiB.
    ///
    /// Returned instead of letting a position wrap around and point at the
    /// wrong record. Stage 6 lifts the limit by splitting the log into segments.
    #[error(
        "log full: a {record_len}-byte record at position {log_len} would pass the \
         {limit}-byte limit of a u32 index position"
    )]
    LogFull {
        /// The log's current length.
        log_len: u64,
        /// The record that did not fit.
        record_len: u64,
        /// The largest log the index can address.
        limit: u64,
    },
    /// The log holds bytes that are not a record where a record must be.
    ///
    /// A torn tail is repaired on open and is never this error; this is damage
    /// in the middle, which stage 1 cannot tell from data (it has no checksum),
    /// so it refuses to guess and leaves the files for an operator to inspect.
    #[error("corrupt log {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the bad record starts.
        position: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// An earlier append failed part-way, so the files may not match memory.
    #[error("stream {id} refuses writes after an earlier I/O error; reopen it to recover")]
    Failed {
        /// The stream's id.
        id: u32,
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
