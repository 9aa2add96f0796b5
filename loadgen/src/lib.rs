//! Rivulet's load generator: producers and consumers driving a target over
//! time, measured the way `DESIGN.md` ("Measuring honestly") asks.
//!
//! Its own crate, rather than a module of `bench`, because two users need it:
//! `bench` (the ladder, `rivulet-bench`), which depends on every stage, and
//! stage 6's `rivulet bench` command, which `bench` depends on; a module of
//! `bench` would make that a cycle. It depends on no stage but the protocol
//! of stages 3 and 4 ([`remote`]) and Kafka's, through the `kafka-protocol`
//! crate ([`kafka`]). `bench` re-exports it as `bench::loadgen`.
//!
//! - [`target`]: the interface a stage's adapter implements ([`Target`],
//!   [`Connection`]); the run knows nothing else about a stage;
//! - [`config`]: what a run does ([`LoadConfig`]), checked before it starts:
//!   who is measured ([`Roles`]: both sides, producers alone, or consumers
//!   alone over a topic filled first) and how producers spread over
//!   partitions ([`Partitioning`]: round-robin or pinned);
//! - [`mod@run`]: the run itself, closed or open loop, with warmup and drain;
//! - [`error`]: why a run failed ([`LoadError`]), naming the actor and partition;
//! - [`histogram`]: one HdrHistogram per actor, merged, never averaged;
//! - [`payload`] and [`clock`]: the send timestamp every payload starts with;
//! - [`report`]: the figures as a table and as a JSON results file;
//! - [`memory`]: the in-process target, for tests and as the generator's ceiling;
//! - [`remote`]: a running server of stages 4 to 6, in stage 4's requests;
//! - [`kafka`]: a server's Kafka listener, in Kafka's requests (the
//!   `kafka-protocol` crate's codec), for the same workload through the other door;
//! - [`latency`] and [`machine`]: percentiles as results files store them,
//!   and the machine a result was measured on (shared with `bench`'s
//!   criterion suites).
//!
//! Invariants every run keeps (and its tests check):
//! - every sample started before the warmup ended is discarded, from latency
//!   and throughput alike;
//! - with consumers, a run succeeds only if every acknowledged message was
//!   read back exactly once, in offset order, with its bytes intact (when
//!   consumers run alone: every message the topic was filled with);
//! - a run ends: every operation has a timeout, and so does the drain.
//!
//! Deliberate simplifications against a production tool (Iggy's `iggy-bench`,
//! OpenMessaging Benchmark): one request in flight per producer, consumers
//! that own whole partitions and start from offset 0, every actor in this
//! process and on this clock.
//!
//! ```no_run
//! # async fn example() -> Result<(), rivulet_loadgen::LoadError> {
//! use rivulet_loadgen::{LoadConfig, MemoryTarget, run};
//! let outcome = run(&MemoryTarget::new(), &LoadConfig::default(), &indicatif::ProgressBar::hidden()).await?;
//! println!("{} msg/s", outcome.figures.producer.messages_per_s);
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod config;
pub mod error;
pub mod histogram;
pub mod kafka;
pub mod latency;
pub mod machine;
pub mod memory;
pub mod payload;
pub mod remote;
pub mod report;
pub mod run;
pub mod target;

pub use config::{ConfigError, LoadConfig, Mode, Stop, Warmup, parse_duration};
pub use error::{Actor, LoadError};
pub use histogram::Percentiles;
pub use kafka::{Acks, KafkaConnection, KafkaTarget};
pub use memory::MemoryTarget;
pub use remote::{Handshake, RemoteConnection, RemoteTarget};
pub use report::{Figures, LoadResults, Side, progress_bar};
pub use rivulet_datasets::{Partitioning, Roles};
pub use run::{Histograms, RunOutcome, run, run_blocking};
pub use target::{Connection, Polled, Target};

// The progress bar type is part of `run`'s signature: users build it with
// the same version of indicatif.
pub use indicatif;

use std::path::{Path, PathBuf};

/// The repository's root folder (this crate lives in `loadgen/`): where
/// `git` is asked for the commit measured.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The folder of all results files: `benches/results/`.
pub fn results_dir() -> PathBuf {
    repo_root().join("benches").join("results")
}
