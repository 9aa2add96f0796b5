//! Kafka's classic group protocol: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups and ListGroups, served by the group's
//! coordinator ([`crate::groups::coordinator`]) on the shard that keeps the
//! group ([`crate::groups::service::on_group`]).
//!
//! A member's life, as a Kafka client lives it:
//!
//! 1. FindCoordinator names this node (there is one);
//! 2. JoinGroup with no member id: from version 4 the answer is
//!    MEMBER_ID_REQUIRED with an id, and the client joins again with it
//!    (KIP-394); the join is answered once every member has joined (a long
//!    poll: the connection waits, as Kafka's does), with the generation, the
//!    assignor chosen, the leader, and for the leader every member's
//!    subscription;
//! 3. SyncGroup: the leader hands in everyone's assignment (computed by the
//!    client's assignor: range, roundrobin, cooperative-sticky; the broker
//!    relays the bytes), and each member gets its own;
//! 4. Heartbeat every few seconds; REBALANCE_IN_PROGRESS says join again;
//! 5. OffsetCommit with its generation and member id ([`super::offsets`]);
//! 6. LeaveGroup when it closes, or silence until its session ends.
//!
//! Group ids are Rivulet consumer names (letters, digits, `.`, `_`, `-`),
//! since the group's committed offsets are stored as that consumer's:
//! another id is refused with INVALID_GROUP_ID.
//!
//! Not served: static membership (KIP-345, `group.instance.id`). A request
//! naming an instance id is answered UNSUPPORTED_VERSION, the code Kafka's
//! own Java client explains with "unset group.instance.id": a static member
//! treated as a dynamic one would be fenced and rebalanced in ways it does
//! not expect. Nor the new consumer protocol (KIP-848): its APIs are not
//! advertised, so clients use this one.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, select};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::api;
use crate::groups::coordinator::{Flavor, GroupError, GroupInfo, Join, SESSION_TIMEOUTS};
use crate::groups::service::{all_groups, on_group};
use crate::kafka::connection::Handler;
use crate::kafka::errors::{code_of, group_code};

/// The only group type this broker has (ListGroups v5, DescribeGroups):
/// Kafka's name for groups of the classic protocol.
pub const GROUP_TYPE: &str = "classic";

/// Why a group request was not even asked of the group.
fn refusal(group: &str, instance: Option<&StrBytes>) -> Option<i16> {
    if api::check_name("consumer", group).is_err() {
        Some(ResponseError::InvalidGroupId.code())
    } else if instance.is_some() {
        Some(ResponseError::UnsupportedVersion.code())
    } else {
        None
    }
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl Handler {
    /// The group's answer on `answer`, or `None` if the shard stops first
    /// (or the group dropped it): the client is told to find its
    /// coordinator again.
    async fn group_answer<T>(&self, answer: flume::Receiver<T>) -> Option<T> {
        let answered = pin!(answer.recv_async());
        let stopping = pin!(self.shard.stopping());
        match select(answered, stopping).await {
            Either::Left((Ok(value), _)) => Some(value),
            _ => None,
        }
    }

    // ANCHOR: join_group
    /// JoinGroup: the member joins (or joins again), and the answer waits
    /// until the group's join phase completes.
    pub async fn join_group(
        &self,
        request: JoinGroupRequest,
        version: i16,
        client_id: &str,
    ) -> JoinGroupResponse {
        let mut response = JoinGroupResponse::default();
        response.generation_id = -1;
        // Not nullable before version 7.
        response.protocol_name = Some(StrBytes::default());
        response.member_id = request.member_id.clone();
        let name = request.group_id.0.as_str().to_string();
        if let Some(code) = refusal(&name, request.group_instance_id.as_ref()) {
            response.error_code = code;
            return response;
        }
        // Kafka's rule: a member names its protocol type and at least one
        // assignor.
        let protocol_type = request.protocol_type.as_str().to_string();
        if protocol_type.is_empty() || request.protocols.is_empty() {
            response.error_code = ResponseError::InconsistentGroupProtocol.code();
            return response;
        }
        // Checked here too, before the group is made: a refused join
        // leaves no empty group behind.
        let Some(session) = u64::try_from(request.session_timeout_ms)
            .ok()
            .map(Duration::from_millis)
            .filter(|session| SESSION_TIMEOUTS.contains(session))
        else {
            response.error_code = ResponseError::InvalidSessionTimeout.code();
            return response;
        };
        // Version 0 has no rebalance timeout: the session's is used.
        let rebalance = match u64::try_from(request.rebalance_timeout_ms) {
            Ok(ms) if version >= 1 && ms > 0 => Duration::from_millis(ms),
            _ => session,
        };
        let member = request.member_id.as_str();
        let join = Join {
            member: (!member.is_empty()).then(|| member.to_string()),
            client_id: client_id.to_string(),
            client_host: self.peer.ip().to_string(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            flavor: Flavor::Kafka {
                protocol_type: protocol_type.clone(),
            },
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.as_str().to_string(), p.metadata.to_vec()))
                .collect(),
            require_member_id: version >= 4,
        };
        let group = name.clone();
        let asked = on_group(&self.shard, &name, move |groups, now| {
            let (reply, answer) = flume::bounded(1);
            // Only a new member (no id yet) makes a group.
            let group = match join.member {
                Some(_) => groups.get_mut(&group),
                None => Some(groups.group(&group)),
            };
            match group {
                Some(group) => group.join(join, now, reply),
                None => {
                    let _ = reply.send(Err(GroupError::UnknownMember));
                }
            }
            answer
        })
        .await;
        let answer = match asked {
            Ok(answer) => answer,
            Err(error) => {
                response.error_code = code_of(&error);
                return response;
            }
        };
        let Some(joined) = self.group_answer(answer).await else {
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
            return response;
        };
        match joined {
            Ok(joined) => {
                debug!(
                    group = %name, member = %joined.member, generation = joined.generation,
                    "joined"
                );
                response.generation_id = joined.generation;
                response.protocol_name = Some(text(&joined.protocol.unwrap_or_default()));
                if version >= 7 {
                    response.protocol_type = Some(text(&protocol_type));
                }
                response.leader = text(&joined.leader);
                response.member_id = text(&joined.member);
                response.members = joined
                    .members
                    .into_iter()
                    .map(|(id, metadata)| {
                        let mut member = JoinGroupResponseMember::default();
                        member.member_id = text(&id);
                        member.metadata = Bytes::from(metadata);
                        member
                    })
                    .collect();
            }
            Err(GroupError::MemberIdRequired(id)) => {
                response.error_code = ResponseError::MemberIdRequired.code();
                response.member_id = text(&id);
            }
            Err(error) => response.error_code = group_code(&error),
        }
        response
    }
    // ANCHOR_END: join_group

    // ANCHOR: sync_group
    /// SyncGroup: the leader's assignments go to the group; every member's
    /// answer waits for the leader's and carries its own assignment.
    pub async fn sync_group(&self, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let mut response = SyncGroupResponse::default();
        let name = request.group_id.0.as_str().to_string();
        if let Some(code) = refusal(&name, request.group_instance_id.as_ref()) {
            response.error_code = code;
            return response;
        }
        let member = request.member_id.as_str().to_string();
        let generation = request.generation_id;
        // Version 5 names the protocol type and assignor the member
        // thinks the generation has: checked against the group's.
        let named = (
            request.protocol_type.map(|t| t.as_str().to_string()),
            request.protocol_name.map(|n| n.as_str().to_string()),
        );
        let assignments: Vec<(String, Vec<u8>)> = request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment.to_vec()))
            .collect();
        let group = name.clone();
        let asked = on_group(&self.shard, &name, move |groups, now| {
            let (reply, answer) = flume::bounded(1);
            let Some(group) = groups.get_mut(&group) else {
                let _ = reply.send(Err(GroupError::UnknownMember));
                return (answer, None);
            };
            let info = group.describe();
            let matches = named.0.as_ref().is_none_or(|t| *t == info.protocol_type)
                && named.1.as_ref().is_none_or(|n| *n == info.protocol);
            if matches {
                group.sync(&member, generation, assignments, now, reply);
            } else {
                let _ = reply.send(Err(GroupError::InconsistentProtocol));
            }
            (answer, Some((info.protocol_type, info.protocol)))
        })
        .await;
        let (answer, protocol) = match asked {
            Ok(asked) => asked,
            Err(error) => {
                response.error_code = code_of(&error);
                return response;
            }
        };
        match self.group_answer(answer).await {
            None => response.error_code = ResponseError::CoordinatorNotAvailable.code(),
            Some(Ok(assignment)) => {
                response.assignment = Bytes::from(assignment);
                if let (true, Some((protocol_type, protocol))) = (version >= 5, protocol) {
                    response.protocol_type = Some(text(&protocol_type));
                    response.protocol_name = Some(text(&protocol));
                }
            }
            Some(Err(error)) => response.error_code = group_code(&error),
        }
        response
    }
    // ANCHOR_END: sync_group

    /// Heartbeat: the member is alive; REBALANCE_IN_PROGRESS tells it to
    /// join again.
    pub async fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let mut response = HeartbeatResponse::default();
        let name = request.group_id.0.as_str().to_string();
        if let Some(code) = refusal(&name, request.group_instance_id.as_ref()) {
            response.error_code = code;
            return response;
        }
        let member = request.member_id.as_str().to_string();
        let generation = request.generation_id;
        let group = name.clone();
        let answered = on_group(&self.shard, &name, move |groups, now| {
            match groups.get_mut(&group) {
                Some(group) => group.heartbeat(&member, generation, now),
                None => Err(GroupError::UnknownMember),
            }
        })
        .await;
        response.error_code = match answered {
            Ok(Ok(())) => 0,
            Ok(Err(error)) => group_code(&error),
            Err(error) => code_of(&error),
        };
        response
    }

    /// LeaveGroup: one member (versions 0 to 2) or several (3 and later,
    /// each answered on its own) leave; the rest rebalance.
    pub async fn leave_group(
        &self,
        request: LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let mut response = LeaveGroupResponse::default();
        let name = request.group_id.0.as_str().to_string();
        if let Some(code) = refusal(&name, None) {
            response.error_code = code;
            return response;
        }
        // (member id, instance id) of each member leaving.
        let leaving: Vec<(String, Option<StrBytes>)> = if version >= 3 {
            request
                .members
                .into_iter()
                .map(|m| (m.member_id.as_str().to_string(), m.group_instance_id))
                .collect()
        } else {
            vec![(request.member_id.as_str().to_string(), None)]
        };
        let ids: Vec<String> = leaving.iter().map(|(id, _)| id.clone()).collect();
        let group = name.clone();
        let answered = on_group(&self.shard, &name, move |groups, now| {
            let group = groups.get_mut(&group);
            match group {
                Some(group) => ids.iter().map(|id| group.leave(id, now)).collect(),
                None => vec![Err(GroupError::UnknownMember); ids.len()],
            }
        })
        .await;
        let results: Vec<Result<(), GroupError>> = match answered {
            Ok(results) => results,
            Err(error) => {
                response.error_code = code_of(&error);
                return response;
            }
        };
        let codes: Vec<i16> = results
            .iter()
            .map(|result| result.as_ref().err().map_or(0, group_code))
            .collect();
        if version >= 3 {
            for ((id, instance), code) in leaving.into_iter().zip(codes) {
                let mut member = MemberResponse::default();
                member.member_id = text(&id);
                member.group_instance_id = instance;
                member.error_code = code;
                response.members.push(member);
            }
        } else {
            response.error_code = codes.first().copied().unwrap_or(0);
        }
        response
    }

    // ANCHOR: describe_groups
    /// DescribeGroups: each group's state, protocol and members (their
    /// subscriptions and assignments once the group is stable, as Kafka
    /// reports them). A group this broker does not have is `Dead`, or from
    /// version 6 GROUP_ID_NOT_FOUND.
    pub async fn describe_groups(
        &self,
        request: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut response = DescribeGroupsResponse::default();
        for id in request.groups {
            let name = id.0.as_str().to_string();
            let mut described = DescribedGroup::default();
            described.group_id = id;
            if let Some(code) = refusal(&name, None) {
                described.error_code = code;
                response.groups.push(described);
                continue;
            }
            let group = name.clone();
            let found = on_group(&self.shard, &name, move |groups, _| {
                groups.get_mut(&group).map(|group| group.describe())
            })
            .await;
            match found {
                Ok(Some(info)) => describe_into(&mut described, info),
                Ok(None) if version >= 6 => {
                    described.error_code = ResponseError::GroupIdNotFound.code();
                    described.error_message = Some(text(&format!("no group {name}")));
                }
                Ok(None) => described.group_state = StrBytes::from_static_str("Dead"),
                Err(error) => described.error_code = code_of(&error),
            }
            response.groups.push(described);
        }
        response
    }
    // ANCHOR_END: describe_groups

    /// ListGroups: every group of every shard, with its protocol type, and
    /// from version 4 its state (filtered by the states asked), from 5 its
    /// type (always `classic`).
    pub async fn list_groups(
        &self,
        request: ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let mut response = ListGroupsResponse::default();
        let groups = match all_groups(&self.shard).await {
            Ok(groups) => groups,
            Err(error) => {
                response.error_code = code_of(&error);
                return response;
            }
        };
        let wanted = |filter: &[StrBytes], value: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
        };
        for group in groups {
            if !wanted(&request.states_filter, group.state)
                || !wanted(&request.types_filter, GROUP_TYPE)
            {
                continue;
            }
            let mut listed = ListedGroup::default();
            listed.group_id = GroupId(text(&group.name));
            listed.protocol_type = text(&group.protocol_type);
            if version >= 4 {
                listed.group_state = StrBytes::from_static_str(group.state);
            }
            if version >= 5 {
                listed.group_type = StrBytes::from_static_str(GROUP_TYPE);
            }
            response.groups.push(listed);
        }
        response
    }
}

/// A group's description in DescribeGroups' terms: Kafka reports the
/// assignor and each member's subscription and assignment only while the
/// group is stable (in a rebalance they are about to change).
fn describe_into(described: &mut DescribedGroup, info: GroupInfo) {
    let stable = info.state == "Stable";
    described.group_state = StrBytes::from_static_str(info.state);
    described.protocol_type = text(&info.protocol_type);
    if stable {
        described.protocol_data = text(&info.protocol);
    }
    for member in info.members {
        let mut out = DescribedGroupMember::default();
        out.member_id = text(&member.member);
        out.client_id = text(&member.client_id);
        out.client_host = text(&member.client_host);
        if stable {
            out.member_metadata = Bytes::from(member.metadata);
            out.member_assignment = Bytes::from(member.assignment);
        }
        described.members.push(out);
    }
}
