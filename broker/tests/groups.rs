//! Consumer groups in Rivulet's own protocol, on the real `rivulet-server`
//! and, where the scenario is about processes, the real `rivulet` CLI:
//! the partitions spread evenly (4 and 4, then 3, 3 and 2), a stale
//! generation refused with its own status, a member SIGKILLed and its
//! partitions taken over with nothing skipped and duplicates only from its
//! uncommitted window, every committed offset kept across a restart, the
//! issue's "done when" (two `rivulet poll orders --group billing --follow`,
//! 1,000 messages, each consumed exactly once), and access control.
//!
//! Waits are bounded generously (a minute) and only a broken server reaches
//! the bound; no assertion is about elapsed time.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use common::{eventually, rivulet_server};
use rivulet_broker::api::{
    self, CommitOffset, CreateTopic, GroupJoined, GroupPoll, JoinGroup, Login, TopicRef, status,
};
use rivulet_client::{Client, ClientError, GroupConsumer, GroupOptions, Partitioning};
use serde_json::Value;

fn create_topic(client: &mut Client, name: &str, partitions: u32) -> u32 {
    let topic = CreateTopic {
        stream: None,
        name: name.into(),
        id: None,
        partitions,
        settings: api::TopicSettings::default(),
    };
    client.create_topic(&topic).unwrap().id
}

fn join_request(group: &str, topic: &str, member: Option<&str>, session_ms: u64) -> JoinGroup {
    JoinGroup {
        group: group.into(),
        topic: TopicRef::Name(topic.into()),
        session_timeout_ms: session_ms,
        member: member.map(str::to_string),
        client_id: Some("test".into()),
    }
}

/// A join on its own connection, in a thread: it waits for the rebalance.
fn join_in_thread(
    addr: SocketAddr,
    request: JoinGroup,
) -> JoinHandle<(Client, Result<GroupJoined, ClientError>)> {
    std::thread::spawn(move || {
        let mut client = Client::connect(&addr.to_string()).unwrap();
        let joined = client.join_group(&request);
        (client, joined)
    })
}

/// Joins again on `client` in a thread.
fn rejoin_in_thread(
    mut client: Client,
    request: JoinGroup,
) -> JoinHandle<(Client, Result<GroupJoined, ClientError>)> {
    std::thread::spawn(move || {
        let joined = client.join_group(&request);
        (client, joined)
    })
}

/// Waits until `member`'s heartbeat says the group is rebalancing.
fn until_rebalancing(client: &mut Client, group: &str, joined: &GroupJoined) {
    eventually("the heartbeat tells of a rebalance", || {
        match client.heartbeat(group, &joined.member, joined.generation) {
            Ok(()) => false,
            Err(error) => {
                assert_eq!(error.status(), Some(status::REBALANCING), "{error}");
                true
            }
        }
    });
}

/// Every partition once, and each member's share.
fn shares(joined: &[&GroupJoined], partitions: u32) -> Vec<usize> {
    let all: BTreeSet<u32> = joined.iter().flat_map(|j| j.partitions.clone()).collect();
    let total: usize = joined.iter().map(|j| j.partitions.len()).sum();
    assert_eq!(total, partitions as usize, "a partition has two owners");
    assert_eq!(all, (0..partitions).collect(), "a partition has no owner");
    let mut sizes: Vec<usize> = joined.iter().map(|j| j.partitions.len()).collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn groups_spread_partitions_evenly_and_refuse_a_stale_generation() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let addr = server.addr();
    let mut admin = Client::connect(&addr.to_string()).unwrap();
    let topic = create_topic(&mut admin, "orders", 8);
    admin
        .produce(topic, Partitioning::Explicit(0), [b"a", b"b", b"c"])
        .unwrap();
    let session = 10_000;

    // One member: every partition.
    let mut a = Client::connect(&addr.to_string()).unwrap();
    let first = a
        .join_group(&join_request("billing", "orders", None, session))
        .unwrap();
    assert_eq!((first.generation, first.partitions.len()), (1, 8));

    // A second: answered once the first has joined again; 4 and 4.
    let second = join_in_thread(addr, join_request("billing", "orders", None, session));
    until_rebalancing(&mut a, "billing", &first);
    let a_again = a
        .join_group(&join_request(
            "billing",
            "orders",
            Some(&first.member),
            session,
        ))
        .unwrap();
    let (mut b, b_joined) = second.join().unwrap();
    let b_joined = b_joined.unwrap();
    assert_eq!((a_again.generation, b_joined.generation), (2, 2));
    assert_eq!(shares(&[&a_again, &b_joined], 8), [4, 4]);

    // A zombie: the first generation's commit and poll are refused with
    // their own status, so they cannot land over the new owner's.
    let stale = CommitOffset {
        group: "billing".into(),
        member: first.member.clone(),
        generation: first.generation,
        topic: TopicRef::Id(topic),
        partition: a_again.partitions[0],
        offset: 1,
    };
    let error = a.commit_offset(&stale).unwrap_err();
    assert_eq!(error.status(), Some(status::STALE_GENERATION), "{error}");
    let stale_poll = GroupPoll {
        group: "billing".into(),
        member: first.member.clone(),
        generation: first.generation,
        topic: TopicRef::Id(topic),
        partition: a_again.partitions[0],
        offset: None,
        count: 10,
    };
    let error = a.group_poll(&stale_poll).unwrap_err();
    assert_eq!(error.status(), Some(status::STALE_GENERATION), "{error}");
    // Another member's partition is not this one's to read or commit.
    let theirs = CommitOffset {
        generation: a_again.generation,
        partition: b_joined.partitions[0],
        ..stale.clone()
    };
    let error = a.commit_offset(&theirs).unwrap_err();
    assert_eq!(error.status(), Some(status::NOT_ASSIGNED), "{error}");
    // Its own, in its generation: read from the start (nothing committed),
    // and nothing is committed by the poll.
    let owner_of_0 = if a_again.partitions.contains(&0) {
        (&mut a, &a_again)
    } else {
        (&mut b, &b_joined)
    };
    let poll = GroupPoll {
        member: owner_of_0.1.member.clone(),
        generation: owner_of_0.1.generation,
        partition: 0,
        ..stale_poll.clone()
    };
    assert_eq!(owner_of_0.0.group_poll(&poll).unwrap().len(), 3);
    assert_eq!(owner_of_0.0.group_poll(&poll).unwrap().len(), 3);
    let commit = CommitOffset {
        member: owner_of_0.1.member.clone(),
        generation: owner_of_0.1.generation,
        partition: 0,
        offset: 2,
        ..stale.clone()
    };
    owner_of_0.0.commit_offset(&commit).unwrap();
    let after = owner_of_0.0.group_poll(&poll).unwrap();
    assert_eq!(after.iter().map(|r| r.offset).collect::<Vec<_>>(), [2]);
    // The group's offset is the consumer offset of its name.
    let offsets = admin.get_offsets("billing", &TopicRef::Id(topic)).unwrap();
    assert_eq!(offsets.partitions[0].offset, Some(2));

    // A third member: 3, 3 and 2.
    let third = join_in_thread(addr, join_request("billing", "orders", None, session));
    until_rebalancing(&mut a, "billing", &a_again);
    until_rebalancing(&mut b, "billing", &b_joined);
    // Told to join again, a member may still commit what it processed (the
    // partitions move only in the next generation); it may not poll.
    owner_of_0_commit(&mut a, &mut b, &a_again, &b_joined, &commit);
    let a_thread = rejoin_in_thread(
        a,
        join_request("billing", "orders", Some(&a_again.member), session),
    );
    let b_thread = rejoin_in_thread(
        b,
        join_request("billing", "orders", Some(&b_joined.member), session),
    );
    let (mut a, a3) = a_thread.join().unwrap();
    let (_b, b3) = b_thread.join().unwrap();
    let (mut c, c3) = third.join().unwrap();
    let (a3, b3, c3) = (a3.unwrap(), b3.unwrap(), c3.unwrap());
    assert_eq!((a3.generation, b3.generation, c3.generation), (3, 3, 3));
    assert_eq!(shares(&[&a3, &b3, &c3], 8), [2, 3, 3]);

    // What describe and list say.
    let described = admin.describe_group("billing").unwrap();
    assert_eq!(
        (described.state.as_str(), described.generation),
        ("Stable", 3)
    );
    assert_eq!(described.topic.as_deref(), Some("orders"));
    assert_eq!(described.members.len(), 3);
    assert_eq!(described.offsets.len(), 8, "every partition of its topic");
    let zero = &described.offsets[0];
    assert_eq!((zero.committed, zero.end_offset, zero.lag), (Some(2), 3, 1));
    let owner = [&a3, &b3, &c3]
        .into_iter()
        .find(|j| j.partitions.contains(&0))
        .unwrap();
    assert_eq!(zero.owner.as_deref(), Some(owner.member.as_str()));
    let listed = admin.list_groups().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].group.as_str(), listed[0].members),
        ("billing", 3)
    );

    // A member that leaves: the others are told at once.
    c.leave_group("billing", &c3.member).unwrap();
    until_rebalancing(&mut a, "billing", &a3);
    let error = c.heartbeat("billing", &c3.member, 3).unwrap_err();
    assert_eq!(error.status(), Some(status::UNKNOWN_MEMBER), "{error}");
    // A member of another topic cannot join this group.
    create_topic(&mut admin, "audit", 1);
    let error = c
        .join_group(&join_request("billing", "audit", None, session))
        .unwrap_err();
    assert_eq!(error.status(), Some(status::INVALID), "{error}");
    let error = c
        .join_group(&join_request("billing", "orders", None, 10))
        .unwrap_err();
    assert_eq!(error.status(), Some(status::INVALID), "{error}");
    assert!(error.to_string().contains("session_timeout_ms"), "{error}");
    drop(server);
}

/// The member of generation 2 that owns partition 0 commits it again while
/// the group prepares its third generation: allowed. Its poll is not.
fn owner_of_0_commit(
    a: &mut Client,
    b: &mut Client,
    a_joined: &GroupJoined,
    b_joined: &GroupJoined,
    commit: &CommitOffset,
) {
    let (client, joined) = if a_joined.partitions.contains(&0) {
        (a, a_joined)
    } else {
        (b, b_joined)
    };
    client.commit_offset(commit).unwrap();
    let poll = GroupPoll {
        group: commit.group.clone(),
        member: joined.member.clone(),
        generation: joined.generation,
        topic: commit.topic.clone(),
        partition: 0,
        offset: None,
        count: 1,
    };
    let error = client.group_poll(&poll).unwrap_err();
    assert_eq!(error.status(), Some(status::REBALANCING), "{error}");
}

#[test]
fn groups_offsets_survive_a_restart_and_are_described_without_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let mut admin = Client::connect(&server.addr().to_string()).unwrap();
    let topic = create_topic(&mut admin, "payments", 3);
    for partition in 0..3 {
        let payloads = (0..10).map(|n| format!("p{partition}-{n}"));
        admin
            .produce(topic, Partitioning::Explicit(partition), payloads)
            .unwrap();
    }
    // A member reads everything and commits as it goes, then commits back
    // to chosen offsets (a commit may move the offset either way).
    let client = Client::connect(&server.addr().to_string()).unwrap();
    let options = GroupOptions {
        count: 4,
        ..GroupOptions::default()
    };
    let name = TopicRef::Name("payments".into());
    let mut consumer = GroupConsumer::join(client, "ledger", name.clone(), options).unwrap();
    assert_eq!(consumer.partitions(), [0, 1, 2]);
    let mut read = 0;
    while let Some(batch) = consumer.poll().unwrap() {
        read += batch.records.len();
        assert!(consumer.commit().unwrap());
    }
    assert_eq!(read, 30);
    let committed = [(0, 4), (1, 7), (2, 10)];
    let (member, generation) = (consumer.member().to_string(), consumer.generation());
    for (partition, offset) in committed {
        let commit = CommitOffset {
            group: "ledger".into(),
            member: member.clone(),
            generation,
            topic: TopicRef::Id(topic),
            partition,
            offset,
        };
        consumer.client().commit_offset(&commit).unwrap();
    }
    drop(consumer); // gone without leaving: membership is soft state anyway
    // A group known only by offsets stored under its name (as a Kafka
    // group's or `rivulet poll --consumer`'s are).
    admin
        .store_offset(&api::StoreOffset {
            consumer: "audit-trail".into(),
            topic: TopicRef::Id(topic),
            partition: 1,
            offset: 5,
        })
        .unwrap();
    assert!(server.terminate().unwrap().success());

    let server = rivulet_server(dir.path(), &[]);
    let addr = server.addr();
    let described = cli_json(addr, &["group", "describe", "ledger"]);
    assert_eq!(described["state"], "Empty", "{described}");
    assert_eq!(described["members"].as_array().unwrap().len(), 0);
    let offsets: Vec<(u64, u64, u64)> = described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["topic"], "payments");
            let number = |key: &str| o[key].as_u64().unwrap();
            (number("partition"), number("committed"), number("lag"))
        })
        .collect();
    assert_eq!(offsets, [(0, 4, 6), (1, 7, 3), (2, 10, 0)]);
    let other = cli_json(addr, &["group", "describe", "audit-trail"]);
    let offsets = other["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 1, "{other}");
    assert_eq!(offsets[0]["partition"], 1, "{other}");
    assert_eq!(offsets[0]["committed"], 5, "{other}");
    let text = cli_ok(addr, &["group", "describe", "ledger"]);
    assert!(text.contains("COMMITTED"), "{text}");
    let error = cli_fails(addr, &["group", "describe", "nobody"]);
    assert!(error.contains("group nobody does not exist"), "{error}");

    // A new member carries on from the committed offsets.
    let client = Client::connect(&addr.to_string()).unwrap();
    let mut consumer =
        GroupConsumer::join(client, "ledger", name, GroupOptions::default()).unwrap();
    let mut first_read = BTreeMap::new();
    while let Some(batch) = consumer.poll().unwrap() {
        first_read
            .entry(batch.partition)
            .or_insert(batch.records[0].offset);
        consumer.commit().unwrap();
    }
    assert_eq!(first_read, BTreeMap::from([(0, 4), (1, 7)]));
    consumer.leave().unwrap();
    let listed = cli_json(addr, &["group", "list"]);
    assert_eq!(listed["groups"][0]["group"], "ledger", "{listed}");
    assert_eq!(listed["groups"][0]["state"], "Empty", "{listed}");
    drop(server);
}

#[test]
fn groups_a_member_gone_without_committing_leaves_its_batch_to_the_next_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let addr = server.addr().to_string();
    let mut admin = Client::connect(&addr).unwrap();
    let topic = create_topic(&mut admin, "jobs", 1);
    let payloads = (0..10).map(|n| format!("job-{n}"));
    admin
        .produce(topic, Partitioning::Explicit(0), payloads)
        .unwrap();
    let options = GroupOptions {
        session_timeout: std::time::Duration::from_millis(1000),
        count: 4,
        client_id: None,
    };
    let jobs = TopicRef::Name("jobs".into());
    let join = |options: &GroupOptions| {
        let client = Client::connect(&addr).unwrap();
        GroupConsumer::join(client, "workers", jobs.clone(), options.clone()).unwrap()
    };
    let offsets = |batch: Option<rivulet_client::Batch>| -> Vec<u64> {
        batch.unwrap().records.iter().map(|r| r.offset).collect()
    };
    let mut paused = join(&options);
    assert_eq!(offsets(paused.poll().unwrap()), [0, 1, 2, 3]);
    assert!(paused.commit().unwrap());
    // Given 4 to 7, it stops (a long GC pause, a SIGSTOP) before it commits.
    assert_eq!(offsets(paused.poll().unwrap()), [4, 5, 6, 7]);
    // The next member's join completes once the paused one's session ends.
    let mut next = join(&options);
    assert_eq!(next.partitions(), [0]);
    assert_eq!(
        offsets(next.poll().unwrap()),
        [4, 5, 6, 7],
        "the uncommitted window is read again"
    );
    // The paused member wakes up: its commit is refused (it is a zombie),
    // and the group's offset stays where the new owner puts it.
    assert!(!paused.commit().unwrap(), "a zombie's commit is refused");
    assert_eq!(
        admin.describe_group("workers").unwrap().offsets[0].committed,
        Some(4)
    );
    assert!(next.commit().unwrap());
    assert_eq!(offsets(next.poll().unwrap()), [8, 9]);
    assert!(next.commit().unwrap());
    assert_eq!(
        admin.describe_group("workers").unwrap().offsets[0].committed,
        Some(10)
    );
    drop(server);
}

#[test]
fn groups_need_the_permission_to_consume_their_topic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rivulet.toml");
    std::fs::write(
        &file,
        r#"
[[auth.users]]
name = "root"
password = "root pass"
admin = true

[[auth.users]]
name = "shop"
password = "shop pass"
consume = ["orders"]
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Kafka clients cannot log in: its listener is off with [auth].
    let flags = ["--config", file.to_str().unwrap(), "--kafka-listen", "off"];
    let server = rivulet_server(&data, &flags);
    let addr = server.addr().to_string();
    let login = |name: &str, password: &str| {
        let mut client = Client::connect(&addr).unwrap();
        client
            .login(&Login {
                username: Some(name.into()),
                password: Some(password.into()),
                token: None,
            })
            .unwrap();
        client
    };
    let mut root = login("root", "root pass");
    create_topic(&mut root, "orders", 1);
    create_topic(&mut root, "audit", 1);
    let audit = root
        .join_group(&join_request("auditors", "audit", None, 10_000))
        .unwrap();
    root.store_offset(&api::StoreOffset {
        consumer: "shared".into(),
        topic: TopicRef::Name("audit".into()),
        partition: 0,
        offset: 0,
    })
    .unwrap();

    let mut shop = login("shop", "shop pass");
    let forbidden = Some(status::FORBIDDEN);
    shop.join_group(&join_request("shop", "orders", None, 10_000))
        .unwrap();
    let error = shop
        .join_group(&join_request("sneaky", "audit", None, 10_000))
        .unwrap_err();
    assert_eq!(error.status(), forbidden, "{error}");
    // Heartbeats and leaves name no topic: checked against the group's.
    let error = shop
        .heartbeat("auditors", &audit.member, audit.generation)
        .unwrap_err();
    assert_eq!(error.status(), forbidden, "{error}");
    let error = shop.leave_group("auditors", &audit.member).unwrap_err();
    assert_eq!(error.status(), forbidden, "{error}");
    // Describing needs a login; offsets of other topics are not shown.
    let error = shop.describe_group("shared").unwrap_err();
    assert_eq!(error.status(), Some(status::CONSUMER_NOT_FOUND), "{error}");
    assert_eq!(
        root.describe_group("shared").unwrap().offsets.len(),
        1,
        "the admin sees them"
    );
    root.heartbeat("auditors", &audit.member, audit.generation)
        .unwrap();
    drop(server);
}

// ---- the CLI, as processes ----

/// The `rivulet` CLI of this build: beside this test's folder, built with
/// cargo first if it is not there (`cargo test --workspace` builds it).
fn rivulet_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let mut dir = exe.parent().unwrap().to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let binary = dir.join("rivulet");
        if !binary.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "rivulet-client", "--bin", "rivulet"]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().unwrap();
            assert!(
                status.success() && binary.exists(),
                "the rivulet CLI is not built ({status}): run `cargo build -p rivulet-client`"
            );
        }
        binary
    })
    .clone()
}

fn cli(addr: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(rivulet_cli());
    command.arg("--server").arg(addr.to_string()).args(args);
    for name in ["RIVULET_USER", "RIVULET_PASSWORD", "RIVULET_TOKEN"] {
        command.env_remove(name);
    }
    command
}

fn cli_output(addr: SocketAddr, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = cli(addr, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn cli_ok(addr: SocketAddr, args: &[&str]) -> String {
    let output = cli_output(addr, args, "");
    assert!(
        output.status.success(),
        "rivulet {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn cli_json(addr: SocketAddr, args: &[&str]) -> Value {
    let args = [&["--json"], args].concat();
    serde_json::from_str(&cli_ok(addr, &args)).unwrap()
}

fn cli_fails(addr: SocketAddr, args: &[&str]) -> String {
    let output = cli_output(addr, args, "");
    assert_eq!(output.status.code(), Some(1), "rivulet {args:?}");
    String::from_utf8(output.stderr).unwrap()
}

/// A `rivulet poll --group` process, its stdout's lines collected as they
/// come, its stderr in a file (for a failure's report).
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    stderr: PathBuf,
}

impl Member {
    fn start(addr: SocketAddr, args: &[&str], dir: &Path, name: &str) -> Member {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = cli(addr, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let collected = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            // A line cut by a SIGKILL is kept as it is: whoever reads
            // `lines` skips what does not parse.
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line);
            }
        });
        Member {
            child,
            lines,
            reader: Some(reader),
            stderr,
        }
    }

    fn printed(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// SIGKILL, and every line it printed.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the group is stable with `members` members, each with
/// partitions if there are enough.
fn until_stable(admin: &mut Client, group: &str, members: usize, watched: &[&Member]) {
    // What the server said last, for the failure message.
    let last = std::cell::RefCell::new(String::new());
    common::eventually_within(
        &format!("group {group} stable with {members} members"),
        std::time::Duration::from_secs(60),
        || {
            let described = admin.describe_group(group);
            let stable = matches!(&described, Ok(info)
                if info.state == "Stable" && info.members.len() == members);
            *last.borrow_mut() = format!("{described:?}");
            stable
        },
        || {
            let logs: Vec<String> = watched.iter().map(|m| m.stderr()).collect();
            format!("the group: {}; members' stderr: {logs:#?}", last.borrow())
        },
    );
}

/// Waits until the group has committed every partition up to its end.
fn until_all_committed(admin: &mut Client, group: &str) -> api::GroupDescription {
    let mut last = None;
    eventually("the group committed every record", || {
        let info = admin.describe_group(group).unwrap();
        let done = info
            .offsets
            .iter()
            .all(|o| o.committed == Some(o.end_offset));
        last = Some(info);
        done
    });
    last.unwrap()
}

/// `(partition, offset) -> payload` of a `--json` poll's lines.
fn json_records(lines: &[String]) -> Vec<(u32, u64, String)> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|message| {
            (
                u32::try_from(message["partition"].as_u64().unwrap()).unwrap(),
                message["offset"].as_u64().unwrap(),
                message["payload"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn groups_cli_a_killed_member_is_taken_over_and_nothing_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = rivulet_server(&data, &[]);
    let addr = server.addr();
    let mut admin = Client::connect(&addr.to_string()).unwrap();
    let topic = create_topic(&mut admin, "events", 4);
    let args = [
        "--json",
        "poll",
        "events",
        "--group",
        "workers",
        "--follow",
        "--session-timeout-ms",
        "2000",
        "--count",
        "20",
    ];
    let doomed = Member::start(addr, &args, dir.path(), "doomed");
    let survivor = Member::start(addr, &args, dir.path(), "survivor");
    until_stable(&mut admin, "workers", 2, &[&doomed, &survivor]);

    // Messages keep coming while one member is killed.
    let producer = std::thread::spawn(move || {
        let mut client = Client::connect(&addr.to_string()).unwrap();
        for batch in 0..60u64 {
            let payloads = (0..25).map(|n| format!("m{}", batch * 25 + n));
            client
                .produce(topic, Partitioning::Explicit((batch % 4) as u32), payloads)
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
    });
    eventually("the doomed member printed some", || doomed.printed() >= 50);
    let killed_at = Instant::now();
    let doomed_lines = doomed.kill();
    // The survivor is handed every partition once the session ends.
    eventually("the survivor owns every partition", || {
        let info = admin.describe_group("workers").unwrap();
        info.state == "Stable"
            && info.members.len() == 1
            && info.members[0].assignment[0].partitions == [0, 1, 2, 3]
    });
    eprintln!(
        "taken over {:?} after the SIGKILL (session timeout 2 s)",
        killed_at.elapsed()
    );
    producer.join().unwrap();
    let described = until_all_committed(&mut admin, "workers");
    let survivor_lines = survivor.kill();

    let doomed = json_records(&doomed_lines);
    let survivor = json_records(&survivor_lines);
    // Nobody printed a record twice.
    for (who, records) in [("doomed", &doomed), ("survivor", &survivor)] {
        let unique: BTreeSet<(u32, u64)> = records.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(unique.len(), records.len(), "{who} printed a record twice");
    }
    // Every record was consumed: none skipped.
    let seen: BTreeSet<(u32, u64)> = doomed.iter().chain(&survivor).map(|r| (r.0, r.1)).collect();
    let payloads: BTreeSet<&str> = doomed
        .iter()
        .chain(&survivor)
        .map(|r| r.2.as_str())
        .collect();
    assert_eq!(payloads.len(), 1500, "every message, none skipped");
    for offset in &described.offsets {
        for at in 0..offset.end_offset {
            assert!(
                seen.contains(&(offset.partition, at)),
                "skipped {at} of {}",
                offset.partition
            );
        }
    }
    // Duplicates: only the doomed member's last, uncommitted batch of a
    // partition (it commits each batch after printing it).
    let survivor_set: BTreeSet<(u32, u64)> = survivor.iter().map(|r| (r.0, r.1)).collect();
    eprintln!(
        "doomed printed {}, the survivor {}, {} read twice",
        doomed.len(),
        survivor.len(),
        doomed.len() + survivor.len() - seen.len()
    );
    for partition in 0..4 {
        let doomed_here: Vec<u64> = doomed
            .iter()
            .filter(|r| r.0 == partition)
            .map(|r| r.1)
            .collect();
        let twice: Vec<u64> = doomed_here
            .iter()
            .copied()
            .filter(|offset| survivor_set.contains(&(partition, *offset)))
            .collect();
        assert!(
            twice.len() <= 20,
            "partition {partition}: {twice:?} read twice"
        );
        if let Some(first) = twice.first() {
            let tail: Vec<u64> = doomed_here.iter().copied().filter(|o| o >= first).collect();
            assert_eq!(
                twice, tail,
                "partition {partition}: not the uncommitted tail"
            );
        }
    }
    drop(server);
}

/// Apache Iggy's #2734, duplicates on scale-out: a second member joins while
/// the first consumes a stream of messages; the first commits what it
/// printed before the partitions move, so nothing is read twice.
#[test]
fn groups_cli_scaling_out_mid_stream_reads_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = rivulet_server(&data, &[]);
    let addr = server.addr();
    let mut admin = Client::connect(&addr.to_string()).unwrap();
    let topic = create_topic(&mut admin, "clicks", 4);
    let args = [
        "--json", "poll", "clicks", "--group", "counters", "--follow", "--count", "10",
    ];
    let first = Member::start(addr, &args, dir.path(), "first");
    until_stable(&mut admin, "counters", 1, &[&first]);
    let producer = std::thread::spawn(move || {
        let mut client = Client::connect(&addr.to_string()).unwrap();
        for batch in 0..80u64 {
            let payloads = (0..25).map(|n| format!("c{}", batch * 25 + n));
            client
                .produce(topic, Partitioning::Explicit((batch % 4) as u32), payloads)
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    eventually("the first member printed some", || first.printed() >= 50);
    let second = Member::start(addr, &args, dir.path(), "second");
    until_stable(&mut admin, "counters", 2, &[&first, &second]);
    producer.join().unwrap();
    until_all_committed(&mut admin, "counters");
    let (first, second) = (json_records(&first.kill()), json_records(&second.kill()));
    assert!(!second.is_empty(), "the second member got partitions");
    let all: Vec<(u32, u64)> = first.iter().chain(&second).map(|r| (r.0, r.1)).collect();
    let unique: BTreeSet<(u32, u64)> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a record was read twice");
    assert_eq!(unique.len(), 2000, "every message");
    drop(server);
}

/// Text lines `partition<TAB>offset<TAB>payload` as payloads.
fn text_payloads(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line.split('\t').nth(2).map(str::to_string))
        .collect()
}

#[test]
fn groups_cli_two_members_consume_each_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = rivulet_server(&data, &[]);
    let addr = server.addr();
    cli_ok(addr, &["topic", "create", "orders", "--partitions", "4"]);
    let args = ["poll", "orders", "--group", "billing", "--follow"];
    let one = Member::start(addr, &args, dir.path(), "one");
    let two = Member::start(addr, &args, dir.path(), "two");
    let mut admin = Client::connect(&addr.to_string()).unwrap();
    until_stable(&mut admin, "billing", 2, &[&one, &two]);
    let listed = cli_ok(addr, &["group", "list"]);
    assert!(
        listed.contains("billing") && listed.contains("Stable"),
        "{listed}"
    );

    // 1,000 messages, a quarter to each partition.
    for partition in 0..4 {
        let lines: String = (0..250)
            .map(|n| format!("order-{}\n", partition * 250 + n))
            .collect();
        let partition = partition.to_string();
        let sent = cli_output(addr, &["send", "orders", "--partition", &partition], &lines);
        assert!(sent.status.success());
    }
    until_all_committed(&mut admin, "billing");
    let described = cli_ok(addr, &["group", "describe", "billing"]);
    assert!(described.contains("2 members"), "{described}");
    let (one, two) = (text_payloads(&one.kill()), text_payloads(&two.kill()));
    assert_eq!(one.len(), 500, "two partitions each");
    assert_eq!(two.len(), 500, "two partitions each");
    let mut all: Vec<String> = one.into_iter().chain(two).collect();
    all.sort();
    let mut expected: Vec<String> = (0..1000).map(|n| format!("order-{n}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each message exactly once");
    drop(server);
}
