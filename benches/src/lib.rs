//! Rivulet's shared measuring tools.
//!
//! Every stage is measured with the same pieces, so a number from one stage can
//! be set beside a number from another:
//! - [`loadgen`]: the load generator (producers and consumers over a target,
//!   closed or open loop, merged histograms), and [`adapters`]: its targets,
//!   one per networked stage. The generator is its own crate,
//!   `rivulet-loadgen`, re-exported here, so stage 6's `rivulet bench` can use
//!   it too (this crate depends on stage 6, so stage 6 cannot depend on it);
//! - [`ladder`]: every stage on one workload, beside the machine's limits;
//! - [`raw`]: the machine's own limits for the same bytes (plain writes, fsync,
//!   reads), measured in the same run as the stages;
//! - [`latency`]: percentiles from merged HdrHistograms (from `rivulet-loadgen`);
//! - [`machine`]: what the machine is, written into every results file (from
//!   `rivulet-loadgen`, whose results files carry it too);
//! - [`results`]: criterion's estimates gathered into one JSON results file per
//!   suite and profile, under `benches/results/<profile>/`;
//! - [`report`] and [`chart`]: those files turned into the book's tables and
//!   SVG charts; [`findings`]: the sentences that compare their rows, so the
//!   chapters' text is generated with the tables it reads;
//! - [`kafka`]: the Kafka listener's page, its path beside the native one;
//! - [`groups`]: the consumer groups chapter's page, rebalance times;
//! - [`reliability`]: the crash-torture results (`torture.json`, written by
//!   `scripts/torture`) turned into the reliability chapter's figures.

pub mod adapters;
pub mod baseline;
pub mod chart;
pub mod cores;
pub mod findings;
pub mod groups;
pub mod kafka;
pub mod ladder;
pub mod noisy;
pub mod profile;
pub mod raw;
pub mod reliability;
pub mod report;
pub mod results;
pub mod segment_roll;
pub mod small_messages;
pub mod tables;

pub use rivulet_loadgen as loadgen;
pub use rivulet_loadgen::{latency, machine};

use std::path::{Path, PathBuf};

/// The repository's root folder (this crate lives in `benches/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where benchmarks put their files: `RIVULET_BENCH_DIR`, or the system's
/// temporary folder. Set it to a mount on the disk you mean to measure.
pub fn bench_data_dir() -> PathBuf {
    std::env::var_os("RIVULET_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}
