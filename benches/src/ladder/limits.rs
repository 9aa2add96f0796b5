//! The machine's raw limits, measured in the same run as the ladder: what the
//! disk, the loopback network and memory do with nothing of ours in the way.
//!
//! - sequential **Direct I/O** writes and reads (O_DIRECT, 4096-aligned buffers),
//!   at the workload's block size and at 1 MiB, each write pass ending in a sync;
//! - **fsync latency**: one 4 KiB write + `fdatasync`, repeated, as percentiles;
//! - **loopback TCP**: one connection, 1 MiB writes, read and dropped by a thread;
//! - **memory copy**: `copy_from_slice` between two 64 MiB buffers.
//!
//! Each is a single pass, not a statistic: the ladder compares rungs against
//! limits taken minutes apart on the same machine, which is the point.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::latency::{Percentiles, histogram};

/// Direct I/O alignment: 4096 everywhere, whatever the device's logical block
/// size (512 on the development machine), so the same code is right on 4Kn
/// drives too.
pub const ALIGN: usize = 4096;
/// The large block size every limit is also measured at.
pub const LARGE_BLOCK: usize = 1 << 20;

/// What the raw measurements found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// The workload's block size, as measured (a multiple of 4096).
    pub block_size: usize,
    /// Direct writes of `block_size`, then one sync, MB/s.
    pub direct_write_mb_s: f64,
    /// Direct reads of `block_size`, MB/s.
    pub direct_read_mb_s: f64,
    /// Direct writes of 1 MiB, then one sync, MB/s.
    pub direct_write_large_mb_s: f64,
    /// Direct reads of 1 MiB, MB/s.
    pub direct_read_large_mb_s: f64,
    /// One 4 KiB write + fdatasync.
    pub fsync_latency: Percentiles,
    /// One TCP connection over loopback, MB/s.
    pub loopback_tcp_mb_s: f64,
    /// memcpy between two large buffers, MB/s.
    pub memcpy_mb_s: f64,
}

/// How much to move in each measurement.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Bytes written (and read back) per Direct I/O measurement.
    pub disk_bytes: u64,
    /// fsyncs timed.
    pub fsyncs: u32,
    /// Bytes sent over loopback.
    pub tcp_bytes: u64,
    /// Bytes copied in memory.
    pub memcpy_bytes: u64,
}

impl Sizes {
    /// Enough for stable figures in a few seconds on an NVMe drive.
    pub fn full() -> Sizes {
        Sizes {
            disk_bytes: 512 << 20,
            fsyncs: 2000,
            tcp_bytes: 2 << 30,
            memcpy_bytes: 4 << 30,
        }
    }

    /// A smoke test's worth.
    pub fn tiny() -> Sizes {
        Sizes {
            disk_bytes: 8 << 20,
            fsyncs: 20,
            tcp_bytes: 16 << 20,
            memcpy_bytes: 64 << 20,
        }
    }
}

/// Measures every limit, writing its files in `dir`.
pub fn measure(dir: &Path, block_size: usize, sizes: Sizes) -> std::io::Result<Limits> {
    let block_size = block_size.div_ceil(ALIGN).max(1) * ALIGN;
    let (direct_write_mb_s, direct_read_mb_s) = direct_io(dir, block_size, sizes.disk_bytes)?;
    let (direct_write_large_mb_s, direct_read_large_mb_s) =
        direct_io(dir, LARGE_BLOCK, sizes.disk_bytes)?;
    Ok(Limits {
        block_size,
        direct_write_mb_s,
        direct_read_mb_s,
        direct_write_large_mb_s,
        direct_read_large_mb_s,
        fsync_latency: fsync_latency(dir, sizes.fsyncs)?,
        loopback_tcp_mb_s: loopback_tcp(sizes.tcp_bytes)?,
        memcpy_mb_s: memcpy(sizes.memcpy_bytes),
    })
}

/// A buffer of `len` bytes starting at a 4096-aligned address, carved out of a
/// slightly larger `Vec` with safe code (`align_offset`), rather than an
/// `unsafe` aligned allocation: this is measurement code, not the hot path.
struct Aligned {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, fill: u8) -> Aligned {
        let bytes = vec![fill; len + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN).min(ALIGN);
        Aligned { bytes, start, len }
    }

    fn slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn slice_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

fn open_direct(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .truncate(write)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
}

fn mb_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// Writes `total` bytes in `block`-sized direct writes and syncs; then reads
/// them back the same way. Returns (write, read) MB/s.
fn direct_io(dir: &Path, block: usize, total: u64) -> std::io::Result<(f64, f64)> {
    let path = dir.join(format!("raw-direct-{block}"));
    let blocks = (total / block as u64).max(1);
    let mut buffer = Aligned::new(block, 0x5a);
    let file = open_direct(&path, true)?;
    let start = Instant::now();
    for n in 0..blocks {
        file.write_all_at(buffer.slice(), n * block as u64)?;
    }
    // O_DIRECT bypasses the page cache but not the drive's own cache: without
    // the sync, a write can still be lost, so the limit includes it.
    file.sync_data()?;
    let write = mb_s(blocks * block as u64, start.elapsed());

    let file = open_direct(&path, false)?;
    let start = Instant::now();
    for n in 0..blocks {
        file.read_exact_at(buffer.slice_mut(), n * block as u64)?;
    }
    let read = mb_s(blocks * block as u64, start.elapsed());
    std::fs::remove_file(&path)?;
    Ok((write, read))
}

fn fsync_latency(dir: &Path, count: u32) -> std::io::Result<Percentiles> {
    let path = dir.join("raw-fsync");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5a; 4096];
    let mut latencies = histogram();
    for _ in 0..count {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        latencies.saturating_record(start.elapsed().as_nanos() as u64);
    }
    std::fs::remove_file(&path)?;
    Ok(Percentiles::of(&latencies))
}

fn loopback_tcp(total: u64) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut socket, _) = listener.accept()?;
        let mut buffer = vec![0; LARGE_BLOCK];
        let mut received = 0;
        loop {
            match socket.read(&mut buffer)? {
                0 => return Ok(received),
                n => received += n as u64,
            }
        }
    });
    let mut socket = TcpStream::connect(addr)?;
    let chunk = vec![0x5a; LARGE_BLOCK];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        socket.write_all(&chunk)?;
        sent += chunk.len() as u64;
    }
    socket.shutdown(std::net::Shutdown::Write)?;
    let received = reader
        .join()
        .map_err(|_| std::io::Error::other("loopback reader panicked"))??;
    Ok(mb_s(received, start.elapsed()))
}

fn memcpy(total: u64) -> f64 {
    let len = 64 << 20;
    let source = vec![0x5a_u8; len];
    let mut target = vec![0_u8; len];
    let rounds = (total / len as u64).max(1);
    let start = Instant::now();
    for round in 0..rounds {
        target.copy_from_slice(&source);
        // Touch the result so the copy cannot be optimized away.
        std::hint::black_box(&target[(round as usize * 4099) % len]);
    }
    mb_s(rounds * len as u64, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_start_on_a_4096_boundary() {
        for len in [4096, 8192, 1 << 20] {
            let buffer = Aligned::new(len, 1);
            assert_eq!(buffer.slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(buffer.slice().len(), len);
        }
    }

    #[test]
    fn tiny_limits_measure_something_on_this_machine() {
        let dir = tempfile::tempdir_in(crate::bench_data_dir()).unwrap();
        let limits = measure(dir.path(), 1000, Sizes::tiny()).unwrap();
        assert_eq!(limits.block_size, 4096);
        for figure in [
            limits.direct_write_mb_s,
            limits.direct_read_mb_s,
            limits.loopback_tcp_mb_s,
            limits.memcpy_mb_s,
        ] {
            assert!(figure.is_finite() && figure > 0.0, "{limits:?}");
        }
        assert_eq!(limits.fsync_latency.count, 20);
    }
}
