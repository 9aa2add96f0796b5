//! Issue 21's cluster mode, step 2: the metadata group, a Raft group of the
//! (three) nodes, running in one process. Not wired into the server yet:
//! nothing else in the broker uses this module, so a single node behaves
//! exactly as before.
//!
//! One concept per file:
//! - [`types`]: openraft's type configuration (ids, node addresses);
//! - [`state`]: the replicated [`state::ClusterState`] and the pure,
//!   deterministic `apply` of a [`state::MetaCommand`];
//! - [`log_store`]: the raft log on files (framed, checksummed, torn tail
//!   cut at open) and the vote; [`files`]: atomic whole-file records;
//! - [`state_machine`]: applied state in memory, snapshots as JSON files;
//! - [`network`]: raft messages over TCP, length-prefixed JSON frames;
//! - [`node`]: a node on its own thread with a tokio runtime.
//!
//! Consensus is openraft's (0.9, the newest stable line; see the workspace
//! `Cargo.toml`), never home-made: Raft is the lesson's "small facts"
//! protocol, and a hand-written one would be the riskiest code in the repo.
//! Invariants the rest relies on: a command's effect depends only on the
//! state and the command ([`state`]); an entry is acknowledged to openraft
//! only after `fsync` ([`log_store`]); a vote is never torn ([`files`]).
//! Simplification: openraft 0.9 has no pre-vote, so a node cut off and
//! healed can depose a healthy leader once by its higher term; the design's
//! pre-vote waits for openraft 0.10 to be released.

pub mod files;
pub mod log_store;
pub mod network;
pub mod node;
pub mod state;
pub mod state_machine;
pub mod types;

pub use node::{ClusterError, NodeConfig, RaftNode};
pub use state::{ClusterState, MetaCommand, MetaResponse};
pub use types::{NodeId, RivuletNode, TypeConfig};

/// openraft's own storage test suite, run on the file log and the state
/// machine: the contract the traits' docs describe, checked by the crate
/// that relies on it (appends, truncation, purge, vote, snapshots).
#[cfg(test)]
mod suite {
    use openraft::testing::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::{StorageError, TypeConfig};

    struct FileStores;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for FileStores {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().unwrap();
            let log = LogStore::open(&dir.path().join("raft")).unwrap();
            let sm = StateMachine::open(&dir.path().join("state")).unwrap();
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(FileStores).unwrap();
    }
}
