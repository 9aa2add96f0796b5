//! Consumer groups over Kafka's protocol, against a real `rivulet-server`
//! with real clients: confluent-kafka consumers that `subscribe` (the
//! program `broker/tests/kafka/confluent_group.py`, librdkafka inside),
//! `kcat -G` (librdkafka 2.0 from Debian), and raw requests through the
//! `kafka-protocol` codec where a client would hide what is checked (a
//! zombie's commit). Topics have 8 partitions; the consumers use the
//! `range` assignor (librdkafka's default list is `range,roundrobin`, and
//! the leader takes the first every member supports: set to `range` alone
//! so the spread is known), which gives 4/4 over two members and 3/3/2
//! over three.
//!
//! Sessions are short (6 s) and heartbeats frequent (0.5 s) so that a
//! rebalance takes a second or two; every wait is bounded generously
//! (a minute) and nothing asserts on elapsed time.
//!
//! `RIVULET_KAFKA_DEBUG=cgrp,protocol cargo test -p rivulet-broker --test
//! kafka_groups -- --nocapture` shows the clients' group requests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod kafka_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_common::{
    CLIENT_BOUND, json_lines, kafka_server, kcat, python, python_lines, rivulet_ok, tail,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::Value;

/// The most any rebalance, takeover or catching up may take before the test
/// fails: far beyond what a working broker needs (a few seconds), so only a
/// broken one reaches it.
const BOUND: Duration = Duration::from_secs(60);

/// Every partition of the test topics.
const PARTITIONS: i32 = 8;

/// Kafka's error codes the tests expect.
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNSUPPORTED_VERSION: i16 = 35;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;

fn int_of(value: &Value, field: &str) -> i64 {
    value
        .get(field)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer {field} in {value}"))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Waits until `ready`, looking every 50 ms; after [`BOUND`] fails with
/// `what` and what `explain` says of the state then.
fn until(what: &str, ready: impl FnMut() -> bool, explain: impl Fn() -> String) {
    common::eventually_within(what, BOUND, ready, explain);
}

// ---------------------------------------------------------------------------
// Group members as child processes.

/// A consumer process whose output is read as it comes: JSON lines on
/// stdout, a log on stderr.
struct Member {
    name: String,
    child: Child,
    /// Closing it tells `confluent_group.py` to leave and exit.
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Member {
    /// Starts `command` and reads its output in the background.
    fn spawn(name: &str, mut command: Command) -> Member {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "{name} did not start: {error}; {}",
                    kafka_common::INSTALL_HINT
                )
            });
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let lines = Arc::clone(&stdout);
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let log = Arc::clone(&stderr);
        let err_reader = std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Member {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// `confluent_group.py` in `group`, subscribed to `topic`.
    fn confluent(
        name: &str,
        kafka: SocketAddr,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> Member {
        Member::program("confluent_group.py", name, kafka, topic, group, extra)
    }

    /// `kafka_python_group.py` (or another program printing the same
    /// lines) in `group`, subscribed to `topic`.
    fn program(
        program: &str,
        name: &str,
        kafka: SocketAddr,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> Member {
        let mut args = vec!["--topic", topic, "--group", group, "--client-id", name];
        args.extend_from_slice(extra);
        Member::spawn(name, python(program, kafka, &args))
    }

    /// Its stdout lines so far, as JSON.
    fn lines(&self) -> Vec<Value> {
        json_lines(&self.stdout.lock().unwrap().join("\n"))
    }

    /// Its partitions now: the last assignment, less what was revoked since.
    fn assignment(&self) -> Option<BTreeSet<i64>> {
        let mut current: Option<BTreeSet<i64>> = None;
        for line in self.lines() {
            if let Some(assigned) = line.get("assigned") {
                let partitions = assigned.as_array().unwrap().iter();
                current = Some(partitions.map(|p| p.as_i64().unwrap()).collect());
            } else if let Some(revoked) = line.get("revoked") {
                let revoked: BTreeSet<i64> = revoked
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_i64().unwrap())
                    .collect();
                current = current
                    .map(|now| now.difference(&revoked).copied().collect())
                    .filter(|now: &BTreeSet<i64>| !now.is_empty());
            }
        }
        current
    }

    /// Its member id, as its last assignment said.
    fn member_id(&self) -> Option<String> {
        self.lines().iter().rev().find_map(|line| {
            line.get("member")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }

    /// The messages it consumed, in order: (partition, offset, key).
    fn consumed(&self) -> Vec<(i64, i64, String)> {
        consumed_of(&self.lines())
    }

    /// Its last successful commit per partition (the next offset to read).
    fn committed(&self) -> BTreeMap<i64, i64> {
        let mut committed = BTreeMap::new();
        for line in self.lines() {
            if let Some(commit) = line.get("committed") {
                committed.insert(int_of(commit, "partition"), int_of(commit, "offset"));
            }
        }
        committed
    }

    /// The commits refused, as the program printed them.
    fn failed_commits(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line.get("commit_failed").is_some())
            .collect()
    }

    /// What it said lately, for a failure message.
    fn explain(&self) -> String {
        let out = self.stdout.lock().unwrap();
        let last: Vec<&String> = out
            .iter()
            .filter(|line| !line.contains("\"offset\"") || line.contains("commit"))
            .collect();
        format!(
            "{}: assignment {:?}, {} lines; its group lines: {:?}\nits stderr:\n{}",
            self.name,
            self.assignment(),
            out.len(),
            &last[last.len().saturating_sub(12)..],
            tail(&self.stderr.lock().unwrap())
        )
    }

    /// Waits (at most [`CLIENT_BOUND`]) for it to exit, and checks it
    /// succeeded.
    fn wait_ok(&mut self) {
        let Some(status) = common::exit_within(&mut self.child, CLIENT_BOUND) else {
            let _ = self.child.kill();
            panic!(
                "{} still running after {CLIENT_BOUND:?}: {}",
                self.name,
                self.explain()
            );
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        assert!(
            status.success(),
            "{} failed ({status}): {}",
            self.name,
            self.explain()
        );
    }

    /// Closes its stdin (it leaves the group and exits) and waits.
    fn stop(&mut self) {
        self.stdin.take();
        self.wait_ok();
    }

    /// SIGTERM (kcat leaves its group and exits) and waits.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_ok();
    }

    /// SIGKILL: no leave, no last commit; the group finds out when its
    /// session ends.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }
}

impl Drop for Member {
    /// A member left running outlives the test: kill it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The message lines of a consumer's output: (partition, offset, key).
fn consumed_of(lines: &[Value]) -> Vec<(i64, i64, String)> {
    lines
        .iter()
        .filter(|line| line.get("partition").is_some() && line.get("offset").is_some())
        .map(|line| {
            let key = line.get("key").and_then(Value::as_str).unwrap_or_default();
            (
                int_of(line, "partition"),
                int_of(line, "offset"),
                key.to_string(),
            )
        })
        .collect()
}

/// Whether the members' partitions now are exactly `sizes` (in any order),
/// none shared, together every partition.
fn spread_is(members: &[&Member], sizes: &[usize]) -> bool {
    let assignments: Vec<BTreeSet<i64>> = members.iter().filter_map(|m| m.assignment()).collect();
    if assignments.len() != members.len() {
        return false;
    }
    let mut got: Vec<usize> = assignments.iter().map(BTreeSet::len).collect();
    let mut want = sizes.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    let all: BTreeSet<i64> = assignments.iter().flatten().copied().collect();
    got == want && all == (0..i64::from(PARTITIONS)).collect()
}

fn explain_all(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.explain())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The `{"delivered": ..}` lines of `confluent_client.py produce`, as
/// (partition, offset) -> key.
fn delivered_of(lines: &[Value]) -> BTreeMap<(i64, i64), String> {
    lines
        .iter()
        .filter_map(|line| line.get("delivered"))
        .map(|report| {
            let at = (int_of(report, "partition"), int_of(report, "offset"));
            let key = report
                .get("key")
                .and_then(Value::as_str)
                .unwrap()
                .to_string();
            (at, key)
        })
        .collect()
}

/// Produces `count` keyed messages (spread over the partitions by key)
/// with confluent-kafka; where each went.
fn produce(kafka: SocketAddr, topic: &str, count: usize) -> BTreeMap<(i64, i64), String> {
    let count = count.to_string();
    let lines = python_lines(
        "confluent_client.py",
        kafka,
        &["produce", "--topic", topic, "--count", &count],
    );
    let delivered = delivered_of(&lines);
    assert_eq!(delivered.len().to_string(), count, "acknowledged");
    delivered
}

// ---------------------------------------------------------------------------
// Raw requests through the codec.

/// One Kafka connection, one request at a time.
struct Kafka {
    stream: TcpStream,
    correlation: i32,
}

impl Kafka {
    fn connect(addr: SocketAddr) -> Kafka {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        Kafka {
            stream,
            correlation: 0,
        }
    }

    /// Sends `request` at `version` and reads its response.
    fn ask<Q, A>(&mut self, request: &Q, version: i16) -> A
    where
        Q: Encodable + HeaderVersion + kafka_protocol::protocol::Request,
        A: Decodable + HeaderVersion,
    {
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(Q::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-group-test")))
            .encode(&mut frame, Q::header_version(version))
            .unwrap();
        request.encode(&mut frame, version).unwrap();
        let length = i32::try_from(frame.len() - 4).unwrap();
        frame[..4].copy_from_slice(&length.to_be_bytes());
        self.stream.write_all(&frame).unwrap();
        let mut length = [0; 4];
        self.stream
            .read_exact(&mut length)
            .unwrap_or_else(|error| panic!("no response to {:?} v{version}: {error}", Q::KEY));
        let mut body = vec![0; usize::try_from(i32::from_be_bytes(length)).unwrap()];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, A::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let response = A::decode(&mut body, version).unwrap();
        assert!(
            !body.has_remaining(),
            "{:?} v{version}: bytes left over",
            Q::KEY
        );
        response
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(text(name));
        topic.num_partitions = partitions;
        topic.replication_factor = 1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = 10_000;
        let response: CreateTopicsResponse = self.ask(&request, 5);
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }

    /// `count` records to partition 0 of `topic`.
    fn produce(&mut self, topic: &str, count: usize) {
        let records: Vec<Record> = (0..count)
            .map(|n| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: n as i64,
                sequence: -1,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(format!("m{n}"))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, &records, &options).unwrap();
        let mut partition = PartitionProduceData::default();
        partition.index = 0;
        partition.records = Some(batch.freeze());
        let mut data = TopicProduceData::default();
        data.name = TopicName(text(topic));
        data.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = 1;
        request.timeout_ms = 10_000;
        request.topic_data = vec![data];
        let response: ProduceResponse = self.ask(&request, 9);
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(answer.error_code, 0, "{answer:?}");
    }

    /// JoinGroup at `version` with one assignor, `range`.
    fn join(&mut self, group: &str, member: &str, version: i16) -> JoinGroupResponse {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = text("range");
        protocol.metadata = Bytes::from(format!("metadata of {member}"));
        let mut request = JoinGroupRequest::default();
        request.group_id = GroupId(text(group));
        request.session_timeout_ms = 30_000;
        request.rebalance_timeout_ms = 30_000;
        request.member_id = text(member);
        request.protocol_type = text("consumer");
        request.protocols = vec![protocol];
        self.ask(&request, version)
    }

    /// A new member's join at `version` (4 and later: twice, the first
    /// answered MEMBER_ID_REQUIRED with the id to join with).
    fn join_new(&mut self, group: &str, version: i16) -> JoinGroupResponse {
        let first = self.join(group, "", version);
        if version < 4 {
            return first;
        }
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
        assert!(!first.member_id.is_empty(), "{first:?}");
        self.join(group, &first.member_id.to_string(), version)
    }

    fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
        version: i16,
    ) -> SyncGroupResponse {
        let mut request = SyncGroupRequest::default();
        request.group_id = GroupId(text(group));
        request.generation_id = generation;
        request.member_id = text(member);
        if version >= 5 {
            request.protocol_type = Some(text("consumer"));
            request.protocol_name = Some(text("range"));
        }
        request.assignments = assignments
            .iter()
            .map(|(member, assignment)| {
                let mut one = SyncGroupRequestAssignment::default();
                one.member_id = text(member);
                one.assignment = Bytes::from(assignment.to_string());
                one
            })
            .collect();
        self.ask(&request, version)
    }

    fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> i16 {
        let mut request = HeartbeatRequest::default();
        request.group_id = GroupId(text(group));
        request.generation_id = generation;
        request.member_id = text(member);
        let response: HeartbeatResponse = self.ask(&request, 4);
        response.error_code
    }

    /// OffsetCommit v7 of `offset` for `topic`'s partition 0.
    fn commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        topic: &str,
        offset: i64,
    ) -> i16 {
        let mut partition = OffsetCommitRequestPartition::default();
        partition.partition_index = 0;
        partition.committed_offset = offset;
        let mut at = OffsetCommitRequestTopic::default();
        at.name = TopicName(text(topic));
        at.partitions = vec![partition];
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(text(group));
        request.generation_id_or_member_epoch = generation;
        request.member_id = text(member);
        request.topics = vec![at];
        let response: OffsetCommitResponse = self.ask(&request, 7);
        response.topics[0].partitions[0].error_code
    }

    /// The group's committed offset of each partition of `topic` (-1: none),
    /// by OffsetFetch v5.
    fn committed(&mut self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i64, i64> {
        let mut at = OffsetFetchRequestTopic::default();
        at.name = TopicName(text(topic));
        at.partition_indexes = (0..partitions).collect();
        let mut request = OffsetFetchRequest::default();
        request.group_id = GroupId(text(group));
        request.topics = Some(vec![at]);
        let response: OffsetFetchResponse = self.ask(&request, 5);
        assert_eq!(response.error_code, 0, "{response:?}");
        response.topics[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0, "{p:?}");
                (i64::from(p.partition_index), p.committed_offset)
            })
            .collect()
    }

    fn describe(
        &mut self,
        group: &str,
        version: i16,
    ) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![GroupId(text(group))];
        let mut response: DescribeGroupsResponse = self.ask(&request, version);
        assert_eq!(response.groups.len(), 1, "{response:?}");
        response.groups.remove(0)
    }

    /// ListGroups v4: (group, protocol type, state) of every group.
    fn list(&mut self) -> Vec<(String, String, String)> {
        let response: ListGroupsResponse = self.ask(&ListGroupsRequest::default(), 4);
        assert_eq!(response.error_code, 0, "{response:?}");
        response
            .groups
            .iter()
            .map(|g| {
                let field = |s: &StrBytes| s.to_string();
                (
                    g.group_id.0.to_string(),
                    field(&g.protocol_type),
                    field(&g.group_state),
                )
            })
            .collect()
    }
}

/// The committed offsets of a group as a consumer printed them, with every
/// other partition at -1 (OffsetFetch's "none").
fn with_none(committed: &BTreeMap<i64, i64>) -> BTreeMap<i64, i64> {
    (0..i64::from(PARTITIONS))
        .map(|p| (p, committed.get(&p).copied().unwrap_or(-1)))
        .collect()
}

// ---------------------------------------------------------------------------
// The tests.

/// Two confluent-kafka consumers that subscribe in one group get 4 and 4 of
/// the 8 partitions, a third makes it 3/3/2, and DescribeGroups shows the
/// same: the group stable, three members, the `range` assignor, and each
/// member's assignment (the leader's bytes, relayed) naming the partitions
/// that consumer reported; so does `rivulet group describe`. Closing them
/// leaves the group empty.
#[test]
fn confluent_consumers_share_eight_partitions_4_4_then_3_3_2() {
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka) = kafka_server(dir.path(), &[]);
    let mut raw = Kafka::connect(kafka);
    raw.create_topic("spread", PARTITIONS);

    let mut a = Member::confluent("spread-a", kafka, "spread", "spreaders", &[]);
    let mut b = Member::confluent("spread-b", kafka, "spread", "spreaders", &[]);
    until(
        "two consumers have 4 partitions each",
        || spread_is(&[&a, &b], &[4, 4]),
        || explain_all(&[&a, &b]),
    );
    let mut c = Member::confluent("spread-c", kafka, "spread", "spreaders", &[]);
    until(
        "three consumers have 3, 3 and 2 partitions",
        || spread_is(&[&a, &b, &c], &[3, 3, 2]),
        || explain_all(&[&a, &b, &c]),
    );

    let described = raw.describe("spreaders", 5);
    assert_eq!(described.error_code, 0, "{described:?}");
    assert_eq!(described.group_state.as_str(), "Stable", "{described:?}");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.protocol_data.as_str(), "range");
    let mut by_member = BTreeMap::new();
    for member in &described.members {
        let mut bytes = member.member_assignment.clone();
        let version = bytes.get_i16();
        let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version).unwrap();
        let partitions: BTreeSet<i64> = assignment
            .assigned_partitions
            .iter()
            .filter(|t| t.topic.as_str() == "spread")
            .flat_map(|t| t.partitions.iter().map(|p| i64::from(*p)))
            .collect();
        assert!(!member.member_metadata.is_empty(), "{member:?}");
        assert_eq!(member.client_host.as_str(), "127.0.0.1", "{member:?}");
        by_member.insert(member.member_id.to_string(), partitions);
    }
    for consumer in [&a, &b, &c] {
        let id = consumer.member_id().unwrap();
        assert_eq!(
            by_member.get(&id),
            consumer.assignment().as_ref(),
            "{id}: DescribeGroups {by_member:?}"
        );
    }
    // Rivulet's own view: `rivulet group describe` reads the same
    // assignments out of the leader's bytes.
    let shown = rivulet_ok(
        server.addr(),
        &["--json", "group", "describe", "spreaders"],
        b"",
    );
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    for consumer in [&a, &b, &c] {
        let id = consumer.member_id().unwrap();
        let member = shown["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members in {shown}"))
            .iter()
            .find(|m| m["member"] == id.as_str())
            .unwrap_or_else(|| panic!("no member {id} in {shown}"));
        let partitions: BTreeSet<i64> = member["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["topic"] == "spread")
            .flat_map(|a| a["partitions"].as_array().unwrap().iter())
            .map(|p| p.as_i64().unwrap())
            .collect();
        assert_eq!(Some(partitions), consumer.assignment(), "{id} in {shown}");
    }
    assert!(
        raw.list()
            .contains(&("spreaders".into(), "consumer".into(), "Stable".into())),
        "{:?}",
        raw.list()
    );

    for consumer in [&mut a, &mut b, &mut c] {
        consumer.stop();
    }
    // Each left (LeaveGroup), so the group is empty at once.
    let described = raw.describe("spreaders", 5);
    assert_eq!(described.group_state.as_str(), "Empty", "{described:?}");
    assert!(described.members.is_empty(), "{described:?}");
}

/// While a producer sends (ten seconds of flow), a group scales out and
/// loses a member: two consumers share the topic 4/4, a third joins (3/3/2:
/// Iggy's "duplicates on scale-out", apache/iggy#2734, must not happen
/// here, since each member commits what it processed before it joins
/// again), then one is SIGKILLed, and within its session timeout the
/// survivors own its partitions (4 and 4). Over the whole run every
/// produced message is consumed at least once, nothing that was not
/// produced is, and a message is consumed twice only if the killed
/// consumer had consumed it without committing (it commits after each
/// message, so that is at most the one it was killed on).
#[test]
fn a_group_scales_out_and_loses_a_sigkilled_member_mid_flow_skipping_nothing() {
    const COUNT: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &[]);
    Kafka::connect(kafka).create_topic("flow", PARTITIONS);
    let mut members = vec![
        Member::confluent("flow-a", kafka, "flow", "flowing", &[]),
        Member::confluent("flow-b", kafka, "flow", "flowing", &[]),
    ];
    until(
        "two consumers have 4 partitions each",
        || spread_is(&members.iter().collect::<Vec<_>>(), &[4, 4]),
        || explain_all(&members.iter().collect::<Vec<_>>()),
    );

    // 1500 messages at 150 a second: ten seconds of flow.
    let producer = std::thread::spawn(move || {
        python_lines(
            "confluent_client.py",
            kafka,
            &[
                "produce",
                "--topic",
                "flow",
                "--count",
                &COUNT.to_string(),
                "--rate",
                "150",
            ],
        )
    });
    until(
        "both consumers are consuming",
        || members.iter().all(|m| m.consumed().len() >= 10),
        || explain_all(&members.iter().collect::<Vec<_>>()),
    );
    members.push(Member::confluent("flow-c", kafka, "flow", "flowing", &[]));
    until(
        "three consumers have 3, 3 and 2 partitions",
        || spread_is(&members.iter().collect::<Vec<_>>(), &[3, 3, 2]),
        || explain_all(&members.iter().collect::<Vec<_>>()),
    );
    let mut victim = members.remove(0);
    let before = victim.consumed().len();
    until(
        "the first consumer consumes in the new generation",
        || victim.consumed().len() >= before + 10,
        || victim.explain(),
    );
    victim.kill();
    let survivors: Vec<&Member> = members.iter().collect();
    until(
        "the survivors own every partition, 4 each",
        || spread_is(&survivors, &[4, 4]),
        || explain_all(&survivors),
    );

    let delivered = delivered_of(&producer.join().unwrap());
    assert_eq!(delivered.len(), COUNT, "acknowledged");
    let everyone = |victim: &Member, members: &[Member]| {
        let mut all = victim.consumed();
        for member in members {
            all.extend(member.consumed());
        }
        all
    };
    until(
        "every produced message is consumed",
        || {
            let seen: BTreeSet<(i64, i64)> = everyone(&victim, &members)
                .iter()
                .map(|(p, o, _)| (*p, *o))
                .collect();
            delivered.keys().all(|at| seen.contains(at))
        },
        || {
            let seen: BTreeSet<(i64, i64)> = everyone(&victim, &members)
                .iter()
                .map(|(p, o, _)| (*p, *o))
                .collect();
            let missing: Vec<_> = delivered.keys().filter(|at| !seen.contains(at)).collect();
            format!(
                "{} missing, the first {:?}\n{}\n---\n{}",
                missing.len(),
                &missing[..missing.len().min(10)],
                victim.explain(),
                explain_all(&members.iter().collect::<Vec<_>>())
            )
        },
    );
    for member in &mut members {
        member.stop();
    }

    let mut times: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (partition, offset, key) in everyone(&victim, &members) {
        let at = (partition, offset);
        assert_eq!(
            delivered.get(&at),
            Some(&key),
            "consumed {at:?} with key {key}, which is not what was produced there"
        );
        *times.entry(at).or_default() += 1;
    }
    // Duplicates: only what the killed one consumed past its last commit.
    let victims: BTreeSet<(i64, i64)> =
        victim.consumed().iter().map(|(p, o, _)| (*p, *o)).collect();
    let victim_committed = victim.committed();
    let uncommitted = |(partition, offset): (i64, i64)| {
        victims.contains(&(partition, offset))
            && victim_committed
                .get(&partition)
                .is_none_or(|next| offset >= *next)
    };
    let twice: Vec<(i64, i64)> = times
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(at, _)| *at)
        .collect();
    for at in &twice {
        assert!(
            uncommitted(*at),
            "{at:?} consumed {} times, but not in the killed consumer's uncommitted window \
             (it committed {victim_committed:?})",
            times[at]
        );
        assert_eq!(times[at], 2, "{at:?}");
    }
    eprintln!(
        "{} messages consumed, {} of them twice ({twice:?}); the killed consumer had consumed {}",
        times.len(),
        twice.len(),
        victims.len()
    );
    for member in &members {
        assert!(member.failed_commits().is_empty(), "{}", member.explain());
    }
}

/// One group, two clients: a confluent-kafka member and a kafka-python one
/// (which negotiates the group APIs' newest versions: JoinGroup 7, SyncGroup
/// 5, Heartbeat 4, LeaveGroup 5) share the 8 partitions 4 and 4, whichever
/// of them leads and encodes the assignment, and between them consume every
/// message produced afterwards exactly once, each from its own partitions.
#[test]
fn confluent_and_kafka_python_members_share_one_group() {
    const COUNT: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &[]);
    Kafka::connect(kafka).create_topic("both", PARTITIONS);
    let mut members = [
        Member::confluent("both-confluent", kafka, "both", "mixers", &[]),
        Member::program(
            "kafka_python_group.py",
            "both-python",
            kafka,
            "both",
            "mixers",
            &[],
        ),
    ];
    until(
        "the two members have 4 partitions each",
        || spread_is(&members.iter().collect::<Vec<_>>(), &[4, 4]),
        || explain_all(&members.iter().collect::<Vec<_>>()),
    );
    let delivered = produce(kafka, "both", COUNT);
    until(
        "every message is consumed",
        || members.iter().map(|m| m.consumed().len()).sum::<usize>() >= COUNT,
        || explain_all(&members.iter().collect::<Vec<_>>()),
    );
    let mut seen = BTreeMap::new();
    for member in &members {
        let mine = member.assignment().unwrap();
        let consumed = member.consumed();
        assert!(!consumed.is_empty(), "{}", member.explain());
        for (partition, offset, key) in consumed {
            assert!(
                mine.contains(&partition),
                "{} read {partition}",
                member.name
            );
            assert!(
                seen.insert((partition, offset), key).is_none(),
                "{partition}/{offset} twice"
            );
        }
        assert!(member.failed_commits().is_empty(), "{}", member.explain());
    }
    assert_eq!(seen, delivered, "(partition, offset) -> key, across both");
    for member in &mut members {
        member.stop();
    }
}

/// A zombie cannot commit: raw requests walk a group through two
/// generations. A member's commit is accepted in its generation, and also
/// while the next rebalance gathers joins (it is still the owner: Kafka's
/// rule, and what lets the eager protocol commit before joining again);
/// once the generation moved on, its old generation is refused with
/// ILLEGAL_GENERATION (the heartbeat too), a stranger's with
/// UNKNOWN_MEMBER_ID, and one outside any generation while the group has
/// members with ILLEGAL_GENERATION. OffsetFetch shows the last accepted
/// commit. Along the way: JoinGroup v0, v5 and v7 (flexible), SyncGroup v0,
/// v3 and v5, the refusals of bad group ids, short sessions, unknown
/// assignors and static membership, DescribeGroups v6 of an unknown group,
/// and DeleteGroups answered (UNSUPPORTED_VERSION) without a close.
#[test]
fn a_stale_generation_commit_is_refused_with_illegal_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &[]);
    let mut a = Kafka::connect(kafka);
    a.create_topic("fence", 1);
    a.produce("fence", 10);

    // Refusals before any member.
    let refused = a.join("not a name!", "", 5);
    assert_eq!(refused.error_code, INVALID_GROUP_ID, "{refused:?}");
    assert_eq!(
        a.commit("not a name!", "", -1, "fence", 1),
        INVALID_GROUP_ID
    );
    let mut short = JoinGroupRequest::default();
    short.group_id = GroupId(text("fenced"));
    short.session_timeout_ms = 10;
    short.member_id = text("");
    short.protocol_type = text("consumer");
    let mut range = JoinGroupRequestProtocol::default();
    range.name = text("range");
    short.protocols = vec![range];
    let response: JoinGroupResponse = a.ask(&short, 5);
    assert_eq!(response.error_code, INVALID_SESSION_TIMEOUT, "{response:?}");
    let mut static_member = short.clone();
    static_member.session_timeout_ms = 30_000;
    static_member.group_instance_id = Some(text("instance-1"));
    let response: JoinGroupResponse = a.ask(&static_member, 5);
    assert_eq!(response.error_code, UNSUPPORTED_VERSION, "{response:?}");
    let unknown = a.describe("fenced", 6);
    assert_eq!(unknown.error_code, GROUP_ID_NOT_FOUND, "{unknown:?}");
    let dead = a.describe("fenced", 5);
    assert_eq!((dead.error_code, dead.group_state.as_str()), (0, "Dead"));
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![GroupId(text("fenced"))];
    let response: DeleteGroupsResponse = a.ask(&delete, 2);
    assert_eq!(
        response.results[0].error_code, UNSUPPORTED_VERSION,
        "{response:?}"
    );

    // Generation 1: a alone, the leader.
    let joined = a.join_new("fenced", 5);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let (id_a, first) = (joined.member_id.to_string(), joined.generation_id);
    assert_eq!(joined.leader.as_str(), id_a);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(
        joined.members[0].metadata,
        Bytes::from(format!("metadata of {id_a}"))
    );
    let synced = a.sync("fenced", &id_a, first, &[(&id_a, "a-1")], 3);
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"a-1"[..])
    );
    assert_eq!(a.heartbeat("fenced", &id_a, first), 0);
    assert_eq!(a.commit("fenced", &id_a, first, "fence", 1), 0);

    // A second member joins (JoinGroup v7, flexible): its join waits for a
    // to join again, which a learns from its heartbeat.
    let joiner = std::thread::spawn(move || {
        let mut b = Kafka::connect(kafka);
        let joined = b.join_new("fenced", 7);
        (b, joined)
    });
    until(
        "a's heartbeat says REBALANCE_IN_PROGRESS",
        || a.heartbeat("fenced", &id_a, first) == REBALANCE_IN_PROGRESS,
        String::new,
    );
    // Still the owner until it joins again: its commit is taken.
    assert_eq!(a.commit("fenced", &id_a, first, "fence", 2), 0);
    let again = a.join("fenced", &id_a, 5);
    assert_eq!(again.error_code, 0, "{again:?}");
    let second = again.generation_id;
    assert_eq!(second, first + 1);
    assert_eq!(again.leader.as_str(), id_a, "the leader stays the leader");
    assert_eq!(again.members.len(), 2, "{again:?}");
    let (mut b, joined_b) = joiner.join().unwrap();
    assert_eq!(joined_b.error_code, 0, "{joined_b:?}");
    assert_eq!(joined_b.generation_id, second);
    assert_eq!(joined_b.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(joined_b.protocol_name.as_deref(), Some("range"));
    assert!(
        joined_b.members.is_empty(),
        "only the leader gets the members"
    );
    let id_b = joined_b.member_id.to_string();

    // The zombie: a's old generation is refused, its heartbeat too.
    assert_eq!(
        a.commit("fenced", &id_a, first, "fence", 3),
        ILLEGAL_GENERATION
    );
    assert_eq!(a.heartbeat("fenced", &id_a, first), ILLEGAL_GENERATION);
    // The leader's assignment reaches b (SyncGroup v5 names the protocol).
    let synced = a.sync(
        "fenced",
        &id_a,
        second,
        &[(&id_a, "a-2"), (&id_b, "b-2")],
        0,
    );
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"a-2"[..])
    );
    let synced = b.sync("fenced", &id_b, second, &[], 5);
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"b-2"[..])
    );
    assert_eq!(synced.protocol_name.as_deref(), Some("range"));
    // A third member that names another assignor only.
    let mut other = short.clone();
    other.session_timeout_ms = 30_000;
    other.protocols[0].name = text("roundrobin");
    let response: JoinGroupResponse = Kafka::connect(kafka).ask(&other, 0);
    assert_eq!(
        response.error_code, INCONSISTENT_GROUP_PROTOCOL,
        "{response:?}"
    );

    assert_eq!(a.commit("fenced", &id_a, second, "fence", 4), 0);
    assert_eq!(
        a.commit("fenced", "nobody", second, "fence", 5),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(a.commit("fenced", "", -1, "fence", 6), ILLEGAL_GENERATION);
    assert_eq!(a.committed("fenced", "fence", 1), BTreeMap::from([(0, 4)]));

    // Both leave at once (LeaveGroup v3); a second leave is refused.
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(text("fenced"));
    leave.members = [&id_a, &id_b]
        .iter()
        .map(|id| {
            let mut member = MemberIdentity::default();
            member.member_id = text(id);
            member
        })
        .collect();
    let response: LeaveGroupResponse = a.ask(&leave, 3);
    let codes: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        (response.error_code, codes),
        (0, vec![0, 0]),
        "{response:?}"
    );
    let response: LeaveGroupResponse = a.ask(&leave, 3);
    let codes: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        codes,
        [UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID],
        "{response:?}"
    );
    assert_eq!(a.describe("fenced", 6).group_state.as_str(), "Empty");
    // With no members, a consumer outside any generation may commit.
    assert_eq!(a.commit("fenced", "", -1, "fence", 6), 0);
    assert_eq!(a.committed("fenced", "fence", 1), BTreeMap::from([(0, 6)]));
}

/// A broker restart keeps every committed group offset: a consumer commits
/// 120 of 200 messages as a group member and leaves; the server (fsync
/// `always`, so an acknowledged commit is on disk) is SIGKILLed and started
/// again; OffsetFetch answers the same offsets, and a new member of the
/// group consumes exactly the 80 messages left.
#[test]
fn a_restart_keeps_every_committed_group_offset() {
    const COUNT: usize = 200;
    const FIRST: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--fsync", "always"];
    let (server, kafka) = kafka_server(dir.path(), &flags);
    Kafka::connect(kafka).create_topic("resume", PARTITIONS);
    let delivered = produce(kafka, "resume", COUNT);

    let mut first = Member::confluent(
        "resume-1",
        kafka,
        "resume",
        "resumers",
        &["--count", &FIRST.to_string()],
    );
    first.wait_ok();
    let consumed: BTreeSet<(i64, i64)> =
        first.consumed().iter().map(|(p, o, _)| (*p, *o)).collect();
    assert_eq!(consumed.len(), FIRST, "{}", first.explain());
    assert!(first.failed_commits().is_empty(), "{}", first.explain());
    let committed = with_none(&first.committed());
    assert_eq!(
        Kafka::connect(kafka).committed("resumers", "resume", PARTITIONS),
        committed
    );

    server.kill().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &flags);
    assert_eq!(
        Kafka::connect(kafka).committed("resumers", "resume", PARTITIONS),
        committed,
        "OffsetFetch after the restart"
    );
    let left = COUNT - FIRST;
    let mut second = Member::confluent(
        "resume-2",
        kafka,
        "resume",
        "resumers",
        &["--count", &left.to_string()],
    );
    second.wait_ok();
    let rest: BTreeSet<(i64, i64)> = second.consumed().iter().map(|(p, o, _)| (*p, *o)).collect();
    let expected: BTreeSet<(i64, i64)> = delivered
        .keys()
        .filter(|at| !consumed.contains(at))
        .copied()
        .collect();
    assert_eq!(
        rest, expected,
        "the new member resumes where the group committed"
    );
}

/// `kcat -G GROUP TOPIC`, twice: both join the group, share the 8
/// partitions 4 and 4, and between them consume every message produced
/// afterwards exactly once, each from its own partitions.
#[test]
fn kcat_balanced_consumers_share_a_topic() {
    const COUNT: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &[]);
    Kafka::connect(kafka).create_topic("shared", PARTITIONS);
    let start = |name: &str| {
        let command = kcat(
            kafka,
            &[
                "-G",
                "kcats",
                "shared",
                "-u",
                "-f",
                "%p\\t%o\\t%k\\n",
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
                "-X",
                "partition.assignment.strategy=range",
            ],
        );
        Member::spawn(name, command)
    };
    // kcat says on stderr "% Group kcats rebalanced (memberid ..): assigned:
    // shared [0], shared [1], .." and ".. revoked: ..".
    let assignment = |member: &Member| -> Option<BTreeSet<i64>> {
        let log = member.stderr.lock().unwrap().clone();
        let last = log.lines().rfind(|line| line.contains("rebalanced"))?;
        let (_, listed) = last.split_once("assigned:")?;
        Some(
            listed
                .split(',')
                .filter_map(|p| p.trim().rsplit_once('[')?.1.strip_suffix(']')?.parse().ok())
                .collect(),
        )
    };
    let mut kcats = [start("kcat-1"), start("kcat-2")];
    until(
        "both kcat -G have 4 partitions",
        || {
            let sets: Vec<_> = kcats.iter().filter_map(assignment).collect();
            let all: BTreeSet<i64> = sets.iter().flatten().copied().collect();
            sets.len() == 2 && sets.iter().all(|s| s.len() == 4) && all.len() == 8
        },
        || explain_all(&kcats.iter().collect::<Vec<_>>()),
    );
    let delivered = produce(kafka, "shared", COUNT);
    let read = |member: &Member| -> Vec<(i64, i64, String)> {
        member
            .stdout
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 3, "kcat line {line:?}");
                (
                    fields[0].parse().unwrap(),
                    fields[1].parse().unwrap(),
                    fields[2].to_string(),
                )
            })
            .collect()
    };
    until(
        "kcat -G consumed every message",
        || kcats.iter().map(|k| read(k).len()).sum::<usize>() >= COUNT,
        || explain_all(&kcats.iter().collect::<Vec<_>>()),
    );
    let owned: Vec<BTreeSet<i64>> = kcats.iter().map(|k| assignment(k).unwrap()).collect();
    let mut seen = BTreeMap::new();
    for (kcat, partitions) in kcats.iter().zip(&owned) {
        let lines = read(kcat);
        assert!(!lines.is_empty(), "{} consumed nothing", kcat.name);
        for (partition, offset, key) in lines {
            assert!(
                partitions.contains(&partition),
                "{} read partition {partition}, not its own {partitions:?}",
                kcat.name
            );
            assert!(
                seen.insert((partition, offset), key).is_none(),
                "{partition}/{offset} twice"
            );
        }
    }
    assert_eq!(seen, delivered, "(partition, offset) -> key, across both");
    for kcat in &mut kcats {
        kcat.terminate();
    }
}

/// Offsets a confluent-kafka group commits are the group's offsets to
/// Rivulet too: `rivulet poll --consumer GROUP` goes on from them (exactly
/// the messages the Kafka consumer had not read), and `rivulet group
/// describe GROUP` shows them.
#[test]
fn offsets_committed_over_kafka_are_seen_by_rivulet() {
    const COUNT: usize = 100;
    const FIRST: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka) = kafka_server(dir.path(), &[]);
    Kafka::connect(kafka).create_topic("mixed", PARTITIONS);
    let delivered = produce(kafka, "mixed", COUNT);
    let mut member = Member::confluent(
        "mixed-1",
        kafka,
        "mixed",
        "billing",
        &["--count", &FIRST.to_string()],
    );
    member.wait_ok();
    let consumed: BTreeSet<(i64, i64)> =
        member.consumed().iter().map(|(p, o, _)| (*p, *o)).collect();
    assert_eq!(consumed.len(), FIRST, "{}", member.explain());
    let committed = member.committed();

    let polled = rivulet_ok(
        server.addr(),
        &[
            "--json",
            "poll",
            "mixed",
            "--consumer",
            "billing",
            "--no-commit",
            "--count",
            "1000",
        ],
        b"",
    );
    let rest: BTreeSet<(i64, i64)> = json_lines(&polled)
        .iter()
        .map(|m| (int_of(m, "partition"), int_of(m, "offset")))
        .collect();
    let expected: BTreeSet<(i64, i64)> = delivered
        .keys()
        .filter(|at| !consumed.contains(at))
        .copied()
        .collect();
    assert_eq!(rest, expected, "rivulet poll --consumer billing");

    let described = rivulet_ok(
        server.addr(),
        &["--json", "group", "describe", "billing"],
        b"",
    );
    let described: Value = serde_json::from_str(described.trim()).unwrap();
    let offsets: BTreeMap<i64, i64> = described["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets in {described}"))
        .iter()
        .filter(|o| o["topic"] == "mixed")
        .filter_map(|o| Some((int_of(o, "partition"), o["committed"].as_i64()?)))
        .collect();
    assert_eq!(
        offsets, committed,
        "rivulet group describe billing: {described}"
    );
    assert_eq!(described["protocol_type"], "consumer", "{described}");
}
