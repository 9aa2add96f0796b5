//! The ladder: every stage on the same workload, on this machine, in one run,
//! beside the machine's own limits measured in the same run.
//!
//! Two ladders, because a stage either has a network or does not:
//! - **storage**, in process: stage 1's log, stage 2's batching stream and stage
//!   5's partition (stage 6 joins when it lands), appending the same messages;
//! - **network**, through the load generator over loopback: stages 3, 4 and 5
//!   (and 6 when it lands), each server started on 127.0.0.1 and stopped after.
//!
//! Every rung keeps the workload's fsync policy, and says what its
//! acknowledgement promises beside its numbers. The table gives each rung's
//! gain over the rung before it on the same ladder, and its share of the limit
//! that bounds it: Direct I/O writes of 1 MiB for storage, loopback TCP for the
//! network. One run writes one results file,
//! `benches/results/<profile>/ladder-<workload>.json`.
//!
//! Two workloads, because one cannot show every gain: `quick` sends one
//! message per request, so every network rung is a sequence of round trips
//! and the stages come out close together; `throughput` sends batches of
//! 1000, so a round trip is shared by a thousand messages and what each stage
//! does with the bytes shows. The `ladder` binary runs both by default.
//!
//! With [`Options::noisy`], two more network rungs run stages 5 and 6 again
//! beside a noisy neighbour ([`crate::noisy`]): a thread spinning on a stated
//! core, recorded in each of those rungs (`noisy_core`). Stage 6 runs with its
//! defaults (a shard per core but one, not pinned: the talk's pinned shard per
//! core is the ablation's to measure), so the pair shows whether those
//! defaults hold up when a core is not the broker's alone.

pub mod limits;
pub mod network;
pub mod page;
pub mod plan;
pub mod storage;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rivulet_datasets::Workload;
use serde::{Deserialize, Serialize};

use crate::latency::Percentiles;
use crate::machine::{self, Machine};
use crate::report::duration;
use limits::{Limits, Sizes};
use plan::Plan;

/// Which ladder a rung is on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Ladder {
    /// In process, no network.
    Storage,
    /// Over loopback, through the load generator.
    Network,
}

/// One stage's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rung {
    /// `stage1`, `stage2`, ...
    pub stage: String,
    /// Storage or network.
    pub ladder: Ladder,
    /// What an acknowledgement promised.
    pub durability: String,
    /// What one latency sample is.
    pub latency_unit: String,
    /// Messages measured.
    pub messages: u64,
    /// Over how long.
    pub seconds: f64,
    /// Messages per second.
    pub messages_per_s: f64,
    /// Payload MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Per-call latency (see `latency_unit`).
    pub latency: Percentiles,
    /// Network rungs: from a message's send to its consumer reading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end: Option<Percentiles>,
    /// The core a noisy neighbour (a thread spinning there) kept busy while
    /// this rung ran; absent for a rung that had the machine to itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noisy_core: Option<usize>,
}

impl Rung {
    /// The rung's name in tables and charts: `stage5`, or
    /// `stage5, noisy core 1` beside a noisy neighbour.
    pub fn name(&self) -> String {
        match self.noisy_core {
            Some(core) => format!("{}, noisy core {core}", self.stage),
            None => self.stage.clone(),
        }
    }
}

/// One ladder run, as written to its results file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LadderResults {
    /// When it ran (UTC).
    pub date: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
    /// The workload's name.
    pub workload: String,
    /// Its one-line description.
    pub workload_description: String,
    /// The run's shape, as words ("1 producer, batches of 1, fsync every-batch").
    pub plan: String,
    /// The workload as run, every key (absent from files written before it
    /// was recorded): what the results page reads the batch size from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_file: Option<Workload>,
    /// The machine's limits, measured in the same run.
    pub limits: Limits,
    /// The stages, in ladder order.
    pub rungs: Vec<Rung>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workload every rung runs.
    pub workload: Workload,
    /// Where rungs and limits put their files.
    pub data_dir: PathBuf,
    /// How much the limit measurements move.
    pub limit_sizes: Sizes,
    /// Worker threads of each server started for a network rung.
    pub server_threads: usize,
    /// Run stages 5 and 6 over the network once more beside a CPU hog on
    /// this core ([`crate::noisy`]); `None` for no such rungs.
    pub noisy: Option<usize>,
}

/// One rung to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The stage.
    pub stage: &'static str,
    /// Its ladder.
    pub ladder: Ladder,
    /// The core of a noisy neighbour beside it, if any.
    pub noisy_core: Option<usize>,
}

/// The stages run beside a noisy neighbour: the last two network rungs, so
/// the pair shows stage 6's defaults against stage 5 there too.
pub const NOISY_STAGES: [&str; 2] = ["stage5", "stage6"];

/// The rungs, in order: storage first, then network.
pub const RUNGS: [(&str, Ladder); 8] = [
    ("stage1", Ladder::Storage),
    ("stage2", Ladder::Storage),
    ("stage5", Ladder::Storage),
    ("stage6", Ladder::Storage),
    ("stage3", Ladder::Network),
    ("stage4", Ladder::Network),
    ("stage5", Ladder::Network),
    ("stage6", Ladder::Network),
];

/// Every rung `options` asks for, in order: [`RUNGS`], then the noisy
/// neighbour's network rungs if [`Options::noisy`] names a core.
pub fn steps(options: &Options) -> Vec<Step> {
    let plain = RUNGS.iter().map(|&(stage, ladder)| Step {
        stage,
        ladder,
        noisy_core: None,
    });
    let noisy = options.noisy.into_iter().flat_map(|core| {
        NOISY_STAGES.iter().map(move |&stage| Step {
            stage,
            ladder: Ladder::Network,
            noisy_core: Some(core),
        })
    });
    plain.chain(noisy).collect()
}

// ANCHOR: run
/// Measures the limits, then every rung; `step` is told each step's name.
pub fn run(options: &Options, mut step: impl FnMut(&str)) -> anyhow::Result<LadderResults> {
    let workload = &options.workload;
    let plan = Plan::of(workload)?;
    let scratch = tempfile::tempdir_in(&options.data_dir)
        .with_context(|| format!("a scratch folder in {}", options.data_dir.display()))?;

    step("raw limits");
    let limits = limits::measure(
        scratch.path(),
        plan.block_size(workload),
        options.limit_sizes,
    )
    .with_context(|| {
        format!(
            "measuring raw limits in {} (Direct I/O needs a file system that supports \
                 O_DIRECT, such as ext4 or xfs: set RIVULET_BENCH_DIR to a folder on one)",
            options.data_dir.display()
        )
    })?;

    let messages = storage::messages(workload, &plan);
    let mut rungs = Vec::new();
    for Step {
        stage,
        ladder,
        noisy_core,
    } in steps(options)
    {
        let name = match noisy_core {
            Some(core) => format!("{stage} beside a noisy neighbour on core {core}"),
            None => stage.to_string(),
        };
        step(&name);
        let rung = match (stage, ladder) {
            ("stage1", Ladder::Storage) => storage::stage1(scratch.path(), &plan, &messages),
            ("stage2", Ladder::Storage) => storage::stage2(scratch.path(), &plan, &messages),
            ("stage5", Ladder::Storage) => storage::stage5(scratch.path(), &plan, &messages),
            ("stage6", Ladder::Storage) => storage::stage6(scratch.path(), &plan, &messages),
            _ => network::stage(stage, workload, &plan, options.server_threads, noisy_core),
        };
        rungs.push(rung.with_context(|| format!("running {name}"))?);
    }
    Ok(LadderResults {
        date: machine::utc_now(),
        commit: machine::commit(),
        machine: Machine::detect(&options.data_dir),
        workload: workload.name.clone(),
        workload_description: workload.description.clone(),
        plan: format!(
            "{} messages; storage: batches of {}; network: {} producers, {} consumers, {} \
             partitions, batches of {}; fsync {}",
            plan.messages,
            plan.batch,
            plan.producers,
            plan.consumers,
            plan.partitions,
            plan.batch,
            plan.fsync.name()
        ),
        workload_file: Some(workload.clone()),
        limits,
        rungs,
    })
}
// ANCHOR_END: run

impl LadderResults {
    /// `benches/results/<profile>/ladder-<workload>.json`.
    pub fn default_path(profile: &str, workload: &str) -> PathBuf {
        crate::results::results_dir()
            .join(profile)
            .join(format!("ladder-{workload}.json"))
    }

    /// Writes it, pretty-printed.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| path.display().to_string())
    }

    /// Every ladder results file, of every profile.
    pub fn all() -> anyhow::Result<Vec<LadderResults>> {
        let mut all = Vec::new();
        for profile in crate::results::published_profiles()? {
            let Ok(files) = std::fs::read_dir(&profile) else {
                continue;
            };
            for file in files {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if name.starts_with("ladder-") && name.ends_with(".json") {
                    all.push(LadderResults::read(&path)?);
                }
            }
        }
        all.sort_by(|a, b| {
            (&a.machine.profile, &a.workload).cmp(&(&b.machine.profile, &b.workload))
        });
        Ok(all)
    }

    /// Reads one back.
    pub fn read(path: &Path) -> anyhow::Result<LadderResults> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The limit a rung is read against, and its name.
    pub fn limit_of(&self, ladder: Ladder) -> (f64, &'static str) {
        match ladder {
            Ladder::Storage => (
                self.limits.direct_write_large_mb_s,
                "Direct I/O write, 1 MiB",
            ),
            Ladder::Network => (self.limits.loopback_tcp_mb_s, "loopback TCP"),
        }
    }

    // ANCHOR: table
    /// The summary table, in Markdown (which also reads well in a terminal).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| stage | ladder | msg/s | MB/s | gain | of limit | p50 | p99 | p99.9 | latency of | acknowledged |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        let mut previous: Option<&Rung> = None;
        for rung in &self.rungs {
            // A gain compares like with like: the rung before on the same
            // ladder, in the same condition (alone, or beside the same hog).
            let gain = match previous {
                Some(before)
                    if before.ladder == rung.ladder && before.noisy_core == rung.noisy_core =>
                {
                    format!("{:.2}×", rung.messages_per_s / before.messages_per_s)
                }
                _ => "".to_string(),
            };
            let (limit, _) = self.limit_of(rung.ladder);
            let _ = writeln!(
                out,
                "| {} | {:?} | {:.0} | {:.1} | {gain} | {:.1}% | {} | {} | {} | {} | {} |",
                rung.name(),
                rung.ladder,
                rung.messages_per_s,
                rung.mb_per_s,
                rung.mb_per_s / limit * 100.0,
                duration(rung.latency.p50 as f64),
                duration(rung.latency.p99 as f64),
                duration(rung.latency.p999 as f64),
                rung.latency_unit,
                rung.durability,
            );
            previous = Some(rung);
        }
        out
    }
    // ANCHOR_END: table

    /// The limits, as a table.
    pub fn limits_table(&self) -> String {
        let l = &self.limits;
        let mut out = String::new();
        let _ = writeln!(out, "| raw limit | measured |");
        let _ = writeln!(out, "|---|---:|");
        let rows = [
            (
                format!("Direct I/O write, {} B blocks, then sync", l.block_size),
                format!("{:.1} MB/s", l.direct_write_mb_s),
            ),
            (
                format!("Direct I/O read, {} B blocks", l.block_size),
                format!("{:.1} MB/s", l.direct_read_mb_s),
            ),
            (
                "Direct I/O write, 1 MiB blocks, then sync".to_string(),
                format!("{:.1} MB/s", l.direct_write_large_mb_s),
            ),
            (
                "Direct I/O read, 1 MiB blocks".to_string(),
                format!("{:.1} MB/s", l.direct_read_large_mb_s),
            ),
            (
                "4 KiB write + fdatasync, p50 / p99".to_string(),
                format!(
                    "{} / {}",
                    duration(l.fsync_latency.p50 as f64),
                    duration(l.fsync_latency.p99 as f64)
                ),
            ),
            (
                "loopback TCP, one connection".to_string(),
                format!("{:.1} MB/s", l.loopback_tcp_mb_s),
            ),
            (
                "memory copy".to_string(),
                format!("{:.1} MB/s", l.memcpy_mb_s),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        out
    }
}
