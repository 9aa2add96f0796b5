//! Stages 3 and 4 over loopback, with the load generator, in one run:
//!
//! - **producers**: 1, 2 and 4 producers writing one topic, which is one stream
//!   behind one lock in stage 3 and four partitions with a lock each in stage 4;
//! - **zero-copy**: stage 4 against stage 5, producers and consumers, the talk's
//!   regular-versus-zero-copy table;
//! - **contention**: on one stage 3 stream, one writer appending while 0, 1, 2
//!   or 4 readers poll it: what the talk's `RwLock` costs each side.
//!
//! `cargo bench -p bench --bench network` writes
//! `benches/results/<profile>/network.json`; under `cargo test` it runs a tiny
//! version as a smoke test and writes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::adapters::stage3::Stage3Target;
use bench::adapters::stage4::Stage4Target;
use bench::adapters::stage5::Stage5Target;
use bench::latency::{Percentiles, histogram};
use bench::loadgen::{LoadConfig, Stop, Target, Warmup, run};
use bench::results::{Row, RowKind, Suite};
use hdrhistogram::Histogram;
use rivulet_datasets::{MessageSize, Workload};
use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::Client;

const FSYNC: FsyncPolicy = FsyncPolicy::EveryBatch;
const BATCH: u32 = 100;

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    // The contention run sends records of one size, and rows report bytes per
    // message: a size distribution has no place here.
    let size = workload.fixed_size()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut suite = Suite::new("network", &workload);

    let messages = if measuring {
        5 * workload.messages
    } else {
        2_000
    };
    suite.custom_group(
        "producers",
        &format!(
            "one message of {} bytes, produced in batches of {BATCH}, fsync policy {}, one \
             consumer reading along; latency is per batch, send to acknowledgement",
            size,
            FSYNC.name()
        ),
        Some("producers"),
    );
    for producers in [1, 2, 4] {
        for (series, partitions) in [("stage3, one stream", 1), ("stage4, 4 partitions", 4)] {
            let config = LoadConfig {
                producers,
                consumers: 1,
                partitions,
                message_size: MessageSize::Fixed(size),
                payload: workload.payload,
                batch: BATCH,
                poll_batch: 1000,
                stop: Stop::Messages(messages),
                warmup: Warmup::Messages(messages / 10),
                seed: workload.seed,
                ..LoadConfig::default()
            };
            let figures = runtime.block_on(async {
                let progress = indicatif::ProgressBar::hidden();
                if partitions == 1 {
                    let target = Stage3Target::start(FSYNC, 2)?;
                    anyhow::Ok(run(&target, &config, &progress).await?.figures)
                } else {
                    let target = Stage4Target::start(FSYNC, 2)?;
                    anyhow::Ok(run(&target, &config, &progress).await?.figures)
                }
            })?;
            let producer = figures.producer;
            eprintln!(
                "{series}, {producers} producers: {:.0} msg/s",
                producer.messages_per_s
            );
            suite.record(Row {
                id: format!(
                    "{}-p{producers}",
                    if partitions == 1 { "stage3" } else { "stage4" }
                ),
                kind: RowKind::Stage,
                durability: format!("fsync {}", FSYNC.name()),
                limit: None,
                bytes_per_iter: u64::from(size),
                ns_per_iter: 1e9 / producer.messages_per_s,
                ns_low: None,
                ns_high: None,
                latency: Some(producer.latency),
                series: Some(series.to_string()),
                x: Some(u64::from(producers)),
            });
        }
    }

    // Stage 4 against stage 5: the same protocol, the same bytes, the same
    // run; only the server's handling of them differs (the talk's table).
    suite.custom_group(
        "zero-copy",
        &format!(
            "2 producers and 2 consumers on 2 partitions, batches of {BATCH} messages of {} \
             bytes, fsync {}; latency per produce (send to acknowledgement) and per poll",
            size,
            FSYNC.name()
        ),
        None,
    );
    for stage in ["stage4", "stage5"] {
        let config = LoadConfig {
            producers: 2,
            consumers: 2,
            partitions: 2,
            message_size: MessageSize::Fixed(size),
            payload: workload.payload,
            batch: BATCH,
            poll_batch: BATCH,
            stop: Stop::Messages(messages),
            warmup: Warmup::Messages(messages / 10),
            seed: workload.seed,
            ..LoadConfig::default()
        };
        let figures = runtime.block_on(async {
            let progress = indicatif::ProgressBar::hidden();
            if stage == "stage4" {
                let target = Stage4Target::start(FSYNC, 2)?;
                anyhow::Ok(run(&target, &config, &progress).await?.figures)
            } else {
                let target = Stage5Target::start(FSYNC, 2)?;
                anyhow::Ok(run(&target, &config, &progress).await?.figures)
            }
        })?;
        for (side, measured) in [
            ("producer", figures.producer),
            ("consumer", figures.consumer),
        ] {
            eprintln!("{stage} {side}: {:.0} msg/s", measured.messages_per_s);
            suite.record(Row {
                id: format!("{stage}-{side}"),
                kind: RowKind::Stage,
                durability: format!("fsync {}", FSYNC.name()),
                limit: None,
                bytes_per_iter: u64::from(size),
                ns_per_iter: 1e9 / measured.messages_per_s,
                ns_low: None,
                ns_high: None,
                latency: Some(measured.latency),
                series: None,
                x: None,
            });
        }
    }

    let window = if measuring {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(200)
    };
    suite.custom_group(
        "contention",
        &format!(
            "one stage 3 stream: a writer appending batches of {BATCH} messages while readers \
             poll 100 messages at a time from it; latency is per request"
        ),
        Some("readers"),
    );
    for readers in [0, 1, 2, 4] {
        let (writer, reader) = runtime.block_on(contention(readers, window, size as usize))?;
        eprintln!("{readers} readers: writer p99 {} ns", writer.latency.p99);
        for (side, measured) in [("writer", writer), ("readers", reader)] {
            if measured.latency.count == 0 {
                continue; // no readers, no reader row
            }
            suite.record(Row {
                id: format!("{side}-r{readers}"),
                kind: RowKind::Stage,
                durability: format!("fsync {}", FSYNC.name()),
                limit: None,
                bytes_per_iter: measured.bytes / measured.latency.count.max(1),
                ns_per_iter: window.as_nanos() as f64 / measured.latency.count.max(1) as f64,
                ns_low: None,
                ns_high: None,
                latency: Some(measured.latency),
                series: Some(format!(
                    "{side} ({})",
                    if side == "writer" { "append" } else { "poll" }
                )),
                x: Some(readers),
            });
        }
    }

    if measuring && let Some(path) = suite.finish(&bench::bench_data_dir())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// What one side of the contention run did.
struct Measured {
    latency: Percentiles,
    bytes: u64,
}

/// One writer and `readers` readers on one stage 3 stream for `window`.
async fn contention(
    readers: u64,
    window: Duration,
    size: usize,
) -> anyhow::Result<(Measured, Measured)> {
    let target = Stage3Target::start(FSYNC, 2)?;
    target.prepare(1).await?;
    let addr: SocketAddr = target.addr();
    // Something to read from the start, so readers never poll an empty stream.
    let mut seed = Client::connect(addr).await?;
    for _ in 0..10 {
        seed.append(0, batch(size)).await?;
    }
    let written = Arc::new(AtomicU64::new(10 * u64::from(BATCH)));
    let stop = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (written, stop) = (Arc::clone(&written), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await?;
            let mut latencies = histogram();
            let mut bytes = 0;
            let mut offset = reader * 997;
            while !stop.load(Ordering::Relaxed) {
                offset = (offset + 100) % (written.load(Ordering::Relaxed) - 100);
                let call = Instant::now();
                let messages = client.poll(0, offset, 100).await?;
                latencies.record(call.elapsed().as_nanos() as u64)?;
                bytes += messages.iter().map(|m| m.payload.len() as u64).sum::<u64>();
            }
            anyhow::Ok((latencies, bytes))
        }));
    }
    let mut client = Client::connect(addr).await?;
    let mut writer = histogram();
    let mut written_bytes = 0;
    let start = Instant::now();
    while start.elapsed() < window {
        let call = Instant::now();
        client.append(0, batch(size)).await?;
        writer.record(call.elapsed().as_nanos() as u64)?;
        written.fetch_add(u64::from(BATCH), Ordering::Relaxed);
        written_bytes += u64::from(BATCH) * size as u64;
    }
    stop.store(true, Ordering::Relaxed);
    let mut read = histogram();
    let mut read_bytes = 0;
    for task in tasks {
        let (latencies, bytes): (Histogram<u64>, u64) = task.await??;
        read.add(&latencies)?;
        read_bytes += bytes;
    }
    let writer = Measured {
        latency: Percentiles::of(&writer),
        bytes: written_bytes,
    };
    let reader = Measured {
        latency: Percentiles::of(&read),
        bytes: read_bytes,
    };
    Ok((writer, reader))
}

fn batch(size: usize) -> Vec<Message> {
    (0..u64::from(BATCH))
        .map(|id| Message::new(id, vec![0x5a; size]))
        .collect()
}
