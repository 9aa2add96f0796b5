//! A group member's commit, in either protocol: checked by the group (its
//! generation, and in a Rivulet group that the partition is the member's),
//! then stored by the partition's owner as the consumer offset of the
//! group's name, and the group's lag gauge set.
//!
//! The check and the store are two steps on two shards (the group's, then
//! the partition's), not one: a commit checked an instant before a
//! rebalance begins can land after it. It cannot overtake the new owner's
//! commits in the eager protocol, since the new owner is assigned the
//! partition only after the old one joined again (so after its commits
//! returned); a member paused mid-commit past its session (a zombie) is the
//! window left. Kafka closes it by keeping offsets in the coordinator; here
//! they stay with their partitions, where Rivulet's consumers keep theirs.

use std::rc::Rc;

use stage6_broker::shards::shard::{ShardState, storage_stopped};
use stage6_broker::shards::wire::WireError;

use crate::groups::coordinator::GroupError;
use crate::groups::service::on_group;
use crate::jobs::{Done, GetOffset, StoreOffset};
use crate::metrics::Metrics;

/// Why a commit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// The group refused it (generation, membership, assignment).
    Group(GroupError),
    /// The partition refused it (no such partition, past its end, storage).
    Storage(WireError),
}

/// Where a commit goes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The topic's id.
    pub topic: u32,
    /// The topic's name (for the lag gauge).
    pub topic_name: &'a str,
    /// The partition.
    pub partition: u32,
}

// ANCHOR: commit
/// Commits `offset` (the next record to read) for `member` of `group` in
/// `generation` (`-1` and no member: outside any generation, allowed only
/// while the group has no members).
pub async fn commit(
    shard: &Rc<ShardState>,
    metrics: &Metrics,
    group: &str,
    member: &str,
    generation: i32,
    target: Target<'_>,
    offset: u64,
) -> Result<(), CommitError> {
    let (name, who, partition) = (group.to_string(), member.to_string(), target.partition);
    let checked = on_group(shard, group, move |groups, _| {
        groups
            .group(&name)
            .check_commit(&who, generation, Some(partition))
    })
    .await
    .map_err(CommitError::Storage)?;
    checked.map_err(CommitError::Group)?;
    let key = (target.topic, target.partition);
    let (done, answer) = flume::bounded(1);
    let store = StoreOffset {
        consumer: group.to_string(),
        offset,
        done,
    };
    shard.run_on(key, Box::new(store));
    let stored = answer.recv_async().await.map_err(|_| storage_stopped());
    stored
        .and_then(|result| result)
        .map_err(CommitError::Storage)?;
    // The lag as of this commit: the partition's end, asked after storing.
    let (done, answer) = flume::bounded(1);
    let ask = GetOffset {
        consumer: group.to_string(),
        done,
    };
    shard.run_on(key, Box::new(ask));
    if let Ok(Ok(Done::Offset(stored))) = answer.recv_async().await {
        let lag = stored.next_offset.saturating_sub(offset);
        metrics.group_lag(group, target.topic_name, target.partition, lag);
    }
    Ok(())
}
// ANCHOR_END: commit
