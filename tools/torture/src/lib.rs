//! Rivulet's crash torture. The `rivulet-torture` binary (`src/bin/`)
//! SIGKILLs the real `rivulet-server` and a child appending to stage 2's
//! log at chosen moments, and checks every acknowledged message after each
//! restart; `scripts/torture` runs the long version.
//!
//! The library holds what others read: [`summary`], the results file's
//! schema, written by the binary and read by `bench`'s reliability page
//! (`cargo run -p bench --bin publish`), so the two can never disagree.

pub mod summary;

pub use summary::{BrokerSummary, ConsumerCheck, Counts, Kills, PolicySummary, Summary};
