//! Issue 21, step 2: three raft nodes of the metadata group in one process,
//! over TCP on 127.0.0.1. They elect a leader, apply the same commands, keep
//! taking writes when the leader stops, and a stopped node restarted from
//! its files catches up (here through a snapshot, since the leader purged
//! the entries it missed), after cutting a torn entry at the end of its log.
//!
//! No assertion on time: every wait is for a condition, bounded by a
//! generous limit so a busy machine slows the test down without failing it.
#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use rivulet_broker::cluster::{
    ClusterError, ClusterState, MetaCommand, MetaResponse, NodeConfig, RaftNode, RivuletNode,
};

fn members() -> BTreeMap<u64, RivuletNode> {
    // Free ports: bound then released. Another process could take one in
    // between; on a test machine that is rare enough.
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .zip(1u64..)
        .map(|(l, id)| (id, RivuletNode::new(l.local_addr().unwrap().to_string())))
        .collect()
}

fn config(id: u64, members: &BTreeMap<u64, RivuletNode>, root: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(id, members.clone(), root.join(format!("node-{id}")));
    // Generous timeouts for two busy cores; small snapshot settings so the
    // restart below has to catch up through a snapshot.
    config.heartbeat_ms = 100;
    config.election_timeout_ms = 1000;
    config.snapshot_every = 10;
    config.keep_after_snapshot = 2;
    config
}

/// The node every running node agrees is the leader, once they agree.
fn agreed_leader(nodes: &[RaftNode]) -> Option<u64> {
    let leader = nodes.first()?.metrics().current_leader?;
    let all_agree = nodes
        .iter()
        .all(|n| n.metrics().current_leader == Some(leader));
    let running = nodes.iter().any(|n| n.id() == leader);
    (all_agree && running).then_some(leader)
}

/// Writes `command` through whichever node leads, retrying through
/// elections until it is applied (the broker tests' one waiting loop, so
/// the bound is a count of looks, never a reading of the clock).
fn write(nodes: &[RaftNode], command: MetaCommand) -> MetaResponse {
    let mut answer = None;
    eventually(&format!("a leader to take {command:?}"), || {
        let Some(leader) = agreed_leader(nodes) else {
            return false;
        };
        let node = nodes.iter().find(|n| n.id() == leader).unwrap();
        match node.write(command.clone(), Duration::from_secs(5)) {
            Ok(applied) => answer = Some(applied),
            Err(ClusterError::NotLeader { .. } | ClusterError::TimedOut(_)) => {}
            Err(e) => panic!("write {command:?}: {e}"),
        }
        answer.is_some()
    });
    answer.unwrap()
}

fn create(name: String) -> MetaCommand {
    MetaCommand::CreateTopic {
        name,
        partitions: 2,
        replication_factor: 3,
    }
}

fn all_equal(nodes: &[RaftNode], topics: usize) -> bool {
    let states: Vec<Arc<ClusterState>> = nodes.iter().map(|n| n.state()).collect();
    states[0].topics.len() == topics && states.iter().all(|s| **s == *states[0])
}

#[test]
fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let members = members();
    let mut nodes: Vec<RaftNode> = (1..=3)
        .map(|id| RaftNode::start(config(id, &members, root.path())).unwrap())
        .collect();

    eventually("a leader all three agree on", || {
        agreed_leader(&nodes).is_some()
    });
    for (id, node) in &members {
        let answer = write(
            &nodes,
            MetaCommand::RegisterNode {
                id: *id,
                cluster: node.cluster.clone(),
            },
        );
        assert_eq!(answer, MetaResponse::Done);
    }
    for i in 0..5 {
        let answer = write(&nodes, create(format!("before-{i}")));
        assert!(
            matches!(answer, MetaResponse::TopicCreated { .. }),
            "{answer:?}"
        );
    }
    // A refused command is committed and answered, and changes nothing.
    let answer = write(&nodes, create("before-0".into()));
    assert!(matches!(answer, MetaResponse::Refused { .. }), "{answer:?}");
    eventually("all three to apply the same five topics", || {
        all_equal(&nodes, 5)
    });
    assert_eq!(nodes[0].state().nodes.len(), 3);

    // Stop the leader: the other two elect a new one and keep taking writes.
    let old = agreed_leader(&nodes).unwrap();
    let position = nodes.iter().position(|n| n.id() == old).unwrap();
    let stopped_at = nodes[position].metrics().last_applied.unwrap().index;
    nodes.remove(position).shutdown();
    eventually("a new leader among the two left", || {
        agreed_leader(&nodes).is_some_and(|l| l != old)
    });
    for i in 0..25 {
        let answer = write(&nodes, create(format!("after-{i}")));
        assert!(
            matches!(answer, MetaResponse::TopicCreated { .. }),
            "{answer:?}"
        );
    }
    eventually("both survivors to apply 30 topics", || {
        all_equal(&nodes, 30)
    });

    // A crash in the middle of an append leaves a torn entry at the end of
    // the stopped node's log: a length, a checksum, part of a body.
    let log = root.path().join(format!("node-{old}/raft/log"));
    let mut torn = std::fs::read(&log).unwrap();
    torn.extend_from_slice(&100u32.to_le_bytes());
    torn.extend_from_slice(&[0xab; 14]);
    std::fs::write(&log, &torn).unwrap();

    // Restart the stopped node from its files: it cuts the torn entry and
    // catches up.
    nodes.push(RaftNode::start(config(old, &members, root.path())).unwrap());
    eventually("the restarted node to catch up", || all_equal(&nodes, 30));
    let answer = write(&nodes, create("last".into()));
    assert!(
        matches!(answer, MetaResponse::TopicCreated { .. }),
        "{answer:?}"
    );
    eventually("all three to apply the last write", || {
        all_equal(&nodes, 31)
    });
    // The leader purged entries the stopped node never had, so it caught up
    // through the leader's snapshot, not the log alone.
    let leader = agreed_leader(&nodes).unwrap();
    let leader = nodes.iter().find(|n| n.id() == leader).unwrap();
    let purged = leader.metrics().purged.map_or(0, |p| p.index);
    assert!(
        purged > stopped_at,
        "purged {purged}, node stopped at {stopped_at}"
    );

    for node in nodes {
        node.shutdown();
    }
}

#[test]
fn whole_cluster_restarts_from_its_files() {
    let root = tempfile::tempdir().unwrap();
    let members = members();
    let start = || -> Vec<RaftNode> {
        (1..=3)
            .map(|id| RaftNode::start(config(id, &members, root.path())).unwrap())
            .collect()
    };
    let nodes = start();
    for (id, node) in &members {
        let cluster = node.cluster.clone();
        write(&nodes, MetaCommand::RegisterNode { id: *id, cluster });
    }
    // Past a snapshot (every 10 entries here) and some entries after it, so
    // start-up both loads a snapshot and re-applies committed entries.
    for i in 0..15 {
        let answer = write(&nodes, create(format!("t{i}")));
        assert!(
            matches!(answer, MetaResponse::TopicCreated { .. }),
            "{answer:?}"
        );
    }
    eventually("all three to apply 15 topics", || all_equal(&nodes, 15));
    let before = nodes[0].state();
    for node in nodes {
        node.shutdown();
    }

    let nodes = start();
    eventually("the restarted nodes to rebuild the same state", || {
        all_equal(&nodes, 15)
    });
    assert_eq!(*nodes[0].state(), *before);
    let answer = write(&nodes, create("after-restart".into()));
    assert!(
        matches!(answer, MetaResponse::TopicCreated { .. }),
        "{answer:?}"
    );
    eventually("all three to apply the new write", || all_equal(&nodes, 16));
    for node in nodes {
        node.shutdown();
    }
}
