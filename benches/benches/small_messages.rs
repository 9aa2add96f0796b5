//! Issue 19, "Small messages": `rivulet-server` at 100-byte messages in
//! batches of 1000, this commit's binary against a baseline commit's, in
//! one run.
//!
//! - **messages**: both binaries, started the same way (2 shards, the same
//!   flags, a fresh data folder each), driven by the load generator with the
//!   same workload: 2 producers and 2 consumers on 2 partitions, 100-byte
//!   payloads (`tiny-100b`'s JSON events), produce requests and polls of
//!   1000 messages. Three phases per server: both sides at once (the
//!   figure issue 19 asks for), producers alone, then consumers alone
//!   reading back what the producers alone wrote. Rounds interleave the
//!   binaries (each round alternates which goes first, so neither always
//!   runs on a disk the other has just warmed or filled) and each row
//!   keeps its median round; the ratio of two medians is taken within the
//!   run. Three times: with the defaults (Direct I/O, fsync every-batch),
//!   through the page cache, and with no fsync, where nothing waits for the
//!   disk and the CPU sets the pace (`bench::small_messages::SETTINGS` says
//!   why each flag is given to both binaries).
//! - **server CPU**: the server process's CPU time during each phase,
//!   per message, from the kernel's accounting (`/proc/<pid>/stat`, which
//!   counts every thread the process had, ended ones included), and split
//!   by thread (`/proc/<pid>/task/<tid>/stat`): the shard threads' user
//!   and kernel time, io_uring's worker threads (the kernel's threads that
//!   run the writes and syncs it cannot do inline), and the rest. The load
//!   generator runs in this process, on the same two cores; its time is not
//!   counted.
//! - **cost**: in process, with criterion, what the engine does per
//!   message on the two paths: a record's checksum with the `crc32c` crate
//!   (what the baseline runs) and with the engine's own loop, counting,
//!   walking and stamping a batch, and a plain copy for scale.
//!
//! `RIVULET_BASELINE_SERVER=$(scripts/build-baseline 30c8d0a) cargo bench -p
//! bench --bench small_messages` writes
//! `benches/results/<profile>/small_messages.json` (`publish` turns it into
//! `book/src/generated/small-messages.md`); without the variable it stops
//! and says how to build the baseline. Under `cargo test` it runs a tiny
//! version with this commit's binary only, as a smoke test, and writes
//! nothing. `RIVULET_BENCH_DIR` picks the disk.

// A benchmark that cannot build its input has nothing to report: it stops there.
#![allow(clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::baseline::Baseline;
use bench::latency::Percentiles;
use bench::loadgen::{Connection, Figures, LoadConfig, RemoteTarget, Stop, Target, Warmup, run};
use bench::results::{Row, RowKind, RowSpec, Suite};
use bench::small_messages::{
    self, BASELINE, COST, PARTS, PHASES, SETTINGS, SIDES, Setting, baseline_description, cpu_group,
    messages_group, rounds_group,
};
use common::servers::{Server, build_release_server};
use rivulet_broker::process::server_binary;
use rivulet_datasets::{MessageSize, Workload};
use stage6_broker::storage::record;

/// Messages per produce request, and per poll: issue 19's batch.
const BATCH: u32 = 1000;
/// Payload bytes per message.
const MESSAGE: u32 = 100;
/// Shards of the server: one per core of the development machine.
const SHARDS: u32 = 2;
/// Producers, consumers and partitions.
const ACTORS: u32 = 2;
/// Messages per phase when measuring, after a warmup of a tenth as many.
const MESSAGES: u64 = 4_000_000;
/// Interleaved rounds per binary when measuring; each row keeps its median.
/// Seven, not the five of the other suites: on the shared 2-core machine
/// one round of either binary differed from the next by up to 15%.
const ROUNDS: usize = 7;
/// The topic of the phase with both sides at once, and of the producers'
/// phase that the consumers' phase reads back.
const MIXED_TOPIC: u32 = 1;
const FILL_TOPIC: u32 = 2;
/// `USER_HZ`, the unit of `/proc`'s CPU times: 100 on every Linux
/// architecture this runs on (it is the kernel's user-space ABI, not the
/// kernel's own tick rate).
const TICKS_PER_S: u64 = 100;

/// `rivulet-server` started with `setting`'s flags and this suite's shards.
fn start_server(binary: &Path, setting: Setting) -> anyhow::Result<Server> {
    let shards = SHARDS.to_string();
    let mut args = vec!["--kafka-listen", "off", "--shards", shards.as_str()];
    args.extend(setting.flags);
    Server::start(binary, &args)
}

/// The server process's CPU time so far, in all and per live thread.
struct CpuSample {
    /// User and kernel time of the whole process, ended threads included, ns.
    total: u64,
    /// Per thread id: its name, user time, kernel time (ns).
    threads: HashMap<u32, (String, u64, u64)>,
}

impl CpuSample {
    fn of(pid: u32) -> anyhow::Result<CpuSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let (_, user, system) = parse_stat(&stat).context("/proc/<pid>/stat")?;
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let entry = entry?;
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the read.
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some(parsed) = parse_stat(&stat)
            {
                threads.insert(tid, parsed);
            }
        }
        Ok(CpuSample {
            total: user + system,
            threads,
        })
    }

    /// What the server spent from `self` to `later`, split by thread kind.
    fn until(&self, later: &CpuSample) -> Cpu {
        let mut cpu = Cpu {
            total: later.total.saturating_sub(self.total),
            ..Cpu::default()
        };
        for (tid, (name, user, system)) in &later.threads {
            let (user0, system0) = self
                .threads
                .get(tid)
                .map_or((0, 0), |(_, user, system)| (*user, *system));
            let (user, system) = (user.saturating_sub(user0), system.saturating_sub(system0));
            if name.starts_with("rivulet-shard") {
                cpu.shard_user += user;
                cpu.shard_system += system;
            } else if name.starts_with("iou-wrk") {
                cpu.io_workers += user + system;
            }
        }
        cpu
    }
}

/// This process's CPU time so far (every thread: the load generator's), ns.
fn own_cpu() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let (_, user, system) = parse_stat(&stat).context("/proc/self/stat")?;
    Ok(user + system)
}

/// A `stat` file's thread name, user time and kernel time (ns). The name is
/// between the first `(` and the last `)`: it may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(String, u64, u64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat(5); the list starts at field 3 (state).
    let ticks = |field: usize| -> Option<u64> { fields.get(field - 3)?.parse().ok() };
    let ns = |ticks: u64| ticks * (1_000_000_000 / TICKS_PER_S);
    Some((name, ns(ticks(14)?), ns(ticks(15)?)))
}

/// The server's CPU time over a phase, ns.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    total: u64,
    shard_user: u64,
    shard_system: u64,
    io_workers: u64,
}

impl Cpu {
    /// Each part, named as [`PARTS`] names them.
    fn parts(&self) -> [(&'static str, u64); 4] {
        let counted = self.shard_user + self.shard_system + self.io_workers;
        [
            ("shard-user", self.shard_user),
            ("shard-system", self.shard_system),
            ("io-workers", self.io_workers),
            ("other", self.total.saturating_sub(counted)),
        ]
    }
}

/// One server's three phases.
struct Measured {
    /// Both sides at once, and the load generator's own CPU time then (ns).
    mixed: Figures,
    mixed_cpu: Cpu,
    mixed_client: u64,
    /// Producers alone.
    produce: Figures,
    produce_cpu: Cpu,
    /// Consumers alone, reading back what the producers alone wrote:
    /// messages per second, messages.
    poll_rate: f64,
    polled: u64,
    poll_cpu: Cpu,
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("tiny-100b")?;
    anyhow::ensure!(
        workload.fixed_size()? == MESSAGE,
        "tiny-100b's payloads are no longer {MESSAGE} bytes"
    );
    // Checked first: a long build, then no baseline, would waste the build.
    let baseline = if measuring {
        Some(Baseline::from_env()?)
    } else {
        None
    };
    if measuring {
        build_release_server()?;
    }
    let current = server_binary()?;
    let mut binaries: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(baseline) = &baseline {
        binaries.push((SIDES[0], baseline.binary.clone()));
    }
    binaries.push((SIDES[1], current));
    // `cargo bench --bench small_messages -- page-cache`: the settings whose
    // name holds the filter (criterion skips its own rows then too, so a
    // filtered run writes no results file).
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let settings: Vec<Setting> = if measuring {
        SETTINGS
            .into_iter()
            .filter(|setting| {
                filter
                    .as_ref()
                    .is_none_or(|f| setting.name.contains(f.as_str()))
            })
            .collect()
    } else {
        SETTINGS[..1].to_vec()
    };
    let (messages, rounds) = if measuring {
        (MESSAGES, ROUNDS)
    } else {
        (20_000, 1)
    };
    let config = LoadConfig {
        producers: ACTORS,
        consumers: ACTORS,
        partitions: ACTORS,
        message_size: MessageSize::Fixed(MESSAGE),
        payload: workload.payload,
        batch: BATCH,
        poll_batch: BATCH,
        stop: Stop::Messages(messages),
        warmup: Warmup::Messages(messages / 10),
        seed: workload.seed,
        // A binary whose consumers fall behind still finishes its run (and
        // its consume rate says how far behind); a stuck one fails.
        drain_timeout: Duration::from_secs(60),
        ..LoadConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut suite = Suite::new(small_messages::SUITE, &workload);
    if let Some(baseline) = &baseline {
        eprintln!(
            "small_messages: baseline {} (commit {})",
            baseline.binary.display(),
            baseline.commit
        );
        suite.custom_group(BASELINE, &baseline_description(&baseline.commit), None);
    }
    for setting in settings {
        let mut measured: Vec<(&str, usize, Measured)> = Vec::new();
        for round in 0..rounds {
            let mut order: Vec<&(&str, PathBuf)> = binaries.iter().collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for &(side, ref binary) in order {
                let server = start_server(binary, setting)?;
                let result = runtime.block_on(phases(&server, &config, setting));
                drop(server);
                let m =
                    result.with_context(|| format!("{side} ({}), round {round}", setting.name))?;
                eprintln!(
                    "{} round {round} {side}: {:.0} msg/s produced, {:.0} read ({} empty polls); \
                     alone: {:.0} produced, {:.0} read back; server CPU per message {:.0} ns \
                     (produce {:.0}, poll {:.0})",
                    setting.name,
                    m.mixed.producer.messages_per_s,
                    m.mixed.consumer.messages_per_s,
                    m.mixed.empty_polls,
                    m.produce.producer.messages_per_s,
                    m.poll_rate,
                    per_message(m.mixed_cpu.total, m.mixed.produced),
                    per_message(m.produce_cpu.total, m.produce.produced),
                    per_message(m.poll_cpu.total, m.polled),
                );
                measured.push((side, round, m));
            }
        }
        record_setting(&mut suite, setting, &measured, messages, rounds);
    }
    cost_group(&mut suite, &workload)?;

    if measuring && let Some(path) = suite.finish(&bench::bench_data_dir())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// CPU nanoseconds per message.
fn per_message(ns: u64, messages: u64) -> f64 {
    ns as f64 / messages.max(1) as f64
}

/// The three phases on one server, each with the server's CPU time around it.
async fn phases(
    server: &Server,
    config: &LoadConfig,
    setting: Setting,
) -> anyhow::Result<Measured> {
    let addr = server.addr()?;
    let durability = &format!("rivulet-server {}", setting.flags.join(" "));
    let progress = indicatif::ProgressBar::hidden();

    let mixed_target = RemoteTarget::new("rivulet-server", addr, MIXED_TOPIC, durability);
    let (before, client) = (CpuSample::of(server.pid()?)?, own_cpu()?);
    let mixed = run(&mixed_target, config, &progress).await?.figures;
    let mixed_cpu = before.until(&CpuSample::of(server.pid()?)?);
    let mixed_client = own_cpu()?.saturating_sub(client);

    let fill_target = RemoteTarget::new("rivulet-server", addr, FILL_TOPIC, durability);
    let producers_alone = LoadConfig {
        consumers: 0,
        ..config.clone()
    };
    let before = CpuSample::of(server.pid()?)?;
    let produce = run(&fill_target, &producers_alone, &progress)
        .await?
        .figures;
    let produce_cpu = before.until(&CpuSample::of(server.pid()?)?);

    let read_target = fill_target.with_existing_topic();
    let before = CpuSample::of(server.pid()?)?;
    let (polled, took) = read_back(&read_target, &produce.produced_per_partition).await?;
    let poll_cpu = before.until(&CpuSample::of(server.pid()?)?);
    Ok(Measured {
        mixed,
        mixed_cpu,
        mixed_client,
        produce,
        produce_cpu,
        poll_rate: polled as f64 / took.as_secs_f64().max(1e-9),
        polled,
        poll_cpu,
    })
}

/// Reads every partition of `target`'s topic from offset 0 up to `counts`
/// (one consumer connection per partition, all at once, polls of
/// [`BATCH`]); the messages read and how long it took, connecting excluded.
async fn read_back(target: &RemoteTarget, counts: &[u64]) -> anyhow::Result<(u64, Duration)> {
    let mut connections = Vec::new();
    for _ in counts {
        connections.push(target.connect().await?);
    }
    let start = Instant::now();
    let mut readers = Vec::new();
    for (partition, (mut connection, &count)) in (0u32..).zip(connections.into_iter().zip(counts)) {
        readers.push(tokio::spawn(async move {
            let mut next = 0;
            while next < count {
                let polled = connection.poll(partition, next, BATCH).await?;
                anyhow::ensure!(
                    polled.first().is_some_and(|first| first.offset == next),
                    "partition {partition}: a poll at {next} of {count} returned no message there"
                );
                next += polled.len() as u64;
            }
            anyhow::Ok(next)
        }));
    }
    let mut read = 0;
    for reader in readers {
        read += reader.await??;
    }
    Ok((read, start.elapsed()))
}

/// The groups of one setting: each binary's median rounds (messages, CPU),
/// and every round.
fn record_setting(
    suite: &mut Suite,
    setting: Setting,
    measured: &[(&str, usize, Measured)],
    messages: u64,
    rounds: usize,
) {
    let durability = format!("server flags {}", setting.flags.join(" "));
    let row = |id: String, ns: f64, latency| Row {
        id,
        kind: RowKind::Stage,
        durability: durability.clone(),
        limit: None,
        bytes_per_iter: u64::from(MESSAGE),
        ns_per_iter: ns,
        ns_low: None,
        ns_high: None,
        latency,
        series: None,
        x: None,
    };
    let iteration = format!(
        "one message of {MESSAGE} bytes on one rivulet-server ({SHARDS} shards, flags `{}`): \
         {ACTORS} producers and {ACTORS} consumers on {ACTORS} partitions, produce requests \
         and polls of {BATCH} messages, {messages} messages a phase after a warmup of {}; \
         each row the median of {rounds} interleaved rounds (the range of this over baseline: \
         the lowest and highest round's); CPU from the server process's own accounting",
        setting.flags.join(" "),
        messages / 10,
    );
    suite.custom_group(&messages_group(setting.name), &iteration, None);
    for side in SIDES {
        let mine: Vec<&Measured> = measured
            .iter()
            .filter(|(s, _, _)| *s == side)
            .map(|(_, _, m)| m)
            .collect();
        if mine.is_empty() {
            continue;
        }
        // Each rate keeps its median round, and that round's latency.
        type Pick = fn(&Measured) -> (f64, Option<Percentiles>);
        let rates: [(&str, Pick); 4] = [
            ("producer", |m| {
                (
                    m.mixed.producer.messages_per_s,
                    Some(m.mixed.producer.latency),
                )
            }),
            ("consumer", |m| {
                (
                    m.mixed.consumer.messages_per_s,
                    Some(m.mixed.consumer.latency),
                )
            }),
            ("produce-only", |m| {
                (
                    m.produce.producer.messages_per_s,
                    Some(m.produce.producer.latency),
                )
            }),
            ("poll-only", |m| (m.poll_rate, None)),
        ];
        for (what, pick) in rates {
            let mut picked: Vec<(f64, Option<Percentiles>)> =
                mine.iter().map(|m| pick(m)).collect();
            picked.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (rate, latency) = picked[(picked.len() - 1) / 2];
            let mut row = row(format!("{side}-{what}"), 1e9 / rate.max(1e-9), latency);
            row.ns_low = picked.last().map(|(fastest, _)| 1e9 / fastest.max(1e-9));
            row.ns_high = picked.first().map(|(slowest, _)| 1e9 / slowest.max(1e-9));
            suite.record(row);
        }
    }
    suite.custom_group(
        &cpu_group(setting.name),
        &format!(
            "the server process's CPU time (user and kernel, every thread) per message, in the \
             runs of `{}`: both sides at once (per message produced, each also read), \
             producers alone (per message produced), consumers alone (per message read back); \
             split by thread from /proc/<pid>/task/*/stat; beside it the load generator's own \
             CPU time per message, both at once, on the same cores; each row the median of its \
             rounds",
            messages_group(setting.name)
        ),
        None,
    );
    for side in SIDES {
        let mine: Vec<&Measured> = measured
            .iter()
            .filter(|(s, _, _)| *s == side)
            .map(|(_, _, m)| m)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut values: Vec<(String, Vec<f64>)> = vec![
            (
                format!("{side}-mixed"),
                mine.iter()
                    .map(|m| per_message(m.mixed_cpu.total, m.mixed.produced))
                    .collect(),
            ),
            (
                format!("{side}-client"),
                mine.iter()
                    .map(|m| per_message(m.mixed_client, m.mixed.produced))
                    .collect(),
            ),
            (
                format!("{side}-produce"),
                mine.iter()
                    .map(|m| per_message(m.produce_cpu.total, m.produce.produced))
                    .collect(),
            ),
            (
                format!("{side}-poll"),
                mine.iter()
                    .map(|m| per_message(m.poll_cpu.total, m.polled))
                    .collect(),
            ),
        ];
        for phase in PHASES {
            for (n, (part, _)) in PARTS.iter().enumerate() {
                let per = mine
                    .iter()
                    .map(|m| {
                        let (cpu, count) = if phase == "produce" {
                            (m.produce_cpu, m.produce.produced)
                        } else {
                            (m.poll_cpu, m.polled)
                        };
                        per_message(cpu.parts()[n].1, count)
                    })
                    .collect();
                values.push((format!("{side}-{phase}-{part}"), per));
            }
        }
        for (id, mut per) in values {
            per.sort_by(f64::total_cmp);
            suite.record(row(id, per[(per.len() - 1) / 2], None));
        }
    }
    suite.custom_group(
        &rounds_group(setting.name),
        &format!(
            "one message, as in `{}`: every round of both binaries, in the order run (a \
             round's two runs are the same-run comparison)",
            messages_group(setting.name)
        ),
        None,
    );
    for (side, round, m) in measured {
        for (what, rate) in [
            ("producer", m.mixed.producer.messages_per_s),
            ("consumer", m.mixed.consumer.messages_per_s),
            ("produce-only", m.produce.producer.messages_per_s),
            ("poll-only", m.poll_rate),
        ] {
            suite.record(row(
                format!("{side}-{what}-{round}"),
                1e9 / rate.max(1e-9),
                None,
            ));
        }
    }
}

/// One batch of [`BATCH`] records of the workload's payloads, as a producer
/// sends them (offsets and timestamps 0, for the partition to stamp).
fn batch(workload: &Workload) -> Vec<u8> {
    let payloads = workload.payloads();
    let mut records = Vec::new();
    for n in 0..u64::from(BATCH) {
        record::encode(
            &mut records,
            0,
            0,
            n,
            &payloads.payload(n, MESSAGE as usize),
        );
    }
    records
}

/// Per message, in process, with criterion: the checksum two ways, the
/// walks, the stamp, and a copy for scale.
fn cost_group(suite: &mut Suite, workload: &Workload) -> anyhow::Result<()> {
    let records = batch(workload);
    let extents = record::walk(&records)?;
    anyhow::ensure!(extents.len() == BATCH as usize);
    // The two checksums agree on every record.
    for &(at, len) in &extents {
        let record = &records[at..at + len];
        anyhow::ensure!(
            record::checksum_of(record) == crc32c::crc32c(&record[4..]),
            "the engine's checksum differs from the crate's at {at}"
        );
    }
    let iteration = format!(
        "one batch of {BATCH} records of {MESSAGE}-byte payloads ({} bytes; divide by {BATCH} \
         for a message), on one core",
        records.len()
    );
    let spec = |kind| RowSpec {
        kind,
        durability: "(no I/O)",
        limit: None,
        bytes_per_iter: u64::from(BATCH * MESSAGE),
    };
    let mut criterion = suite.criterion();
    let mut group = suite.group(&mut criterion, COST, &iteration);
    suite.bench(&mut group, "crc-crate", spec(RowKind::Stage), |b| {
        b.iter(|| {
            extents.iter().fold(0u32, |acc, &(at, len)| {
                acc ^ crc32c::crc32c(black_box(&records[at + 4..at + len]))
            })
        })
    });
    suite.bench(&mut group, "crc-engine", spec(RowKind::Stage), |b| {
        b.iter(|| {
            extents.iter().fold(0u32, |acc, &(at, len)| {
                acc ^ record::checksum_of(black_box(&records[at..at + len]))
            })
        })
    });
    suite.bench(&mut group, "count", spec(RowKind::Stage), |b| {
        b.iter(|| record::count(black_box(&records)).expect("count"))
    });
    suite.bench(&mut group, "walk", spec(RowKind::Stage), |b| {
        b.iter(|| record::walk(black_box(&records)).expect("walk").len())
    });
    // Stamped again and again in place, as warm in the cache as a body the
    // kernel has just copied in: a fresh copy per iteration (criterion's
    // batched inputs) made every one a walk through memory, not the cache.
    let mut stamped = records.clone();
    let mut first = 0u64;
    suite.bench(&mut group, "walk-stamp", spec(RowKind::Stage), |b| {
        b.iter(|| {
            let extents = record::walk(black_box(&stamped)).expect("walk");
            first += extents.len() as u64;
            record::stamp(&mut stamped, &extents, first, 1_700_000_000_000_000);
            extents.len()
        })
    });
    suite.bench(&mut group, "copy", spec(RowKind::Raw), |b| {
        b.iter(|| black_box(&records).clone())
    });
    group.finish();
    criterion.final_summary();
    Ok(())
}
