//! Stage 6's storage path in process, without the network: the `quick`
//! workload appended in batches to a partition with Direct I/O on and off,
//! then polled back, beside the same bytes written and read raw with Direct
//! I/O at the same block size, all measured in the same run.
//!
//! - **append** rows: `Partition::append` of batches of 100 records (stamping,
//!   checksums, the copy into the aligned write buffer, index entries),
//!   written 1 MiB (the default `flush_bytes`) or 4 MiB at a time under fsync
//!   `never`, and one `flush` (write + fdatasync) at the end, inside the timing;
//!   the segment's file grows as the records come (stage 6's
//!   `segment::growth_target`), and its grows are inside the timing too;
//! - **raw** rows: the same number of bytes in `O_DIRECT` writes of the same
//!   size (1 MiB or 4 MiB) from an
//!   aligned buffer to a file preallocated whole (no grow at all), then one
//!   fdatasync; once with blocking `pwrite` (the ladder's raw limit) and once
//!   through compio, to show what the runtime itself costs;
//! - **read** rows: every record polled back, 1000 per poll (about 1 MiB),
//!   each checksum verified, into one reused aligned buffer; and raw direct
//!   reads of the same bytes, 1 MiB or 4 MiB at a time. With Direct I/O off the reads come from
//!   the page cache the writes just filled, so that row measures memory, not
//!   the disk, and is labelled so.
//!
//! - **small** rows (issue 19): CPU time per message, on the thread that
//!   appends or polls, of `Partition::append` of batches of 1000 records
//!   of 100-byte payloads (`tiny-100b`'s) under fsync `never` with Direct
//!   I/O, and of polling them back 1000 at a time; per message, since at
//!   this size MB/s hides what each message costs.
//!
//! Each row is measured in five rounds that interleave the rows, and keeps
//! its median round: the disk of a shared machine drifts within a minute, and
//! the ratios are what this bench is for. (The fastest round, kept before,
//! let one lucky minute of the raw rows decide a ratio.)
//!
//! `cargo bench -p bench --bench stage6_storage` writes
//! `benches/results/<profile>/stage6_storage.json` and prints each row's MB/s
//! and its ratio to the raw row; under `cargo test` it runs a tiny version as
//! a smoke test and writes nothing. `RIVULET_BENCH_DIR` picks the disk.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::latency::{Percentiles, histogram};
use bench::results::{Row, RowKind, Suite};
use compio::BufResult;
use compio::buf::IntoInner;
use compio::buf::IoBuf;
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};
use hdrhistogram::Histogram;
use rivulet_datasets::Workload;
use stage4_partitions::protocol::record::encode_record;
use stage6_broker::shards::driver::driver_name;
use stage6_broker::{AlignedBuf, Config, FsyncPolicy, IoDriver, Partition};

/// Records per append: a produce request's worth.
const BATCH: u64 = 100;
/// Records per poll.
const POLL: u64 = 1000;
/// Write sizes measured: the default `flush_bytes`, and a larger one that
/// spreads each write's fixed cost over more bytes.
const BLOCKS: [usize; 2] = [1 << 20, 4 << 20];
/// Bytes appended per row when measuring: enough for a steady figure.
const TARGET_BYTES: u64 = 256 << 20;
/// Interleaved rounds per row; the median is kept.
const ROUNDS: u32 = 5;

fn main() -> anyhow::Result<()> {
    // cargo bench passes --bench; cargo test does not.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    let size = workload.fixed_size()? as usize;
    let count = if measuring { workload.messages } else { 300 };
    let payloads = workload.payloads();
    let batches: Vec<Vec<u8>> = (0..count)
        .step_by(BATCH as usize)
        .map(|first| {
            let mut records = Vec::new();
            for n in first..count.min(first + BATCH) {
                encode_record(&mut records, 0, 0, n, &payloads.payload(n, size));
            }
            records
        })
        .collect();
    let pass_bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let passes = if measuring {
        TARGET_BYTES.div_ceil(pass_bytes)
    } else {
        1
    };
    let rounds = if measuring { ROUNDS } else { 1 };
    let total = pass_bytes * passes;
    let data = tempfile::tempdir_in(bench::bench_data_dir())?;
    let runtime = IoDriver::Auto.runtime()?;
    eprintln!(
        "stage6_storage: {total} bytes per row ({passes} passes of the workload), driver {}",
        driver_name(&runtime)
    );
    let per_append = pass_bytes / batches.len() as u64;
    let append_calls = batches.len() as u64 * passes;

    let mut groups = Vec::new();
    for block in BLOCKS {
        let config = Config {
            fsync: FsyncPolicy::Never,
            flush_bytes: block,
            // The byte threshold decides: with 1 KiB records, a count of
            // 1000 would cut writes at 1 MB whatever the block size.
            flush_count: usize::MAX,
            ..Config::default()
        };
        // Rounds interleave the rows, and each row keeps its median round: the
        // disk of a shared machine drifts by tens of percent within a minute,
        // and a ratio between rows measured a minute apart would measure that.
        let mut appends: Vec<(&'static str, Rounds, Histogram<u64>)> = Vec::new();
        let mut reads: Vec<(&'static str, Rounds, u64)> = Vec::new();
        // The direct rows' time on the CPU (the thread that appends or polls).
        let (mut append_cpu, mut poll_cpu) = (Rounds(Vec::new()), Rounds(Vec::new()));
        let mut raw = RawRounds::default();
        let mut raw_compio = RawRounds::default();
        for round in 0..rounds {
            for (n, direct_io) in [true, false].into_iter().enumerate() {
                let name = if direct_io { "direct" } else { "buffered" };
                let dir = data.path().join(name);
                let config = Config {
                    direct_io,
                    ..config.clone()
                };
                let (append, latencies) =
                    runtime.block_on(append_all(&dir, config.clone(), &batches, passes))?;
                let (read, polls) = runtime.block_on(poll_all(&dir, config, total))?;
                std::fs::remove_dir_all(&dir)?;
                let (elapsed, read_elapsed) = (append.wall, read.wall);
                if direct_io {
                    append_cpu.0.push(append.cpu);
                    poll_cpu.0.push(read.cpu);
                }
                if round == 0 {
                    appends.push((name, Rounds(vec![elapsed]), latencies));
                    reads.push((name, Rounds(vec![read_elapsed]), polls));
                } else {
                    appends[n].1.0.push(elapsed);
                    appends[n].2.add(&latencies)?;
                    reads[n].1.0.push(read_elapsed);
                }
            }
            raw.push(raw_std(data.path(), block, total)?);
            raw_compio.push(runtime.block_on(raw_compio_rw(data.path(), block, total))?);
        }
        groups.push(Measured {
            block,
            appends: appends
                .into_iter()
                .map(|(name, rounds, latencies)| (name, rounds.median(), latencies))
                .collect(),
            reads: reads
                .into_iter()
                .map(|(name, rounds, polls)| (name, rounds.median(), polls))
                .collect(),
            raw: raw.median(),
            raw_compio: raw_compio.median(),
            append_cpu: append_cpu.median(),
            poll_cpu: poll_cpu.median(),
        });
    }

    let mut suite = Suite::new("stage6_storage", &workload);
    suite.custom_group(
        "stage6-storage-append",
        &format!(
            "one append of {BATCH} records ({per_append} bytes) to a partition that writes \
             x KiB at a time, or one raw x KiB O_DIRECT write; each row ends with one \
             fdatasync, timed"
        ),
        Some("write size (KiB)"),
    );
    for group in &groups {
        let kib = group.block as u64 >> 10;
        let raw_id = format!("raw-direct-write-{kib}k");
        for (name, elapsed, latencies) in &group.appends {
            suite.record(Row {
                series: Some(format!("append, {name}")),
                x: Some(kib),
                ..row(
                    &format!("append-{name}-{kib}k"),
                    RowKind::Stage,
                    &raw_id,
                    per_append,
                    *elapsed,
                    append_calls,
                    Some(latencies),
                )
            });
        }
        suite.record(Row {
            series: Some("append, direct: CPU time only".to_string()),
            x: Some(kib),
            ..row(
                &format!("append-direct-cpu-{kib}k"),
                RowKind::Stage,
                &raw_id,
                per_append,
                group.append_cpu,
                append_calls,
                None,
            )
        });
        let blocks = total.div_ceil(group.block as u64);
        let raws = [
            (raw_id.clone(), group.raw.write, "raw O_DIRECT pwrite"),
            (
                format!("raw-direct-write-compio-{kib}k"),
                group.raw_compio.write,
                "raw O_DIRECT write, compio",
            ),
        ];
        record_raw_rows(&mut suite, kib, group.block as u64, blocks, raws);
    }

    suite.custom_group(
        "stage6-storage-read",
        &format!(
            "one poll of up to {POLL} records (about {} bytes), every checksum verified, \
             from a partition written x KiB at a time, or one raw x KiB O_DIRECT read; \
             buffered polls are served by the page cache the writes filled",
            POLL * per_append / BATCH
        ),
        Some("write size (KiB)"),
    );
    for group in &groups {
        let kib = group.block as u64 >> 10;
        let raw_id = format!("raw-direct-read-{kib}k");
        for (name, elapsed, polls) in &group.reads {
            suite.record(Row {
                series: Some(format!("poll, {name}")),
                x: Some(kib),
                ..row(
                    &format!("poll-{name}-{kib}k"),
                    RowKind::Stage,
                    &raw_id,
                    total / polls,
                    *elapsed,
                    *polls,
                    None,
                )
            });
        }
        let direct_polls = group.reads.first().map_or(1, |(_, _, polls)| *polls);
        suite.record(Row {
            series: Some("poll, direct: CPU time only".to_string()),
            x: Some(kib),
            ..row(
                &format!("poll-direct-cpu-{kib}k"),
                RowKind::Stage,
                &raw_id,
                total / direct_polls,
                group.poll_cpu,
                direct_polls,
                None,
            )
        });
        let blocks = total.div_ceil(group.block as u64);
        let raws = [
            (raw_id.clone(), group.raw.read, "raw O_DIRECT pread"),
            (
                format!("raw-direct-read-compio-{kib}k"),
                group.raw_compio.read,
                "raw O_DIRECT read, compio",
            ),
        ];
        record_raw_rows(&mut suite, kib, group.block as u64, blocks, raws);
    }

    let mb_s = |elapsed: &Duration| total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
    for group in &groups {
        let (raw_write, raw_read) = (mb_s(&group.raw.write), mb_s(&group.raw.read));
        println!("{} KiB writes:", group.block >> 10);
        for (name, elapsed, _) in &group.appends {
            let rate = mb_s(elapsed);
            let share = 100.0 * rate / raw_write;
            println!(
                "  append {name:8} {rate:6.0} MB/s  {share:5.1}% of raw direct write ({raw_write:.0} MB/s)"
            );
        }
        let rate = mb_s(&group.append_cpu);
        println!("  append direct, CPU time only {rate:6.0} MB/s");
        let rate = mb_s(&group.raw_compio.write);
        let share = 100.0 * rate / raw_write;
        println!("  raw compio write {rate:6.0} MB/s  {share:5.1}% of raw direct write");
        for (name, elapsed, _) in &group.reads {
            let rate = mb_s(elapsed);
            let share = 100.0 * rate / raw_read;
            println!(
                "  poll   {name:8} {rate:6.0} MB/s  {share:5.1}% of raw direct read ({raw_read:.0} MB/s)"
            );
        }
        let rate = mb_s(&group.poll_cpu);
        println!("  poll direct, CPU time only {rate:6.0} MB/s");
        let rate = mb_s(&group.raw_compio.read);
        let share = 100.0 * rate / raw_read;
        println!("  raw compio read  {rate:6.0} MB/s  {share:5.1}% of raw direct read");
    }

    small_group(&mut suite, data.path(), &runtime, measuring)?;

    if measuring && let Some(path) = suite.finish(data.path())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Records per append and per poll of the small rows: issue 19's batch.
const SMALL_BATCH: u64 = 1000;
/// Messages per round of the small rows when measuring.
const SMALL_MESSAGES: u64 = 2_000_000;

/// The small rows: CPU time per message of appending `tiny-100b`'s
/// 100-byte messages in batches of [`SMALL_BATCH`], then of polling them
/// back, on the thread that does it, each the median of its rounds.
fn small_group(
    suite: &mut Suite,
    dir: &Path,
    runtime: &compio::runtime::Runtime,
    measuring: bool,
) -> anyhow::Result<()> {
    let workload = Workload::load("tiny-100b")?;
    let size = workload.fixed_size()? as usize;
    let payloads = workload.payloads();
    let (messages, rounds) = if measuring {
        (SMALL_MESSAGES, ROUNDS)
    } else {
        (3 * SMALL_BATCH, 1)
    };
    let batches: Vec<Vec<u8>> = (0..messages)
        .step_by(SMALL_BATCH as usize)
        .map(|first| {
            let mut records = Vec::new();
            for n in first..messages.min(first + SMALL_BATCH) {
                encode_record(&mut records, 0, 0, n, &payloads.payload(n, size));
            }
            records
        })
        .collect();
    let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let config = Config {
        fsync: FsyncPolicy::Never,
        ..Config::default()
    };
    let (mut append_cpu, mut poll_cpu) = (Rounds(Vec::new()), Rounds(Vec::new()));
    for _ in 0..rounds {
        let dir = dir.join("small");
        let (append, _) = runtime.block_on(append_all(&dir, config.clone(), &batches, 1))?;
        let (poll, _) = runtime.block_on(poll_all_by(&dir, config.clone(), bytes, SMALL_BATCH))?;
        std::fs::remove_dir_all(&dir)?;
        append_cpu.0.push(append.cpu);
        poll_cpu.0.push(poll.cpu);
    }
    let (append_cpu, poll_cpu) = (append_cpu.median(), poll_cpu.median());
    suite.custom_group(
        "stage6-storage-small",
        &format!(
            "one message of {size} bytes ({} with its header), appended in batches of              {SMALL_BATCH} (walk, stamp, checksums, the copy into the aligned write buffer,              index entries; written 1 MiB at a time, fsync never, Direct I/O) or polled back              {SMALL_BATCH} at a time (every checksum verified): the appending or polling              thread's CPU time, median of {rounds} rounds of {messages} messages",
            bytes / messages
        ),
        None,
    );
    for (id, cpu) in [
        ("append-small-cpu", append_cpu),
        ("poll-small-cpu", poll_cpu),
    ] {
        suite.record(Row {
            series: Some("CPU time per message".to_string()),
            ..row(id, RowKind::Stage, "", size as u64, cpu, messages, None)
        });
    }
    let per = |cpu: Duration| cpu.as_nanos() as f64 / messages as f64;
    println!(
        "{size}-byte messages, batches of {SMALL_BATCH}: append {:.0} ns, poll {:.0} ns of CPU \
         per message",
        per(append_cpu),
        per(poll_cpu)
    );
    Ok(())
}

/// One write size's measurements.
struct Measured {
    block: usize,
    /// (name, time, per-append latencies)
    appends: Vec<(&'static str, Duration, Histogram<u64>)>,
    /// (name, time, polls)
    reads: Vec<(&'static str, Duration, u64)>,
    raw: Raw,
    raw_compio: Raw,
    /// The direct rows' time on the CPU: what they would take on a disk
    /// that took no time.
    append_cpu: Duration,
    poll_cpu: Duration,
}

/// A row measured by this bench: `calls` iterations of `bytes` in `elapsed`.
fn row(
    id: &str,
    kind: RowKind,
    limit: &str,
    bytes: u64,
    elapsed: Duration,
    calls: u64,
    latencies: Option<&Histogram<u64>>,
) -> Row {
    Row {
        id: id.to_string(),
        kind,
        durability: "one fdatasync at the end of the row: a crash before it may lose \
                     any of it"
            .to_string(),
        limit: (!limit.is_empty()).then(|| limit.to_string()),
        bytes_per_iter: bytes,
        ns_per_iter: elapsed.as_nanos() as f64 / calls.max(1) as f64,
        ns_low: None,
        ns_high: None,
        latency: latencies.map(Percentiles::of),
        series: None,
        x: None,
    }
}

/// A timed part of a row: the clock's time, and this thread's time on the
/// CPU within it (its own work and the system calls it made, submissions to
/// io_uring among them; not the disk's time, nor the kernel's worker threads').
#[derive(Default, Clone, Copy)]
struct Timed {
    wall: Duration,
    cpu: Duration,
}

impl Timed {
    /// Starts timing; [`Timed::add_since`] adds what passed.
    fn start() -> (Instant, Duration) {
        (Instant::now(), thread_cpu())
    }

    fn add_since(&mut self, (wall, cpu): (Instant, Duration)) {
        self.wall += wall.elapsed();
        self.cpu += thread_cpu().saturating_sub(cpu);
    }
}

/// This thread's time on the CPU so far.
fn thread_cpu() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// Appends every batch `passes` times, then flushes; returns the time and
/// each append's latency. The batches are copied before the clock starts:
/// `append` stamps them in place, and the copy is the producer's, not ours.
async fn append_all(
    dir: &Path,
    config: Config,
    batches: &[Vec<u8>],
    passes: u64,
) -> anyhow::Result<(Timed, Histogram<u64>)> {
    let mut partition = Partition::open(dir, config).await?;
    let mut latencies = histogram();
    let mut timed = Timed::default();
    for _ in 0..passes {
        let mut pass: Vec<Vec<u8>> = batches.to_vec();
        let start = Timed::start();
        for batch in &mut pass {
            let call = Instant::now();
            partition.append(batch).await?;
            latencies.saturating_record(call.elapsed().as_nanos() as u64);
        }
        timed.add_since(start);
    }
    let start = Timed::start();
    partition.flush().await?;
    timed.add_since(start);
    Ok((timed, latencies))
}

/// Polls every record of the partition in `dir`; returns the time and the
/// number of polls.
async fn poll_all(dir: &Path, config: Config, total: u64) -> anyhow::Result<(Timed, u64)> {
    poll_all_by(dir, config, total, POLL).await
}

/// [`poll_all`], `per_poll` records at a time.
async fn poll_all_by(
    dir: &Path,
    config: Config,
    total: u64,
    per_poll: u64,
) -> anyhow::Result<(Timed, u64)> {
    let partition = Partition::open(dir, config).await?;
    let end = partition.status().next_offset;
    let mut buf = AlignedBuf::with_capacity(2 << 20)?;
    let mut offset = 0;
    let mut polls = 0;
    let mut bytes = 0;
    let mut timed = Timed::default();
    let start = Timed::start();
    while offset < end {
        let polled = partition.poll_into(offset, per_poll, buf).await?;
        anyhow::ensure!(polled.count > 0, "poll at {offset} returned nothing");
        offset += polled.count;
        bytes += polled.bytes.len() as u64;
        polls += 1;
        buf = polled.bytes.into_buffer();
    }
    timed.add_since(start);
    anyhow::ensure!(bytes == total, "polled {bytes} bytes of {total}");
    Ok((timed, polls))
}

struct Raw {
    write: Duration,
    read: Duration,
}

/// One row's time in each round.
struct Rounds(Vec<Duration>);

impl Rounds {
    /// The middle round (the slower middle one of an even count).
    fn median(mut self) -> Duration {
        self.0.sort();
        self.0.get(self.0.len() / 2).copied().unwrap_or_default()
    }
}

/// The raw rows' times in each round.
#[derive(Default)]
struct RawRounds {
    write: Vec<Duration>,
    read: Vec<Duration>,
}

impl RawRounds {
    fn push(&mut self, raw: Raw) {
        self.write.push(raw.write);
        self.read.push(raw.read);
    }

    fn median(self) -> Raw {
        Raw {
            write: Rounds(self.write).median(),
            read: Rounds(self.read).median(),
        }
    }
}

/// A file of `bytes` preallocated whole, for the raw rows: the limit, with
/// no grow inside the timing.
fn raw_file(dir: &Path, name: &str, bytes: u64) -> anyhow::Result<std::fs::File> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
        .with_context(|| {
            format!(
                "{}: O_DIRECT needs a disk-backed file system",
                path.display()
            )
        })?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes)?;
    file.sync_all()?;
    Ok(file)
}

/// `total` bytes (rounded up to blocks) in `block`-sized O_DIRECT writes,
/// then one fdatasync; then read back the same way. Blocking `pwrite`/`pread`.
fn raw_std(dir: &Path, block: usize, total: u64) -> anyhow::Result<Raw> {
    let blocks = total.div_ceil(block as u64);
    let file = raw_file(dir, "raw-std", blocks * block as u64)?;
    let mut buf = AlignedBuf::with_capacity(block)?;
    buf.resize_zeroed(block);
    buf.as_mut_slice().fill(0x5a);
    let start = Instant::now();
    for n in 0..blocks {
        file.write_all_at(buf.as_slice(), n * block as u64)?;
    }
    file.sync_data()?;
    let write = start.elapsed();
    let start = Instant::now();
    for n in 0..blocks {
        file.read_exact_at(buf.as_mut_slice(), n * block as u64)?;
    }
    let read = start.elapsed();
    std::fs::remove_file(dir.join("raw-std"))?;
    Ok(Raw { write, read })
}

/// [`raw_std`] through compio: the same calls as owned-buffer operations.
async fn raw_compio_rw(dir: &Path, block: usize, total: u64) -> anyhow::Result<Raw> {
    let blocks = total.div_ceil(block as u64);
    drop(raw_file(dir, "raw-compio", blocks * block as u64)?);
    let file = compio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(dir.join("raw-compio"))
        .await?;
    let mut buf = AlignedBuf::with_capacity(block)?;
    buf.resize_zeroed(block);
    buf.as_mut_slice().fill(0x5a);
    let start = Instant::now();
    for n in 0..blocks {
        let BufResult(result, written) = (&file).write_all_at(buf, n * block as u64).await;
        result?;
        buf = written;
    }
    file.sync_data().await?;
    let write = start.elapsed();
    let start = Instant::now();
    for n in 0..blocks {
        buf.clear();
        let BufResult(result, slice) = file
            .read_exact_at(buf.slice(..block), n * block as u64)
            .await;
        result?;
        buf = slice.into_inner();
    }
    let read = start.elapsed();
    std::fs::remove_file(dir.join("raw-compio"))?;
    Ok(Raw { write, read })
}

/// The two raw rows of a write size (blocking and compio), one block per call.
fn record_raw_rows(
    suite: &mut Suite,
    kib: u64,
    block: u64,
    blocks: u64,
    raws: [(String, Duration, &str); 2],
) {
    for (id, elapsed, series) in raws {
        suite.record(Row {
            series: Some(series.to_string()),
            x: Some(kib),
            ..row(&id, RowKind::Raw, "", block, elapsed, blocks, None)
        });
    }
}
