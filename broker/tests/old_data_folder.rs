//! A data folder written before records had keys and headers opens
//! unchanged, and takes records with them beside its old ones.
//!
//! `tests/fixtures/data-before-keys/` was written by a `rivulet-server` and a
//! `rivulet` built before the extended record existed (its README says
//! which, and how): topic `before-keys` with 2 partitions, three records in
//! partition 0 and two in partition 1, and consumer `reader`'s offset 2 in
//! partition 0. This test runs today's server on a copy of it, reads every
//! record back with today's client, then appends a record with a key and
//! headers to the same segment and reads both kinds, before and after a
//! restart; a produce whose extension section does not parse is refused.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;

use rivulet_broker::api::{self, PollBy, PollKind, TopicRef};
use rivulet_client::{Client, Partitioning, ProducerRecord, Record};
use stage6_broker::shards::protocol::encode_produce_head;
use stage6_broker::storage::record::{RECORD_HEADER_LEN, encode_contents};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/data-before-keys"
);

/// Copies the folder `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn poll_all(client: &mut Client, topic: u32, partition: u32) -> Vec<Record> {
    client.poll(topic, partition, 0, 100).unwrap()
}

fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect()
}

/// The old records as the fixture has them: plain, nothing but a value.
fn assert_plain(records: &[Record]) {
    for record in records {
        assert_eq!(
            (
                &record.key,
                record.headers.len(),
                record.create_time,
                record.null_value
            ),
            (&None, 0, None, false),
            "{record:?}"
        );
        assert!(record.timestamp > 0);
    }
}

#[test]
fn old_data_folder_opens_unchanged_and_takes_keyed_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(Path::new(FIXTURE), &data);
    let server = common::rivulet_server(&data, &[]);
    let addr = server.addr().to_string();
    let mut client = Client::connect(&addr).unwrap();

    let info = client
        .describe_topic(&TopicRef::Name("before-keys".into()))
        .unwrap();
    assert_eq!(info.partitions, 2);
    let next: Vec<u64> = info.partition_info.iter().map(|p| p.next_offset).collect();
    assert_eq!(next, [3, 2]);
    let topic = info.id;

    // Every record of the old folder, as it was written.
    let zero = poll_all(&mut client, topic, 0);
    assert_eq!(values(&zero), ["p0-first", "p0-second", "p0-third"]);
    assert_eq!(zero.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert_plain(&zero);
    let one = poll_all(&mut client, topic, 1);
    assert_eq!(values(&one), ["p1-first", "p1-second"]);
    assert_plain(&one);

    // The consumer offset stored before: 2 in partition 0, none in 1.
    let offsets = client
        .get_offsets("reader", &TopicRef::Name("before-keys".into()))
        .unwrap();
    let stored: Vec<Option<u64>> = offsets.partitions.iter().map(|p| p.offset).collect();
    assert_eq!(stored, [Some(2), None]);
    let next = client
        .poll_by(&PollBy {
            topic,
            partition: 0,
            kind: PollKind::Next,
            count: 10,
            consumer: "reader".into(),
            auto_commit: false,
        })
        .unwrap();
    assert_eq!(values(&next), ["p0-third"]);

    // A record with a key and headers, into the same segment.
    let keyed = ProducerRecord {
        id: 7,
        key: Some(b"order-7".to_vec()),
        headers: vec![
            ("trace".into(), Some(b"abc".to_vec())),
            ("retry".into(), None),
        ],
        create_time: Some(1_767_225_600_000),
        value: Some(b"p0-keyed".to_vec()),
    };
    let produced = client
        .send_records(
            topic,
            Partitioning::Explicit(0),
            std::slice::from_ref(&keyed),
        )
        .unwrap();
    assert_eq!((produced.partition, produced.first_offset), (0, 3));

    let check = |client: &mut Client| {
        let records = poll_all(client, topic, 0);
        assert_eq!(records.len(), 4);
        assert_plain(&records[..3]);
        assert_eq!(
            values(&records),
            ["p0-first", "p0-second", "p0-third", "p0-keyed"]
        );
        let last = &records[3];
        assert_eq!((last.offset, last.id), (3, 7));
        assert_eq!(last.contents(), keyed.contents());
        assert_eq!(
            values(&poll_all(client, topic, 1)),
            ["p1-first", "p1-second"]
        );
    };
    check(&mut client);

    // A bad section never reaches the old segment: the produce is refused
    // as malformed (status 2, naming the record) and the connection closed.
    let mut bad = Vec::new();
    encode_contents(&mut bad, 0, 0, 8, &keyed.contents());
    bad[RECORD_HEADER_LEN + 4] = 0x80; // an unknown flag
    let mut body = encode_produce_head(topic, &Partitioning::Explicit(0), 1);
    body.extend_from_slice(&bad);
    let mut hostile = Client::connect(&addr).unwrap();
    let error = hostile.call(api::code::PRODUCE, &body).unwrap_err();
    assert_eq!(error.status(), Some(api::status::MALFORMED), "{error}");
    assert!(error.to_string().contains("unknown flags"), "{error}");
    check(&mut client);
    drop(client);

    // Old and new records side by side in one segment survive a restart.
    server.terminate().unwrap();
    let server = common::rivulet_server(&data, &[]);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    check(&mut client);
    let offsets: api::ConsumerOffsets = client.get_offsets("reader", &TopicRef::Id(topic)).unwrap();
    assert_eq!(offsets.partitions[0].offset, Some(2));
    assert_eq!(offsets.partitions[0].next_offset, 4);
    server.terminate().unwrap();
}
