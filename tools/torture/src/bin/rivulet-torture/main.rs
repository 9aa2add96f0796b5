//! `rivulet-torture`: crash torture for the broker and for stage 2's log.
//!
//! Rounds of SIGKILL against the real `rivulet-server` (fsync `always`,
//! small segments, retention when the server has it) at chosen moments:
//! under load, right at a segment rollover, in the middle of retention's
//! deletions, and during a graceful shutdown; after each, a restart and a
//! check of every acknowledged message (see `ledger`). Then rounds of
//! SIGKILL against a child appending to stage 2's log under `always` and
//! `every-batch` (see `stage2`).
//!
//! Prints the seed first and a JSON summary last (also to `--json FILE`);
//! exits 1 if anything acknowledged was lost or damaged. `scripts/torture`
//! runs the long version and files the summary under
//! `benches/results/<profile>/torture.json`; `tests/torture.rs` runs a short one.

mod broker;
mod ledger;
mod payload;
mod rng;
mod stage2;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::rng::Rng;
use rivulet_loadgen::machine::{self, Machine};
use rivulet_torture::Summary;

#[derive(Parser)]
#[command(about = "Crash torture: SIGKILL rivulet-server and stage 2's log, verify every ack")]
struct Args {
    /// Broker rounds (one kill and restart each).
    #[arg(long, default_value_t = 8)]
    rounds: u64,
    /// Stop starting broker rounds after this many seconds.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Stage 2 rounds per policy (0: skip stage 2).
    #[arg(long, default_value_t = 4)]
    stage2_rounds: u64,
    /// Seed for every random choice; printed, so a failing run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// The server binary (default: `rivulet-server` beside this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Working folder (default: a new folder in the system's temporary folder,
    /// removed after a run that passed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Producer connections.
    #[arg(long, default_value_t = 3)]
    producers: u64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Server shards.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Segment size: small, so rollovers are frequent.
    #[arg(long, default_value_t = 64 << 10)]
    segment_size: u64,
    /// Retention by size per partition (0: off); used when the server has
    /// `--retention-bytes`.
    /// A few times what a round writes to a partition: deletions happen
    /// in every round once the first few have filled it, and most messages
    /// are still there to be checked after the crash that follows them.
    #[arg(long, default_value_t = 1 << 20)]
    retention_bytes: u64,
    /// Largest batch a producer sends.
    #[arg(long, default_value_t = 20)]
    max_batch: u64,
    /// The broker's fsync policy. Only `always` makes every acknowledgement a
    /// promise; `never` is the negative control, a run that must find losses.
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Also write the JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|first| first == "stage2-child") {
        let dir = PathBuf::from(argv.next().context("stage2-child DIR POLICY")?);
        let policy = argv.next().context("stage2-child DIR POLICY")?;
        return stage2::child(&dir, &policy.to_string_lossy());
    }
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!("rivulet-torture: seed {seed} (repeat with --seed {seed})");
    let mut rng = Rng::new(seed);
    let exe = std::env::current_exe().context("finding this binary")?;
    let server = match args.server {
        Some(server) => server,
        None => exe.with_file_name("rivulet-server"),
    };
    let (dir, made_dir) = match args.dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("rivulet-torture-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let options = broker::Options {
        server,
        data: dir.join("broker"),
        rounds: args.rounds,
        duration: args.duration_secs.map(Duration::from_secs),
        producers: args.producers.max(1),
        partitions: args.partitions.max(1),
        shards: args.shards.max(1),
        segment_size: args.segment_size,
        retention_bytes: (args.retention_bytes > 0).then_some(args.retention_bytes),
        max_batch: args.max_batch.max(1),
        fsync: args.fsync,
    };
    let broker = broker::run(&options, &mut rng)?;
    let stage2 = stage2::run(&exe, &dir.join("stage2"), args.stage2_rounds, &mut rng)?;
    let passed = broker.failures.is_empty()
        && broker.counts.losses == 0
        && broker.counts.corrupt == 0
        && stage2
            .iter()
            .all(|p| p.failures.is_empty() && p.losses == 0 && p.corrupt == 0);
    let summary = Summary {
        suite: "torture".to_string(),
        commit: machine::commit(),
        date: machine::utc_now(),
        machine: Machine::detect(&dir),
        seed,
        broker,
        stage2,
        passed,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    println!("{json}");
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, format!("{json}\n")).with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    if passed {
        if made_dir {
            let _ = std::fs::remove_dir_all(&dir);
        }
        eprintln!("rivulet-torture: passed (seed {seed})");
        Ok(())
    } else {
        eprintln!(
            "rivulet-torture: FAILED (seed {seed}); the data is kept in {}",
            dir.display()
        );
        std::process::exit(1);
    }
}
