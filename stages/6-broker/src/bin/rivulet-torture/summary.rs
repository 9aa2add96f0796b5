//! The run's summary, as JSON: what was tortured, how often, what held.
//!
//! The file is `benches/results/<profile>/torture.json` when `scripts/torture`
//! runs it; the book's reliability page is generated from it by
//! `cargo run -p bench --bin publish`. The machine, commit and date are the
//! load generator's (`rivulet_loadgen::machine`), the ones every results
//! file carries, so the page names the machine the same way.

use rivulet_loadgen::machine::Machine;
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
