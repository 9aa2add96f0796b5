//! Where groups live and how requests reach them.
//!
//! A group lives on one shard, [`group_shard`] of its name, in that shard's
//! [`Groups`] (a thread-local: only that shard's thread touches it, so no
//! lock, as with a partition). A request about the group, from a connection
//! on any shard, is a closure sent there ([`on_group`]) through the engine's
//! `ShardState::run_on_shard`; its result comes back on a channel. A join
//! or sync that must wait for other members returns a receiver, awaited by
//! the asking connection, not by the group's shard.
//!
//! Each shard's [`ticker`] moves its groups' clocks on: it ends sessions
//! that went silent and completes rebalances whose deadline passed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stage6_broker::shards::extension::ShardJob;
use stage6_broker::shards::shard::{ShardState, storage_stopped};
use stage6_broker::shards::wire::WireError;
use tracing::info;

use crate::groups::coordinator::{Group, GroupInfo};
use crate::metrics::Metrics;

/// How often each shard looks at its groups' sessions and deadlines: the
/// most a session can outlive its timeout by.
pub const TICK: Duration = Duration::from_millis(100);

// ANCHOR: group_shard
/// The shard that keeps group `name`: a hash of the name, so every shard
/// sends a group's requests to the same place.
pub fn group_shard(name: &str, shards: usize) -> usize {
    (crc32c::crc32c(name.as_bytes()) as usize) % shards.max(1)
}
// ANCHOR_END: group_shard

/// The groups one shard keeps, by name.
#[derive(Debug, Default)]
pub struct Groups {
    groups: BTreeMap<String, Group>,
}

impl Groups {
    /// The group `name`, made if it is new.
    pub fn group(&mut self, name: &str) -> &mut Group {
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| Group::new(name))
    }

    /// The group `name`, if this shard keeps one (a lookup that makes none).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// Every group this shard keeps.
    pub fn describe_all(&self) -> Vec<GroupInfo> {
        self.groups.values().map(Group::describe).collect()
    }
}

thread_local! {
    static GROUPS: RefCell<Groups> = RefCell::new(Groups::default());
}

/// Runs `f` with this thread's groups.
fn with_groups<T>(f: impl FnOnce(&mut Groups) -> T) -> T {
    GROUPS.with(|groups| f(&mut groups.borrow_mut()))
}

/// A closure for a group's shard, and where its result goes.
struct OnGroup<F, T> {
    work: F,
    answer: flume::Sender<Result<T, WireError>>,
}

impl<F, T> ShardJob for OnGroup<F, T>
where
    F: FnOnce(&mut Groups, Instant) -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, _: &Rc<ShardState>) {
        let OnGroup { work, answer } = *self;
        let result = with_groups(|groups| work(groups, Instant::now()));
        let _ = answer.send(Ok(result));
    }

    fn fail(self: Box<Self>, error: WireError) {
        let _ = self.answer.send(Err(error));
    }
}

// ANCHOR: on_group
/// Runs `work` on the shard that keeps group `name`, with that shard's
/// groups and the time there, and returns what it returned.
pub async fn on_group<F, T>(shard: &Rc<ShardState>, name: &str, work: F) -> Result<T, WireError>
where
    F: FnOnce(&mut Groups, Instant) -> T + Send + 'static,
    T: Send + 'static,
{
    let (answer, result) = flume::bounded(1);
    let target = group_shard(name, shard.shards());
    shard.run_on_shard(target, Box::new(OnGroup { work, answer }));
    result.recv_async().await.map_err(|_| storage_stopped())?
}
// ANCHOR_END: on_group

/// Every group of every shard, in name order.
pub async fn all_groups(shard: &Rc<ShardState>) -> Result<Vec<GroupInfo>, WireError> {
    let mut all = Vec::new();
    for target in 0..shard.shards() {
        let (answer, result) = flume::bounded(1);
        let work = |groups: &mut Groups, _: Instant| groups.describe_all();
        shard.run_on_shard(target, Box::new(OnGroup { work, answer }));
        all.extend(result.recv_async().await.map_err(|_| storage_stopped())??);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

// ANCHOR: ticker
/// Each shard's timer for its groups: ends silent sessions and overdue
/// join phases every [`TICK`], and keeps the groups' gauges current.
pub async fn ticker(shard: Rc<ShardState>, metrics: Arc<Metrics>) {
    loop {
        let tick = std::pin::pin!(compio::time::sleep(TICK));
        let stopping = std::pin::pin!(shard.stopping());
        if let futures_util::future::Either::Right(_) =
            futures_util::future::select(tick, stopping).await
        {
            return;
        }
        let now = Instant::now();
        with_groups(|groups| {
            for (name, group) in &mut groups.groups {
                for member in group.tick(now) {
                    info!(group = %name, %member, "member's session ended: it is removed");
                }
                metrics.group_changed(name, group.member_count(), group.rebalances());
            }
        });
    }
}
// ANCHOR_END: ticker
