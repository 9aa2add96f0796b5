//! Retention: which old segments go, and deleting one so that a crash
//! halfway leaves a directory that opens.
//!
//! Two rules, both optional ([`Config::retention_bytes`],
//! [`Config::retention_age`]), both deleting **whole sealed segments, oldest
//! first, never the active one**:
//!
//! - by size: while the partition's records take more than `retention_bytes`,
//!   the oldest sealed segment goes;
//! - by age: a sealed segment goes once its *newest* record is older than
//!   `now - retention_age`, so no record is deleted before its time.
//!
//! Whole segments, as Kafka and Iggy do: deleting a file is one `unlink`,
//! where cutting records off the front of one would mean rewriting it (or
//! holes and a start offset per file). The price is granularity: a partition
//! keeps up to one segment more than the limits ask.
//!
//! A deleted offset is not an error for a consumer: a poll below the first
//! stored offset is served from the first stored one (see
//! [`crate::storage::partition`]).
//!
//! The order of a deletion, and why a crash anywhere in it is safe:
//!
//! 1. unlink the `.log`: from here the segment is gone, since recovery
//!    lists segments by their `.log` files;
//! 2. unlink the `.index` and `.timeindex`: a crash before this leaves them
//!    without a log, strays that [`remove_strays`] deletes on the next open;
//! 3. sync the directory, so the deletion survives a power cut before the
//!    next segment's is attempted: deletions land in order, oldest first, and
//!    the segments left are always a run of consecutive offsets.
//!
//! The rejected order, indexes first: a crash between would leave a log
//! without indexes, which recovery would rebuild (reading a whole segment)
//! only for retention to delete it again.

use std::path::Path;

use crate::storage::config::Config;
use crate::storage::error::{Error, IoContext};
use crate::storage::index::{OFFSET_INDEX_EXTENSION, TIME_INDEX_EXTENSION};
use crate::storage::segment::{LOG_EXTENSION, file_name, parse_file_name, remove_file, sync_dir};

/// What retention needs to know about a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedSegment {
    /// Bytes of records in it.
    pub bytes: u64,
    /// The timestamp of its newest record (µs since the UNIX epoch).
    pub newest_timestamp: u64,
}

// ANCHOR: expired
/// How many of the oldest sealed segments (`sealed`, oldest first) the rules
/// delete, for a partition whose records take `total_bytes` (the active
/// segment's included), at `now` (µs since the UNIX epoch).
pub fn expired(config: &Config, sealed: &[SealedSegment], total_bytes: u64, now: u64) -> usize {
    let mut remaining = total_bytes;
    let mut count = 0;
    for segment in sealed {
        let too_big = config
            .retention_bytes
            .is_some_and(|limit| remaining > limit);
        let too_old = config.retention_age.is_some_and(|age| {
            let age = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
            segment.newest_timestamp < now.saturating_sub(age)
        });
        if !(too_big || too_old) {
            // Segments are in time order, and the remaining bytes only shrink:
            // no later segment can be expired if this one is not.
            break;
        }
        remaining -= segment.bytes.min(remaining);
        count += 1;
    }
    count
}
// ANCHOR_END: expired

// ANCHOR: delete
/// Step 1 of a deletion: unlinks the log of the segment starting at `base`.
/// An error here leaves the segment whole.
pub async fn remove_log(dir: &Path, base: u64) -> Result<(), Error> {
    remove_file(&dir.join(file_name(base, LOG_EXTENSION))).await
}

/// Steps 2 and 3: unlinks the segment's indexes and syncs the directory. An
/// error here leaves strays, which the next open removes.
pub async fn remove_indexes(dir: &Path, base: u64) -> Result<(), Error> {
    for extension in [OFFSET_INDEX_EXTENSION, TIME_INDEX_EXTENSION] {
        remove_file(&dir.join(file_name(base, extension))).await?;
    }
    sync_dir(dir).await
}
// ANCHOR_END: delete

/// The whole deletion, for a segment that holds no record (one whose
/// creation a full disk stopped halfway).
pub async fn delete_segment(dir: &Path, base: u64) -> Result<(), Error> {
    remove_log(dir, base).await?;
    remove_indexes(dir, base).await
}

/// Removes index files whose segment has no log file (`bases` lists the
/// logs): what a deletion interrupted after its first step leaves. Returns
/// how many were removed.
///
/// `std::fs::read_dir`: compio has no directory listing; it runs on open.
pub async fn remove_strays(dir: &Path, bases: &[u64]) -> Result<usize, Error> {
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let base = parse_file_name(name, OFFSET_INDEX_EXTENSION)
            .or_else(|| parse_file_name(name, TIME_INDEX_EXTENSION));
        if let Some(base) = base
            && bases.binary_search(&base).is_err()
        {
            strays.push(dir.join(name));
        }
    }
    for stray in &strays {
        remove_file(stray).await?;
    }
    if !strays.is_empty() {
        sync_dir(dir).await?;
    }
    Ok(strays.len())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sealed(bytes: u64, newest_timestamp: u64) -> SealedSegment {
        SealedSegment {
            bytes,
            newest_timestamp,
        }
    }

    #[test]
    fn retention_rules_delete_oldest_first_and_stop_at_the_first_kept() {
        let none = Config::default();
        let segments = [sealed(100, 10), sealed(100, 20), sealed(100, 30)];
        assert_eq!(expired(&none, &segments, 350, 1_000), 0);

        let by_size = Config {
            retention_bytes: Some(150),
            ..Config::default()
        };
        // 350 bytes: dropping two leaves 150 (100 + the active segment's 50).
        assert_eq!(expired(&by_size, &segments, 350, 0), 2);
        assert_eq!(expired(&by_size, &segments, 150, 0), 0);
        // The active segment alone over the limit: every sealed one goes, no more.
        assert_eq!(expired(&by_size, &segments, 1_000, 0), 3);

        let by_age = Config {
            retention_age: Some(Duration::from_micros(15)),
            ..Config::default()
        };
        // now 40: older than 25 goes (10 and 20), 30 stays.
        assert_eq!(expired(&by_age, &segments, 350, 40), 2);
        // A segment exactly at the limit stays; a microsecond later it goes.
        assert_eq!(expired(&by_age, &segments, 350, 25), 0);
        assert_eq!(expired(&by_age, &segments, 350, 26), 1);
        assert_eq!(expired(&by_age, &segments, 350, 0), 0);
    }
}
