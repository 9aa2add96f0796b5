//! A raft node of the metadata group on its own thread: [`RaftNode`].
//!
//! openraft needs an async runtime with timers and TCP; the broker's shards
//! run compio, and an openraft future polled on a shard would look for a
//! tokio reactor that is not there. So each node gets one thread,
//! `rivulet-raft-<id>`, running a tokio current-thread runtime, and the rest
//! of the process talks to it through channels only: [`RaftNode::write`]
//! sends a command and waits for the answer, [`RaftNode::metrics`] and
//! [`RaftNode::state`] are `watch` receivers, readable from any thread
//! without a runtime. Rejected: a multi-thread tokio runtime (two more
//! threads on a 2-core machine for kilobytes of metadata), and openraft's
//! compio runtime (`openraft-rt-compio`, only alpha releases, and it puts
//! the whole build in `!Send` mode).
//!
//! Start-up opens the log and the state machine from files, binds the
//! cluster port, and calls `initialize` with the full membership on every
//! node when the node has never been initialized: openraft accepts the same
//! membership from several nodes, and a node with any log or vote refuses,
//! which is the answer we want after a restart.
//!
//! Step 2 of issue 21 answers a write sent to a follower with
//! [`ClusterError::NotLeader`] naming the leader; forwarding it over the
//! cluster port comes with the broker's use of writes (step 4).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, RaftMetrics, SnapshotPolicy};
use tokio::sync::{mpsc, watch};

use super::log_store::LogStore;
use super::network::{Network, serve};
use super::state::{ClusterState, MetaCommand, MetaResponse};
use super::state_machine::StateMachine;
use super::types::{NodeId, Raft, RivuletNode};

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The settings do not make a valid raft configuration.
    #[error("raft settings: {0}")]
    Config(String),
    /// This node is not the leader; `leader` is, if one is known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// No answer within the time allowed (no quorum, most likely).
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// openraft reported an error.
    #[error("raft: {0}")]
    Raft(String),
    /// The raft thread has stopped.
    #[error("the raft node has stopped")]
    Stopped,
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id; must be a key of `members`.
    pub id: NodeId,
    /// Every member of the group, this node included.
    pub members: BTreeMap<NodeId, RivuletNode>,
    /// Folder for the log (`raft/`) and snapshots (`state/`).
    pub dir: PathBuf,
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout; the upper bound is twice it.
    pub election_timeout_ms: u64,
    /// Snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub keep_after_snapshot: u64,
}

impl NodeConfig {
    /// The settings of the design (§2): heartbeat 100 ms, election 500 ms to
    /// 1 s, a snapshot every thousand entries, a hundred kept behind it.
    pub fn new(id: NodeId, members: BTreeMap<NodeId, RivuletNode>, dir: PathBuf) -> Self {
        Self {
            id,
            members,
            dir,
            heartbeat_ms: 100,
            election_timeout_ms: 500,
            snapshot_every: 1000,
            keep_after_snapshot: 100,
        }
    }

    fn raft_config(&self) -> Result<Config, ClusterError> {
        Config {
            cluster_name: "rivulet".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms.saturating_mul(2),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))
    }
}

type Reply = std_mpsc::SyncSender<Result<MetaResponse, ClusterError>>;

enum Command {
    Write(MetaCommand, Reply),
    Shutdown,
}

/// The metrics openraft publishes (leader, term, indexes, heartbeats).
pub type Metrics = RaftMetrics<NodeId, RivuletNode>;

/// A running raft node; dropping it shuts the node down and joins its thread.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    commands: mpsc::UnboundedSender<Command>,
    metrics: watch::Receiver<Metrics>,
    state: watch::Receiver<Arc<ClusterState>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Write(c, _) => write!(f, "Write({c:?})"),
            Command::Shutdown => write!(f, "Shutdown"),
        }
    }
}

struct Started {
    metrics: watch::Receiver<Metrics>,
    state: watch::Receiver<Arc<ClusterState>>,
}

impl RaftNode {
    /// Opens the node's files, binds its cluster port and starts it.
    pub fn start(config: NodeConfig) -> Result<Self, ClusterError> {
        let raft_config = Arc::new(config.raft_config()?);
        let Some(me) = config.members.get(&config.id).cloned() else {
            return Err(ClusterError::Config(format!(
                "node {} is not among the members",
                config.id
            )));
        };
        let (ready_tx, ready_rx) = std_mpsc::sync_channel::<Result<Started, ClusterError>>(1);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let id = config.id;
        let thread = std::thread::Builder::new()
            .name(format!("rivulet-raft-{id}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(io_error("tokio runtime")(e)));
                        return;
                    }
                };
                runtime.block_on(run(config, me, raft_config, ready_tx, commands_rx));
            })
            .map_err(io_error("raft thread"))?;
        match ready_rx.recv() {
            Ok(Ok(started)) => Ok(Self {
                id,
                commands,
                metrics: started.metrics,
                state: started.state,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ClusterError::Stopped)
            }
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// openraft's metrics of this node.
    pub fn metrics(&self) -> Metrics {
        self.metrics.borrow().clone()
    }

    /// The newest applied metadata on this node.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// Proposes `command` and waits (at most `timeout`) until it is
    /// committed and applied here; only the leader accepts writes.
    pub fn write(
        &self,
        command: MetaCommand,
        timeout: Duration,
    ) -> Result<MetaResponse, ClusterError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.commands
            .send(Command::Write(command, tx))
            .map_err(|_| ClusterError::Stopped)?;
        match rx.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(ClusterError::TimedOut(timeout)),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(ClusterError::Stopped),
        }
    }

    /// Stops the node and joins its thread; its files stay for a restart.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(node = self.id, "raft thread panicked");
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run(
    config: NodeConfig,
    me: RivuletNode,
    raft_config: Arc<Config>,
    ready: std_mpsc::SyncSender<Result<Started, ClusterError>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let opened = async {
        let log = LogStore::open(&config.dir.join("raft"))
            .map_err(io_error(format!("raft log in {}", config.dir.display())))?;
        let sm = StateMachine::open(&config.dir.join("state"))
            .map_err(io_error(format!("raft state in {}", config.dir.display())))?;
        let state = sm.subscribe();
        let listener = tokio::net::TcpListener::bind(&me.cluster)
            .await
            .map_err(io_error(format!("cluster port {}", me.cluster)))?;
        let raft = Raft::new(config.id, raft_config, Network, log, sm)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        Ok::<_, ClusterError>((raft, listener, state))
    };
    let (raft, listener, state) = match opened.await {
        Ok(opened) => opened,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let server = tokio::spawn(serve(listener, raft.clone()));
    let _ = ready.send(Ok(Started {
        metrics: raft.metrics(),
        state,
    }));
    match raft.is_initialized().await {
        Ok(false) => {
            if let Err(e) = raft.initialize(config.members.clone()).await {
                // Another node's initialization reached us first: fine.
                tracing::info!(node = config.id, error = %e, "raft initialize");
            }
        }
        Ok(true) => {}
        Err(e) => tracing::error!(node = config.id, error = %e, "raft stopped at start"),
    }
    while let Some(command) = commands.recv().await {
        match command {
            Command::Write(command, reply) => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let answer = match raft.client_write(command).await {
                        Ok(response) => Ok(response.data),
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                            Err(ClusterError::NotLeader {
                                leader: f.leader_id,
                            })
                        }
                        Err(e) => Err(ClusterError::Raft(e.to_string())),
                    };
                    let _ = reply.try_send(answer);
                });
            }
            Command::Shutdown => break,
        }
    }
    if let Err(e) = raft.shutdown().await {
        tracing::error!(node = config.id, error = %e, "raft shutdown");
    }
    server.abort();
}
