//! The machine's raw limits: the same bytes a stage writes, written with nothing
//! else in the way (no encoding, no index, no bookkeeping).
//!
//! A stage's throughput means little alone; as a fraction of what the disk does
//! for the same bytes through the same system calls, it says how much the stage
//! itself costs. So every benchmark group measures these beside the stages.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Large writes and reads go in chunks of this size: big enough that the
/// per-call cost vanishes, small enough to stay in the CPU cache.
pub const LARGE_CHUNK: usize = 1 << 20;

/// A plain append-only file, emptied when it passes `cap` bytes so a long
/// benchmark does not fill the disk.
#[derive(Debug)]
pub struct RawFile {
    path: PathBuf,
    file: File,
    len: u64,
    cap: u64,
}

impl RawFile {
    /// Creates (or empties) `name` in `dir`.
    pub fn create(dir: &Path, name: &str, cap: u64) -> std::io::Result<RawFile> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        file.set_len(0)?;
        Ok(RawFile {
            path,
            file,
            len: 0,
            cap,
        })
    }

    /// Empties the file if the next `bytes` would pass the cap. Call it outside
    /// the timed part.
    pub fn make_room(&mut self, bytes: u64) -> std::io::Result<()> {
        if self.len + bytes > self.cap {
            self.file.set_len(0)?;
            self.len = 0;
        }
        Ok(())
    }

    /// Times `count` writes of `record`, with a `sync_all` after each if `sync`.
    pub fn write_each(
        &mut self,
        record: &[u8],
        count: u64,
        sync: bool,
    ) -> std::io::Result<Duration> {
        self.make_room(record.len() as u64 * count)?;
        let start = Instant::now();
        for _ in 0..count {
            (&self.file).write_all(record)?;
            if sync {
                self.file.sync_all()?;
            }
        }
        let elapsed = start.elapsed();
        self.len += record.len() as u64 * count;
        Ok(elapsed)
    }

    /// Times writing `bytes` bytes in [`LARGE_CHUNK`] writes, then one
    /// `sync_all` if `sync`: the disk's own limit for buffered writes.
    pub fn write_large(&mut self, bytes: u64, sync: bool) -> std::io::Result<Duration> {
        self.make_room(bytes)?;
        let chunk = vec![0x5a; LARGE_CHUNK];
        let start = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(LARGE_CHUNK as u64) as usize;
            (&self.file).write_all(&chunk[..n])?;
            left -= n as u64;
        }
        if sync {
            self.file.sync_all()?;
        }
        let elapsed = start.elapsed();
        self.len += bytes;
        Ok(elapsed)
    }

    /// Times one write of `bytes` followed by `fdatasync`: what one durable
    /// batch costs the disk, with nothing else in the way.
    pub fn write_then_sync_data(&mut self, bytes: &[u8]) -> std::io::Result<Duration> {
        self.make_room(bytes.len() as u64)?;
        let start = Instant::now();
        (&self.file).write_all(bytes)?;
        self.file.sync_data()?;
        let elapsed = start.elapsed();
        self.len += bytes.len() as u64;
        Ok(elapsed)
    }

    /// Reads `len` bytes at `position` into `buf` (resized to fit).
    pub fn read_at(&self, buf: &mut Vec<u8>, position: u64, len: usize) -> std::io::Result<()> {
        buf.resize(len, 0);
        self.file.read_exact_at(buf, position)
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
