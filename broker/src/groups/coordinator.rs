//! One consumer group's membership: who is in it, in which generation,
//! owning which partitions, as a state machine with the clock passed in (so
//! a test decides what time it is, and nothing here waits).
//!
//! ```text
//!            join                      every member joined,
//!   Empty ─────────► PreparingRebalance ── or the rebalance deadline ──┐
//!     ▲                 ▲   ▲                                          │ generation + 1
//!     │ last member     │   │ a join, a leave,                         ▼
//!     │ leaves          │   └─ a member's session ends ──── CompletingRebalance
//!     │                 │                                   (Kafka: waiting for the
//!     └──── Stable ◄────┴─────── the leader's SyncGroup ──── leader's assignment)
//!                  (Rivulet's members: assigned by the coordinator at once)
//! ```
//!
//! The rules (Kafka's classic group protocol, which Rivulet's own members
//! follow too):
//! - a **generation** counts completed rebalances; every heartbeat, sync,
//!   commit and group poll names the generation it belongs to, and one from
//!   an older generation is refused (ILLEGAL_GENERATION): a member that was
//!   paused past its session and replaced (a "zombie") cannot commit over
//!   the partition's new owner;
//! - a **rebalance** starts when a member joins, leaves, or its session ends
//!   (no heartbeat for its session timeout). Every member learns of it from
//!   its next heartbeat (REBALANCE_IN_PROGRESS), stops consuming, commits,
//!   and joins again; the new generation's assignment is handed out only
//!   when every member has joined again or the rebalance deadline removed
//!   the ones that did not. So a partition moves only after its old owner
//!   stopped: everyone revokes, then everyone is assigned (the "eager"
//!   protocol; Kafka clients may run the cooperative one on top, since their
//!   leader computes the assignment and the coordinator only relays it);
//! - **assignment**: a Kafka group's leader (the first member to join)
//!   computes it with the assignor the members agree on (range, roundrobin,
//!   cooperative-sticky) and sends it in SyncGroup; a Rivulet group's is
//!   computed here ([`spread`]).
//!
//! Committed offsets are not here: they are the consumer offsets of the
//! group's name, on each partition's owner, durable like any consumer's.
//! Membership is soft state: a broker restart forgets it, and members join
//! again.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A member's id, made by the coordinator (`<client id>-<n>`).
pub type MemberId = String;

/// Why a group request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// No member with that id (it left, or its session ended).
    UnknownMember,
    /// The request names another generation than the group's.
    IllegalGeneration,
    /// A rebalance is under way: join again.
    RebalanceInProgress,
    /// The member's protocols (or kind of client) do not match the group's.
    InconsistentProtocol,
    /// A new Kafka member must join again with this id (KIP-394).
    MemberIdRequired(MemberId),
    /// The session timeout is outside what the broker allows.
    InvalidSessionTimeout,
    /// A Rivulet member asked for a partition that is not its own.
    NotAssigned,
}

/// What kind of client a group's members are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// Kafka clients: the leader assigns, with the protocol type they name
    /// (`consumer`).
    Kafka {
        /// Kafka's protocol type.
        protocol_type: String,
    },
    /// Rivulet's members, of one topic with this many partitions: the
    /// coordinator assigns.
    Rivulet {
        /// The topic's id.
        topic: u32,
        /// Its partitions.
        partitions: u32,
    },
}

/// A join.
#[derive(Debug, Clone)]
pub struct Join {
    /// The member's id, if it has one.
    pub member: Option<MemberId>,
    /// The client's name for itself.
    pub client_id: String,
    /// Where it connects from.
    pub client_host: String,
    /// No heartbeat for this long ends its membership.
    pub session_timeout: Duration,
    /// How long a rebalance waits for it to join again.
    pub rebalance_timeout: Duration,
    /// What kind of client.
    pub flavor: Flavor,
    /// Kafka: the assignors it supports, with its metadata for each, in
    /// order of preference. Rivulet: none.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Kafka JoinGroup v4 and later: a new member gets its id in an error
    /// and joins again with it.
    pub require_member_id: bool,
}

/// A completed join, as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The new generation.
    pub generation: i32,
    /// This member's id.
    pub member: MemberId,
    /// The leader's id.
    pub leader: MemberId,
    /// The assignor chosen (Kafka), if any.
    pub protocol: Option<String>,
    /// For the leader of a Kafka group: every member's id and metadata.
    pub members: Vec<(MemberId, Vec<u8>)>,
    /// For a Rivulet member: its partitions.
    pub partitions: Vec<u32>,
}

/// Where a join's answer goes.
pub type JoinReply = flume::Sender<Result<Joined, GroupError>>;
/// Where a sync's answer goes: the member's assignment bytes.
pub type SyncReply = flume::Sender<Result<Vec<u8>, GroupError>>;

/// The group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members.
    Empty,
    /// Collecting joins until this deadline.
    PreparingRebalance {
        /// When members that have not joined again are removed.
        deadline: Instant,
    },
    /// Joins answered; waiting for the leader's assignment (Kafka).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// Kafka's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance { .. } => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
struct Member {
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Vec<u8>)>,
    last_heard: Instant,
    /// Waiting for the join phase to complete.
    join: Option<JoinReply>,
    /// Waiting for the leader's assignment.
    sync: Option<SyncReply>,
    /// Kafka: its assignment bytes. Rivulet: encoded partitions are kept in
    /// `partitions` instead.
    assignment: Vec<u8>,
    /// Rivulet: its partitions.
    partitions: Vec<u32>,
    /// Join order, for picking a leader.
    joined_at: u64,
}

/// A member as `describe` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its id.
    pub member: MemberId,
    /// The client's name for itself.
    pub client_id: String,
    /// Where it connects from.
    pub client_host: String,
    /// Kafka: its metadata for the chosen assignor.
    pub metadata: Vec<u8>,
    /// Kafka: its assignment bytes.
    pub assignment: Vec<u8>,
    /// Rivulet: its partitions.
    pub partitions: Vec<u32>,
}

/// A group as `describe` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Kafka's name of its state.
    pub state: &'static str,
    /// The current generation.
    pub generation: i32,
    /// Kafka's protocol type (`consumer`), or `rivulet`.
    pub protocol_type: String,
    /// The chosen assignor (Kafka) or `range` (Rivulet's [`spread`]).
    pub protocol: String,
    /// The leader's id.
    pub leader: Option<MemberId>,
    /// Its members, by id.
    pub members: Vec<MemberInfo>,
    /// Rivulet groups: the topic's id.
    pub topic: Option<u32>,
    /// Rebalances completed since the broker started.
    pub rebalances: u64,
}

/// The shortest and longest session a member may ask for (Kafka's
/// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`).
pub const SESSION_TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1_000)..=Duration::from_secs(300);

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    name: String,
    state: State,
    generation: i32,
    flavor: Option<Flavor>,
    protocol: Option<String>,
    leader: Option<MemberId>,
    members: BTreeMap<MemberId, Member>,
    /// Kafka members given an id and told to join again with it, until when.
    pending: HashMap<MemberId, Instant>,
    next_member: u64,
    rebalances: u64,
}

impl Group {
    /// A new, empty group.
    pub fn new(name: &str) -> Group {
        Group {
            name: name.to_string(),
            state: State::Empty,
            generation: 0,
            flavor: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            next_member: 0,
            rebalances: 0,
        }
    }

    /// Its state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Its generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// How many members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Rebalances completed.
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// What kind of client its members are (`None` before the first join).
    pub fn flavor(&self) -> Option<&Flavor> {
        self.flavor.as_ref()
    }

    // ANCHOR: join
    /// A member joins (or joins again): the group starts a rebalance (if it
    /// is not in one) and the answer waits for the join phase to complete.
    pub fn join(&mut self, join: Join, now: Instant, reply: JoinReply) {
        if !SESSION_TIMEOUTS.contains(&join.session_timeout) {
            let _ = reply.send(Err(GroupError::InvalidSessionTimeout));
            return;
        }
        if let Some(flavor) = &self.flavor
            && !self.members.is_empty()
            && !same_kind(flavor, &join.flavor)
        {
            let _ = reply.send(Err(GroupError::InconsistentProtocol));
            return;
        }
        if let (Flavor::Kafka { .. }, Some(_)) = (&join.flavor, self.flavor.as_ref())
            && !self.members.is_empty()
            && !join
                .protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| supports(m, name)))
        {
            let _ = reply.send(Err(GroupError::InconsistentProtocol));
            return;
        }
        let id = match join.member.clone().filter(|id| !id.is_empty()) {
            Some(id) if self.members.contains_key(&id) || self.pending.remove(&id).is_some() => id,
            Some(_) => {
                let _ = reply.send(Err(GroupError::UnknownMember));
                return;
            }
            None => {
                self.next_member += 1;
                let id = format!("{}-{}", join.client_id, self.next_member);
                if join.require_member_id {
                    self.pending.insert(id.clone(), now + join.session_timeout);
                    let _ = reply.send(Err(GroupError::MemberIdRequired(id)));
                    return;
                }
                id
            }
        };
        self.flavor = Some(join.flavor.clone());
        let joined_at = self.next_member;
        self.next_member += 1;
        let member = self.members.entry(id).or_insert_with(|| Member {
            client_id: join.client_id.clone(),
            client_host: join.client_host.clone(),
            session_timeout: join.session_timeout,
            rebalance_timeout: join.rebalance_timeout,
            protocols: Vec::new(),
            last_heard: now,
            join: None,
            sync: None,
            assignment: Vec::new(),
            partitions: Vec::new(),
            joined_at,
        });
        member.session_timeout = join.session_timeout;
        member.rebalance_timeout = join.rebalance_timeout;
        member.protocols = join.protocols;
        member.last_heard = now;
        if let Some(old) = member.join.replace(reply) {
            // The same member joined twice: the older request is superseded.
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
        self.start_rebalance(now);
        self.complete_join_if_ready(now, false);
    }
    // ANCHOR_END: join

    /// Moves to `PreparingRebalance` (if not there): pending syncs are told
    /// to join again, and the deadline is the longest rebalance timeout.
    fn start_rebalance(&mut self, now: Instant) {
        if let State::PreparingRebalance { .. } = self.state {
            return;
        }
        let longest = self
            .members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = State::PreparingRebalance {
            deadline: now + longest,
        };
        for member in self.members.values_mut() {
            if let Some(sync) = member.sync.take() {
                let _ = sync.send(Err(GroupError::RebalanceInProgress));
            }
        }
    }

    // ANCHOR: complete_join
    /// Completes the join phase once every member has joined again, or the
    /// deadline has passed (`expired`): members that did not join are
    /// removed, the generation moves on, and every waiting join is answered.
    fn complete_join_if_ready(&mut self, now: Instant, expired: bool) {
        let State::PreparingRebalance { .. } = self.state else {
            return;
        };
        let all_joined = self.members.values().all(|member| member.join.is_some());
        if !all_joined && !expired {
            return;
        }
        self.members.retain(|_, member| member.join.is_some());
        if self.members.is_empty() {
            self.state = State::Empty;
            self.leader = None;
            self.protocol = None;
            return;
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalances += 1;
        let leader = self
            .leader
            .clone()
            .filter(|leader| self.members.contains_key(leader))
            .or_else(|| {
                self.members
                    .iter()
                    .min_by_key(|(_, member)| member.joined_at)
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_default();
        self.leader = Some(leader.clone());
        match self.flavor.clone() {
            Some(Flavor::Rivulet { partitions, .. }) => {
                let ids: Vec<MemberId> = self.members.keys().cloned().collect();
                for (id, mine) in ids.iter().zip(spread(partitions, ids.len())) {
                    if let Some(member) = self.members.get_mut(id) {
                        member.partitions = mine;
                    }
                }
                self.protocol = Some("range".to_string());
                self.state = State::Stable;
            }
            _ => {
                self.protocol = self.choose_protocol(&leader);
                for member in self.members.values_mut() {
                    member.assignment.clear();
                }
                self.state = State::CompletingRebalance;
            }
        }
        let protocol = self.protocol.clone();
        let everyone: Vec<(MemberId, Vec<u8>)> = self
            .members
            .iter()
            .map(|(id, member)| (id.clone(), metadata_for(member, protocol.as_deref())))
            .collect();
        let generation = self.generation;
        for (id, member) in &mut self.members {
            member.last_heard = now;
            if let Some(reply) = member.join.take() {
                let _ = reply.send(Ok(Joined {
                    generation,
                    member: id.clone(),
                    leader: leader.clone(),
                    protocol: protocol.clone(),
                    members: if *id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    partitions: member.partitions.clone(),
                }));
            }
        }
    }
    // ANCHOR_END: complete_join

    /// The leader's first assignor that every member supports.
    fn choose_protocol(&self, leader: &str) -> Option<String> {
        let leader = self.members.get(leader)?;
        leader
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| self.members.values().all(|member| supports(member, name)))
            .cloned()
    }

    /// Checks that `member` is in generation `generation`.
    fn check(&self, member: &str, generation: i32) -> Result<(), GroupError> {
        if !self.members.contains_key(member) {
            return Err(GroupError::UnknownMember);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    // ANCHOR: sync
    /// Kafka's SyncGroup: the leader hands in every member's assignment;
    /// each member gets its own once the leader's has arrived.
    pub fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: Vec<(MemberId, Vec<u8>)>,
        now: Instant,
        reply: SyncReply,
    ) {
        if let Err(error) = self.check(member, generation) {
            let _ = reply.send(Err(error));
            return;
        }
        if let Some(known) = self.members.get_mut(member) {
            known.last_heard = now;
        }
        match self.state {
            State::PreparingRebalance { .. } | State::Empty => {
                let _ = reply.send(Err(GroupError::RebalanceInProgress));
            }
            State::Stable => {
                let assignment = self.members[member].assignment.clone();
                let _ = reply.send(Ok(assignment));
            }
            State::CompletingRebalance => {
                if self.leader.as_deref() == Some(member) {
                    for (id, assignment) in assignments {
                        if let Some(target) = self.members.get_mut(&id) {
                            target.assignment = assignment;
                        }
                    }
                    self.state = State::Stable;
                    for other in self.members.values_mut() {
                        if let Some(waiting) = other.sync.take() {
                            // Its session runs from its answer, not from
                            // its request: a slow leader must not expire it.
                            other.last_heard = now;
                            let _ = waiting.send(Ok(other.assignment.clone()));
                        }
                    }
                    let _ = reply.send(Ok(self.members[member].assignment.clone()));
                } else if let Some(known) = self.members.get_mut(member) {
                    known.sync = Some(reply);
                }
            }
        }
    }
    // ANCHOR_END: sync

    /// A heartbeat: the member is alive; the answer says whether it must
    /// join again.
    pub fn heartbeat(
        &mut self,
        member: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if let Some(known) = self.members.get_mut(member) {
            known.last_heard = now;
        }
        self.check(member, generation)?;
        match self.state {
            State::PreparingRebalance { .. } => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// A member leaves: the others rebalance.
    pub fn leave(&mut self, member: &str, now: Instant) -> Result<(), GroupError> {
        let Some(gone) = self.members.remove(member) else {
            return Err(GroupError::UnknownMember);
        };
        if let Some(join) = gone.join {
            let _ = join.send(Err(GroupError::UnknownMember));
        }
        if let Some(sync) = gone.sync {
            let _ = sync.send(Err(GroupError::UnknownMember));
        }
        self.after_departure(now);
        Ok(())
    }

    /// After members left: empty, or a rebalance for those that remain.
    fn after_departure(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.state = State::Empty;
            self.leader = None;
            self.protocol = None;
        } else {
            self.start_rebalance(now);
            self.complete_join_if_ready(now, false);
        }
    }

    // ANCHOR: tick
    /// Time passes: members whose session ended are removed (a rebalance
    /// follows), and a join phase past its deadline completes without the
    /// members that did not join again. Members waiting for an answer are
    /// not expired: they are waiting on the group, not silent.
    pub fn tick(&mut self, now: Instant) -> Vec<MemberId> {
        self.pending.retain(|_, until| *until > now);
        let expired: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, member)| {
                member.join.is_none()
                    && member.sync.is_none()
                    && now.saturating_duration_since(member.last_heard) > member.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
        }
        if !expired.is_empty() {
            self.after_departure(now);
        }
        if let State::PreparingRebalance { deadline } = self.state
            && now >= deadline
        {
            self.complete_join_if_ready(now, true);
        }
        expired
    }
    // ANCHOR_END: tick

    // ANCHOR: check_commit
    /// Whether `member` may commit offsets of `partition` (`None`: any) in
    /// `generation`: a member of the current generation (a Rivulet member
    /// only for its own partitions), also while a rebalance is being
    /// prepared, since that is when a member told to join again commits
    /// what it processed (as Kafka allows: the partitions are handed to
    /// anyone else only in the next generation, after this member joined
    /// again); or, outside any generation (`generation` -1, no member), only
    /// while the group has no members (a consumer that assigns its own
    /// partitions, as Kafka allows).
    pub fn check_commit(
        &self,
        member: &str,
        generation: i32,
        partition: Option<u32>,
    ) -> Result<(), GroupError> {
        if generation < 0 && member.is_empty() {
            return match self.state {
                State::Empty => Ok(()),
                _ => Err(GroupError::IllegalGeneration),
            };
        }
        self.check(member, generation)?;
        self.check_assigned(member, partition)
    }

    /// Whether `member` may poll `partition` in `generation` (a Rivulet
    /// group's poll): as [`Group::check_commit`], and not while a rebalance
    /// is being prepared: a member told to join again stops consuming.
    pub fn check_poll(
        &self,
        member: &str,
        generation: i32,
        partition: u32,
    ) -> Result<(), GroupError> {
        self.check(member, generation)?;
        if let State::PreparingRebalance { .. } = self.state {
            return Err(GroupError::RebalanceInProgress);
        }
        self.check_assigned(member, Some(partition))
    }

    /// In a Rivulet group, whether `partition` is `member`'s.
    fn check_assigned(&self, member: &str, partition: Option<u32>) -> Result<(), GroupError> {
        if let (Some(Flavor::Rivulet { .. }), Some(partition)) = (&self.flavor, partition)
            && !self.members[member].partitions.contains(&partition)
        {
            return Err(GroupError::NotAssigned);
        }
        Ok(())
    }
    // ANCHOR_END: check_commit

    /// The group as `describe` reports it.
    pub fn describe(&self) -> GroupInfo {
        let protocol_type = match &self.flavor {
            Some(Flavor::Kafka { protocol_type }) => protocol_type.clone(),
            Some(Flavor::Rivulet { .. }) => "rivulet".to_string(),
            None => String::new(),
        };
        let topic = match &self.flavor {
            Some(Flavor::Rivulet { topic, .. }) => Some(*topic),
            _ => None,
        };
        GroupInfo {
            name: self.name.clone(),
            state: self.state.name(),
            generation: self.generation,
            protocol_type,
            protocol: self.protocol.clone().unwrap_or_default(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|(id, member)| MemberInfo {
                    member: id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: metadata_for(member, self.protocol.as_deref()),
                    assignment: member.assignment.clone(),
                    partitions: member.partitions.clone(),
                })
                .collect(),
            topic,
            rebalances: self.rebalances,
        }
    }
}

/// Whether two joins are the same kind of client (and, for Rivulet, the
/// same topic: a group consumes one topic).
fn same_kind(a: &Flavor, b: &Flavor) -> bool {
    match (a, b) {
        (Flavor::Kafka { protocol_type: x }, Flavor::Kafka { protocol_type: y }) => x == y,
        (Flavor::Rivulet { topic: x, .. }, Flavor::Rivulet { topic: y, .. }) => x == y,
        _ => false,
    }
}

fn supports(member: &Member, protocol: &str) -> bool {
    member.protocols.iter().any(|(name, _)| name == protocol)
}

fn metadata_for(member: &Member, protocol: Option<&str>) -> Vec<u8> {
    member
        .protocols
        .iter()
        .find(|(name, _)| Some(name.as_str()) == protocol)
        .map(|(_, metadata)| metadata.clone())
        .unwrap_or_default()
}

// ANCHOR: spread
/// A Rivulet group's assignment: members in id order, each a contiguous
/// range of partitions, the first `partitions % members` one longer (Kafka's
/// range assignor): 8 partitions over 2 members are 4 and 4, over 3 are
/// 3, 3 and 2. Every partition has exactly one owner.
pub fn spread(partitions: u32, members: usize) -> Vec<Vec<u32>> {
    let members = members.max(1) as u32;
    let (each, longer) = (partitions / members, partitions % members);
    let mut next = 0;
    (0..members)
        .map(|n| {
            let take = each + u32::from(n < longer);
            let range = (next..next + take).collect();
            next += take;
            range
        })
        .collect()
}
// ANCHOR_END: spread

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);

    fn rivulet_join(member: Option<&str>) -> Join {
        Join {
            member: member.map(str::to_string),
            client_id: "c".to_string(),
            client_host: "127.0.0.1".to_string(),
            session_timeout: SESSION,
            rebalance_timeout: SESSION,
            flavor: Flavor::Rivulet {
                topic: 1,
                partitions: 8,
            },
            protocols: Vec::new(),
            require_member_id: false,
        }
    }

    fn join(
        group: &mut Group,
        join: Join,
        now: Instant,
    ) -> flume::Receiver<Result<Joined, GroupError>> {
        let (reply, answer) = flume::bounded(1);
        group.join(join, now, reply);
        answer
    }

    #[test]
    fn spread_gives_every_partition_one_owner_as_evenly_as_it_goes() {
        assert_eq!(spread(8, 2), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(spread(8, 3), [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        assert_eq!(spread(2, 3), [vec![0], vec![1], vec![]]);
        for partitions in 0..40 {
            for members in 1..10 {
                let all: Vec<u32> = spread(partitions, members).concat();
                assert_eq!(all, (0..partitions).collect::<Vec<_>>());
                let sizes: Vec<usize> = spread(partitions, members).iter().map(Vec::len).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }

    // ANCHOR: rebalance_test
    #[test]
    fn a_rebalance_waits_for_every_member_and_moves_the_generation_on() {
        let t0 = Instant::now();
        let mut group = Group::new("billing");
        let first = join(&mut group, rivulet_join(None), t0)
            .try_recv()
            .unwrap()
            .unwrap();
        assert_eq!((first.generation, first.partitions.len()), (1, 8));
        // A second member joins: the first is told by its heartbeat, and
        // nothing is handed out until it has joined again.
        let second = join(&mut group, rivulet_join(None), t0);
        assert!(
            second.try_recv().is_err(),
            "answered before the first rejoined"
        );
        assert_eq!(
            group.heartbeat(&first.member, 1, t0),
            Err(GroupError::RebalanceInProgress)
        );
        // It stops consuming, but may still commit what it processed.
        assert_eq!(
            group.check_poll(&first.member, 1, 0),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(group.check_commit(&first.member, 1, Some(0)), Ok(()));
        let again = join(&mut group, rivulet_join(Some(&first.member)), t0);
        let (a, b) = (
            again.try_recv().unwrap().unwrap(),
            second.try_recv().unwrap().unwrap(),
        );
        assert_eq!((a.generation, b.generation), (2, 2));
        assert_eq!(a.partitions.len() + b.partitions.len(), 8);
        assert_eq!((a.partitions.len(), b.partitions.len()), (4, 4));
        // The old generation is refused: a zombie cannot commit.
        assert_eq!(
            group.check_commit(&a.member, 1, Some(a.partitions[0])),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            group.check_commit(&a.member, 2, Some(a.partitions[0])),
            Ok(())
        );
        assert_eq!(
            group.check_commit(&a.member, 2, Some(b.partitions[0])),
            Err(GroupError::NotAssigned)
        );
        assert_eq!(group.check_poll(&a.member, 2, a.partitions[0]), Ok(()));
        assert_eq!(
            group.check_poll(&a.member, 2, b.partitions[0]),
            Err(GroupError::NotAssigned)
        );
        assert_eq!(
            group.check_poll(&a.member, 1, a.partitions[0]),
            Err(GroupError::IllegalGeneration)
        );
    }
    // ANCHOR_END: rebalance_test

    #[test]
    fn a_silent_member_is_removed_after_its_session_and_the_rest_take_its_partitions() {
        let t0 = Instant::now();
        let mut group = Group::new("billing");
        let a = join(&mut group, rivulet_join(None), t0);
        let a = a.try_recv().unwrap().unwrap();
        let b = join(&mut group, rivulet_join(None), t0);
        let a = join(&mut group, rivulet_join(Some(&a.member)), t0)
            .try_recv()
            .unwrap()
            .unwrap();
        let b = b.try_recv().unwrap().unwrap();
        // b heartbeats; a goes silent (SIGKILL).
        let later = t0 + SESSION / 2;
        assert_eq!(group.heartbeat(&b.member, b.generation, later), Ok(()));
        assert!(group.tick(later).is_empty());
        let expired = group.tick(t0 + SESSION + Duration::from_millis(1));
        assert_eq!(expired, std::slice::from_ref(&a.member));
        let now = t0 + SESSION + Duration::from_millis(2);
        assert_eq!(
            group.heartbeat(&b.member, b.generation, now),
            Err(GroupError::RebalanceInProgress)
        );
        let b = join(&mut group, rivulet_join(Some(&b.member)), now)
            .try_recv()
            .unwrap()
            .unwrap();
        assert_eq!(b.partitions, (0..8).collect::<Vec<_>>());
        assert_eq!(group.rebalances(), 3);
    }

    #[test]
    fn a_member_that_does_not_join_again_is_dropped_at_the_rebalance_deadline() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let a = join(&mut group, rivulet_join(None), t0)
            .try_recv()
            .unwrap()
            .unwrap();
        let b = join(&mut group, rivulet_join(None), t0);
        assert!(b.try_recv().is_err());
        group.tick(t0 + SESSION + Duration::from_millis(1));
        let b = b.try_recv().unwrap().unwrap();
        assert_eq!(b.partitions.len(), 8);
        assert_eq!(
            group.heartbeat(&a.member, a.generation, t0),
            Err(GroupError::UnknownMember)
        );
    }

    #[test]
    fn kafka_members_get_the_leaders_assignment_through_sync() {
        let t0 = Instant::now();
        let kafka = |member: Option<&str>, require: bool| Join {
            member: member.map(str::to_string),
            client_id: "rdkafka".to_string(),
            client_host: "/127.0.0.1".to_string(),
            session_timeout: SESSION,
            rebalance_timeout: SESSION,
            flavor: Flavor::Kafka {
                protocol_type: "consumer".to_string(),
            },
            protocols: vec![("range".to_string(), b"meta".to_vec())],
            require_member_id: require,
        };
        let mut group = Group::new("g");
        let Err(GroupError::MemberIdRequired(id)) =
            join(&mut group, kafka(None, true), t0).try_recv().unwrap()
        else {
            panic!("a new member is given its id first");
        };
        let leader = join(&mut group, kafka(Some(&id), true), t0)
            .try_recv()
            .unwrap()
            .unwrap();
        assert_eq!(leader.leader, id);
        assert_eq!(leader.members, [(id.clone(), b"meta".to_vec())]);
        assert_eq!(group.state(), State::CompletingRebalance);
        let (reply, answer) = flume::bounded(1);
        group.sync(&id, 1, vec![(id.clone(), b"p0".to_vec())], t0, reply);
        assert_eq!(answer.try_recv().unwrap(), Ok(b"p0".to_vec()));
        assert_eq!(group.state(), State::Stable);
        // A Rivulet member cannot join a Kafka group.
        let refused = join(&mut group, rivulet_join(None), t0).try_recv().unwrap();
        assert_eq!(refused, Err(GroupError::InconsistentProtocol));
        // Outside a generation, commits are for empty groups only.
        assert_eq!(
            group.check_commit("", -1, None),
            Err(GroupError::IllegalGeneration)
        );
        group.leave(&id, t0).unwrap();
        assert_eq!(group.state(), State::Empty);
        assert_eq!(group.check_commit("", -1, None), Ok(()));
    }
}
