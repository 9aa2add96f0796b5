//! Consumer groups: members sharing a topic's partitions, in Rivulet's
//! protocol and in Kafka's.
//!
//! - [`coordinator`]: one group's membership as a state machine (joins,
//!   generations, assignment, sessions), with the clock passed in;
//! - [`service`]: where each group lives (the shard a hash of its name
//!   picks), how a request reaches it from any shard, and the timer that
//!   ends silent members' sessions;
//! - [`rivulet`]: Rivulet's own protocol for them (join, heartbeat, leave,
//!   poll, commit, list, describe).
//!
//! A group's committed offsets are the stored consumer offsets of a
//! consumer with the group's name, on each partition's owner: durable,
//! and the same offsets whichever protocol committed them.

pub mod commit;
pub mod coordinator;
pub mod rivulet;
pub mod service;
