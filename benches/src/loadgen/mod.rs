//! The load generator: producers and consumers driving a target over time,
//! measured the way `DESIGN.md` ("Measuring honestly") asks.
//!
//! - [`target`]: the interface a stage's adapter implements ([`Target`],
//!   [`Connection`]); the load generator depends on no stage;
//! - [`config`]: what a run does ([`LoadConfig`]), checked before it starts;
//! - [`mod@run`]: the run itself, closed or open loop, with warmup and drain;
//! - [`error`]: why a run failed ([`LoadError`]), naming the actor and partition;
//! - [`histogram`]: one HdrHistogram per actor, merged, never averaged;
//! - [`payload`] and [`clock`]: the send timestamp every payload starts with;
//! - [`report`]: the figures as a table and as a JSON results file;
//! - [`memory`]: the in-process target, for tests and as the generator's ceiling.
//!
//! Invariants every run keeps (and its tests check):
//! - every sample started before the warmup ended is discarded, from latency
//!   and throughput alike;
//! - with consumers, a run succeeds only if every acknowledged message was
//!   read back exactly once, in offset order, with its bytes intact;
//! - a run ends: every operation has a timeout, and so does the drain.
//!
//! Deliberate simplifications against a production tool (Iggy's `iggy-bench`,
//! OpenMessaging Benchmark): one request in flight per producer, consumers
//! that own whole partitions and start from offset 0, every actor in this
//! process and on this clock.
//!
//! ```no_run
//! # async fn example() -> Result<(), bench::loadgen::LoadError> {
//! use bench::loadgen::{LoadConfig, MemoryTarget, run};
//! let outcome = run(&MemoryTarget::new(), &LoadConfig::default(), &indicatif::ProgressBar::hidden()).await?;
//! println!("{} msg/s", outcome.figures.producer.messages_per_s);
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod config;
pub mod error;
pub mod histogram;
pub mod memory;
pub mod payload;
pub mod report;
pub mod run;
pub mod target;

pub use config::{ConfigError, LoadConfig, Mode, Stop, Warmup, parse_duration};
pub use error::{Actor, LoadError};
pub use histogram::Percentiles;
pub use memory::MemoryTarget;
pub use report::{Figures, LoadResults, Side, progress_bar};
pub use run::{Histograms, RunOutcome, run};
pub use target::{Connection, Polled, Target};
