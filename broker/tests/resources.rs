//! Stage 6's resource commands against the real `rivulet-server`: streams
//! and topics created, listed, described and deleted (files and all);
//! per-topic settings that survive a restart; polls by offset, timestamp,
//! first, last and next; named consumers whose offsets are stored on the
//! server and survive a restart; and the counters `stats` reports.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::time::Duration;

use common::rivulet_server;
use rivulet_broker::api::{
    self, CreateTopic, PollBy, PollKind, StoreOffset, TopicRef, TopicSettings, status,
};
use rivulet_client::Partitioning;
use rivulet_client::Record;
use rivulet_client::{Client, ClientError};

/// stage 4's statuses this file expects.
const TOPIC_NOT_FOUND: u16 = 4;
const INVALID: u16 = 5;

fn connect(server: &rivulet_broker::process::ServerProcess) -> Client {
    Client::connect(&server.addr().to_string()).unwrap()
}

fn create(stream: &str, name: &str, partitions: u32, settings: TopicSettings) -> CreateTopic {
    CreateTopic {
        stream: Some(stream.to_string()),
        name: name.to_string(),
        id: None,
        partitions,
        settings,
    }
}

fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    let error = result.unwrap_err();
    error
        .status()
        .unwrap_or_else(|| panic!("not a server error: {error}"))
}

fn payloads(from: u64, n: u64) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|n| format!("record {n}").into_bytes())
        .collect()
}

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8(record.payload.clone()).unwrap())
        .collect()
}

fn names(from: u64, to: u64) -> Vec<String> {
    (from..to).map(|n| format!("record {n}")).collect()
}

fn poll_by(topic: u32, kind: PollKind, count: u32, consumer: &str, commit: bool) -> PollBy {
    PollBy {
        topic,
        partition: 0,
        kind,
        count,
        consumer: consumer.to_string(),
        auto_commit: commit,
    }
}

#[test]
fn streams_and_topics_are_created_listed_described_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    let shop = client.create_stream("shop").unwrap();
    assert_eq!((shop.name.as_str(), shop.topics.len()), ("shop", 0));
    assert_eq!(
        status_of(client.create_stream("shop")),
        status::ALREADY_EXISTS
    );
    assert_eq!(status_of(client.create_stream("no spaces")), INVALID);

    let orders = client
        .create_topic(&create("shop", "orders", 3, TopicSettings::default()))
        .unwrap();
    assert_eq!((orders.stream.as_str(), orders.partitions), ("shop", 3));
    // Asking again for the same topic is not an error; with other settings it is.
    let again = client
        .create_topic(&create("shop", "orders", 3, TopicSettings::default()))
        .unwrap();
    assert_eq!(again.id, orders.id);
    assert_eq!(
        status_of(client.create_topic(&create("shop", "orders", 4, TopicSettings::default()))),
        status::ALREADY_EXISTS
    );
    // A topic in a stream nobody created makes the stream.
    let audit = client
        .create_topic(&create("ops", "audit", 1, TopicSettings::default()))
        .unwrap();
    assert_ne!(audit.id, orders.id);

    let streams = client.list_streams().unwrap();
    let shop = streams.iter().find(|s| s.name == "shop").unwrap();
    assert_eq!(shop.topics, vec!["orders".to_string()]);
    assert!(streams.iter().any(|s| s.name == "ops"));
    let listed = client.list_topics(Some("shop")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "orders");
    assert!(
        listed[0].partition_info.is_empty(),
        "a list has no partition states"
    );
    assert_eq!(client.list_topics(None).unwrap().len(), 2);
    assert_eq!(
        status_of(client.list_topics(Some("nowhere"))),
        status::STREAM_NOT_FOUND
    );

    for partition in 0..3 {
        client
            .produce(orders.id, Partitioning::Explicit(partition), payloads(0, 5))
            .unwrap();
    }
    let described = client
        .describe_topic(&TopicRef::Name("orders".into()))
        .unwrap();
    assert_eq!(described.partition_info.len(), 3);
    for (n, partition) in (0..).zip(&described.partition_info) {
        assert_eq!(partition.partition, n);
        assert_eq!((partition.first_offset, partition.next_offset), (0, 5));
        assert!(partition.shard < 2);
        assert!(partition.failed.is_none());
    }
    // Both shards own some of the partitions: describe crossed between them.
    let shards: std::collections::HashSet<u32> =
        described.partition_info.iter().map(|p| p.shard).collect();
    assert_eq!(shards.len(), 2, "{described:?}");

    let folder = dir.path().join(orders.id.to_string());
    assert!(folder.join("0").is_dir());
    client.delete_topic(&TopicRef::Id(orders.id)).unwrap();
    assert!(!folder.exists(), "the topic's files are removed");
    assert_eq!(
        status_of(client.produce(orders.id, Partitioning::Explicit(0), payloads(0, 1))),
        TOPIC_NOT_FOUND
    );
    assert_eq!(status_of(client.poll(orders.id, 0, 0, 10)), TOPIC_NOT_FOUND);
    assert_eq!(
        status_of(client.describe_topic(&TopicRef::Name("orders".into()))),
        TOPIC_NOT_FOUND
    );
    // Every connection, on either shard, sees the topic gone.
    for _ in 0..4 {
        let mut other = connect(&server);
        assert_eq!(status_of(other.poll(orders.id, 1, 0, 10)), TOPIC_NOT_FOUND);
    }

    // Deleting a stream deletes its topics.
    client.delete_stream("ops").unwrap();
    assert!(!dir.path().join(audit.id.to_string()).exists());
    assert!(client.list_topics(None).unwrap().is_empty());
    assert_eq!(
        status_of(client.delete_stream("ops")),
        status::STREAM_NOT_FOUND
    );
    assert!(server.terminate().unwrap().success());

    // A restart finds what is left: the stream, and no topic.
    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    assert!(client.list_topics(None).unwrap().is_empty());
    assert!(
        client
            .list_streams()
            .unwrap()
            .iter()
            .any(|s| s.name == "shop")
    );
    assert!(server.terminate().unwrap().success());
}

#[test]
fn topic_settings_are_checked_shown_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    let bad_size = TopicSettings {
        segment_size: Some(1000),
        ..TopicSettings::default()
    };
    let error = client
        .create_topic(&create("s", "bad", 1, bad_size))
        .unwrap_err();
    assert_eq!(error.status(), Some(INVALID));
    assert!(error.to_string().contains("segment_size"), "{error}");
    let bad_fsync = TopicSettings {
        fsync: Some("sometimes".into()),
        ..TopicSettings::default()
    };
    let error = client
        .create_topic(&create("s", "bad", 1, bad_fsync))
        .unwrap_err();
    assert!(error.to_string().contains("fsync"), "{error}");

    let settings = TopicSettings {
        fsync: Some("never".into()),
        segment_size: Some(65536),
        retention_bytes: Some(1 << 20),
        retention_seconds: Some(3600),
    };
    let created = client
        .create_topic(&create("s", "tuned", 2, settings))
        .unwrap();
    let expect = |info: &api::TopicInfo| {
        assert_eq!(info.fsync, "never");
        assert_eq!(info.segment_size, 65536);
        assert_eq!(info.retention_bytes, Some(1 << 20));
        assert_eq!(info.retention_seconds, Some(3600));
    };
    expect(&created);
    // Unset settings are the server's defaults (the spawn's --segment-size).
    let plain = client
        .create_topic(&create("s", "plain", 1, TopicSettings::default()))
        .unwrap();
    assert_eq!((plain.segment_size, plain.retention_bytes), (262144, None));
    // Stage 4's binary create-topic still works: the topic is named by its id.
    stage4_create(&mut client, 42, 2);
    client
        .produce(created.id, Partitioning::Explicit(1), payloads(0, 3))
        .unwrap();
    assert!(server.terminate().unwrap().success());

    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    let described = client
        .describe_topic(&TopicRef::Name("tuned".into()))
        .unwrap();
    expect(&described);
    assert_eq!(described.id, created.id);
    assert_eq!(described.partition_info[1].next_offset, 3);
    let legacy = client.describe_topic(&TopicRef::Id(42)).unwrap();
    assert_eq!(
        (
            legacy.name.as_str(),
            legacy.stream.as_str(),
            legacy.partitions
        ),
        ("42", api::DEFAULT_STREAM, 2)
    );
    assert!(server.terminate().unwrap().success());
}

/// Stage 4's create-topic frame: `topic u32`, `partitions u32`.
fn stage4_create(client: &mut Client, topic: u32, partitions: u32) {
    let mut body = topic.to_le_bytes().to_vec();
    body.extend_from_slice(&partitions.to_le_bytes());
    client.call(api::code::CREATE_TOPIC, &body).unwrap();
}

#[test]
fn polls_start_at_an_offset_a_timestamp_the_first_the_last_or_the_next() {
    // On io_uring and on the polling fallback, which the poll path runs on too.
    for driver in ["auto", "polling"] {
        polls_start_at_an_offset_a_timestamp_the_first_the_last_or_the_next_on(driver);
    }
}

fn polls_start_at_an_offset_a_timestamp_the_first_the_last_or_the_next_on(driver: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &["--io-driver", driver]);
    let mut client = connect(&server);
    let topic = client
        .create_topic(&create("s", "events", 2, TopicSettings::default()))
        .unwrap()
        .id;
    // One record per batch, a little apart: each has its own timestamp.
    for n in 0..10 {
        client
            .produce(topic, Partitioning::Explicit(0), payloads(n, 1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let all = client.poll(topic, 0, 0, 100).unwrap();
    assert_eq!(texts(&all), names(0, 10));

    let by = |client: &mut Client, kind, count| {
        texts(
            &client
                .poll_by(&poll_by(topic, kind, count, "", false))
                .unwrap(),
        )
    };
    assert_eq!(by(&mut client, PollKind::Offset(3), 2), names(3, 5));
    assert_eq!(by(&mut client, PollKind::First, 2), names(0, 2));
    assert_eq!(by(&mut client, PollKind::Last, 3), names(7, 10));
    assert_eq!(by(&mut client, PollKind::Last, 50), names(0, 10));
    assert_eq!(
        by(&mut client, PollKind::Timestamp(all[6].timestamp), 2),
        names(6, 8)
    );
    assert_eq!(
        by(&mut client, PollKind::Timestamp(all[6].timestamp - 1), 1),
        names(6, 7),
        "the first record at or after the time"
    );
    assert!(by(&mut client, PollKind::Timestamp(u64::MAX), 5).is_empty());
    assert!(by(&mut client, PollKind::Offset(10), 5).is_empty());
    // An empty partition: every kind is empty.
    for kind in [PollKind::First, PollKind::Last] {
        let poll = PollBy {
            partition: 1,
            ..poll_by(topic, kind, 5, "", false)
        };
        assert!(client.poll_by(&poll).unwrap().is_empty());
    }

    // Next, for a named consumer: the first record, then where it stopped.
    let next = |client: &mut Client, count| {
        texts(
            &client
                .poll_by(&poll_by(topic, PollKind::Next, count, "reader", true))
                .unwrap(),
        )
    };
    assert_eq!(next(&mut client, 4), names(0, 4));
    assert_eq!(next(&mut client, 4), names(4, 8));
    let offsets = client
        .get_offsets("reader", &TopicRef::Name("events".into()))
        .unwrap();
    assert_eq!(offsets.topic, topic);
    assert_eq!(offsets.partitions.len(), 2);
    assert_eq!(
        (
            offsets.partitions[0].offset,
            offsets.partitions[0].next_offset
        ),
        (Some(8), 10)
    );
    assert_eq!(offsets.partitions[1].offset, None);
    // Without auto-commit, Next reads without moving the offset.
    let peek = client
        .poll_by(&poll_by(topic, PollKind::Next, 1, "reader", false))
        .unwrap();
    assert_eq!(texts(&peek), names(8, 9));
    // A stored offset moves it by hand.
    client
        .store_offset(&StoreOffset {
            consumer: "reader".into(),
            topic: TopicRef::Id(topic),
            partition: 0,
            offset: 2,
        })
        .unwrap();
    assert_eq!(next(&mut client, 1), names(2, 3));
    // Mistakes get errors and the connection stays.
    assert_eq!(
        status_of(client.poll_by(&poll_by(topic, PollKind::Next, 1, "", false))),
        INVALID
    );
    assert_eq!(
        status_of(client.poll_by(&poll_by(topic, PollKind::First, 1, "a b", true))),
        INVALID
    );
    assert_eq!(
        status_of(client.store_offset(&StoreOffset {
            consumer: "reader".into(),
            topic: TopicRef::Name("missing".into()),
            partition: 0,
            offset: 0,
        })),
        TOPIC_NOT_FOUND
    );
    assert_eq!(
        status_of(client.store_offset(&StoreOffset {
            consumer: "reader".into(),
            topic: TopicRef::Id(topic),
            partition: 0,
            offset: 11,
        })),
        INVALID,
        "an offset past the end"
    );

    // The counters saw all of it.
    let stats = client.stats().unwrap();
    assert_eq!(stats.messages_in, 10);
    // Every record each poll above returned, in order.
    let polled = 10 + 2 + 2 + 3 + 10 + 2 + 1 + 4 + 4 + 1 + 1;
    assert_eq!(stats.messages_out, polled);
    assert!(stats.bytes_in > 0 && stats.bytes_out > stats.bytes_in);
    assert_eq!((stats.shards, stats.topics), (2, 1));
    assert!(stats.connections >= 1);
    assert!(!stats.io_driver.is_empty());
    assert!(server.terminate().unwrap().success());
}

#[test]
fn a_named_consumer_resumes_where_it_stopped_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    let topic = client
        .create_topic(&create("s", "jobs", 1, TopicSettings::default()))
        .unwrap()
        .id;
    client
        .produce(topic, Partitioning::Explicit(0), payloads(0, 10))
        .unwrap();
    let first = client
        .poll_by(&poll_by(topic, PollKind::Next, 3, "worker", true))
        .unwrap();
    assert_eq!(texts(&first), names(0, 3));
    assert!(server.terminate().unwrap().success());

    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    let resumed = client
        .poll_by(&poll_by(topic, PollKind::Next, 100, "worker", true))
        .unwrap();
    assert_eq!(texts(&resumed), names(3, 10));
    let offsets = client.get_offsets("worker", &TopicRef::Id(topic)).unwrap();
    assert_eq!(offsets.partitions[0].offset, Some(10));
    // Another consumer has its own offset.
    let other = client
        .poll_by(&poll_by(topic, PollKind::Next, 2, "auditor", true))
        .unwrap();
    assert_eq!(texts(&other), names(0, 2));
    assert!(server.terminate().unwrap().success());
}

#[test]
fn a_body_that_is_not_the_commands_json_closes_only_its_connection() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &[]);
    let mut client = connect(&server);
    client.create_stream("kept").unwrap();
    for body in [&b"{\"name\":"[..], br#"{"name":"s","extra":1}"#, b"[1,2]"] {
        let mut raw = std::net::TcpStream::connect(server.addr()).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut frame = ((body.len() + 6) as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&api::code::CREATE_STREAM.to_le_bytes());
        frame.extend_from_slice(&5u32.to_le_bytes());
        frame.extend_from_slice(body);
        raw.write_all(&frame).unwrap();
        let mut header = [0u8; 10];
        raw.read_exact(&mut header).unwrap();
        assert_eq!(
            u16::from_le_bytes([header[4], header[5]]),
            status::MALFORMED
        );
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).unwrap(); // the message, then end of file
        assert!(String::from_utf8_lossy(&rest).contains("JSON"), "{rest:?}");
    }
    let streams = client.list_streams().unwrap();
    assert_eq!(streams.len(), 1, "nothing was created: {streams:?}");
    assert!(server.terminate().unwrap().success());
}
