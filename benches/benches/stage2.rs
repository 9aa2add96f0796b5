//! Stage 2: what each fsync policy costs per append, at batch sizes 1 to 1000,
//! beside stage 1's sync per message and the disk's own write + fdatasync, all
//! measured in the same run.
//!
//! Not criterion: the point here is the latency *distribution* of each append
//! (p50, p99, p99.9), so every call is timed into an HdrHistogram. Each row runs
//! the `quick` workload after a warmup that is not recorded, repeating it until
//! the row has a second and a few hundred calls behind it.
//! `cargo bench -p bench --bench stage2` measures and writes
//! `benches/results/<profile>/stage2.json`; under `cargo test` it runs a tiny
//! version as a smoke test and writes nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::latency::{Percentiles, histogram};
use bench::raw::RawFile;
use bench::results::{Row, RowKind, Suite};
use hdrhistogram::Histogram;
use rivulet_datasets::Workload;
use stage1_file_log::{AppendMode, HEADER_LEN, Message, Stream};
use stage2_batching::{BatchingStream, Config, FsyncPolicy};

const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];

fn main() -> anyhow::Result<()> {
    // cargo bench passes --bench; cargo test does not.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    let count = if measuring { workload.messages } else { 200 };
    let payloads = workload.payloads();
    // One record size per row: the raw rows write records of that size.
    let size = workload.fixed_size()? as usize;
    let messages: Vec<Message> = (0..count)
        .map(|n| Message::new(n, payloads.payload(n, size)))
        .collect();
    let record = (HEADER_LEN + size) as u64;
    let data = tempfile::tempdir_in(bench::bench_data_dir())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut suite = Suite::new("stage2", &workload);
    suite.custom_group(
        "stage2-append",
        &format!(
            "one append call of a batch of messages ({record} bytes each with its header); \
             latency is per call, from the call to its answer"
        ),
        None,
    );
    let policies = [
        ("always", FsyncPolicy::Always, 0, "nothing acknowledged"),
        (
            "always-prealloc",
            FsyncPolicy::Always,
            64 << 20,
            "nothing acknowledged",
        ),
        (
            "every-batch",
            FsyncPolicy::EveryBatch,
            0,
            "the batch not yet flushed",
        ),
        (
            "interval-100ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
            0,
            "up to 100 ms of writes",
        ),
        (
            "never",
            FsyncPolicy::Never,
            0,
            "what the OS has not written back",
        ),
    ];
    for (name, fsync, preallocate_bytes, durability) in policies {
        for batch in BATCH_SIZES {
            let config = Config {
                preallocate_bytes,
                ..Config::new(fsync)
            };
            let dir = data.path().join(format!("{name}-{batch}"));
            let (elapsed, latencies) =
                runtime.block_on(measure_stage2(&dir, config, batch, &messages, measuring))?;
            eprintln!("stage2 {name} batch {batch}: {elapsed:?}");
            suite.record(Row {
                id: format!("{name}-b{batch}"),
                kind: RowKind::Stage,
                durability: durability.to_string(),
                limit: (fsync == FsyncPolicy::Always).then(|| format!("raw-fdatasync-b{batch}")),
                ..row(name, batch, record, elapsed, &latencies)
            });
        }
    }

    let (elapsed, latencies) = measure_stage1(&data.path().join("stage1"), &messages)?;
    suite.record(Row {
        id: "stage1-sync-every-append".to_string(),
        kind: RowKind::Stage,
        durability: "nothing acknowledged".to_string(),
        limit: Some("raw-fdatasync-b1".to_string()),
        ..row("stage 1, sync per message", 1, record, elapsed, &latencies)
    });

    for batch in BATCH_SIZES {
        let (elapsed, latencies) = measure_raw(data.path(), batch, count, record, measuring)?;
        suite.record(Row {
            id: format!("raw-fdatasync-b{batch}"),
            kind: RowKind::Raw,
            durability: "nothing written".to_string(),
            limit: None,
            ..row("raw write + fdatasync", batch, record, elapsed, &latencies)
        });
    }

    if measuring && let Some(path) = suite.finish(data.path())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// A row's measured fields; the caller fills in what it is.
fn row(
    series: &str,
    batch: usize,
    record: u64,
    elapsed: Duration,
    latencies: &Histogram<u64>,
) -> Row {
    let calls = latencies.len().max(1);
    Row {
        id: String::new(),
        kind: RowKind::Stage,
        durability: String::new(),
        limit: None,
        bytes_per_iter: batch as u64 * record,
        ns_per_iter: elapsed.as_nanos() as f64 / calls as f64,
        ns_low: None,
        ns_high: None,
        latency: Some(Percentiles::of(latencies)),
        series: Some(series.to_string()),
        x: Some(batch as u64),
    }
}

/// Warmup: this share of the appends runs first and is not recorded.
fn warmup_len(batches: usize) -> usize {
    (batches / 10).max(1)
}

/// Whether a row has measured enough: the workload is repeated until its
/// calls fill a second and number a few hundred (large batches make few calls
/// per pass), within a cap on passes, so no row rests on a handful of samples.
fn enough(elapsed: Duration, calls: u64, passes: u32, measuring: bool) -> bool {
    !measuring || passes >= 50 || (elapsed >= Duration::from_secs(1) && calls >= 300)
}

async fn measure_stage2(
    dir: &Path,
    config: Config,
    batch: usize,
    messages: &[Message],
    measuring: bool,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let stream = BatchingStream::open(1, dir, config).await?;
    for warm in messages
        .chunks(batch)
        .take(warmup_len(messages.len() / batch))
    {
        stream.append(warm.to_vec()).await?;
    }
    let mut latencies = histogram();
    let mut elapsed = Duration::ZERO;
    let mut passes = 0;
    while !enough(elapsed, latencies.len(), passes, measuring) || passes == 0 {
        // Batches are built before timing: the copy is the caller's, not the stream's.
        let batches: Vec<Vec<Message>> = messages.chunks(batch).map(<[Message]>::to_vec).collect();
        let start = Instant::now();
        for batch in batches {
            let call = Instant::now();
            stream.append(batch).await?;
            latencies.record(call.elapsed().as_nanos() as u64)?;
        }
        elapsed += start.elapsed();
        passes += 1;
    }
    stream.shutdown().await?;
    std::fs::remove_dir_all(dir)?;
    Ok((elapsed, latencies))
}

fn measure_stage1(dir: &Path, messages: &[Message]) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let mut stream = Stream::open(1, dir, AppendMode::SyncEveryAppend)?;
    let (warm, measured) = messages.split_at(warmup_len(messages.len()));
    for message in warm {
        stream.append(message.clone())?;
    }
    let measured: Vec<Message> = measured.to_vec();
    let mut latencies = histogram();
    let start = Instant::now();
    for message in measured {
        let call = Instant::now();
        stream.append(message)?;
        latencies.record(call.elapsed().as_nanos() as u64)?;
    }
    Ok((start.elapsed(), latencies))
}

fn measure_raw(
    data: &Path,
    batch: usize,
    count: u64,
    record: u64,
    measuring: bool,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let mut file = RawFile::create(data, &format!("raw-{batch}"), 256 << 20)?;
    let bytes = vec![0x5a; batch * record as usize];
    let calls = (count as usize / batch).max(1);
    for _ in 0..warmup_len(calls) {
        file.write_then_sync_data(&bytes).context("warmup")?;
    }
    let mut latencies = histogram();
    let mut elapsed = Duration::ZERO;
    let mut passes = 0;
    while !enough(elapsed, latencies.len(), passes, measuring) || passes == 0 {
        for _ in 0..calls {
            let call = file.write_then_sync_data(&bytes)?;
            elapsed += call;
            latencies.record(call.as_nanos() as u64)?;
        }
        passes += 1;
    }
    Ok((elapsed, latencies))
}
