//! No stall at a segment roll: `rivulet-server` in page-cache mode
//! (`--fsync never --direct-io false`), one producer sending 1 KiB messages in
//! batches of 1000 until the partition has rolled over at least three times,
//! today's build beside a baseline built from an earlier commit
//! (`RIVULET_BASELINE_SERVER`, see `scripts/build-baseline`), in one run. The
//! row that matters is each build's *maximum* produce latency: before sealing
//! went to the background, the append that rolled waited for the whole sealed
//! segment's dirty pages to reach the disk.
//!
//! `RIVULET_BASELINE_SERVER=$(scripts/build-baseline <commit>) cargo bench -p
//! bench --bench segment_roll` writes `benches/results/<profile>/segment_roll.json`;
//! under `cargo test` it runs a small version against today's debug build
//! only (small segments, a few rolls) and writes nothing.

#![allow(clippy::expect_used)]

mod common;

use anyhow::Context;
use bench::baseline::Baseline;
use bench::loadgen::{Figures, LoadConfig, RemoteTarget, Stop, Target, Warmup, run};
use bench::results::{Row, RowKind, Suite};
use common::servers::{Server, build_release_server};
use rivulet_datasets::{MessageSize, Workload};

/// The suite's name: its results file and book table.
const SUITE: &str = "segment_roll";
/// The engine's default segment size, as an operator runs it: the stall is
/// a whole segment's dirty pages, so a smaller one would hide most of it.
const SEGMENT_SIZE: u64 = 1 << 30;
/// Rolls each run must cross.
const ROLLS: u64 = 3;
const MESSAGE_SIZE: u32 = 1024;
const BATCH: u32 = 1000;
/// Rounds per build, alternating which goes first.
const ROUNDS: usize = 2;

struct Measured {
    build: &'static str,
    figures: Figures,
    segments: u64,
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    let (segment_size, builds) = if measuring {
        let baseline = Baseline::from_env()?;
        build_release_server()?;
        let today = rivulet_broker::process::server_binary()?;
        (
            SEGMENT_SIZE,
            vec![
                ("baseline", baseline.binary.clone(), baseline.commit),
                ("today", today, bench::machine::commit()),
            ],
        )
    } else {
        let today = rivulet_broker::process::server_binary()?;
        (4 << 20, vec![("today", today, "this build".to_string())])
    };
    // Enough for `ROLLS` rolls and half a segment more, counted in payload;
    // each record adds its header, so the rolls come a little earlier.
    let messages = (ROLLS * segment_size + segment_size / 2) / u64::from(MESSAGE_SIZE);
    let config = LoadConfig {
        producers: 1,
        consumers: 0,
        partitions: 1,
        message_size: MessageSize::Fixed(MESSAGE_SIZE),
        payload: workload.payload,
        batch: BATCH,
        poll_batch: BATCH,
        stop: Stop::Messages(messages),
        warmup: Warmup::Messages(0),
        seed: workload.seed,
        op_timeout: std::time::Duration::from_secs(60),
        ..LoadConfig::default()
    };
    let segment_arg = segment_size.to_string();
    let args = [
        "--fsync",
        "never",
        "--direct-io",
        "false",
        "--segment-size",
        segment_arg.as_str(),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rounds = if measuring { ROUNDS } else { 1 };
    let mut measured = Vec::new();
    for round in 0..rounds {
        let mut order: Vec<_> = builds.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (build, binary, _) in order {
            let server = Server::start(binary, &args)?;
            let target = RemoteTarget::new(
                &format!("rivulet-server ({build})"),
                server.addr()?,
                1,
                "fsync never, page cache",
            );
            let progress = indicatif::ProgressBar::hidden();
            let figures = runtime.block_on(run(&target, &config, &progress))?.figures;
            let segments = count_logs(server.data_dir())?;
            eprintln!(
                "{build} round {round}: {:.0} msg/s, produce p99 {} µs, max {} µs, {segments} \
                 segments",
                figures.producer.messages_per_s,
                figures.producer.latency.p99 / 1000,
                figures.producer.latency.max / 1000,
            );
            anyhow::ensure!(
                segments > ROLLS,
                "{build}: only {segments} segments: the run crossed fewer than {ROLLS} rolls"
            );
            let _ = target.durability();
            measured.push(Measured {
                build,
                figures,
                segments,
            });
            // Stopped (and synced) before the next one starts.
            drop(server);
        }
    }
    if !measuring {
        return Ok(());
    }
    let mut suite = Suite::new(SUITE, &workload);
    let baseline_commit = &builds[0].2;
    suite.custom_group(
        "page-cache",
        &format!(
            "one produce request of {BATCH} messages of {MESSAGE_SIZE} bytes, send to answer, \
             on rivulet-server with --fsync never --direct-io false and {} MiB segments, one \
             producer on one partition, no consumer, {messages} messages a run ({ROLLS} rolls \
             or more); `baseline` is the server built from commit {baseline_commit}, `today` \
             this commit, {rounds} rounds each, alternating which goes first; per build, the \
             round with the highest maximum latency",
            segment_size >> 20
        ),
        None,
    );
    for (build, _, _) in &builds {
        let worst = measured
            .iter()
            .filter(|m| m.build == *build)
            .max_by_key(|m| m.figures.producer.latency.max)
            .context("a build with no round")?;
        let producer = worst.figures.producer;
        suite.record(Row {
            id: format!("{build}-produce"),
            kind: RowKind::Stage,
            durability: "fsync never".to_string(),
            limit: None,
            bytes_per_iter: u64::from(MESSAGE_SIZE),
            ns_per_iter: 1e9 / producer.messages_per_s.max(1e-9),
            ns_low: None,
            ns_high: None,
            latency: Some(producer.latency),
            series: None,
            x: Some(worst.segments - 1),
        });
    }
    if let Some(path) = suite.finish(&bench::bench_data_dir())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Segment files under a server's data folder: its rolls plus one.
fn count_logs(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count += count_logs(&entry.path())?;
        } else if entry.path().extension().is_some_and(|ext| ext == "log") {
            count += 1;
        }
    }
    Ok(count)
}
