//! Everything that can go wrong in a partition, as a type a caller can match on.

use std::io;
use std::path::{Path, PathBuf};

use stage3_tcp_server::ServeError;
use thiserror::Error;

/// An error from a [`crate::Partition`].
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
    /// The index stores positions as `u32` (stage 1's), so the log cannot
    /// grow past 4 GiB; the batch is refused whole. Stage 6 splits the log
    /// into segments.
    #[error(
        "log full: a {batch_len}-byte batch at position {log_len} would pass the \
         {limit}-byte limit of a u32 index position"
    )]
    LogFull {
        /// The log's current length.
        log_len: u64,
        /// The batch that did not fit.
        batch_len: u64,
        /// The largest log the index can address.
        limit: u64,
    },
    /// The log holds bytes that are not a valid record where one must be:
    /// damage in the middle, not a torn tail. The files are left as they are.
    #[error("corrupt log {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the bad record starts.
        position: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// A write or sync failed earlier, so the partition takes no more writes.
    ///
    /// Never retried, as in stage 2: after a failed `fsync` the kernel may have
    /// dropped the dirty pages and marked them clean, so a second `fsync` can
    /// succeed while the data is gone. Restarting recovers from the log.
    #[error(
        "partition refuses writes after an earlier failure ({reason}); restart to recover from the log"
    )]
    Failed {
        /// What failed first.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<Error> for ServeError {
    fn from(error: Error) -> ServeError {
        match error {
            // A batch that does not fit is the request's fault, not the disk's.
            Error::LogFull { .. } => ServeError::invalid(error.to_string()),
            _ => ServeError::storage(error),
        }
    }
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
