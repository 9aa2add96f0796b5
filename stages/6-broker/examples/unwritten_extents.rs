//! What `fallocate` does not give a synced Direct I/O write (the Direct I/O
//! chapter, "Zeroing ahead"): 100 KiB `O_DIRECT` writes, each followed by
//! `fdatasync`, into three files in the same run:
//!
//! - **preallocated**: `fallocate` mode 0, so the blocks are *unwritten*
//!   extents, and each sync also commits their conversion in the journal;
//! - **zero-filled**: the same, then every block written with zeros once, so
//!   each write is a plain overwrite and each sync only flushes the device;
//! - **growing**: no preallocation; each write extends the file, and each
//!   sync commits the new size.
//!
//! `cargo run --release -p stage6-broker --example unwritten_extents [DIR]`
//! (default: the system's temporary folder, which must be on a disk, not
//! tmpfs). Blocking calls on purpose: this shows the file system, not the
//! broker.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FallocateFlags, OFlags};
use stage6_broker::AlignedBuf;

/// Bytes per write: about one produce request of 100 records of 1 KiB.
const WRITE: usize = 100 << 10;
/// Writes per file.
const WRITES: usize = 600;
const FILE_BYTES: u64 = (WRITE * WRITES) as u64;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    let scratch = tempfile::tempdir_in(&dir)?;
    println!(
        "{WRITES} writes of {} KiB, each followed by fdatasync, in {}",
        WRITE >> 10,
        dir.display()
    );
    // Two rounds, interleaved: the second shows whether the first was luck.
    for _ in 0..2 {
        for (name, prepare) in [
            (
                "preallocated",
                preallocate as fn(&File) -> anyhow::Result<()>,
            ),
            ("zero-filled", zero_fill),
            ("growing", |_: &File| Ok(())),
        ] {
            let path = scratch.path().join(name);
            let (elapsed, mut syncs) = synced_writes(&path, prepare)?;
            std::fs::remove_file(&path)?;
            syncs.sort();
            println!(
                "  {name:12} {:6.0} MB/s   write+sync median {:>9.1?}   p99 {:>9.1?}",
                FILE_BYTES as f64 / 1e6 / elapsed.as_secs_f64(),
                syncs[syncs.len() / 2],
                syncs[syncs.len() * 99 / 100],
            );
        }
    }
    Ok(())
}

/// Unwritten extents over the whole file: what a stage 6 segment starts as.
fn preallocate(file: &File) -> anyhow::Result<()> {
    rustix::fs::fallocate(file, FallocateFlags::empty(), 0, FILE_BYTES)?;
    Ok(())
}

/// Preallocated, then every block written once (with zeros).
fn zero_fill(file: &File) -> anyhow::Result<()> {
    preallocate(file)?;
    let mut zeros = AlignedBuf::with_capacity(1 << 20)?;
    zeros.resize_zeroed(1 << 20);
    let mut at = 0;
    while at < FILE_BYTES {
        let len = (FILE_BYTES - at).min(1 << 20) as usize;
        file.write_all_at(&zeros.as_slice()[..len], at)?;
        at += len as u64;
    }
    Ok(())
}

/// Creates the file with `O_DIRECT`, prepares it, syncs that, then times
/// `WRITES` sequential writes, each followed by `fdatasync`.
fn synced_writes(
    path: &Path,
    prepare: fn(&File) -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(path)?;
    prepare(&file)?;
    file.sync_all()?;
    let mut buf = AlignedBuf::with_capacity(WRITE)?;
    buf.resize_zeroed(WRITE);
    buf.as_mut_slice().fill(0x5a);
    let mut syncs = Vec::with_capacity(WRITES);
    let start = Instant::now();
    for n in 0..WRITES {
        let call = Instant::now();
        file.write_all_at(buf.as_slice(), (n * WRITE) as u64)?;
        file.sync_data()?;
        syncs.push(call.elapsed());
    }
    Ok((start.elapsed(), syncs))
}
