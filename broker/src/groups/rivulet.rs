//! Consumer groups in Rivulet's own protocol: the session's group commands
//! (codes 32 to 38 of [`crate::api`]), each a request to the coordinator
//! on the group's shard ([`on_group`]), then, for a poll or a commit, a job
//! on the partition's owner.
//!
//! A Rivulet group reads one topic, and its coordinator assigns the
//! partitions ([`crate::groups::coordinator::spread`]): members need no
//! sync step. A member's life, as the client (`rivulet_client::GroupConsumer`)
//! lives it:
//!
//! 1. **join** (code 32): the answer waits for the rebalance to complete and
//!    brings the member's id, the generation and its partitions;
//! 2. **poll** (35) its partitions in turn, each from the group's committed
//!    offset (or from where its last poll ended); nothing is committed by a
//!    poll; checked first by the group: a member of this generation, not
//!    rebalancing, and the partition its own;
//! 3. **commit** (36) after processing, checked the same way (also while a
//!    rebalance is being prepared: that is when a member told to join again
//!    commits what it processed) and stored as the consumer offset of the
//!    group's name;
//! 4. **heartbeat** (33) at least every third of its session timeout; a
//!    heartbeat (or a poll) answered [`status::REBALANCING`] means: stop
//!    polling, commit, and join again with the member id; one answered
//!    [`status::STALE_GENERATION`] or [`status::UNKNOWN_MEMBER`] (the member
//!    was replaced, or its session ended) means its uncommitted work is
//!    someone else's now: join again (as a new member for the latter);
//! 5. **leave** (34) when done: the others rebalance at once instead of after
//!    its session timeout.
//!
//! A group's committed offsets are the consumer offsets of its name, so
//! `rivulet poll --consumer G` and Kafka's group `G` read and write the same
//! ones; describing a group (38) therefore asks every partition of every
//! topic for the group's offset, which also shows the offsets of a group
//! with no members now (after a restart, or one used only by Kafka clients).

use crate::session::{find, json};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use stage6_broker::shards::connection::{Connection, MAX_POLL_RECORDS};
use stage6_broker::shards::extension::Answer;
use stage6_broker::shards::shard::{ShardState, storage_stopped};
use stage6_broker::shards::wire::{WireError, status as engine_status};

use crate::api::{self, PollKind, status};
use crate::groups::commit::{self, CommitError, Target};
use crate::groups::coordinator::{Flavor, Group, GroupError, GroupInfo, Join, MemberInfo};
use crate::groups::service::{all_groups, on_group};
use crate::jobs;
use crate::metrics::Metrics;

/// A check of the user's permission to consume from a topic (by name).
pub type ConsumeCheck<'a> = Box<dyn Fn(&str) -> Result<(), WireError> + 'a>;

/// A [`ConsumeCheck`] when access control is on; `None` when it is off.
pub type MayConsume<'a> = Option<&'a dyn Fn(&str) -> Result<(), WireError>>;

/// The `client_id` of a member that names none.
pub const DEFAULT_CLIENT_ID: &str = "rivulet";

// ANCHOR: group_error
/// A coordinator's refusal as a reply: its own status for each thing a
/// member must react to (join again, or stop), `Invalid` for the rest.
pub fn group_error(group: &str, error: GroupError) -> WireError {
    match error {
        GroupError::RebalanceInProgress => WireError::new(
            status::REBALANCING,
            format!(
                "group {group} is rebalancing: stop polling, commit what was processed, \
                 and join again"
            ),
        ),
        GroupError::IllegalGeneration => WireError::new(
            status::STALE_GENERATION,
            format!(
                "the request's generation is not group {group}'s: the member was replaced \
                 or the group moved on; join again"
            ),
        ),
        GroupError::UnknownMember => WireError::new(
            status::UNKNOWN_MEMBER,
            format!("no such member in group {group} (it left, or its session ended): join again"),
        ),
        GroupError::NotAssigned => WireError::new(
            status::NOT_ASSIGNED,
            format!("that partition is not this member's in group {group}'s generation"),
        ),
        GroupError::InvalidSessionTimeout => {
            let (low, high) = (
                crate::groups::coordinator::SESSION_TIMEOUTS.start(),
                crate::groups::coordinator::SESSION_TIMEOUTS.end(),
            );
            WireError::invalid(format!(
                "session_timeout_ms is {} to {}",
                low.as_millis(),
                high.as_millis()
            ))
        }
        GroupError::InconsistentProtocol => WireError::invalid(format!(
            "group {group} has members of another kind (Kafka consumers), or members reading \
             another topic"
        )),
        GroupError::MemberIdRequired(_) => {
            WireError::invalid(format!("group {group}: join again with a member id"))
        }
    }
}
// ANCHOR_END: group_error

/// The group's topic, when it is a Rivulet group; a Kafka group is refused
/// (Rivulet's members and Kafka's do not mix).
fn rivulet_topic(name: &str, group: &Group) -> Result<Option<u32>, WireError> {
    match group.flavor() {
        Some(Flavor::Rivulet { topic, .. }) => Ok(Some(*topic)),
        Some(Flavor::Kafka { .. }) if group.member_count() > 0 => {
            Err(group_error(name, GroupError::InconsistentProtocol))
        }
        _ => Ok(None),
    }
}

/// Refuses a request naming `topic` for a group reading another.
fn same_topic(name: &str, group: &Group, topic: u32) -> Result<(), WireError> {
    match rivulet_topic(name, group)? {
        Some(reads) if reads != topic => Err(WireError::invalid(format!(
            "group {name} reads topic {reads}, not {topic}"
        ))),
        _ => Ok(()),
    }
}

/// With access control on, a request about group `name` that names no
/// topic (heartbeat, leave) needs the permission to consume the group's.
async fn may_use_group(
    shard: &Rc<ShardState>,
    name: &str,
    may_consume: MayConsume<'_>,
) -> Result<(), WireError> {
    let Some(may_consume) = may_consume else {
        return Ok(());
    };
    let group = name.to_string();
    let topic = on_group(shard, name, move |groups, _| {
        groups
            .get_mut(&group)
            .and_then(|group| match group.flavor() {
                Some(Flavor::Rivulet { topic, .. }) => Some(*topic),
                _ => None,
            })
    })
    .await?;
    match topic.and_then(|topic| shard.topic(topic).ok()) {
        Some(meta) => may_consume(&meta.name),
        None => Ok(()),
    }
}

// ANCHOR: join
/// Code 32: joins (or joins again), and waits for the rebalance.
pub async fn join(
    shard: &Rc<ShardState>,
    peer: SocketAddr,
    request: api::JoinGroup,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    let client_id = request
        .client_id
        .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
    api::check_name("client id", &client_id).map_err(WireError::invalid)?;
    let (topic, meta) = find(shard, &request.topic)?;
    let session = Duration::from_millis(request.session_timeout_ms);
    let join = Join {
        member: request.member,
        client_id,
        client_host: peer.ip().to_string(),
        session_timeout: session,
        // A member learns of a rebalance from its next heartbeat, due within
        // a third of its session: waiting a whole session for it is plenty.
        rebalance_timeout: session,
        flavor: Flavor::Rivulet {
            topic,
            partitions: meta.partitions,
        },
        protocols: Vec::new(),
        require_member_id: false,
    };
    let (reply, answer) = flume::bounded(1);
    let name = request.group.clone();
    on_group(shard, &request.group, move |groups, now| {
        groups.group(&name).join(join, now, reply);
    })
    .await?;
    // The answer comes when every member has joined again, or at the
    // rebalance's deadline; a server shutting down does not wait for it.
    let answered = {
        let answered = std::pin::pin!(answer.recv_async());
        let stopping = std::pin::pin!(shard.stopping());
        match select(answered, stopping).await {
            Either::Left((answered, _)) => answered.map_err(|_| storage_stopped())?,
            Either::Right(_) => return Err(storage_stopped()),
        }
    };
    let joined = answered.map_err(|error| group_error(&request.group, error))?;
    json(&api::GroupJoined {
        group: request.group,
        member: joined.member,
        generation: joined.generation,
        topic,
        partitions: joined.partitions,
    })
}
// ANCHOR_END: join

/// Code 33: a heartbeat.
pub async fn heartbeat(
    shard: &Rc<ShardState>,
    request: api::Heartbeat,
    may_consume: MayConsume<'_>,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    may_use_group(shard, &request.group, may_consume).await?;
    let name = request.group.clone();
    let answered = on_group(shard, &request.group, move |groups, now| {
        let Some(group) = groups.get_mut(&name) else {
            return Err(group_error(&name, GroupError::UnknownMember));
        };
        rivulet_topic(&name, group)?;
        group
            .heartbeat(&request.member, request.generation, now)
            .map_err(|error| group_error(&name, error))
    })
    .await?;
    answered?;
    json(&api::Empty {})
}

/// Code 34: a member leaves.
pub async fn leave(
    shard: &Rc<ShardState>,
    request: api::LeaveGroup,
    may_consume: MayConsume<'_>,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    may_use_group(shard, &request.group, may_consume).await?;
    let name = request.group.clone();
    let answered = on_group(shard, &request.group, move |groups, now| {
        let Some(group) = groups.get_mut(&name) else {
            return Err(group_error(&name, GroupError::UnknownMember));
        };
        rivulet_topic(&name, group)?;
        group
            .leave(&request.member, now)
            .map_err(|error| group_error(&name, error))
    })
    .await?;
    answered?;
    json(&api::Empty {})
}

// ANCHOR: poll
/// Code 35: a member polls one of its partitions, from the group's
/// committed offset (or `offset`), committing nothing. Checked by the group
/// first; the records come back as stage 5's poll reply, without a copy.
pub async fn poll(
    shard: &Rc<ShardState>,
    connection: &mut Connection,
    request: api::GroupPoll,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    let (topic, _) = find(shard, &request.topic)?;
    let partition = request.partition;
    connection.check_partition(topic, partition)?;
    let (name, member, generation) = (request.group.clone(), request.member, request.generation);
    let checked = on_group(shard, &request.group, move |groups, _| {
        let Some(group) = groups.get_mut(&name) else {
            return Err(group_error(&name, GroupError::UnknownMember));
        };
        same_topic(&name, group, topic)?;
        group
            .check_poll(&member, generation, partition)
            .map_err(|error| group_error(&name, error))
    })
    .await?;
    checked?;
    let job = jobs::PollBy {
        kind: request.offset.map_or(PollKind::Next, PollKind::Offset),
        count: u64::from(request.count.min(MAX_POLL_RECORDS)),
        consumer: request.group,
        auto_commit: false,
        buf: connection.buffer()?,
        reply: connection.reply_to(),
    };
    shard.run_on((topic, partition), Box::new(job));
    let reply = connection.reply().await?;
    connection.polled(topic, reply)
}
// ANCHOR_END: poll

/// Code 36: a member commits, through [`commit::commit`] (checked by the
/// group, stored by the partition's owner, the lag gauge set).
pub async fn commit_offset(
    shard: &Rc<ShardState>,
    connection: &Connection,
    metrics: &Metrics,
    request: api::CommitOffset,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    let (topic, meta) = find(shard, &request.topic)?;
    connection.check_partition(topic, request.partition)?;
    let name = request.group.clone();
    // A Rivulet group commits in its own topic only (the coordinator checks
    // the partition's number, not its topic).
    let checked = on_group(shard, &request.group, move |groups, _| {
        match groups.get_mut(&name) {
            Some(group) => same_topic(&name, group, topic),
            None => Ok(()),
        }
    })
    .await?;
    checked?;
    let target = Target {
        topic,
        topic_name: &meta.name,
        partition: request.partition,
    };
    let committed = commit::commit(
        shard,
        metrics,
        &request.group,
        &request.member,
        request.generation,
        target,
        request.offset,
    )
    .await;
    match committed {
        Ok(()) => json(&api::Empty {}),
        Err(CommitError::Group(error)) => Err(group_error(&request.group, error)),
        Err(CommitError::Storage(error)) => Err(error),
    }
}

/// Code 37: every group the coordinators keep.
pub async fn list(shard: &Rc<ShardState>) -> Result<Answer, WireError> {
    let groups = all_groups(shard).await?;
    let groups = groups
        .into_iter()
        .map(|info| api::GroupSummary {
            topic: topic_name(shard, info.topic),
            group: info.name,
            state: info.state.to_string(),
            protocol_type: info.protocol_type,
            generation: info.generation,
            members: u32::try_from(info.members.len()).unwrap_or(u32::MAX),
        })
        .collect();
    json(&api::GroupList { groups })
}

// ANCHOR: describe
/// Code 38: a group's membership (if the broker knows it since it started)
/// and its offsets: every partition of its topic, and every partition of
/// any topic where it has a committed offset. Asks every partition of every
/// topic at once, each its owner, on one channel. With access control on,
/// only the topics the user may consume from are shown.
pub async fn describe(
    shard: &Rc<ShardState>,
    request: api::GroupName,
    may_consume: MayConsume<'_>,
) -> Result<Answer, WireError> {
    api::check_name("group", &request.group).map_err(WireError::invalid)?;
    let name = request.group.clone();
    let info = on_group(shard, &request.group, move |groups, _| {
        groups.get_mut(&name).map(|group| group.describe())
    })
    .await?;
    let topics = shard.topics();
    let total: usize = topics
        .iter()
        .map(|(_, meta)| meta.partitions as usize)
        .sum();
    let (done, answers) = flume::bounded(total.max(1));
    for (id, meta) in &topics {
        for partition in 0..meta.partitions {
            let job = jobs::GetPosition {
                consumer: request.group.clone(),
                key: (*id, partition),
                done: done.clone(),
            };
            shard.run_on((*id, partition), Box::new(job));
        }
    }
    drop(done);
    let mut positions = Vec::with_capacity(total);
    for _ in 0..total {
        let (key, position) = answers.recv_async().await.map_err(|_| storage_stopped())?;
        match position {
            Ok(position) => positions.push((key, position)),
            // A partition that could not be opened has no offsets to show,
            // nor has one whose topic was deleted since the list was taken.
            Err(error)
                if matches!(
                    error.status,
                    engine_status::PARTITION_FAILED
                        | engine_status::TOPIC_NOT_FOUND
                        | engine_status::PARTITION_NOT_FOUND
                ) => {}
            Err(error) => return Err(error),
        }
    }
    positions.sort_by_key(|(key, _)| *key);
    let own_topic = info.as_ref().and_then(|info| info.topic);
    let owners = owners(shard, info.as_ref());
    let meta_of = |id: u32| topics.iter().find(|(t, _)| *t == id).map(|(_, m)| m);
    let mut offsets = Vec::new();
    for ((topic, partition), position) in positions {
        if position.committed.is_none() && Some(topic) != own_topic {
            continue;
        }
        let Some(meta) = meta_of(topic) else { continue };
        if let Some(may_consume) = may_consume
            && may_consume(&meta.name).is_err()
        {
            continue;
        }
        let from = position.committed.unwrap_or(position.first_offset);
        offsets.push(api::GroupOffset {
            topic: meta.name.clone(),
            partition,
            owner: owners
                .iter()
                .find(|(t, p, _)| *t == meta.name && *p == partition)
                .map(|(_, _, member)| member.clone()),
            committed: position.committed,
            first_offset: position.first_offset,
            end_offset: position.next_offset,
            lag: position.next_offset.saturating_sub(from),
        });
    }
    let description = match info {
        Some(info) => describe_members(shard, info, offsets),
        None if offsets.is_empty() => {
            return Err(WireError::new(
                status::CONSUMER_NOT_FOUND,
                format!(
                    "no group {}: no members since the server started, and no committed offsets",
                    request.group
                ),
            ));
        }
        None => api::GroupDescription {
            group: request.group,
            state: "Empty".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            generation: 0,
            topic: None,
            rebalances: 0,
            members: Vec::new(),
            offsets,
        },
    };
    json(&description)
}
// ANCHOR_END: describe

fn describe_members(
    shard: &ShardState,
    info: GroupInfo,
    offsets: Vec<api::GroupOffset>,
) -> api::GroupDescription {
    let members = info
        .members
        .iter()
        .map(|member| api::GroupMember {
            member: member.member.clone(),
            client_id: member.client_id.clone(),
            client_host: member.client_host.clone(),
            assignment: assigned_to(shard, &info, member)
                .into_iter()
                .map(|(topic, partitions)| api::Assigned { topic, partitions })
                .collect(),
        })
        .collect();
    api::GroupDescription {
        topic: topic_name(shard, info.topic),
        group: info.name,
        state: info.state.to_string(),
        protocol_type: info.protocol_type,
        protocol: info.protocol,
        generation: info.generation,
        rebalances: info.rebalances,
        members,
        offsets,
    }
}

/// Who owns each partition, as (topic name, partition, member).
fn owners(shard: &ShardState, info: Option<&GroupInfo>) -> Vec<(String, u32, String)> {
    let Some(info) = info else {
        return Vec::new();
    };
    let mut owned = Vec::new();
    for member in &info.members {
        for (topic, partitions) in assigned_to(shard, info, member) {
            for partition in partitions {
                owned.push((topic.clone(), partition, member.member.clone()));
            }
        }
    }
    owned
}

/// A member's partitions, by topic name: a Rivulet member's from the
/// coordinator, a Kafka consumer's from the assignment its leader sent
/// (Kafka's consumer protocol).
fn assigned_to(
    shard: &ShardState,
    info: &GroupInfo,
    member: &MemberInfo,
) -> Vec<(String, Vec<u32>)> {
    match info.topic {
        Some(topic) => {
            let name = topic_name(shard, Some(topic)).unwrap_or_else(|| topic.to_string());
            vec![(name, member.partitions.clone())]
        }
        None => kafka_assignment(&member.assignment),
    }
}

/// A Kafka consumer's assignment bytes (a version `i16`, then Kafka's
/// `ConsumerProtocolAssignment`), by topic; nothing if they do not parse
/// (an assignor of another protocol type than `consumer`).
fn kafka_assignment(bytes: &[u8]) -> Vec<(String, Vec<u32>)> {
    let Some((version, rest)) = bytes.split_first_chunk::<2>() else {
        return Vec::new();
    };
    // A newer version is read as the newest one known: Kafka's rule, since
    // versions only add fields at the end.
    let version = i16::from_be_bytes(*version).clamp(0, 3);
    let mut rest = bytes::Bytes::copy_from_slice(rest);
    match ConsumerProtocolAssignment::decode(&mut rest, version) {
        Ok(decoded) => decoded
            .assigned_partitions
            .into_iter()
            .map(|assigned| {
                let partitions = assigned
                    .partitions
                    .into_iter()
                    .filter_map(|p| u32::try_from(p).ok())
                    .collect();
                (assigned.topic.0.to_string(), partitions)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A topic's name, by id, from this shard's copy.
fn topic_name(shard: &ShardState, topic: Option<u32>) -> Option<String> {
    topic.and_then(|topic| shard.topic(topic).ok().map(|meta| meta.name.clone()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    #[test]
    fn groups_read_a_kafka_consumers_assignment() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![0, 2]),
        ]);
        let mut bytes = bytes::BytesMut::from(&1i16.to_be_bytes()[..]);
        assignment.encode(&mut bytes, 1).unwrap();
        assert_eq!(
            kafka_assignment(&bytes),
            [("orders".to_string(), vec![0, 2])]
        );
        assert!(kafka_assignment(&bytes[..3]).is_empty());
        assert!(kafka_assignment(&[]).is_empty());
    }

    #[test]
    fn groups_refusals_have_their_own_statuses() {
        let status_of = |error| group_error("g", error).status;
        assert_eq!(
            status_of(GroupError::RebalanceInProgress),
            status::REBALANCING
        );
        assert_eq!(
            status_of(GroupError::IllegalGeneration),
            status::STALE_GENERATION
        );
        assert_eq!(status_of(GroupError::UnknownMember), status::UNKNOWN_MEMBER);
        assert_eq!(status_of(GroupError::NotAssigned), status::NOT_ASSIGNED);
        assert_eq!(
            status_of(GroupError::InvalidSessionTimeout),
            status::INVALID
        );
    }
}
