//! The openraft type configuration of Rivulet's metadata group.
//!
//! Everything openraft is generic over is fixed here, once: the command a
//! client proposes ([`MetaCommand`]), what applying it answers
//! ([`MetaResponse`]), node ids (`u64`, the operator's `cluster.node_id`),
//! and what the group remembers about a member ([`RivuletNode`]: the address
//! its cluster port listens on, so any node can reach any other from the
//! membership alone, with no side table that could disagree with it).
//!
//! Snapshots travel as `Cursor<Vec<u8>>`: the metadata is small (topics,
//! partitions, nodes), so a whole snapshot in memory is simpler than a file
//! handle and costs nothing worth measuring. Rejected: openraft's
//! `BasicNode` (a bare `addr` string would do, but a type of our own can
//! grow the client and Kafka addresses in step 3 without changing the
//! entries already in a log), and `u32` ids (the operator's settings use
//! `u64`, and a conversion at every boundary is a place to get wrong).

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::state::{MetaCommand, MetaResponse};

/// A node's id in the group, `cluster.node_id` in the settings.
pub type NodeId = u64;

/// A member of the metadata group as the membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RivuletNode {
    /// `host:port` of the node's cluster port (raft messages).
    pub cluster: String,
}

impl RivuletNode {
    /// A node reached at `cluster`.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
        }
    }
}

impl fmt::Display for RivuletNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster={}", self.cluster)
    }
}

openraft::declare_raft_types!(
    /// The type configuration every openraft type in `cluster` is built on.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = NodeId,
        Node = RivuletNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A raft log entry of the metadata group.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term, leader, index) of the metadata group.
pub type LogId = openraft::LogId<NodeId>;
/// A vote of the metadata group.
pub type Vote = openraft::Vote<NodeId>;
/// The storage error openraft's traits return.
pub type StorageError = openraft::StorageError<NodeId>;
/// The membership as the state machine stores it.
pub type StoredMembership = openraft::StoredMembership<NodeId, RivuletNode>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, RivuletNode>;
/// A running raft node of the metadata group.
pub type Raft = openraft::Raft<TypeConfig>;
