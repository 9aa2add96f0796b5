//! Errors of a batching stream.

use thiserror::Error;

/// An error from a batching stream.
#[derive(Debug, Error)]
pub enum Error {
    /// The log underneath (stage 1) failed: I/O, a record too large, a full log.
    #[error(transparent)]
    Log(#[from] stage1_file_log::Error),
    /// A write or sync failed earlier, so the stream takes no more writes.
    ///
    /// Never retried: after a failed `fsync` the kernel may already have dropped
    /// the dirty pages and marked them clean ("fsyncgate"), so a second `fsync`
    /// can succeed while the data is gone. Restarting recovers from the log.
    #[error(
        "stream refuses writes after an earlier failure ({reason}); restart it to recover from the log"
    )]
    Failed {
        /// What failed first.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A background task died (a bug, not an I/O error).
    #[error("internal task failed: {0}")]
    Task(String),
}
