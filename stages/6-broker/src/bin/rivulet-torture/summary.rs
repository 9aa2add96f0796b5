//! The run's summary, as JSON: what was tortured, how often, what held.
//!
//! The file is `benches/results/<profile>/torture.json` when `scripts/torture`
//! runs it; the book's reliability page is generated from it by
//! `cargo run -p bench --bin publish`. The machine fields are the ones every
//! results file carries (the bench crate's `Machine`), so the page names the
//! machine the same way; they are read here again, from `/proc`, because
//! the bench crate depends on this one and not the other way round.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::broker::BrokerSummary;
use crate::stage2::PolicySummary;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `torture`.
    pub suite: String,
    /// The commit the binaries were built from (`-dirty` if changed).
    pub commit: String,
    /// When the run ended, UTC.
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// The seed: the same seed makes the same choices.
    pub seed: u64,
    /// The broker's rounds.
    pub broker: BrokerSummary,
    /// Stage 2's rounds, one entry per policy.
    pub stage2: Vec<PolicySummary>,
    /// Whether every check held.
    pub passed: bool,
}

/// The machine, with the fields of the bench crate's `Machine`.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `RIVULET_PROFILE`, or `local`.
    pub profile: String,
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// File system of the data folder.
    pub filesystem: String,
}

impl Machine {
    /// This machine; `data` is where the run wrote.
    pub fn detect(data: &Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_once(':'))
                .map(|(_, value)| value.trim().to_string())
        };
        let memory_kib: u64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Machine {
            profile: std::env::var("RIVULET_PROFILE").unwrap_or_else(|_| "local".to_string()),
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kib * 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            filesystem: run("df", &["--output=fstype", &data.display().to_string()])
                .and_then(|out| out.lines().nth(1).map(|l| l.trim().to_string()))
                .unwrap_or_else(|| "unknown".to_string()),
        }
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The commit, as the bench crate spells it: changes to results files and
/// generated pages do not make it dirty.
pub fn commit() -> String {
    match run("git", &["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => {
            let changes = run(
                "git",
                &[
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    ".",
                    ":(exclude)benches/results",
                    ":(exclude)book/src/generated",
                ],
            );
            match changes {
                Some(changes) if !changes.is_empty() => format!("{hash}-dirty"),
                _ => hash,
            }
        }
        None => "unknown".to_string(),
    }
}

/// Now, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_else(|| "unknown".to_string())
}
