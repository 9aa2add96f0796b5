//! The raft log of the metadata group, on files: [`LogStore`] implements
//! openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! Layout of the folder (`data/cluster/raft/` in a broker):
//! - `log`: entries appended one after the other, each framed as
//!   `u32 length (LE) | u32 crc32c of the body (LE) | body`, the body being
//!   the entry as JSON. One `sync_data` per `append` call, however many
//!   entries it carries, before openraft is told the entries are durable.
//! - `vote`, `committed`, `purged`: whole-file records replaced atomically
//!   ([`super::files`]).
//!
//! Opening reads the whole log and stops at the first entry that is short,
//! longer than [`MAX_ENTRY`], fails its checksum or does not decode, and cuts
//! the file there: that tail is what a crash in the middle of an append
//! leaves, and it was never acknowledged (stage 1's torn tail, again).
//! Entries live in memory too (`BTreeMap` by index): the metadata log is
//! small, because a snapshot every thousand entries lets openraft purge it.
//!
//! `truncate` cuts the file at the first removed entry's byte offset, so
//! there is never a hole. `purge` writes `purged` first, then rewrites the
//! log without the purged entries (temp file, fsync, rename): a crash in
//! between leaves entries at or below `purged`, which opening skips.
//! Rejected: one file per entry (thousands of fsyncs of a folder), a
//! segmented log (1,024 entries a file, as the design sketched: worth it
//! only if rewriting what is left after a purge, a few hundred entries,
//! became measurable), and an embedded database (a dependency to teach
//! around, for a log of kilobytes).
//!
//! Blocking `std::fs` calls run on the raft thread: a few milliseconds per
//! write, and that thread does nothing else that is latency sensitive.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId, RaftLogReader, StorageIOError};

use super::files::{read_atomic, sync_dir, write_atomic};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Longest entry body accepted when reading the log back, checked before
/// allocating: a damaged length field must not make us allocate gigabytes.
pub const MAX_ENTRY: u32 = 16 << 20;

const HEADER: usize = 8;

type Shared = Arc<Mutex<BTreeMap<u64, Entry>>>;

fn lock(entries: &Shared) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads entries; cloned for openraft's replication tasks.
#[derive(Debug, Clone)]
pub struct LogReader {
    entries: Shared,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.entries)
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// The raft log on files in one folder.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    file: File,
    /// Byte offset in `log` where each present entry starts.
    offsets: BTreeMap<u64, u64>,
    /// Length of `log`'s valid part.
    end: u64,
    reader: LogReader,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// Bytes cut from a torn tail when this store was opened.
    cut_at_open: u64,
}

/// Frames one entry as it is stored.
fn frame(entry: &Entry) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_ENTRY)
        .ok_or_else(|| io::Error::other("raft entry too large"))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the valid prefix of a log file: entries with their offsets, and
/// where the valid part ends.
fn decode(bytes: &[u8]) -> (Vec<(u64, Entry)>, u64) {
    let mut entries: Vec<(u64, Entry)> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_ENTRY {
            break;
        }
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len as usize) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(body) else {
            break;
        };
        // Indexes follow each other; anything else is not a log we wrote.
        if let Some((_, last)) = entries.last()
            && entry.get_log_id().index != last.get_log_id().index + 1
        {
            break;
        }
        entries.push((at as u64, entry));
        at += HEADER + len as usize;
    }
    (entries, at as u64)
}

fn io_err(e: io::Error) -> StorageError {
    StorageError::from(StorageIOError::write_logs(&e))
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (decoded, end) = decode(&bytes);
        let cut_at_open = bytes.len() as u64 - end;
        if cut_at_open > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = cut_at_open,
                "raft log: cutting a torn or damaged tail"
            );
            file.set_len(end)?;
            file.sync_all()?;
        }
        sync_dir(dir)?;
        let purged: Option<LogId> = read_atomic(dir, "purged")?;
        let mut offsets = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for (offset, entry) in decoded {
            let index = entry.get_log_id().index;
            if purged.is_some_and(|p| index <= p.index) {
                continue;
            }
            offsets.insert(index, offset);
            entries.insert(index, entry);
        }
        Ok(Self {
            vote: read_atomic(dir, "vote")?,
            // Written as `Option<LogId>`: `null` is a valid file.
            committed: read_atomic::<Option<LogId>>(dir, "committed")?.flatten(),
            purged,
            dir: dir.to_path_buf(),
            file,
            offsets,
            end,
            reader: LogReader {
                entries: Arc::new(Mutex::new(entries)),
            },
            cut_at_open,
        })
    }

    /// Bytes of torn or damaged tail cut when this store was opened.
    pub fn cut_at_open(&self) -> u64 {
        self.cut_at_open
    }

    fn write_entries(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for entry in &entries {
            starts.push(self.end + buf.len() as u64);
            buf.extend_from_slice(&frame(entry)?);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.end += buf.len() as u64;
        let mut map = lock(&self.reader.entries);
        for (entry, start) in entries.into_iter().zip(starts) {
            let index = entry.get_log_id().index;
            self.offsets.insert(index, start);
            map.insert(index, entry);
        }
        Ok(())
    }

    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some(&cut) = self.offsets.range(index..).next().map(|(_, o)| o) else {
            return Ok(());
        };
        self.file.set_len(cut)?;
        self.file.sync_data()?;
        self.end = cut;
        self.offsets.split_off(&index);
        lock(&self.reader.entries).split_off(&index);
        Ok(())
    }

    fn purge_upto(&mut self, log_id: LogId) -> io::Result<()> {
        write_atomic(&self.dir, "purged", &log_id)?;
        self.purged = Some(log_id);
        let kept: Vec<Entry> = {
            let mut map = lock(&self.reader.entries);
            *map = map.split_off(&(log_id.index + 1));
            map.values().cloned().collect()
        };
        // Rewrite the log with what is left, then swap it in atomically.
        let tmp = self.dir.join("log.tmp");
        let mut buf = Vec::new();
        let mut offsets = BTreeMap::new();
        for entry in &kept {
            offsets.insert(entry.get_log_id().index, buf.len() as u64);
            buf.extend_from_slice(&frame(entry)?);
        }
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&buf)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join("log"))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join("log"))?;
        self.offsets = offsets;
        self.end = buf.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.reader.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last = lock(&self.reader.entries)
            .values()
            .next_back()
            .map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: self.purged,
            last_log_id: last.or(self.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        write_atomic(&self.dir, "vote", vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        write_atomic(&self.dir, "committed", &committed).map_err(io_err)?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // An fsync error is returned, never retried: after a failed fsync the
        // kernel may have dropped the dirty pages, so a retry proves nothing.
        match self.write_entries(entries.into_iter().collect()) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = io_err(io::Error::new(e.kind(), e.to_string()));
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.truncate_from(log_id.index).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.purge_upto(log_id).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(store: &mut LogStore, range: std::ops::Range<u64>) {
        store.write_entries(range.map(entry).collect()).unwrap();
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        lock(&store.reader.entries).keys().copied().collect()
    }

    #[test]
    fn torn_tail_is_cut_at_open_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, 1..6);
        let full = store.end;
        drop(store);
        // Tear the last entry: keep only part of its body.
        let path = dir.path().join("log");
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full - 3).unwrap();
        drop(file);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
        assert!(store.cut_at_open() > 0);
        append(&mut store, 5..7);
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(store.cut_at_open(), 0);
    }

    #[test]
    fn damaged_checksum_and_huge_length_stop_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, 1..4);
        let third = store.offsets[&3];
        drop(store);
        let path = dir.path().join("log");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2]);
        // A length field far beyond MAX_ENTRY: refused before allocating.
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(third as usize);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 12]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2]);
    }

    #[test]
    fn vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let vote = Vote::new(4, 2);
        let committed = *entry(7).get_log_id();
        runtime.block_on(async {
            store.save_committed(None).await.unwrap();
            store.save_vote(&vote).await.unwrap();
        });
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!((store.vote, store.committed), (Some(vote), None));
        runtime
            .block_on(store.save_committed(Some(committed)))
            .unwrap();
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.committed, Some(committed));
        // A damaged vote file is an error, never a different vote.
        let path = dir.path().join("vote");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(LogStore::open(dir.path()).is_err());
    }

    #[test]
    fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, 1..11);
        store.truncate_from(8).unwrap();
        append(&mut store, 8..9);
        store.purge_upto(*entry(3).get_log_id()).unwrap();
        append(&mut store, 9..10);
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(store.purged.map(|p| p.index), Some(3));
    }
}
