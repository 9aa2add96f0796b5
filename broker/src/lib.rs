//! Rivulet's broker: what makes stage 6's engine a product an operator runs.
//!
//! The engine (`stage6-broker`, `stages/6-broker`) is the talk: Direct I/O
//! segments, thread-per-core shards, stage 4's three requests. This crate
//! plugs into it through one seam (`stage6_broker::shards::extension`) and
//! adds, module by module:
//!
//! - [`server`]: the broker started on the engine, and what it plugs in;
//! - [`api`] and [`requests`]: the broker's own commands on the same
//!   framing (streams, named topics, polls by position, consumer offsets,
//!   statistics, login), their JSON bodies and codes;
//! - [`session`]: each connection's view, access checks in front of the
//!   engine's requests; [`jobs`]: what it asks a partition's owner to do;
//! - [`admin`] and [`metadata`]: shard 0's metadata writer and the
//!   `metadata.json` file it keeps (streams, topic names and settings);
//! - [`auth`]: optional users and permissions;
//! - [`metrics`] and [`http`]: per-shard counters served as Prometheus text;
//! - [`settings`]: the operator's config file, environment and flags;
//! - [`groups`]: consumer groups (membership, generations, assignment),
//!   for both protocols;
//! - [`kafka`]: Kafka's wire protocol on a second port, on the same shards
//!   and topics (kcat, librdkafka, kafka-python talk to it unchanged);
//! - [`process`]: running `rivulet-server` as a child, for tests and tools;
//! - [`cluster`]: issue 21's metadata group on Raft (not wired in yet).
//!
//! The binary is `rivulet-server`; the client and the `rivulet` CLI are the
//! `rivulet-client` package (`clients/rust`).

pub mod admin;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod groups;
pub mod http;
pub mod jobs;
pub mod kafka;
pub mod metadata;
pub mod metrics;
pub mod process;
pub mod requests;
pub mod server;
pub mod session;
pub mod settings;

pub use server::{Options, Server, start, start_with, start_with_auth};
