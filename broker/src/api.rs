//! The broker's commands beyond stage 5's three: streams, topics, polls by
//! position, consumer offsets, statistics, login and consumer groups. Stage
//! 5's frames (codes 10 to 12) are unchanged; everything here is new codes
//! on the same framing.
//!
//! Two kinds of body:
//! - **resource commands** (streams, topics, offsets, stats, login) carry a
//!   JSON object each way, the types below. They are rare, small, and an
//!   operator reading a packet capture can read them; a parse error is
//!   [`status::MALFORMED`] and closes the connection like any untrustworthy
//!   frame. Rejected: a hand-written binary layout per command, which would
//!   double the code of every command for no measurable gain;
//! - **the data path** stays binary: [`code::POLL_BY`] is stage 5's poll with a
//!   position kind, answered exactly like stage 5's poll (`count u32` and
//!   the records as stored), so its zero-copy reply path is kept. A group
//!   member's poll ([`code::GROUP_POLL`]) is answered the same way; its
//!   request is JSON ([`GroupPoll`]), since it is checked by the group's
//!   coordinator (a hop to another shard) before the partition is read, and
//!   a hundred bytes of JSON are noise beside that.
//!
//! A reply's status is stage 4's (0 to 7) or one of the new ones in
//! [`status`]; an error reply's body is a UTF-8 message, as before.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ANCHOR: codes
/// Request codes: stage 4's 10 to 12 (the engine's, binary), then the
/// broker's own.
pub mod code {
    pub use stage6_broker::shards::protocol::code::*;

    /// [`super::CreateStream`] → [`super::StreamInfo`].
    pub const CREATE_STREAM: u16 = 20;
    /// `{}` → [`super::StreamList`].
    pub const LIST_STREAMS: u16 = 21;
    /// [`super::StreamName`] → `{}`; deletes the stream's topics too.
    pub const DELETE_STREAM: u16 = 22;
    /// [`super::CreateTopic`] → [`super::TopicInfo`].
    pub const CREATE_TOPIC_NAMED: u16 = 23;
    /// [`super::ListTopics`] → [`super::TopicList`].
    pub const LIST_TOPICS: u16 = 24;
    /// [`super::TopicRef`] → [`super::TopicInfo`] with its partitions filled in.
    pub const DESCRIBE_TOPIC: u16 = 25;
    /// [`super::TopicRef`] → `{}`.
    pub const DELETE_TOPIC: u16 = 26;
    /// Binary [`super::PollBy`] → records, answered as stage 5's poll.
    pub const POLL_BY: u16 = 27;
    /// [`super::StoreOffset`] → `{}`.
    pub const STORE_OFFSET: u16 = 28;
    /// [`super::GetOffsets`] → [`super::ConsumerOffsets`].
    pub const GET_OFFSETS: u16 = 29;
    /// `{}` → [`super::Stats`].
    pub const STATS: u16 = 30;
    /// [`super::Login`] → `{}` (a server without access control accepts
    /// any login).
    pub const LOGIN: u16 = 31;
    /// [`super::JoinGroup`] → [`super::GroupJoined`], once the group's
    /// rebalance completes.
    pub const JOIN_GROUP: u16 = 32;
    /// [`super::Heartbeat`] → `{}`.
    pub const HEARTBEAT: u16 = 33;
    /// [`super::LeaveGroup`] → `{}`.
    pub const LEAVE_GROUP: u16 = 34;
    /// [`super::GroupPoll`] → records, answered as stage 5's poll.
    pub const GROUP_POLL: u16 = 35;
    /// [`super::CommitOffset`] → `{}`.
    pub const COMMIT_OFFSET: u16 = 36;
    /// `{}` → [`super::GroupList`].
    pub const LIST_GROUPS: u16 = 37;
    /// [`super::GroupName`] → [`super::GroupDescription`].
    pub const DESCRIBE_GROUP: u16 = 38;
}
// ANCHOR_END: codes

// ANCHOR: statuses
/// Reply status codes: the engine's (stage 4's 0 to 7, 13 and 14, see
/// `stage6_broker::shards::wire::status`) and the broker's own, 8 to 12 and
/// 15 to 18.
pub mod status {
    pub use stage6_broker::shards::wire::status::*;

    /// No stream with that name.
    pub const STREAM_NOT_FOUND: u16 = 8;
    /// A stream with that name exists already, or a topic with that name
    /// or id exists with other settings.
    pub const ALREADY_EXISTS: u16 = 9;
    /// No such consumer group (describe group): no members since the
    /// server started, and no committed offsets.
    pub const CONSUMER_NOT_FOUND: u16 = 10;
    /// The connection must log in first, or a login failed (too many
    /// failures close the connection).
    pub const UNAUTHENTICATED: u16 = 11;
    /// The user may not do this to this topic.
    pub const FORBIDDEN: u16 = 12;
    /// The group is rebalancing: stop polling, commit what was processed,
    /// and join again.
    pub const REBALANCING: u16 = 15;
    /// The request names a generation that is not the group's (the member
    /// was replaced, or the group moved on): join again.
    pub const STALE_GENERATION: u16 = 16;
    /// The member is not in the group (it left, or its session ended): join
    /// again as a new member.
    pub const UNKNOWN_MEMBER: u16 = 17;
    /// The partition is not assigned to the member in this generation.
    pub const NOT_ASSIGNED: u16 = 18;
}
// ANCHOR_END: statuses

/// The stream every topic made with stage 4's binary create-topic joins.
pub const DEFAULT_STREAM: &str = "default";

/// Longest stream, topic, consumer or user name, in bytes. Names are
/// non-empty UTF-8 of `[A-Za-z0-9._-]` (they name nothing on disk, but they
/// appear in metrics labels and logs, so they are kept plain).
pub const MAX_NAME_LEN: usize = 255;

/// Checks a stream, topic, consumer or user name; the error says why.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a {kind} name has 1 to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "a {kind} name is letters, digits, '.', '_' and '-'; {name:?} has {bad:?}"
        ));
    }
    Ok(())
}

// ANCHOR: streams
/// Create a stream: a named group of topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    /// Its name.
    pub name: String,
}

/// A stream, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamName {
    /// Its name.
    pub name: String,
}

/// A stream and its topics' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamInfo {
    /// Its name.
    pub name: String,
    /// Its topics, by name.
    pub topics: Vec<String>,
}

/// Every stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamList {
    /// In name order.
    pub streams: Vec<StreamInfo>,
}
// ANCHOR_END: streams

// ANCHOR: topics
/// A topic's settings; a field left out (or null) takes the server's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Stage 2's fsync policy: `always`, `every-batch`, `interval-<N>ms`
    /// (such as `interval-100ms`) or `never`, as `rivulet-server --fsync`
    /// takes it.
    pub fsync: Option<String>,
    /// Bytes per segment file, a positive multiple of 4096.
    pub segment_size: Option<u64>,
    /// Delete the oldest sealed segments while the partition holds more than this.
    pub retention_bytes: Option<u64>,
    /// Delete sealed segments whose newest record is older than this many seconds.
    pub retention_seconds: Option<u64>,
}

/// Create a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// The stream it joins: `default` if absent; a
    /// stream that does not exist is created with the topic.
    #[serde(default)]
    pub stream: Option<String>,
    /// Its name, unique in the broker.
    pub name: String,
    /// The id produce and poll frames address it by; the server picks the
    /// lowest free one if absent.
    #[serde(default)]
    pub id: Option<u32>,
    /// Number of partitions, 1 to 1024.
    pub partitions: u32,
    /// Per-topic settings.
    #[serde(default)]
    pub settings: TopicSettings,
}

/// A topic by name or by id: `{"name": "orders"}` or `{"id": 7}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id.
    Id(u32),
}

/// As people read it in a message: `"orders"` by name, `7` by id (never
/// Rust's debug text).
impl std::fmt::Display for TopicRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicRef::Name(name) => write!(f, "{name:?}"),
            TopicRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Which topics to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTopics {
    /// Only this stream's; every stream's if absent.
    #[serde(default)]
    pub stream: Option<String>,
}

/// A topic as the server holds it: settings resolved against the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicInfo {
    /// Its stream.
    pub stream: String,
    /// Its name.
    pub name: String,
    /// Its id on the wire.
    pub id: u32,
    /// Partition count.
    pub partitions: u32,
    /// The fsync policy in effect.
    pub fsync: String,
    /// Segment size in effect.
    pub segment_size: u64,
    /// Retention by size, if any.
    pub retention_bytes: Option<u64>,
    /// Retention by age in seconds, if any.
    pub retention_seconds: Option<u64>,
    /// Each partition's state, in partition order: filled by describe
    /// (code 25), empty in a list (code 24).
    #[serde(default)]
    // The engine's type has no schema of its own: its fields' table is made
    // from its source by the reference's generator, under this name.
    #[schemars(
        with = "Vec<serde_json::Value>",
        extend("items" = {"$ref": "#/$defs/PartitionInfo"})
    )]
    pub partition_info: Vec<PartitionInfo>,
}

/// Every topic asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicList {
    /// In id order.
    pub topics: Vec<TopicInfo>,
}

/// One partition's state, from the shard that owns it (the engine's type:
/// the storage knows what it holds).
pub use stage6_broker::PartitionInfo;
// ANCHOR_END: topics

// ANCHOR: poll_kind
/// Where a [`PollBy`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollKind {
    /// At this offset (below the first stored one: at the first stored one).
    Offset(u64),
    /// At the first record whose timestamp (microseconds since the epoch) is
    /// at or after this one.
    Timestamp(u64),
    /// At the oldest record stored.
    First,
    /// At the last `count` records.
    Last,
    /// Where the named consumer's stored offset says (the first record if it
    /// has none).
    Next,
}
// ANCHOR_END: poll_kind

impl PollKind {
    /// The kind's byte on the wire.
    pub fn tag(self) -> u8 {
        match self {
            PollKind::Offset(_) => 0,
            PollKind::Timestamp(_) => 1,
            PollKind::First => 2,
            PollKind::Last => 3,
            PollKind::Next => 4,
        }
    }

    /// The kind's `u64` argument on the wire (0 where it has none).
    pub fn value(self) -> u64 {
        match self {
            PollKind::Offset(value) | PollKind::Timestamp(value) => value,
            _ => 0,
        }
    }

    /// The kind for a tag and value read off the wire.
    pub fn from_wire(tag: u8, value: u64) -> Option<PollKind> {
        Some(match tag {
            0 => PollKind::Offset(value),
            1 => PollKind::Timestamp(value),
            2 => PollKind::First,
            3 => PollKind::Last,
            4 => PollKind::Next,
            _ => return None,
        })
    }
}

// ANCHOR: poll_by
/// A poll by position, binary like stage 5's poll:
///
/// ```text
/// topic u32 | partition u32 | kind u8 | value u64 | count u32
///           | consumer_len u16 | consumer (UTF-8) | auto_commit u8
/// ```
///
/// `consumer` may be empty except for [`PollKind::Next`] and auto-commit.
/// With `auto_commit` 1, the consumer's offset is stored as the offset after
/// the last record returned, before the reply is sent. The reply is stage
/// 5's poll reply: `count u32`, then the records as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollBy {
    /// Topic id.
    pub topic: u32,
    /// Partition number.
    pub partition: u32,
    /// Where to start.
    pub kind: PollKind,
    /// At most this many records (the server caps it).
    pub count: u32,
    /// The consumer, for `Next` and auto-commit.
    pub consumer: String,
    /// Store the consumer's offset after this poll.
    pub auto_commit: bool,
}
// ANCHOR_END: poll_by

impl PollBy {
    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(27 + self.consumer.len());
        body.extend_from_slice(&self.topic.to_le_bytes());
        body.extend_from_slice(&self.partition.to_le_bytes());
        body.push(self.kind.tag());
        body.extend_from_slice(&self.kind.value().to_le_bytes());
        body.extend_from_slice(&self.count.to_le_bytes());
        // Names are at most MAX_NAME_LEN bytes, so the length fits a u16.
        let len = u16::try_from(self.consumer.len()).unwrap_or(u16::MAX);
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(self.consumer.as_bytes());
        body.push(u8::from(self.auto_commit));
        body
    }
}

// ANCHOR: offsets
/// Store a consumer's offset: the next offset it wants to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreOffset {
    /// The consumer's name.
    pub consumer: String,
    /// The topic.
    pub topic: TopicRef,
    /// The partition.
    pub partition: u32,
    /// The next offset the consumer will read.
    pub offset: u64,
}

/// A consumer's stored offsets in one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetOffsets {
    /// The consumer's name.
    pub consumer: String,
    /// The topic.
    pub topic: TopicRef,
}

/// One partition's stored offset for a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoredOffset {
    /// Partition number.
    pub partition: u32,
    /// The stored offset, if any.
    pub offset: Option<u64>,
    /// The partition's next offset, so the lag can be shown.
    pub next_offset: u64,
}

/// A consumer's offsets, every partition of the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerOffsets {
    /// The consumer.
    pub consumer: String,
    /// The topic's id.
    pub topic: u32,
    /// One per partition, in order.
    pub partitions: Vec<StoredOffset>,
}
// ANCHOR_END: offsets

// ANCHOR: groups
/// Join a consumer group that reads `topic` (or join again, with `member`).
/// The answer waits until the group's rebalance completes: every member has
/// joined again, or the rebalance's deadline (the longest session timeout
/// among the members) removed the ones that did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    /// The group's name; its committed offsets are the stored offsets of
    /// the consumer of that name.
    pub group: String,
    /// The topic the group reads (every member names the same one).
    pub topic: TopicRef,
    /// No heartbeat for this long (1,000 to 300,000 ms) ends the
    /// membership; a rebalance waits as long for the member to join again.
    pub session_timeout_ms: u64,
    /// The id the server gave this member, when joining again.
    #[serde(default)]
    pub member: Option<String>,
    /// How the client names itself; a new member's id is
    /// `<client_id>-<n>` (default `rivulet`).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A completed join: this member's id and partitions in the new generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupJoined {
    /// The group.
    pub group: String,
    /// This member's id, for every later request.
    pub member: String,
    /// The new generation, for every later request.
    pub generation: i32,
    /// The topic's id.
    pub topic: u32,
    /// This member's partitions, in order (none when the group has more
    /// members than the topic has partitions).
    pub partitions: Vec<u32>,
}

/// A member's heartbeat: it is alive; the answer says whether it must join
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The group.
    pub group: String,
    /// The member's id.
    pub member: String,
    /// The generation it was given.
    pub generation: i32,
}

/// A member leaves: the others rebalance at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveGroup {
    /// The group.
    pub group: String,
    /// The member's id.
    pub member: String,
}

/// A member polls one of its partitions: from the group's committed offset
/// (the first record if none), or from `offset`. Nothing is committed: the
/// member commits ([`CommitOffset`], code 36) once it processed the
/// records. The reply is binary, code 12's poll reply (`count u32`, then
/// the records), as for a poll by position ([`code::POLL_BY`], code 27).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPoll {
    /// The group.
    pub group: String,
    /// The member's id.
    pub member: String,
    /// The generation it was given.
    pub generation: i32,
    /// The group's topic.
    pub topic: TopicRef,
    /// One of the member's partitions.
    pub partition: u32,
    /// Start here instead of at the committed offset (a member that polls
    /// again before committing what it was given).
    #[serde(default)]
    pub offset: Option<u64>,
    /// At most this many records (the server caps it).
    pub count: u32,
}

/// A member commits: the next offset the group will read in a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    /// The group.
    pub group: String,
    /// The member's id.
    pub member: String,
    /// The generation it was given.
    pub generation: i32,
    /// The group's topic.
    pub topic: TopicRef,
    /// One of the member's partitions.
    pub partition: u32,
    /// The offset after the last record processed.
    pub offset: u64,
}

/// A group, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupName {
    /// Its name.
    pub group: String,
}

/// A group as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupSummary {
    /// Its name.
    pub group: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance` or `Stable`
    /// (Kafka's names).
    pub state: String,
    /// `rivulet` (members of this protocol), `consumer` (Kafka
    /// consumers), or empty (never joined; offsets committed from outside).
    pub protocol_type: String,
    /// Its generation.
    pub generation: i32,
    /// How many members now.
    pub members: u32,
    /// A Rivulet group's topic.
    pub topic: Option<String>,
}

/// Every group the broker knows since it started (membership is not kept
/// across a restart; committed offsets are, and a group's are shown by
/// describing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupList {
    /// In name order.
    pub groups: Vec<GroupSummary>,
}

/// One topic's partitions assigned to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Assigned {
    /// The topic's name.
    pub topic: String,
    /// The partitions.
    pub partitions: Vec<u32>,
}

/// A group's member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupMember {
    /// Its id.
    pub member: String,
    /// The client's name for itself.
    pub client_id: String,
    /// The address it connected from.
    pub client_host: String,
    /// Its partitions (a Kafka member's as its leader assigned them).
    pub assignment: Vec<Assigned>,
}

/// A partition the group reads or has committed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupOffset {
    /// The topic's name.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The member it is assigned to, if any.
    pub owner: Option<String>,
    /// The group's committed offset: the next offset it will read.
    pub committed: Option<u64>,
    /// The partition's oldest stored offset.
    pub first_offset: u64,
    /// The offset its next record will get.
    pub end_offset: u64,
    /// Records left to read: from the committed offset (or the oldest
    /// record, if none) to the end.
    pub lag: u64,
}

/// A group: its membership, and its offsets in every partition of its
/// topic and of every topic it has committed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupDescription {
    /// Its name.
    pub group: String,
    /// As in [`GroupSummary`]; `Empty` for a group known only by its
    /// committed offsets (after a restart, say).
    pub state: String,
    /// As in [`GroupSummary`].
    pub protocol_type: String,
    /// The assignor: `range` for a Rivulet group, the members' choice for
    /// Kafka's.
    pub protocol: String,
    /// Its generation.
    pub generation: i32,
    /// A Rivulet group's topic.
    pub topic: Option<String>,
    /// Rebalances completed since the broker started.
    pub rebalances: u64,
    /// Its members, by id.
    pub members: Vec<GroupMember>,
    /// By topic and partition.
    pub offsets: Vec<GroupOffset>,
}
// ANCHOR_END: groups

// ANCHOR: stats_login
/// The server's counters since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Shards (threads).
    pub shards: u32,
    /// The io driver (`io-uring` or `polling`).
    pub io_driver: String,
    /// Connections open now.
    pub connections: u64,
    /// Messages appended since start.
    pub messages_in: u64,
    /// Bytes appended since start (records as stored).
    pub bytes_in: u64,
    /// Messages returned by polls since start.
    pub messages_out: u64,
    /// Bytes returned by polls since start.
    pub bytes_out: u64,
    /// Topics.
    pub topics: u32,
}

/// Log in, by user and password or by token (the server says which it takes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password, with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// A token, instead of a user and password.
    #[serde(default)]
    pub token: Option<String>,
}

/// An empty JSON object, the body of replies that carry nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
// ANCHOR_END: stats_login

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_checked() {
        assert!(check_name("topic", "orders-2026.eu_west").is_ok());
        assert!(check_name("topic", "").is_err());
        assert!(check_name("topic", "a b").is_err());
        assert!(check_name("topic", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn api_topic_refs_read_as_documented() {
        let by_name: TopicRef = serde_json::from_str(r#"{"name":"orders"}"#).unwrap();
        assert_eq!(by_name, TopicRef::Name("orders".into()));
        let by_id: TopicRef = serde_json::from_str(r#"{"id":7}"#).unwrap();
        assert_eq!(by_id, TopicRef::Id(7));
        assert!(serde_json::from_str::<TopicRef>(r#"{"id":7,"x":1}"#).is_err());
    }

    #[test]
    fn api_poll_kinds_round_trip_on_the_wire() {
        for kind in [
            PollKind::Offset(9),
            PollKind::Timestamp(5),
            PollKind::First,
            PollKind::Last,
            PollKind::Next,
        ] {
            assert_eq!(PollKind::from_wire(kind.tag(), kind.value()), Some(kind));
        }
        assert_eq!(PollKind::from_wire(5, 0), None);
    }
}
