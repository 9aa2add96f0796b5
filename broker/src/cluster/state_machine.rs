//! The metadata group's state machine: [`StateMachine`] implements
//! openraft's `RaftStateMachine`, [`SnapshotBuilder`] its snapshot side.
//!
//! The state lives in memory and is made durable by snapshots only (the
//! "transient state machine" of openraft's trait docs): the log store keeps
//! the committed log id, and at start openraft re-applies the committed
//! entries after the newest snapshot. Applying twice is harmless for that
//! reason: a restarted node starts from the snapshot, never from a state
//! that already contains the entries being replayed.
//!
//! A snapshot is one file, `snapshot.json` in the state machine's folder,
//! replaced atomically ([`super::files`]); only the newest is ever needed.
//! Its JSON holds the snapshot's metadata (last log id, membership) and the
//! [`ClusterState`]; what travels to a lagging follower is the state alone,
//! since openraft sends the metadata beside it. Rejected: a file per
//! snapshot with the older ones deleted after (two files to reason about at
//! start for nothing: the metadata is kilobytes), and applying straight to a
//! persistent store (one fsync per applied entry on top of the log's).
//!
//! After each applied batch the new state is published on a
//! `tokio::sync::watch` channel, as an `Arc<ClusterState>`: readers (the
//! tests now, the shards' reconciliation later) see whole states, never a
//! half-applied batch, and never hold a lock the raft thread waits on.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftLogId, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::files::{read_atomic, write_atomic};
use super::state::{ClusterState, MetaResponse};
use super::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const SNAPSHOT: &str = "snapshot.json";

/// The snapshot file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    state: ClusterState,
}

fn read_err(e: &io::Error) -> StorageError {
    StorageError::from(StorageIOError::read_snapshot(None, e))
}

fn write_err(e: &io::Error) -> StorageError {
    StorageError::from(StorageIOError::write_snapshot(None, e))
}

/// The applied metadata and what openraft needs to know about it.
#[derive(Debug)]
pub struct StateMachine {
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: ClusterState,
    snapshots_built: u64,
    publish: watch::Sender<Arc<ClusterState>>,
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from its snapshot if any.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<SnapshotFile> = read_atomic(dir, SNAPSHOT)?;
        let (last_applied, membership, state) = match snapshot {
            Some(s) => (s.meta.last_log_id, s.meta.last_membership, s.state),
            None => Default::default(),
        };
        let (publish, _) = watch::channel(Arc::new(state.clone()));
        Ok(Self {
            dir: dir.to_path_buf(),
            last_applied,
            membership,
            state,
            snapshots_built: 0,
            publish,
        })
    }

    /// A receiver of every applied state, newest first.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.publish.subscribe()
    }

    fn publish(&self) {
        self.publish.send_replace(Arc::new(self.state.clone()));
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked.
#[derive(Debug)]
pub struct SnapshotBuilder {
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: ClusterState,
    id: u64,
}

/// A snapshot as openraft hands it over: the metadata, and the state as
/// JSON bytes. (`io::Result` here: openraft's `StorageError` is large, so
/// it is made only at the trait boundary.)
fn snapshot_of(meta: SnapshotMeta, state: &ClusterState) -> io::Result<Snapshot<TypeConfig>> {
    let data = serde_json::to_vec(state).map_err(io::Error::other)?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    })
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.id),
            None => format!("none-{}", self.id),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            state: self.state.clone(),
        };
        write_atomic(&self.dir, SNAPSHOT, &file).map_err(|e| write_err(&e))?;
        snapshot_of(meta, &self.state).map_err(|e| write_err(&e))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut answers = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            self.last_applied = Some(log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => MetaResponse::Done,
                EntryPayload::Normal(command) => command.apply(&mut self.state),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(log_id), membership);
                    MetaResponse::Done
                }
            };
            answers.push(answer);
        }
        self.publish();
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        SnapshotBuilder {
            dir: self.dir.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            state: self.state.clone(),
            id: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let state: ClusterState = serde_json::from_slice(snapshot.get_ref()).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &io::Error::new(io::ErrorKind::InvalidData, e),
            ))
        })?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state,
        };
        write_atomic(&self.dir, SNAPSHOT, &file).map_err(|e| write_err(&e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.state = file.state;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let file: Option<SnapshotFile> =
            read_atomic(&self.dir, SNAPSHOT).map_err(|e| read_err(&e))?;
        file.map(|f| snapshot_of(f.meta, &f.state))
            .transpose()
            .map_err(|e| read_err(&e))
    }
}
