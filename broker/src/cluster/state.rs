//! The replicated metadata: [`ClusterState`], the commands that change it
//! ([`MetaCommand`]) and the one function that applies them.
//!
//! Every node applies the same committed commands in the same order, so
//! [`MetaCommand::apply`] must be a pure function of the state and the
//! command: no clock, no randomness, no I/O, no iteration over a `HashMap`
//! (its order differs between processes). Maps are `BTreeMap`s for that
//! reason. A command that cannot apply (a topic that exists, an unknown
//! node, a stale ISR change) answers [`MetaResponse::Refused`] or
//! [`MetaResponse::Stale`]: it is still a committed entry, and panicking on
//! it would stop every node at the same index, forever.
//!
//! Step 2 of issue 21 keeps the state small: nodes, topics with their
//! partition count, and per partition the replicas, ISR, leader and the two
//! epochs. Streams, topic settings and consumer offsets join in step 4.
//! Partitions are stored inside their topic rather than in a map keyed by
//! `(topic, partition)` as the design sketched: JSON object keys must be
//! strings, and the snapshot is JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `host:port` of its cluster port.
    pub cluster: String,
    /// Fenced by the controller: leads nothing, is in no ISR it could leave.
    pub fenced: bool,
}

/// One partition's replication record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The nodes holding a copy, preferred leader first.
    pub replicas: Vec<u64>,
    /// The in-sync replicas, a subset of `replicas`.
    pub isr: Vec<u64>,
    /// The node serving writes; `None` when no ISR member is available.
    pub leader: Option<u64>,
    /// Bumped at each leader change (fences an old leader's writes).
    pub leader_epoch: u32,
    /// Bumped at each change of this record (compare-and-set for ISR).
    pub partition_epoch: u32,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Stable id, never reused while the topic exists.
    pub id: u32,
    /// Partition `p` is `partitions[p]`.
    pub partitions: Vec<PartitionRecord>,
}

/// Everything the metadata group agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Registered nodes by id.
    pub nodes: BTreeMap<u64, NodeRecord>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicRecord>,
}

/// A change to the metadata, proposed through raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// A node announces (or updates) its cluster address.
    RegisterNode {
        /// Node id.
        id: u64,
        /// Its cluster address.
        cluster: String,
    },
    /// Create a topic; replicas are placed on unfenced nodes.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Number of partitions, at least 1.
        partitions: u32,
        /// Copies of each partition, at least 1.
        replication_factor: u32,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// A partition leader changes its ISR (compare-and-set on both epochs).
    AlterIsr {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: u32,
        /// The proposer, which must be the current leader.
        leader: u64,
        /// The proposer's leader epoch.
        leader_epoch: u32,
        /// The partition epoch the proposer last saw.
        partition_epoch: u32,
        /// The new ISR.
        isr: Vec<u64>,
    },
    /// The controller lost a node: move its leaderships away.
    FenceNode {
        /// Node id.
        id: u64,
    },
    /// The controller hears from a fenced node again.
    UnfenceNode {
        /// Node id.
        id: u64,
    },
}

/// What applying a [`MetaCommand`] answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    /// Applied.
    Done,
    /// The topic was created with this id.
    TopicCreated {
        /// Its id.
        id: u32,
    },
    /// A compare-and-set failed: the proposer's view is old.
    Stale {
        /// The partition's current epoch.
        partition_epoch: u32,
    },
    /// The command cannot apply to this state; nothing changed.
    Refused {
        /// Why, for the operator.
        message: String,
    },
}

fn refused(message: impl Into<String>) -> MetaResponse {
    MetaResponse::Refused {
        message: message.into(),
    }
}

/// Partitions a topic may have; a bound so a bad command cannot make every
/// node allocate without limit.
pub const MAX_PARTITIONS: u32 = 10_000;

impl ClusterState {
    fn unfenced(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.fenced)
            .map(|(id, _)| *id)
            .collect()
    }

    fn free_topic_id(&self) -> Option<u32> {
        let mut used: Vec<u32> = self.topics.values().map(|t| t.id).collect();
        used.sort_unstable();
        let mut next = 1u32;
        for id in used {
            if id == next {
                next = next.checked_add(1)?;
            } else if id > next {
                break;
            }
        }
        Some(next)
    }

    /// The partition record of `topic`/`partition`, if both exist.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionRecord> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }
}

impl MetaCommand {
    /// Applies the command to `state`. Pure and deterministic: the same state
    /// and command give the same result and answer on every node.
    pub fn apply(&self, state: &mut ClusterState) -> MetaResponse {
        match self {
            MetaCommand::RegisterNode { id, cluster } => {
                let fenced = state.nodes.get(id).is_some_and(|n| n.fenced);
                state.nodes.insert(
                    *id,
                    NodeRecord {
                        cluster: cluster.clone(),
                        fenced,
                    },
                );
                MetaResponse::Done
            }
            MetaCommand::CreateTopic {
                name,
                partitions,
                replication_factor,
            } => create_topic(state, name, *partitions, *replication_factor),
            MetaCommand::DeleteTopic { name } => match state.topics.remove(name) {
                Some(_) => MetaResponse::Done,
                None => refused(format!("no topic {name:?}")),
            },
            MetaCommand::AlterIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let Some(record) = state
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return refused(format!("no partition {topic:?}/{partition}"));
                };
                let valid = isr.contains(leader)
                    && isr.iter().all(|r| record.replicas.contains(r))
                    && !has_duplicates(isr);
                if record.leader != Some(*leader)
                    || record.leader_epoch != *leader_epoch
                    || record.partition_epoch != *partition_epoch
                {
                    return MetaResponse::Stale {
                        partition_epoch: record.partition_epoch,
                    };
                }
                if !valid {
                    return refused("the ISR must contain the leader and only replicas, once each");
                }
                record.isr = isr.clone();
                record.partition_epoch = record.partition_epoch.wrapping_add(1);
                MetaResponse::Done
            }
            MetaCommand::FenceNode { id } => {
                let Some(node) = state.nodes.get_mut(id) else {
                    return refused(format!("no node {id}"));
                };
                node.fenced = true;
                let unfenced = state.unfenced();
                for topic in state.topics.values_mut() {
                    for record in &mut topic.partitions {
                        let mut changed = false;
                        if record.isr.len() > 1 && record.isr.contains(id) {
                            record.isr.retain(|r| r != id);
                            changed = true;
                        }
                        if record.leader == Some(*id) {
                            record.leader = record
                                .isr
                                .iter()
                                .copied()
                                .find(|r| r != id && unfenced.contains(r));
                            record.leader_epoch = record.leader_epoch.wrapping_add(1);
                            changed = true;
                        }
                        if changed {
                            record.partition_epoch = record.partition_epoch.wrapping_add(1);
                        }
                    }
                }
                MetaResponse::Done
            }
            MetaCommand::UnfenceNode { id } => {
                let Some(node) = state.nodes.get_mut(id) else {
                    return refused(format!("no node {id}"));
                };
                node.fenced = false;
                for topic in state.topics.values_mut() {
                    for record in &mut topic.partitions {
                        if record.leader.is_none() && record.isr.contains(id) {
                            record.leader = Some(*id);
                            record.leader_epoch = record.leader_epoch.wrapping_add(1);
                            record.partition_epoch = record.partition_epoch.wrapping_add(1);
                        }
                    }
                }
                MetaResponse::Done
            }
        }
    }
}

fn has_duplicates(ids: &[u64]) -> bool {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

fn create_topic(
    state: &mut ClusterState,
    name: &str,
    partitions: u32,
    replication_factor: u32,
) -> MetaResponse {
    if name.is_empty() {
        return refused("a topic needs a name");
    }
    if state.topics.contains_key(name) {
        return refused(format!("topic {name:?} exists"));
    }
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return refused(format!("partitions must be 1 to {MAX_PARTITIONS}"));
    }
    let nodes = state.unfenced();
    if replication_factor == 0 || replication_factor as usize > nodes.len() {
        return refused(format!(
            "replication factor {replication_factor} needs that many available nodes; {} are",
            nodes.len()
        ));
    }
    let Some(id) = state.free_topic_id() else {
        return refused("no topic id left");
    };
    let n = nodes.len();
    let records = (0..partitions)
        .map(|p| {
            let start = (id as usize + p as usize) % n;
            let replicas: Vec<u64> = (0..replication_factor as usize)
                .map(|i| nodes[(start + i) % n])
                .collect();
            PartitionRecord {
                leader: replicas.first().copied(),
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            }
        })
        .collect();
    state.topics.insert(
        name.to_string(),
        TopicRecord {
            id,
            partitions: records,
        },
    );
    MetaResponse::TopicCreated { id }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_nodes() -> ClusterState {
        let mut state = ClusterState::default();
        for id in 1..=3 {
            MetaCommand::RegisterNode {
                id,
                cluster: format!("127.0.0.1:{}", 7400 + id),
            }
            .apply(&mut state);
        }
        state
    }

    fn create(state: &mut ClusterState, name: &str, partitions: u32, rf: u32) -> MetaResponse {
        MetaCommand::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
        }
        .apply(state)
    }

    #[test]
    fn create_topic_places_replicas_round_robin() {
        let mut state = three_nodes();
        assert_eq!(
            create(&mut state, "a", 3, 3),
            MetaResponse::TopicCreated { id: 1 }
        );
        let leaders: Vec<_> = (0..3)
            .map(|p| state.partition("a", p).unwrap().leader)
            .collect();
        assert_eq!(leaders, vec![Some(2), Some(3), Some(1)]);
        let p0 = state.partition("a", 0).unwrap();
        assert_eq!(p0.replicas, vec![2, 3, 1]);
        assert_eq!(p0.isr, p0.replicas);
    }

    #[test]
    fn bad_creates_are_refused_and_change_nothing() {
        let mut state = three_nodes();
        let before = state.clone();
        for (name, p, rf) in [
            ("", 1, 1),
            ("a", 0, 1),
            ("a", 1, 4),
            ("a", 1, 0),
            ("a", u32::MAX, 1),
        ] {
            assert!(matches!(
                create(&mut state, name, p, rf),
                MetaResponse::Refused { .. }
            ));
        }
        assert_eq!(state, before);
        create(&mut state, "a", 1, 1);
        assert!(matches!(
            create(&mut state, "a", 1, 1),
            MetaResponse::Refused { .. }
        ));
    }

    #[test]
    fn alter_isr_is_a_compare_and_set() {
        let mut state = three_nodes();
        create(&mut state, "a", 1, 3);
        let p = state.partition("a", 0).unwrap().clone();
        let leader = p.leader.unwrap();
        let shrink = MetaCommand::AlterIsr {
            topic: "a".into(),
            partition: 0,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![leader],
        };
        assert_eq!(shrink.apply(&mut state), MetaResponse::Done);
        assert_eq!(state.partition("a", 0).unwrap().isr, vec![leader]);
        // The same proposal again is stale: the partition epoch moved.
        assert_eq!(
            shrink.apply(&mut state),
            MetaResponse::Stale { partition_epoch: 1 }
        );
        // An ISR without the leader is refused.
        let bad = MetaCommand::AlterIsr {
            topic: "a".into(),
            partition: 0,
            leader,
            leader_epoch: 0,
            partition_epoch: 1,
            isr: vec![99],
        };
        assert!(matches!(
            bad.apply(&mut state),
            MetaResponse::Refused { .. }
        ));
    }

    #[test]
    fn fence_moves_leadership_and_unfence_revives_offline() {
        let mut state = three_nodes();
        create(&mut state, "a", 1, 2);
        let p = state.partition("a", 0).unwrap().clone();
        assert_eq!(p.replicas, vec![2, 3]);
        MetaCommand::FenceNode { id: 2 }.apply(&mut state);
        let p = state.partition("a", 0).unwrap().clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (Some(3), vec![3], 1)
        );
        // The last ISR member stays in the ISR when fenced: it has the data.
        MetaCommand::FenceNode { id: 3 }.apply(&mut state);
        let p = state.partition("a", 0).unwrap().clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (None, vec![3], 2)
        );
        MetaCommand::UnfenceNode { id: 3 }.apply(&mut state);
        let p = state.partition("a", 0).unwrap().clone();
        assert_eq!((p.leader, p.leader_epoch), (Some(3), 3));
        assert!(matches!(
            MetaCommand::FenceNode { id: 9 }.apply(&mut state),
            MetaResponse::Refused { .. }
        ));
    }

    #[test]
    fn apply_is_deterministic() {
        let commands = [
            MetaCommand::CreateTopic {
                name: "x".into(),
                partitions: 4,
                replication_factor: 2,
            },
            MetaCommand::FenceNode { id: 1 },
            MetaCommand::CreateTopic {
                name: "y".into(),
                partitions: 2,
                replication_factor: 2,
            },
            MetaCommand::DeleteTopic { name: "x".into() },
            MetaCommand::UnfenceNode { id: 1 },
            MetaCommand::CreateTopic {
                name: "z".into(),
                partitions: 1,
                replication_factor: 3,
            },
        ];
        let run = || {
            let mut state = three_nodes();
            let answers: Vec<_> = commands.iter().map(|c| c.apply(&mut state)).collect();
            (state, answers)
        };
        let (a, answers_a) = run();
        let (b, answers_b) = run();
        assert_eq!(a, b);
        assert_eq!(answers_a, answers_b);
        // Topic id 1 was freed by the delete and reused.
        assert_eq!(a.topics["z"].id, 1);
    }
}
