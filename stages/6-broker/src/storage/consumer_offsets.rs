//! Consumer offsets, stored in the partition's directory: for each consumer
//! name, the next offset it will read.
//!
//! The file (`consumer-offsets`) is a log of entries, each one store:
//!
//! ```text
//! 0        u32  crc32c       of the bytes after it (name_len, name, offset)
//! 4        u16  name_len     1 to 255
//! 6        [u8] name         UTF-8, name_len bytes
//! 6 + len  u64  offset       the next offset the consumer will read
//! ```
//!
//! little-endian, one after the other; the last entry for a name wins. A
//! store is one small append, not a rewrite of every consumer's offset: a
//! consumer committing after each poll would otherwise rewrite the whole
//! table each time. On open, entries are read until the first that is
//! torn or fails its checksum (the end of the last write before a crash),
//! and the file is cut there. Once the file is well past what the live
//! offsets need, it is compacted: the live entries are written to a temporary
//! file, synced, and renamed over it, so a crash leaves either file whole.
//!
//! When a store is durable is the partition's decision (its fsync policy, see
//! [`crate::storage::partition`]); this module writes, and syncs when told to.
//!
//! **Sync order: an offset never reaches the file before the records it
//! points past are safe.** A consumer commits what it read, and it may read
//! records that are acknowledged but not yet synced (or, with Direct I/O, not
//! yet written from the partition's buffer). Were the commit written at
//! once, a crash could keep the commit and lose the records: the consumer
//! would come back past the end of the log and skip every message produced
//! after the restart until the log grew past its offset. So a store is
//! visible to reads at once, but an offset above the partition's safe
//! watermark (what [`ConsumerOffsets::store`] is given) is *held* in memory
//! and written by [`ConsumerOffsets::release`] once the records below it are
//! safe. Rejected: syncing the records on every commit that points past
//! them, which would make a consumer's commit pay a sync the producer's
//! policy chose not to. A crash loses the held commits; the consumer then
//! reads those records again (at least once, never past the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use compio::BufResult;
use compio::fs::{File, OpenOptions};
use compio::io::AsyncWriteAtExt;

use crate::storage::error::{Error, IoContext};
use crate::storage::segment::{remove_file, sync_dir};

/// The file's name in the partition's directory.
pub const CONSUMER_OFFSETS_FILE: &str = "consumer-offsets";

/// Where a compaction is written before it is renamed over the file.
const COMPACTING_FILE: &str = "consumer-offsets.compacting";

/// The longest consumer name stored, in bytes (the protocol's name limit).
pub const MAX_CONSUMER_NAME_LEN: usize = 255;

/// Bytes of an entry besides its name: checksum, name length, offset.
const ENTRY_OVERHEAD: usize = 4 + 2 + 8;

/// The file is compacted once it is larger than this and more than
/// [`COMPACT_RATIO`] times what its live entries take. The floor keeps a
/// few busy consumers from rewriting a tiny file every few stores; the
/// ratio keeps a compaction's cost proportional to the stores since the last.
const COMPACT_MIN_BYTES: u64 = 64 << 10;
const COMPACT_RATIO: u64 = 4;

// ANCHOR: consumer_offsets
/// A partition's stored consumer offsets: in memory, and the file they are
/// saved to (see the module docs).
#[derive(Debug)]
pub struct ConsumerOffsets {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// What reads see: every store, held ones included.
    offsets: BTreeMap<String, u64>,
    /// What the file says (or will, once synced): no held store in it.
    persisted: BTreeMap<String, u64>,
    /// Stores above the safe watermark, waiting for their records.
    held: BTreeMap<String, u64>,
    /// Bytes of valid entries in the file: where the next one goes.
    len: u64,
    /// Entries written since the last sync.
    unsynced: bool,
    /// A write or sync of the file failed: what is on disk is unknown (after
    /// a failed sync the kernel may have dropped the pages), so the next
    /// store or sync rewrites the file whole from memory rather than trust
    /// it or retry the sync.
    damaged: bool,
}
// ANCHOR_END: consumer_offsets

impl ConsumerOffsets {
    /// Opens (or creates) the offsets file in `dir` and reads it; a torn or
    /// corrupt tail is cut off.
    pub async fn open(dir: &Path) -> Result<ConsumerOffsets, Error> {
        let path = dir.join(CONSUMER_OFFSETS_FILE);
        // A compaction a crash interrupted before its rename: the file it
        // was replacing is still whole.
        remove_file(&dir.join(COMPACTING_FILE)).await?;
        let existed = compio::fs::metadata(&path).await.is_ok();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await
            .at(&path)?;
        if !existed {
            // The new name, once: without it a power cut could lose the file
            // with synced offsets in it.
            sync_dir(dir).await?;
        }
        let bytes = compio::fs::read(&path).await.at(&path)?;
        let (offsets, len) = parse(&bytes);
        if len < bytes.len() as u64 {
            // Not synced: new entries are written from `len` on, over the cut
            // bytes, so whether the cut survives a crash does not matter.
            file.set_len(len).await.at(&path)?;
        }
        Ok(ConsumerOffsets {
            dir: dir.to_path_buf(),
            path,
            file,
            persisted: offsets.clone(),
            held: BTreeMap::new(),
            offsets,
            len,
            unsynced: false,
            damaged: false,
        })
    }

    /// The offset stored for `consumer`.
    pub fn get(&self, consumer: &str) -> Option<u64> {
        self.offsets.get(consumer).copied()
    }

    /// Every stored offset, by consumer name.
    pub fn all(&self) -> Vec<(String, u64)> {
        self.offsets
            .iter()
            .map(|(name, &offset)| (name.clone(), offset))
            .collect()
    }

    /// Whether stores were written that are not synced yet.
    pub fn is_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Offsets past `next_offset` (the log's end after recovery) brought
    /// back to it: what a store written before the sync-order rule, or a log
    /// cut by recovery, can leave. The second line of defence behind the
    /// sync order; each one is returned, `(consumer, stored, now)`, for the
    /// partition to log.
    pub async fn clamp(&mut self, next_offset: u64) -> Result<Vec<(String, u64, u64)>, Error> {
        let past: Vec<(String, u64)> = self
            .offsets
            .iter()
            .filter(|(_, offset)| **offset > next_offset)
            .map(|(name, offset)| (name.clone(), *offset))
            .collect();
        for (name, _) in &past {
            self.store(name, next_offset, next_offset).await?;
        }
        Ok(past
            .into_iter()
            .map(|(name, stored)| (name, stored, next_offset))
            .collect())
    }

    // ANCHOR: store
    /// Stores `offset` for `consumer`, seen by reads at once. If the records
    /// below it are safe (`offset <= safe`, the partition's watermark), one
    /// entry is appended to the file (not synced: see
    /// [`ConsumerOffsets::sync`]), or the file is compacted if it has grown
    /// past its bound; if not, the store is held until
    /// [`ConsumerOffsets::release`] (see the module docs).
    pub async fn store(&mut self, consumer: &str, offset: u64, safe: u64) -> Result<(), Error> {
        check_consumer_name(consumer)?;
        self.offsets.insert(consumer.to_string(), offset);
        if offset > safe {
            self.held.insert(consumer.to_string(), offset);
            return Ok(());
        }
        self.held.remove(consumer);
        self.persist(consumer, offset).await
    }

    /// Writes the held stores that the records now cover (`safe`, the
    /// partition's new watermark), before the partition syncs this file.
    pub async fn release(&mut self, safe: u64) -> Result<(), Error> {
        let ready: Vec<(String, u64)> = self
            .held
            .iter()
            .filter(|(_, offset)| **offset <= safe)
            .map(|(name, offset)| (name.clone(), *offset))
            .collect();
        for (name, offset) in ready {
            self.held.remove(&name);
            self.persist(&name, offset).await?;
        }
        Ok(())
    }

    /// Stores held until their records are safe.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    async fn persist(&mut self, consumer: &str, offset: u64) -> Result<(), Error> {
        self.persisted.insert(consumer.to_string(), offset);
        self.unsynced = true;
        let compact = self.damaged
            || (self.len > COMPACT_MIN_BYTES && self.len > COMPACT_RATIO * self.live_bytes());
        let result = if compact {
            self.compact().await
        } else {
            self.append(consumer, offset).await
        };
        self.damaged = result.is_err();
        result
    }

    async fn append(&mut self, consumer: &str, offset: u64) -> Result<(), Error> {
        let mut entry = Vec::with_capacity(ENTRY_OVERHEAD + consumer.len());
        encode(&mut entry, consumer, offset);
        let mut file = &self.file;
        let BufResult(result, _) = file.write_all_at(entry, self.len).await;
        result.at(&self.path)?;
        self.len += (ENTRY_OVERHEAD + consumer.len()) as u64;
        Ok(())
    }
    // ANCHOR_END: store

    /// Syncs the entries written since the last sync, if there are any
    /// (after an earlier failure, by rewriting the file whole instead).
    pub async fn sync(&mut self) -> Result<(), Error> {
        if !self.unsynced {
            return Ok(());
        }
        let result = if self.damaged {
            self.compact().await
        } else {
            self.file.sync_data().await.at(&self.path)
        };
        self.damaged = result.is_err();
        if result.is_ok() {
            self.unsynced = false;
        }
        result
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    fn live_bytes(&self) -> u64 {
        self.persisted
            .keys()
            .map(|name| (ENTRY_OVERHEAD + name.len()) as u64)
            .sum()
    }

    // ANCHOR: compact
    /// Rewrites the file with one entry per consumer: written to a temporary
    /// file, synced, renamed over the file, and the directory synced. A crash
    /// before the rename leaves the old file (and a temporary one that open
    /// removes), after it the new one; never a mix. Everything stored is
    /// durable once it returns.
    async fn compact(&mut self) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(self.live_bytes() as usize);
        // The persisted view only: a held store must not reach the file
        // through a compaction either.
        for (name, &offset) in &self.persisted {
            encode(&mut bytes, name, offset);
        }
        let len = bytes.len() as u64;
        let temporary = self.dir.join(COMPACTING_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .await
            .at(&temporary)?;
        let mut writer = &file;
        let BufResult(result, _) = writer.write_all_at(bytes, 0).await;
        result.at(&temporary)?;
        file.sync_all().await.at(&temporary)?;
        compio::fs::rename(&temporary, &self.path)
            .await
            .at(&self.path)?;
        sync_dir(&self.dir).await?;
        self.file = file;
        self.len = len;
        self.unsynced = false;
        Ok(())
    }
    // ANCHOR_END: compact
}

/// Refuses a name the file cannot hold: empty, or longer than
/// [`MAX_CONSUMER_NAME_LEN`] bytes. The protocol checks names before they
/// get here, but the length is a field of the file format, so it is checked
/// where the format is written.
fn check_consumer_name(consumer: &str) -> Result<(), Error> {
    if consumer.is_empty() || consumer.len() > MAX_CONSUMER_NAME_LEN {
        return Err(Error::InvalidConsumerOffset {
            reason: format!(
                "a consumer name has 1 to {MAX_CONSUMER_NAME_LEN} bytes, got {}",
                consumer.len()
            ),
        });
    }
    Ok(())
}

/// Appends one entry to `out`.
fn encode(out: &mut Vec<u8>, consumer: &str, offset: u64) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // Below 256: checked by `check_consumer_name` (or read back so).
    out.extend_from_slice(&(consumer.len() as u16).to_le_bytes());
    out.extend_from_slice(consumer.as_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    let checksum = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&checksum.to_le_bytes());
}

/// The offsets in `bytes` (last entry per name wins), and how many bytes of
/// whole, valid entries lead it.
fn parse(bytes: &[u8]) -> (BTreeMap<String, u64>, u64) {
    let mut offsets = BTreeMap::new();
    let mut at = 0;
    while let Some((name, offset, len)) = entry_at(bytes.get(at..).unwrap_or_default()) {
        offsets.insert(name, offset);
        at += len;
    }
    (offsets, at as u64)
}

/// The entry at the start of `bytes`, with its length, if it is whole and valid.
fn entry_at(bytes: &[u8]) -> Option<(String, u64, usize)> {
    let checksum = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let name_len = usize::from(u16::from_le_bytes(bytes.get(4..6)?.try_into().ok()?));
    if name_len == 0 || name_len > MAX_CONSUMER_NAME_LEN {
        return None;
    }
    let len = ENTRY_OVERHEAD + name_len;
    let entry = bytes.get(..len)?;
    if crc32c::crc32c(&entry[4..]) != checksum {
        return None;
    }
    let name = std::str::from_utf8(&entry[6..6 + name_len]).ok()?;
    let offset = u64::from_le_bytes(entry[6 + name_len..].try_into().ok()?);
    Some((name.to_string(), offset, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_offsets_entries_parse_back_and_stop_at_damage() {
        let mut bytes = Vec::new();
        encode(&mut bytes, "a", 5);
        encode(&mut bytes, "bb", 7);
        encode(&mut bytes, "a", 9);
        let whole = bytes.len() as u64;
        let (offsets, len) = parse(&bytes);
        assert_eq!(len, whole);
        assert_eq!(offsets.get("a"), Some(&9));
        assert_eq!(offsets.get("bb"), Some(&7));
        // Every cut inside the last entry drops it, and only it.
        for cut in 1..(ENTRY_OVERHEAD + 1) {
            let (offsets, len) = parse(&bytes[..bytes.len() - cut]);
            assert_eq!(offsets.get("a"), Some(&5));
            assert_eq!(len, whole - (ENTRY_OVERHEAD + 1) as u64);
        }
        // A flipped bit in the second entry ends the file there.
        bytes[ENTRY_OVERHEAD + 1 + 7] ^= 1;
        let (offsets, len) = parse(&bytes);
        assert_eq!(len, (ENTRY_OVERHEAD + 1) as u64);
        assert_eq!(offsets.len(), 1);
        // Zeros (a preallocated or torn tail) are no entry: name_len 0.
        assert_eq!(parse(&[0; 64]).1, 0);
    }
}
