//! Everything that can go wrong in the storage core, as types a caller can match on.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::storage::aligned::AllocError;
use crate::storage::config::ConfigError;

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
    /// The disk is full where the partition needed a new file or more room:
    /// the next segment (a batch that needed one was not stored; the
    /// half-made segment's files were removed), a new partition's first
    /// segment, or the consumer offsets file.
    ///
    /// Unlike [`Error::Failed`], nothing that was acknowledged is at risk: the
    /// partition still serves every record and takes the request again once
    /// space is freed (by retention, or by the operator).
    #[error(
        "disk is full ({source}) at {}: the request was not stored; the partition \
         is intact and takes writes again once space is freed",
        path.display()
    )]
    NoSpace {
        /// The file that could not be created or grown.
        path: PathBuf,
        /// What the operating system said (ENOSPC or EDQUOT).
        source: io::Error,
    },
    /// A truncation to an offset the partition does not hold: before its
    /// first stored offset or past its next one.
    #[error("cannot truncate to offset {offset}: the partition holds {first} to {next}")]
    TruncateOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The first offset stored.
        first: u64,
        /// The offset the next record would get.
        next: u64,
    },
    /// A restart at an offset the partition has passed: it only moves on.
    #[error("cannot restart at offset {offset}: the partition's next offset is already {next}")]
    RestartBehind {
        /// The offset asked for.
        offset: u64,
        /// The offset the next record would get.
        next: u64,
    },
    /// A replicated batch that does not continue the log: a record whose
    /// offset is not the next one, or whose checksum does not match.
    #[error(
        "replicated records must continue the log: expected offset {expected}, found \
         {found} (checksum {})",
        if *checksum_matches { "matches" } else { "does not match" }
    )]
    NotReplicable {
        /// The offset the record should have had.
        expected: u64,
        /// The offset it has.
        found: u64,
        /// Whether its checksum matches its bytes.
        checksum_matches: bool,
    },
    /// A consumer offset that cannot be stored: a name that is too long or
    /// empty, or an offset past the partition's end.
    #[error("invalid consumer offset: {reason}")]
    InvalidConsumerOffset {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Whether this is the operating system saying the disk (or the user's
    /// quota) is full: ENOSPC or EDQUOT.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => source_is_no_space(source),
            _ => false,
        }
    }

    /// [`Error::Io`] from a full disk as [`Error::NoSpace`]; anything else as it is.
    pub(crate) fn into_no_space(self) -> Error {
        match self {
            Error::Io { path, source } if source_is_no_space(&source) => {
                Error::NoSpace { path, source }
            }
            other => other,
        }
    }
}

fn source_is_no_space(source: &io::Error) -> bool {
    matches!(
        source.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
            || code == rustix::io::Errno::DQUOT.raw_os_error()
    )
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
    /// An extended record's extension section does not parse.
    #[error("record {record} (at byte {at}): bad extension section: {reason}")]
    Extension {
        /// The record's place in the batch, from 0.
        record: usize,
        /// Where the record starts in the batch.
        at: usize,
        /// What is wrong with its section.
        reason: ExtensionError,
    },
}

/// Why an extended record's section (see [`crate::storage::record`]) does
/// not parse. Every length is checked against the bytes that are there, so
/// each of these is an answer, never a panic or an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtensionError {
    /// The section is longer than the payload (or the payload is too short
    /// for `section_len` itself).
    #[error("it needs {needed} bytes of a {payload_len}-byte payload")]
    SectionPastPayload {
        /// Bytes from the start of the payload to the section's end.
        needed: u64,
        /// The payload's length.
        payload_len: usize,
    },
    /// `section_len` is shorter than the fixed fields (17 bytes).
    #[error("section_len {section_len} is shorter than its fixed fields' 17 bytes")]
    SectionTooShort {
        /// The `section_len` field.
        section_len: u32,
    },
    /// A flag bit that means nothing yet is set.
    #[error("unknown flags {flags:#04x}")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// A length field below -1 (-1 is null).
    #[error("{part} is {len}")]
    NegativeLength {
        /// The field.
        part: Part,
        /// Its value.
        len: i32,
    },
    /// A field runs past the end of the section.
    #[error("{part} needs {needed} bytes, {left} are left in the section")]
    PastSection {
        /// The field.
        part: Part,
        /// The bytes it needs.
        needed: u64,
        /// The bytes left.
        left: usize,
    },
    /// `header_count` claims more headers than the rest of the section can
    /// hold (each takes at least its two 4-byte lengths).
    #[error("header_count {count} is more than {left} bytes can hold")]
    TooManyHeaders {
        /// The `header_count` field.
        count: u32,
        /// Bytes left in the section after it.
        left: usize,
    },
    /// A header's name is not UTF-8.
    #[error("header {index}'s name is not UTF-8")]
    NameNotUtf8 {
        /// The header's place, from 0.
        index: u32,
    },
    /// Bytes are left in the section after the last header.
    #[error("{extra} bytes are left after the last header")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The null-value flag is set, and value bytes follow.
    #[error("the value is flagged null and has {value_len} bytes")]
    NullValueWithBytes {
        /// The value bytes after the section.
        value_len: usize,
    },
}

/// A field of an extension section, as an [`ExtensionError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `flags u8`.
    Flags,
    /// `create_time i64`.
    CreateTime,
    /// `key_len i32`.
    KeyLen,
    /// The key's bytes.
    Key,
    /// `header_count u32`.
    HeaderCount,
    /// Header `n`'s `name_len u32`.
    HeaderNameLen(u32),
    /// Header `n`'s name.
    HeaderName(u32),
    /// Header `n`'s `value_len i32`.
    HeaderValueLen(u32),
    /// Header `n`'s value.
    HeaderValue(u32),
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Flags => f.write_str("flags"),
            Part::CreateTime => f.write_str("create_time"),
            Part::KeyLen => f.write_str("key_len"),
            Part::Key => f.write_str("the key"),
            Part::HeaderCount => f.write_str("header_count"),
            Part::HeaderNameLen(n) => write!(f, "header {n}'s name_len"),
            Part::HeaderName(n) => write!(f, "header {n}'s name"),
            Part::HeaderValueLen(n) => write!(f, "header {n}'s value_len"),
            Part::HeaderValue(n) => write!(f, "header {n}'s value"),
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
