//! The Kafka listener: Kafka's wire protocol on a second port, served by the
//! same shards, partitions and topics as Rivulet's own protocol.
//!
//! A topic is the same topic to both listeners: Kafka's topic `orders` is
//! Rivulet's topic named `orders` (whatever its stream; one created over
//! Kafka joins the `default` stream), its partitions and offsets are the same,
//! and a record keeps its key, headers and CreateTime whichever way it came
//! in (`stage6_broker::storage::record`'s extension section).
//!
//! How a connection is served ([`connection`]): frames are a big-endian
//! `i32` length and a request; the length is checked against
//! `server.max_frame_len` before anything is allocated, and large bodies
//! wait for room in the server-wide request budget, as on Rivulet's port.
//! The request header and body are decoded by the `kafka-protocol` crate
//! (every schema of Kafka 4.1, generated from Kafka's own definitions); this
//! module only says what each request *does* here:
//!
//! - [`versions`]: which APIs, at which versions (ApiVersions);
//! - [`topics`]: Metadata, CreateTopics, DeleteTopics, FindCoordinator;
//! - [`produce`]: Produce, with acks 0, 1 and all; [`producers`]: the
//!   idempotent producer (InitProducerId and sequence numbers);
//! - [`fetch`]: Fetch (a long poll) and ListOffsets;
//! - [`groups`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   DescribeGroups and ListGroups: Kafka's classic group protocol, served
//!   by the group's coordinator ([`crate::groups`]);
//! - [`offsets`]: OffsetCommit (checked by the group: member and
//!   generation) and OffsetFetch (a group's offsets are the consumer
//!   offsets of a Rivulet consumer named after the group);
//! - [`translate`]: record batches to Rivulet records and back;
//! - [`jobs`]: what a partition's owner does for these requests.
//!
//! Not done here: static group membership and the new consumer group
//! protocol (KIP-848), transactions, SASL and TLS. Since a Kafka client
//! has no way to log in here, access control (`[auth]`) turns the listener
//! off when it was on by default (with a warning), and refuses to start when
//! `kafka.listen` was set on purpose.

pub mod connection;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod jobs;
pub mod offsets;
pub mod produce;
pub mod producers;
pub mod topics;
pub mod translate;
pub mod versions;

use std::net::SocketAddr;

/// The Kafka listener's settings (`[kafka]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Create a topic a Metadata or Produce request names, when it does not exist.
    pub auto_create_topics: bool,
    /// Partitions of a topic created by a Kafka client that names none.
    pub default_partitions: u32,
    /// The host and port Metadata tells clients to connect to (`None`: the
    /// address each client reached this broker at).
    pub advertised: Option<(String, u16)>,
}

/// The listener's node id in Metadata and FindCoordinator: one node.
pub const NODE_ID: i32 = 0;

/// The cluster id Metadata reports.
pub const CLUSTER_ID: &str = "rivulet";
