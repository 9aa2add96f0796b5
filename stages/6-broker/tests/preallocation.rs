//! Segment files allocated ahead of the records in steps, never a whole
//! segment up front: what a partition costs the disk while idle, the file
//! growing by what it holds as appends pass its end (Direct I/O on and off,
//! both drivers), recovery of files of every length a crash mid-grow can
//! leave, appends that go on across a step and a segment roll after a
//! reopen; and, on a real small ext4 file system, a full disk at a grow that
//! refuses the batch and fails nothing, and a topic create that cannot fit,
//! refused before anything is made.
//!
//! Sizes here are read from the files, not from the config: the first
//! step is the new file's length, so the tests hold whatever step is
//! configured by default, and say "a few MiB" where they mean it.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_dense, batch, config, copy_dir, log_files, on_both_drivers, read_all};
use stage6_broker::shards::frame::HEADER_LEN;
use stage6_broker::shards::protocol::{
    Produced, code, encode_create_topic, encode_poll, encode_produce_head,
};
use stage6_broker::shards::wire::{Partitioning, status};
use stage6_broker::storage::record;
use stage6_broker::storage::segment::MAX_GROWTH_STEPS;
use stage6_broker::{Config, FsyncPolicy, IoDriver, Partition, ServerConfig};

const MIB: u64 = 1 << 20;
/// The configured default segment size: what the topics had.
const GIB_SEGMENT: u64 = 1 << 30;
/// What an idle partition may cost the disk, at most: "a few MiB".
const IDLE_LIMIT: u64 = 8 * MIB;
/// Payload of each test record: 16 records make a 256 KiB batch (plus headers).
const PAYLOAD: usize = 16 << 10;
const PER_BATCH: u64 = 16;

fn size_of(_: u64) -> usize {
    PAYLOAD
}

/// Bytes the file system has allocated to `path` (its blocks, not its length).
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Bytes allocated to every file in `dir`, and to the folder itself.
fn allocated_in(dir: &Path) -> u64 {
    let files: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| allocated(&entry.unwrap().path()))
        .sum();
    files + allocated(dir)
}

/// The first step: the length of a new partition's file under the default
/// config (1 GiB segments), checked to be an idle partition's few MiB.
async fn first_step(direct_io: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let partition = Partition::open(
        dir.path(),
        config(GIB_SEGMENT, direct_io, FsyncPolicy::EveryBatch),
    )
    .await
    .unwrap();
    let log = &log_files(dir.path())[0];
    let step = file_len(log);
    assert!(
        step > 0 && step <= IDLE_LIMIT && step.is_multiple_of(4096),
        "a new 1 GiB segment's file is {step} bytes long: one step of a few MiB expected"
    );
    drop(partition);
    step
}

/// Appends batches of `PER_BATCH` records from id `next` until the
/// partition's records pass `until` bytes; returns the next id. After each
/// append, the active segment's file must reach past its records, by no
/// more than its last grow could take it (see `check_active_file`), or
/// than `found`, the length a recovery found it at.
async fn append_until(
    partition: &mut Partition,
    dir: &Path,
    mut next: u64,
    until: u64,
    step: u64,
    found: u64,
) -> u64 {
    while partition.stored_bytes() < until {
        let sizes = vec![PAYLOAD; PER_BATCH as usize];
        let appended = partition.append(&mut batch(next, &sizes)).await.unwrap();
        assert_eq!(appended.offsets.start, next);
        next = appended.offsets.end;
        check_active_file(partition, dir, step, found);
    }
    next
}

/// The active segment's file covers its records, and reaches no further than
/// a grow could take it: by as much as the records fill (one step at least,
/// `MAX_GROWTH_STEPS` at most), in whole steps, within the segment's size;
/// or `found`. Returns its length.
fn check_active_file(partition: &Partition, dir: &Path, step: u64, found: u64) -> u64 {
    let active = log_files(dir).pop().unwrap();
    let base = *partition.segment_bases().last().unwrap();
    // Every record here is `PAYLOAD` bytes and a header.
    let end = (partition.status().next_offset - base) * (PAYLOAD as u64 + 32);
    let len = file_len(&active);
    // The grow happened before the last batch's block was added: allow it.
    let before = end + 4096;
    let limit = (before + before.clamp(step, MAX_GROWTH_STEPS * step))
        .next_multiple_of(step)
        .min(partition.config().segment_size)
        .max(found);
    assert!(
        end <= len && len <= limit,
        "records end at {end} of the active segment, its file is {len} bytes: \
         at least that, at most {limit}"
    );
    assert!(
        allocated(&active) <= len + 64 * 1024,
        "no more blocks than the length"
    );
    len
}

#[test]
fn preallocation_a_new_partition_takes_one_step_not_a_whole_segment() {
    on_both_drivers(|_| async {
        for direct_io in [true, false] {
            // The topic: three partitions of 1 GiB segments, two
            // 5-byte messages. It took 3 GiB.
            let dir = tempfile::tempdir().unwrap();
            let config = config(GIB_SEGMENT, direct_io, FsyncPolicy::EveryBatch);
            for n in 0..3 {
                let mut partition =
                    Partition::open(&dir.path().join(n.to_string()), config.clone())
                        .await
                        .unwrap();
                if n == 0 {
                    partition.append(&mut batch(0, &[5, 5])).await.unwrap();
                    partition.flush().await.unwrap();
                }
            }
            let mut total = 0;
            for n in 0..3 {
                let partition = dir.path().join(n.to_string());
                let taken = allocated_in(&partition);
                assert!(
                    taken <= IDLE_LIMIT,
                    "partition {n} takes {taken} bytes of disk (direct_io {direct_io})"
                );
                total += taken;
            }
            eprintln!("three partitions of 1 GiB segments take {total} bytes");
            // And they read back.
            let partition = Partition::open(&dir.path().join("0"), config)
                .await
                .unwrap();
            let (records, _) = read_all(&partition, 0, 10).await;
            assert_eq!(records.len(), 2);
            assert!(records.iter().all(|record| record.payload.len() == 5));
        }
    });
}

#[test]
fn preallocation_appends_past_a_step_grow_the_file_and_read_back() {
    on_both_drivers(|driver| async move {
        for direct_io in [true, false] {
            let step = first_step(direct_io).await;
            // Under `never` writes go behind, so the file grows with a write
            // in flight; under `always` every batch is synced right after.
            for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
                let dir = tempfile::tempdir().unwrap();
                let config = config(GIB_SEGMENT, direct_io, fsync);
                let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
                // Two and a half steps of records: the file grows by what it
                // holds, one step and then two.
                let mut lengths = vec![step];
                let mut next = 0;
                while partition.stored_bytes() < 2 * step + step / 2 {
                    let sizes = vec![PAYLOAD; PER_BATCH as usize];
                    next = partition
                        .append(&mut batch(next, &sizes))
                        .await
                        .unwrap()
                        .offsets
                        .end;
                    let len = check_active_file(&partition, dir.path(), step, 0);
                    if lengths.last() != Some(&len) {
                        lengths.push(len);
                    }
                }
                assert_eq!(lengths, [step, 2 * step, 4 * step], "the file's lengths");
                partition.flush().await.unwrap();
                let log = &log_files(dir.path())[0];
                assert_eq!(file_len(log), 4 * step);
                let (records, _) = read_all(&partition, 0, 100).await;
                assert_eq!(records.len() as u64, next);
                assert_dense(&records, size_of);
                drop(partition);
                // From the file alone, after a reopen.
                let partition = Partition::open(dir.path(), config).await.unwrap();
                assert_eq!(partition.status().next_offset, next);
                let (records, _) = read_all(&partition, 0, 100).await;
                assert_dense(&records, size_of);
                eprintln!(
                    "{driver:?} direct_io {direct_io} {fsync:?}: {next} records, file {} bytes",
                    file_len(log)
                );
            }
        }
    });
}

/// Reopens the partition in `dir`, checks its `count` records, then appends
/// across the next step boundary and on across a segment roll, and checks
/// everything again, and again after one more reopen.
async fn reopen_and_go_on(dir: &Path, config: &Config, count: u64, step: u64) {
    let found = file_len(&log_files(dir)[0]);
    let mut partition = Partition::open(dir, config.clone()).await.unwrap();
    assert_eq!(
        partition.status().next_offset,
        count,
        "every record recovered"
    );
    let (records, _) = read_all(&partition, 0, 100).await;
    assert_dense(&records, size_of);
    // Across the step boundary: the file grows again (each append checks
    // it reaches past the records, by less than a step).
    let boundary = partition.stored_bytes().next_multiple_of(step);
    let next = append_until(&mut partition, dir, count, boundary + 1, step, found).await;
    assert!(
        file_len(&log_files(dir)[0]) > boundary,
        "grown past {boundary}"
    );
    // Across the roll: the sealed segment keeps the length it grew to, and
    // the next segment starts with one step.
    let next = append_until(
        &mut partition,
        dir,
        next,
        config.segment_size + 1,
        step,
        found,
    )
    .await;
    assert_eq!(partition.segment_bases().len(), 2, "rolled over once");
    let next = append_until(
        &mut partition,
        dir,
        next,
        config.segment_size + step / 2,
        step,
        0,
    )
    .await;
    partition.flush().await.unwrap();
    let files = log_files(dir);
    assert!(file_len(&files[0]) <= config.segment_size);
    assert_eq!(
        file_len(&files[1]),
        step,
        "the new segment has its first step"
    );
    let (records, _) = read_all(&partition, 0, 100).await;
    assert_eq!(records.len() as u64, next);
    assert_dense(&records, size_of);
    drop(partition);
    let partition = Partition::open(dir, config.clone()).await.unwrap();
    assert_eq!(partition.status().next_offset, next);
    let (records, _) = read_all(&partition, 0, 100).await;
    assert_dense(&records, size_of);
}

#[test]
fn preallocation_a_reopened_partition_appends_across_a_step_and_a_roll() {
    on_both_drivers(|_| async {
        for direct_io in [true, false] {
            let step = first_step(direct_io).await;
            // Segments of two steps and a bit: the last step is cut at the
            // segment's size.
            let config = config(2 * step + 64 * 1024, direct_io, FsyncPolicy::EveryBatch);
            let dir = tempfile::tempdir().unwrap();
            let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
            let count = append_until(&mut partition, dir.path(), 0, step / 2, step, 0).await;
            // Flushed, then dropped: no write left in flight (see the
            // segment's docs).
            partition.flush().await.unwrap();
            drop(partition);
            reopen_and_go_on(dir.path(), &config, count, step).await;
        }
    });
}

#[test]
fn preallocation_a_file_cut_short_mid_grow_recovers_and_grows_again() {
    on_both_drivers(|_| async {
        for direct_io in [true, false] {
            let step = first_step(direct_io).await;
            let config = config(2 * step + 64 * 1024, direct_io, FsyncPolicy::EveryBatch);
            // Records in three quarters of the first step, synced.
            let original = tempfile::tempdir().unwrap();
            let mut partition = Partition::open(original.path(), config.clone())
                .await
                .unwrap();
            let count =
                append_until(&mut partition, original.path(), 0, 3 * step / 4, step, 0).await;
            let end = partition.stored_bytes();
            partition.flush().await.unwrap();
            drop(partition);
            assert_eq!(file_len(&log_files(original.path())[0]), step);

            // The next grow (to two steps) interrupted by a crash anywhere:
            // not begun; the file extended in part (ext4 extends in pieces,
            // in blocks that may be 1 KiB); extended whole, its length not
            // synced yet. And a file shorter than its first step, just past
            // the records' last block and not even whole sectors, which no
            // crash makes but a recovery must take as it comes: the part
            // past the last whole block is never read (Direct I/O could not).
            let lengths = [
                step,
                step + 1024,
                step + 64 * 1024,
                2 * step,
                end.next_multiple_of(4096) + 1000,
            ];
            for cut in lengths {
                let copy = tempfile::tempdir().unwrap();
                copy_dir(original.path(), copy.path());
                let log = &log_files(copy.path())[0];
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(log)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                reopen_and_go_on(copy.path(), &config, count, step).await;
            }
        }
    });
}

// ---------------------------------------------------------------------------
// A topic that does not fit, on a real small file system.

/// Runs a command; its output on failure.
fn run(program: &str, args: &[&OsStr]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    }
}

/// Why this machine cannot make a loop file system, if it cannot.
fn cannot_mount() -> Option<String> {
    match run("id", &[OsStr::new("-u")]) {
        Ok(uid) if uid == "0" => {}
        _ => return Some("needs root (loop devices and mount)".to_string()),
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("needs loop devices (/dev/loop-control is absent)".to_string());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

/// A small ext4 file system on a loop device, mounted; undone on drop,
/// even when the test fails. The image is sparse: it costs what is written.
struct Mounted {
    dir: tempfile::TempDir,
    loop_device: String,
}

impl Mounted {
    fn new(size: u64) -> Result<Mounted, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(size))
            .map_err(|e| e.to_string())?;
        let loop_device = run(
            "losetup",
            &[
                OsStr::new("--find"),
                OsStr::new("--show"),
                image.as_os_str(),
            ],
        )?;
        let mounted = Mounted { dir, loop_device };
        std::fs::create_dir(mounted.path()).map_err(|e| e.to_string())?;
        // `-m 0`: no blocks reserved for root, so the server (root here)
        // sees the same free space as anyone.
        let device = OsStr::new(&mounted.loop_device);
        let quiet = [OsStr::new("-q"), OsStr::new("-F")];
        run(
            "mkfs.ext4",
            &[
                quiet[0],
                quiet[1],
                OsStr::new("-m"),
                OsStr::new("0"),
                device,
            ],
        )?;
        run("mount", &[device, mounted.path().as_os_str()])?;
        Ok(mounted)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let point = self.path();
        if point.exists() && run("umount", &[point.as_os_str()]).is_err() {
            // Busy (a file still open): detach it lazily.
            let _ = run("umount", &[OsStr::new("-l"), point.as_os_str()]);
        }
        let _ = run(
            "losetup",
            &[OsStr::new("-d"), OsStr::new(&self.loop_device)],
        );
    }
}

/// One request and its reply: `(status, body)`.
fn call(stream: &mut TcpStream, code: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let mut frame = ((body.len() + 6) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(&7u32.to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let status = u16::from_le_bytes(header[4..6].try_into().unwrap());
    let mut reply = vec![0; len - 6];
    stream.read_exact(&mut reply).unwrap();
    (status, reply)
}

#[test]
fn preallocation_a_topic_that_cannot_fit_is_refused_before_anything_is_created() {
    if let Some(why) = cannot_mount() {
        eprintln!("skipped: {why}");
        return;
    }
    let mounted = match Mounted::new(64 * MIB) {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("skipped: could not make and mount a loop file system: {why}");
            return;
        }
    };
    let data = mounted.path().join("data");
    let server = stage6_broker::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.clone(),
        shards: 2,
        pin: false,
        driver: IoDriver::Auto,
        storage: Config {
            segment_size: GIB_SEGMENT,
            fsync: FsyncPolicy::Always,
            ..Config::default()
        },
        ..ServerConfig::new()
    })
    .unwrap();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    // 1024 partitions: refused whole, with the sizes, and nothing made.
    let (status, reply) = call(
        &mut stream,
        code::CREATE_TOPIC,
        &encode_create_topic(9, 1024),
    );
    let message = String::from_utf8_lossy(&reply).to_string();
    eprintln!("1024 partitions: status {status}: {message}");
    assert_eq!(status, status::STORAGE, "{message}");
    for words in ["space", "1024 partitions", "MiB free"] {
        assert!(
            message.contains(words),
            "the error says {words:?}: {message}"
        );
    }
    assert!(!data.join("9").exists(), "no folder left for the topic");
    let (status, _) = call(&mut stream, code::POLL, &encode_poll(9, 0, 0, 1));
    assert_eq!(status, status::TOPIC_NOT_FOUND);

    // Two partitions fit, and work.
    let (status, reply) = call(&mut stream, code::CREATE_TOPIC, &encode_create_topic(10, 2));
    assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
    for partition in 0..2 {
        let mut body = encode_produce_head(10, &Partitioning::Explicit(partition), 1);
        record::encode(&mut body, 0, 0, u64::from(partition), b"fits");
        let (status, reply) = call(&mut stream, code::PRODUCE, &body);
        assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
        let produced = Produced::decode(&reply).unwrap();
        assert_eq!((produced.first_offset, produced.count), (0, 1));
        let (status, reply) = call(&mut stream, code::POLL, &encode_poll(10, partition, 0, 10));
        assert_eq!(status, status::OK);
        assert_eq!(u32::from_le_bytes(reply[0..4].try_into().unwrap()), 1);
        assert!(reply.ends_with(b"fits"));
    }
    drop(stream);
    server.shutdown().unwrap();
}

/// Bytes free for files on the file system of `path`.
fn free(path: &Path) -> u64 {
    let stat = rustix::fs::statvfs(path).unwrap();
    stat.f_bavail * stat.f_frsize
}

#[test]
fn preallocation_a_full_disk_at_a_step_refuses_the_batch_and_fails_nothing() {
    if let Some(why) = cannot_mount() {
        eprintln!("skipped: {why}");
        return;
    }
    on_both_drivers(|driver| async move {
        let mounted = match Mounted::new(64 * MIB) {
            Ok(mounted) => mounted,
            Err(why) => {
                eprintln!("skipped: could not make and mount a loop file system: {why}");
                return;
            }
        };
        let config = config(GIB_SEGMENT, true, FsyncPolicy::EveryBatch);
        let dir = mounted.path().join("partition");
        let mut partition = Partition::open(&dir, config.clone()).await.unwrap();
        let step = file_len(&log_files(&dir)[0]);
        // Another tenant takes all but half a step: the partition's next
        // grow cannot be had.
        let other = mounted.path().join("other-tenant");
        let filler = vec![0u8; MIB as usize];
        let mut file = std::fs::File::create(&other).unwrap();
        let mut left = free(&mounted.path()).saturating_sub(step / 2);
        while left > 0 {
            let n = left.min(MIB) as usize;
            if file.write_all(&filler[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        file.sync_all().unwrap();
        drop(file);

        // Appends fill the first step; the one that needs the next is refused.
        let mut next = 0;
        let refused = loop {
            let sizes = vec![PAYLOAD; PER_BATCH as usize];
            match partition.append(&mut batch(next, &sizes)).await {
                Ok(appended) => next = appended.offsets.end,
                Err(error) => break error,
            }
            assert!(next * (PAYLOAD as u64) < 2 * step, "never refused");
        };
        eprintln!("{driver:?}: after {next} records: {refused}");
        assert!(
            matches!(refused, stage6_broker::Error::NoSpace { .. }),
            "{refused:?}"
        );
        assert!(next > 0, "the first step took records");
        assert_eq!(partition.failure(), None, "a full disk fails nothing");
        assert_eq!(partition.status().next_offset, next, "nothing of it stored");
        let (records, _) = read_all(&partition, 0, 100).await;
        assert_dense(&records, size_of);

        // Space freed: the same partition grows and takes the batch.
        std::fs::remove_file(&other).unwrap();
        let sizes = vec![PAYLOAD; PER_BATCH as usize];
        let appended = partition.append(&mut batch(next, &sizes)).await.unwrap();
        assert_eq!(appended.offsets, next..next + PER_BATCH);
        partition.flush().await.unwrap();
        assert_eq!(file_len(&log_files(&dir)[0]), 2 * step, "grown by a step");
        drop(partition);
        let partition = Partition::open(&dir, config).await.unwrap();
        assert_eq!(partition.status().next_offset, next + PER_BATCH);
        let (records, _) = read_all(&partition, 0, 100).await;
        assert_dense(&records, size_of);
        drop(partition);
        drop(mounted);
    });
}
