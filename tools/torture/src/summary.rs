//! The run's summary, as JSON: what was tortured, how often, what held.
//!
//! The file is `benches/results/<profile>/torture.json` when `scripts/torture`
//! runs it; the book's reliability page is generated from it by
//! `cargo run -p bench --bin publish`, which reads it with these same types.
//! The machine, commit and date are the load generator's
//! (`rivulet_loadgen::machine`), the ones every results file carries, so the
//! page names the machine the same way.
//!
//! Fields marked `#[serde(default)]` may be missing from a file written by
//! an older driver (the ones the page does not need, and a few it shows as
//! 0 or empty): committed results keep parsing when a field is added here.

use rivulet_loadgen::machine::Machine;
use serde::{Deserialize, Serialize};

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Always `torture`.
    #[serde(default)]
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

/// The broker part of the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerSummary {
    /// Rounds run.
    pub rounds: u64,
    /// Seconds they took.
    pub seconds: f64,
    /// The fsync policy (`always`: every ack is a durability promise).
    pub fsync: String,
    /// Segment size in bytes.
    pub segment_size: u64,
    /// Retention by size, if it was on.
    pub retention_bytes: Option<u64>,
    /// Producer connections.
    pub producers: u64,
    /// Partitions.
    pub partitions: u32,
    /// Server shards.
    pub shards: u32,
    /// Kills by moment.
    pub kills: Kills,
    /// Segment files created, as seen by the driver's watcher.
    #[serde(default)]
    pub segments_created_seen: u64,
    /// Segment files deleted, as seen by the watcher.
    #[serde(default)]
    pub segments_deleted_seen: u64,
    /// The ledger's counts: acknowledged, verified, losses...
    pub counts: Counts,
    /// The consumer-offset check.
    pub consumer: ConsumerCheck,
    /// Notes on what could not be tested here.
    #[serde(default)]
    pub notes: Vec<String>,
    /// What failed, described (empty when all held).
    #[serde(default)]
    pub failures: Vec<String>,
}

/// Kills, by the moment they landed in.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Kills {
    /// At a random time under load.
    pub produce: u64,
    /// Right after a new segment file appeared.
    pub rollover: u64,
    /// Right after a segment file was deleted by retention.
    pub retention: u64,
    /// During a graceful shutdown (SIGTERM, then SIGKILL).
    pub shutdown: u64,
    /// Shutdowns that finished (exit 0) before the SIGKILL came.
    #[serde(default)]
    pub shutdown_finished_first: u64,
    /// Rounds that waited for a rollover or deletion that did not come in
    /// time, and killed anyway (counted under `produce`).
    #[serde(default)]
    pub moment_not_reached: u64,
}

/// The broker's counts, kept across rounds by the driver's ledger.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// Messages acknowledged by the broker.
    pub acknowledged: u64,
    /// Acknowledged messages found intact at their offsets after a crash.
    pub verified: u64,
    /// Acknowledged messages removed by retention before a check saw them.
    pub removed_by_retention_unverified: u64,
    /// Records never acknowledged (in flight at the kill) found after restart.
    pub unacknowledged_survivors: u64,
    /// Records checked, over every check (a record is checked once per round).
    #[serde(default)]
    pub records_checked: u64,
    /// Acknowledged messages missing: must be 0.
    pub losses: u64,
    /// Records failing a checksum or holding the wrong payload: must be 0.
    pub corrupt: u64,
    /// Ids stored twice: must be 0.
    pub duplicates: u64,
    /// Offsets out of order or with a hole in the middle: must be 0.
    pub order_violations: u64,
    /// Times the first stored offset moved down (a deleted segment came
    /// back after a kill during deletion): allowed, counted.
    #[serde(default)]
    pub first_offset_moved_down: u64,
}

/// What the consumer-offset check found.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ConsumerCheck {
    /// Whether the server stores consumer offsets (`POLL_BY` with
    /// auto-commit and `GET_OFFSETS`); if not, the check was skipped.
    pub checked: bool,
    /// Why it was skipped, if it was.
    pub note: Option<String>,
    /// Polls whose auto-commit was acknowledged.
    pub commits: u64,
    /// Partitions whose stored offset, after a restart, was below one
    /// acknowledged before the kill: must be 0.
    pub went_back: u64,
}

/// One stage 2 policy's rounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The fsync policy.
    pub policy: String,
    /// Rounds (kills).
    pub rounds: u64,
    /// Messages acknowledged as appended.
    pub acknowledged: u64,
    /// Messages acknowledged as durable (synced), in total.
    pub durable_promised: u64,
    /// Messages found intact after the last kill.
    #[serde(default)]
    pub survived: u64,
    /// Durable-promised messages missing after a kill: must be 0.
    pub losses: u64,
    /// Records with a wrong payload or offset: must be 0.
    pub corrupt: u64,
    /// What failed, described.
    #[serde(default)]
    pub failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed results file parses, and writes back as the same
    /// JSON: the schema is the one the files were written with.
    #[test]
    fn summary_committed_results_round_trip() {
        let results =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/results");
        let Ok(profiles) = std::fs::read_dir(&results) else {
            return;
        };
        for profile in profiles {
            let path = profile.unwrap().path().join("torture.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let summary: Summary = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert_eq!(
                serde_json::to_value(&summary).unwrap(),
                value,
                "{}",
                path.display()
            );
        }
    }
}
