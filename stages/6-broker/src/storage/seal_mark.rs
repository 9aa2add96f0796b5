//! The seal mark: which sealed segment's background sync last returned, in a
//! small file of the partition's directory (`sealed-synced`).
//!
//! Sealing syncs in the background (see [`crate::storage::partition`]), so
//! after a power loss the last sealed segment may be unsynced: its last pages
//! lost, while index entries written earlier through the page cache still
//! point at them. Recovery cannot tell that from a whole segment by looking
//! at the index, and walking the last sealed segment at every open would
//! read up to a whole segment per partition. The mark tells it: a last sealed
//! segment named here was synced, indexes included, and is trusted like any
//! sealed segment; one not named here is walked from its first record (see
//! [`crate::storage::recovery`]).
//!
//! ```text
//! 0   u64  base offset of the sealed segment whose sync returned
//! 8   u32  crc32c of those 8 bytes
//! ```
//!
//! little-endian, written in place and synced after the segment's own syncs.
//! A missing, short or mismatched file names no segment: the walk is the
//! safe side. Rejected: a marker file per segment, which retention and the
//! stray cleanup would have to delete in step with each segment.

use std::path::{Path, PathBuf};

use compio::BufResult;
use compio::fs::{File, OpenOptions};
use compio::io::AsyncWriteAtExt;

use crate::storage::error::{Error, IoContext};

/// The file's name in the partition's directory.
pub const SEAL_MARK_FILE: &str = "sealed-synced";

const LEN: usize = 12;

/// The open mark file.
#[derive(Debug, Clone)]
pub(crate) struct SealMark {
    file: File,
    path: PathBuf,
}

impl SealMark {
    /// Opens (or creates) the mark in `dir`, and reads the base offset it
    /// names, if it names one.
    pub(crate) async fn open(dir: &Path) -> Result<(SealMark, Option<u64>), Error> {
        let path = dir.join(SEAL_MARK_FILE);
        let named = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error).at(&path),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .at(&path)?;
        Ok((SealMark { file, path }, named))
    }

    /// Names `base` as synced, and syncs the mark.
    pub(crate) async fn record(&self, base: u64) -> Result<(), Error> {
        let mut file = &self.file;
        let BufResult(result, _) = file.write_all_at(encode(base).to_vec(), 0).await;
        result.at(&self.path)?;
        self.file.sync_data().await.at(&self.path)
    }
}

fn encode(base: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..8]);
    bytes[8..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<u64> {
    let bytes: &[u8; LEN] = bytes.get(..LEN)?.try_into().ok()?;
    let base = bytes[..8].try_into().ok().map(u64::from_le_bytes)?;
    let crc = bytes[8..].try_into().ok().map(u32::from_le_bytes)?;
    (crc32c::crc32c(&bytes[..8]) == crc).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_names_its_base_and_nothing_else_names_any() {
        assert_eq!(decode(&encode(52_345)), Some(52_345));
        let mut flipped = encode(52_345);
        flipped[3] ^= 1;
        assert_eq!(decode(&flipped), None);
        assert_eq!(decode(&encode(7)[..LEN - 1]), None);
        assert_eq!(decode(&[]), None);
    }
}
