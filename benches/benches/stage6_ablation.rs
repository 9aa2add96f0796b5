//! Stage 6's ablation, over loopback with the load generator, in one run:
//! stage 5 and stage 6 with its defaults on the same workload (on every core
//! beside the load generator, then each on half the cores and the load
//! generator on the others), stage 6 in the talk's setting (a shard per
//! core, pinned), then stage 6 with one switch changed at a time (Direct I/O,
//! pinning, a shard per core, io_uring versus polling), and last stage 5,
//! stage 6 and the talk's setting beside a noisy neighbour (a CPU hog the
//! bench starts on a stated core, `bench::noisy`), beside the machine's raw
//! limits measured in the same run (`bench::ladder::limits::measure`:
//! loopback TCP, direct writes and reads).
//!
//! `cargo bench -p bench --bench stage6_ablation` writes
//! `benches/results/<profile>/stage6_ablation.json`; under `cargo test` it
//! runs a tiny version as a smoke test and writes nothing.

use bench::adapters::stage5::Stage5Target;
use bench::adapters::stage6::Stage6Target;
use bench::ladder::limits::{Limits, Sizes, measure};
use bench::loadgen::{Figures, LoadConfig, Stop, Warmup, run};
use bench::noisy::{NoisyNeighbour, last_core};
use bench::results::{Row, RowKind, Suite};
use rivulet_datasets::{MessageSize, Workload};
use stage2_batching::FsyncPolicy;
use stage6_broker::cores;
use stage6_broker::{IoDriver, ServerConfig};

/// The policy of every run: stage 2's type, for the stage 5 runs...
const FSYNC: FsyncPolicy = FsyncPolicy::EveryBatch;
/// ...and the same policy as the engine's own type, for the stage 6 runs.
const ENGINE_FSYNC: stage6_broker::FsyncPolicy = stage6_broker::FsyncPolicy::EveryBatch;
const BATCH: u32 = 100;
const GROUP: &str = "stage6-ablation";
/// Interleaved rounds per variant when measuring; the median is kept.
const ROUNDS: usize = 3;

/// One run of the ablation: a name, and how its server is started.
struct Variant {
    id: &'static str,
    /// What is switched off, for the log.
    what: &'static str,
    /// `None`: stage 5.
    stage6: Option<ServerConfig>,
    /// The server on the first half of the cores and the load generator on
    /// the rest (`bench::cores::split`), instead of both on every core.
    split: bool,
    /// Beside a CPU hog on the last core ([`last_core`]).
    noisy: bool,
}

// ANCHOR: variants
fn variants() -> Vec<Variant> {
    // What `rivulet-server` and `ServerConfig::new` start with on this
    // machine (`stage6_broker::default_shards`, not pinned)...
    let defaults = ServerConfig::new();
    // ... and the talk's setting, the defaults before: a shard per core, pinned.
    let talk = ServerConfig {
        shards: cores(),
        pin: true,
        ..ServerConfig::new()
    };
    let changed = |change: fn(&mut ServerConfig)| {
        let mut config = defaults.clone();
        change(&mut config);
        Some(config)
    };
    let variant = |id, what, stage6| Variant {
        id,
        what,
        stage6,
        split: false,
        noisy: false,
    };
    let noisy = |id, what, stage6| Variant {
        noisy: true,
        ..variant(id, what, stage6)
    };
    vec![
        variant(
            "stage5",
            "stage 5: tokio, a lock per partition, the page cache",
            None,
        ),
        variant(
            "stage6",
            "stage 6 with its defaults",
            Some(defaults.clone()),
        ),
        variant(
            "stage6-talk",
            "stage 6 in the talk's setting: a shard per core, pinned",
            Some(talk.clone()),
        ),
        Variant {
            id: "stage5-split-cores",
            what: "stage 5 on half the cores, the load generator on the others",
            stage6: None,
            split: true,
            noisy: false,
        },
        Variant {
            id: "stage6-split-cores",
            what: "stage 6, a shard per core of half the cores, pinned, the load generator on \
                   the others",
            stage6: Some(ServerConfig {
                shards: bench::cores::split().0.len(),
                ..talk.clone()
            }),
            split: true,
            noisy: false,
        },
        variant(
            "stage6-direct-io-off",
            "Direct I/O off (the page cache)",
            changed(|c| c.storage.direct_io = false),
        ),
        variant("stage6-pinned", "pinning on", changed(|c| c.pin = true)),
        variant(
            "stage6-every-core",
            "a shard per core instead of one per core but one",
            changed(|c| c.shards = cores()),
        ),
        variant(
            "stage6-polling",
            "the polling driver instead of io_uring",
            changed(|c| c.driver = IoDriver::Polling),
        ),
        noisy("stage5-noisy", "stage 5 beside a CPU hog", None),
        noisy(
            "stage6-noisy",
            "stage 6 with its defaults beside a CPU hog",
            Some(defaults.clone()),
        ),
        noisy(
            "stage6-talk-noisy",
            "stage 6 in the talk's setting beside a CPU hog",
            Some(talk),
        ),
    ]
}
// ANCHOR_END: variants

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    let size = workload.fixed_size()?;
    let data = bench::bench_data_dir();
    // Longer than the network suite's runs: the switches move throughput by
    // a few percent, which a run of a fraction of a second cannot show.
    let messages = if measuring {
        20 * workload.messages
    } else {
        2_000
    };
    let sizes = if measuring {
        Sizes::full()
    } else {
        Sizes::tiny()
    };
    let scratch = tempfile::tempdir_in(&data)?;
    let block = (BATCH * size) as usize;
    let limits = measure(scratch.path(), block, sizes)?;
    drop(scratch);

    let hog_core = last_core();
    let mut suite = Suite::new("stage6_ablation", &workload);
    suite.custom_group(
        GROUP,
        &format!(
            "one message of {size} bytes; 2 producers in batches of {BATCH} and 2 consumers on \
             4 partitions, fsync {}; latency per produce (send to acknowledgement) and per \
             poll; {} cores; stage 6's defaults here: {} shard(s), not pinned; the `-noisy` \
             rows run beside a thread the bench keeps busy on core {hog_core}",
            FSYNC.name(),
            cores(),
            stage6_broker::default_shards(cores()),
        ),
        None,
    );
    record_limits(&mut suite, &limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Every core this process may use, read once, before any thread is
    // pinned: `allowed()` and `cores()` read the calling thread's affinity,
    // so after a split variant has pinned this thread to the load
    // generator's cores they would answer with those alone, and every later
    // server would start on them (threads inherit their creator's affinity).
    let every_core = bench::cores::allowed();
    // The load generator of the split variants: its own runtime, every
    // thread pinned to the cores the server does not get.
    let (server_cores, load_cores) = bench::cores::split();
    let split_runtime = {
        let cores = load_cores.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(load_cores.len())
            .on_thread_start(move || bench::cores::pin_current_thread(&cores))
            .enable_all()
            .build()?
    };
    let config = LoadConfig {
        producers: 2,
        consumers: 2,
        partitions: 4,
        message_size: MessageSize::Fixed(size),
        payload: workload.payload,
        batch: BATCH,
        poll_batch: BATCH,
        stop: Stop::Messages(messages),
        warmup: Warmup::Messages(messages / 10),
        seed: workload.seed,
        ..LoadConfig::default()
    };
    // Rounds interleave the variants, and each keeps its median round (by
    // producer throughput): a pass over the variants takes about a minute,
    // and within a minute the disk of a shared machine drifts by more than
    // most switches move the figures. A single pass let that drift order
    // the rows.
    let rounds = if measuring { ROUNDS } else { 1 };
    let variants = variants();
    let mut measured: Vec<Vec<(Figures, &'static str)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for (variant, measured) in variants.iter().zip(&mut measured) {
            let (runtime, server_cores) = if variant.split {
                // `block_on` runs its future on this thread: pinned with the rest.
                bench::cores::pin_current_thread(&load_cores);
                (&split_runtime, server_cores.clone())
            } else {
                bench::cores::pin_current_thread(&every_core);
                (&runtime, Vec::new())
            };
            // Started before the server, stopped after it: the whole run.
            let hog = match variant.noisy {
                true => Some(NoisyNeighbour::start(hog_core)?),
                false => None,
            };
            let (figures, driver) = runtime.block_on(async {
                let progress = indicatif::ProgressBar::hidden();
                match variant.stage6.clone() {
                    None => {
                        let threads = if variant.split {
                            server_cores.len()
                        } else {
                            every_core.len()
                        };
                        let target = Stage5Target::start_on(FSYNC, threads, server_cores)?;
                        anyhow::Ok((run(&target, &config, &progress).await?.figures, "tokio"))
                    }
                    Some(server) => {
                        let target = Stage6Target::start_with(variant.id, ENGINE_FSYNC, server)?;
                        let driver = target.driver().unwrap_or("?");
                        anyhow::Ok((run(&target, &config, &progress).await?.figures, driver))
                    }
                }
            })?;
            drop(hog);
            eprintln!(
                "round {round}: {} ({}, driver {driver}): producer {:.0} msg/s, consumer {:.0} msg/s",
                variant.id,
                variant.what,
                figures.producer.messages_per_s,
                figures.consumer.messages_per_s
            );
            measured.push((figures, driver));
        }
    }
    // The results file describes the machine from this thread: all of it.
    bench::cores::pin_current_thread(&every_core);
    for (variant, mut rounds) in variants.iter().zip(measured) {
        rounds.sort_by(|a, b| {
            a.0.producer
                .messages_per_s
                .total_cmp(&b.0.producer.messages_per_s)
        });
        let (figures, driver) = &rounds[rounds.len() / 2];
        record(&mut suite, variant, driver, figures, size);
    }
    if measuring && let Some(path) = suite.finish(&data)? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// The producer's and consumer's figures of one variant, each against the
/// loopback limit.
fn record(suite: &mut Suite, variant: &Variant, driver: &str, figures: &Figures, size: u32) {
    for (side, measured) in [
        ("producer", &figures.producer),
        ("consumer", &figures.consumer),
    ] {
        eprintln!(
            "median: {} ({}, driver {driver}) {side}: {:.0} msg/s",
            variant.id, variant.what, measured.messages_per_s
        );
        suite.record(Row {
            id: format!("{}-{side}", variant.id),
            kind: RowKind::Stage,
            durability: format!("fsync {}", FSYNC.name()),
            limit: Some("loopback-tcp".to_string()),
            bytes_per_iter: u64::from(size),
            ns_per_iter: 1e9 / measured.messages_per_s.max(1e-9),
            ns_low: None,
            ns_high: None,
            latency: Some(measured.latency),
            series: None,
            x: None,
        });
    }
}

/// The raw limits as rows: what moving the same bytes costs with nothing in
/// the way.
fn record_limits(suite: &mut Suite, limits: &Limits) {
    let rows = [
        (
            "loopback-tcp",
            "none (memory to memory)",
            limits.loopback_tcp_mb_s,
        ),
        (
            "direct-write",
            "one sync at the end",
            limits.direct_write_mb_s,
        ),
        ("direct-read", "none (reads)", limits.direct_read_mb_s),
    ];
    for (id, durability, mb_s) in rows {
        let bytes = limits.block_size as u64;
        suite.record(Row {
            id: id.to_string(),
            kind: RowKind::Raw,
            durability: durability.to_string(),
            limit: None,
            bytes_per_iter: bytes,
            ns_per_iter: bytes as f64 / (mb_s.max(1e-9) * 1e6) * 1e9,
            ns_low: None,
            ns_high: None,
            latency: None,
            series: None,
            x: None,
        });
    }
}
