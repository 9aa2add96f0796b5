//! Rivulet's shared measuring tools.
//!
//! Every stage is measured with the same pieces, so a number from one stage can
//! be set beside a number from another:
//! - [`loadgen`]: the load generator (producers and consumers over a target,
//!   closed or open loop, merged histograms), and [`adapters`]: its targets,
//!   one per networked stage;
//! - [`ladder`]: every stage on one workload, beside the machine's limits;
//! - [`raw`]: the machine's own limits for the same bytes (plain writes, fsync,
//!   reads), measured in the same run as the stages;
//! - [`latency`]: percentiles from merged HdrHistograms;
//! - [`machine`]: what the machine is, written into every results file;
//! - [`results`]: criterion's estimates gathered into one JSON results file per
//!   suite and profile, under `benches/results/<profile>/`;
//! - [`report`] and [`chart`]: those files turned into the book's tables and
//!   SVG charts.

pub mod adapters;
pub mod chart;
pub mod ladder;
pub mod latency;
pub mod loadgen;
pub mod machine;
pub mod profile;
pub mod raw;
pub mod report;
pub mod results;

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
