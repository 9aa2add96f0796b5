//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 4` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. The record tests
//! build their bytes by hand; `produce` places its batches with
//! `choose_partition`, so do that one first.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::sync::atomic::AtomicU32;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::BodyReader;
use stage4_partitions::protocol::record::{
    Checksum, Record, RecordError, decode_records, encode_record,
};
use stage4_partitions::protocol::{Response, Status, code};
use stage4_partitions::topics::choose_partition;
use stage4_partitions::{Partitioning, Topics, TopicsConfig};

/// A record's bytes, written out by hand (not with `encode_record`): the
/// checksum covers everything after it, from the length to the payload's end.
fn record(offset: u64, timestamp: u64, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut covered = (payload.len() as u32).to_le_bytes().to_vec();
    covered.extend_from_slice(&offset.to_le_bytes());
    covered.extend_from_slice(&timestamp.to_le_bytes());
    covered.extend_from_slice(&id.to_le_bytes());
    covered.extend_from_slice(payload);
    let mut bytes = crc32c::crc32c(&covered).to_le_bytes().to_vec();
    bytes.extend(covered);
    bytes
}

/// `count u32` and the records.
fn records(list: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = (list.len() as u32).to_le_bytes().to_vec();
    for record in list {
        bytes.extend_from_slice(record);
    }
    bytes
}

// encode_record: the wire record, with its checksum.

#[test]
fn exercise_encode_record_lays_out_the_32_byte_header_then_the_payload() {
    let mut out = vec![0xee];
    encode_record(&mut out, 1, 2, 3, b"hi");
    assert_eq!(out[0], 0xee, "the bytes already in the buffer stay");
    let crc = crc32c::crc32c(&out[5..]).to_le_bytes();
    #[rustfmt::skip]
    let expected = [
        crc[0], crc[1], crc[2], crc[3], 2, 0, 0, 0, // crc32c, payload length
        1, 0, 0, 0, 0, 0, 0, 0,                     // offset
        2, 0, 0, 0, 0, 0, 0, 0,                     // timestamp
        3, 0, 0, 0, 0, 0, 0, 0,                     // id
        b'h', b'i',
    ];
    assert_eq!(out[1..], expected);
}

#[test]
fn exercise_encode_record_checksum_covers_every_byte_after_it() {
    let payload = vec![0x5a; 1000];
    let mut out = Vec::new();
    encode_record(&mut out, 7, 1_700_000_000_000_000, 42, &payload);
    assert_eq!(out, record(7, 1_700_000_000_000_000, 42, &payload));
    // Two records differing only in the payload's last byte, or only in the
    // offset, have different checksums.
    let mut other = Vec::new();
    encode_record(
        &mut other,
        7,
        1_700_000_000_000_000,
        42,
        &[&payload[..999], &[0x5b]].concat(),
    );
    assert_ne!(out[..4], other[..4], "the payload is covered");
    other.clear();
    encode_record(&mut other, 8, 1_700_000_000_000_000, 42, &payload);
    assert_ne!(out[..4], other[..4], "the offset is covered");
}

// decode_records: a count and records, every length and checksum checked.

#[test]
fn exercise_decode_records_reads_what_the_layout_says() {
    let bytes = records(&[record(5, 6, 7, b"hello"), record(6, 6, 8, b"")]);
    let decoded = decode_records(&mut BodyReader::new(&bytes), Checksum::Verify).unwrap();
    assert_eq!(
        decoded,
        [
            Record {
                offset: 5,
                timestamp: 6,
                id: 7,
                payload: b"hello".to_vec()
            },
            Record {
                offset: 6,
                timestamp: 6,
                id: 8,
                payload: Vec::new()
            }
        ]
    );
}

#[test]
fn exercise_decode_records_a_flipped_bit_fails_its_checksum() {
    let mut bytes = records(&[record(5, 6, 7, b"hello")]);
    bytes[4 + 32 + 1] ^= 1; // inside "hello"
    let error = decode_records(&mut BodyReader::new(&bytes), Checksum::Verify).unwrap_err();
    let computed = crc32c::crc32c(&bytes[8..]);
    let stored = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    assert_eq!(
        error,
        RecordError::Checksum {
            offset: 5,
            stored,
            computed
        }
    );
    // What a producer sends has no checksum yet: Ignore takes it as it is.
    let decoded = decode_records(&mut BodyReader::new(&bytes), Checksum::Ignore).unwrap();
    assert_eq!(decoded[0].payload, b"hdllo");
}

#[test]
fn exercise_decode_records_short_bodies_are_errors_not_panics() {
    let whole = records(&[record(5, 6, 7, b"hello"), record(6, 6, 8, b"world")]);
    for cut in [0, 3, 4, 20, 36, 40, whole.len() - 1] {
        let result = decode_records(&mut BodyReader::new(&whole[..cut]), Checksum::Verify);
        assert!(
            matches!(result, Err(RecordError::Body(_))),
            "cut at {cut}: {result:?}"
        );
    }
    // A payload length that lies.
    let mut lying = records(&[record(5, 6, 7, b"hello")]);
    lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let result = decode_records(&mut BodyReader::new(&lying), Checksum::Ignore);
    assert!(matches!(result, Err(RecordError::Body(_))), "{result:?}");
}

// choose_partition: explicit, round robin, by key.

#[test]
fn exercise_choose_partition_explicit_is_checked_against_the_count() {
    let counter = AtomicU32::new(0);
    assert_eq!(
        choose_partition(&Partitioning::Explicit(2), 3, &counter).unwrap(),
        2
    );
    let error = choose_partition(&Partitioning::Explicit(3), 3, &counter).unwrap_err();
    assert_eq!(error.status, u16::from(Status::PartitionNotFound));
}

#[test]
fn exercise_choose_partition_round_robin_takes_every_partition_in_turn() {
    let counter = AtomicU32::new(0);
    let chosen: Vec<u32> = (0..7)
        .map(|_| choose_partition(&Partitioning::RoundRobin, 3, &counter).unwrap())
        .collect();
    assert_eq!(chosen, [0, 1, 2, 0, 1, 2, 0]);
    let one = AtomicU32::new(u32::MAX); // and the counter wrapping around
    for _ in 0..3 {
        assert_eq!(
            choose_partition(&Partitioning::RoundRobin, 1, &one).unwrap(),
            0
        );
    }
}

#[test]
fn exercise_choose_partition_by_key_is_crc32c_of_the_key_modulo_the_count() {
    let counter = AtomicU32::new(0);
    for key in [&b"user-42"[..], b"", b"orders/eu"] {
        for count in [1, 4, 7] {
            let chosen = choose_partition(&Partitioning::Key(key.to_vec()), count, &counter);
            assert_eq!(
                chosen.unwrap(),
                crc32c::crc32c(key) % count,
                "{key:?} of {count}"
            );
        }
    }
}

// produce: a batch appended under its partition's lock.

fn messages(ids: std::ops::Range<u64>) -> Vec<Message> {
    ids.map(|id| Message::new(id, format!("message {id}").into_bytes()))
        .collect()
}

fn produced(body: &[u8]) -> (u32, u64, u32, bool) {
    match Response::decode(code::PRODUCE, body).unwrap() {
        Response::Produced {
            partition,
            first_offset,
            count,
            durable,
        } => (partition, first_offset, count, durable),
        other => panic!("a produce answers Produced, not {other:?}"),
    }
}

#[tokio::test]
async fn exercise_produce_appends_to_the_chosen_partition_and_answers_where() {
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::open(TopicsConfig::new(dir.path(), FsyncPolicy::Never))
        .await
        .unwrap();
    topics.create(1, 3).await.unwrap();
    let explicit = Partitioning::Explicit(1);
    let body = topics.produce(1, &explicit, messages(0..3)).await.unwrap();
    assert_eq!(produced(&body), (1, 0, 3, false));
    let body = topics.produce(1, &explicit, messages(3..5)).await.unwrap();
    assert_eq!(
        produced(&body),
        (1, 3, 2, false),
        "offsets go on per partition"
    );
    let body = topics
        .produce(1, &Partitioning::Explicit(2), messages(0..1))
        .await
        .unwrap();
    assert_eq!(
        produced(&body),
        (2, 0, 1, false),
        "each partition has its own"
    );
    let rr = Partitioning::RoundRobin;
    let firsts: Vec<u32> = [
        topics.produce(1, &rr, messages(0..1)).await.unwrap(),
        topics.produce(1, &rr, messages(0..1)).await.unwrap(),
    ]
    .iter()
    .map(|body| produced(body).0)
    .collect();
    assert_eq!(firsts, [0, 1]);
}

#[tokio::test]
async fn exercise_produce_names_what_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicsConfig::new(dir.path(), FsyncPolicy::Always);
    let topics = Topics::open(config).await.unwrap();
    topics.create(1, 2).await.unwrap();
    let body = topics
        .produce(1, &Partitioning::Explicit(0), messages(0..2))
        .await
        .unwrap();
    assert_eq!(produced(&body), (0, 0, 2, true), "Always answers durable");
    let error = topics
        .produce(9, &Partitioning::Explicit(0), messages(0..1))
        .await
        .unwrap_err();
    assert_eq!(error.status, u16::from(Status::TopicNotFound));
    let error = topics
        .produce(1, &Partitioning::Explicit(2), messages(0..1))
        .await
        .unwrap_err();
    assert_eq!(error.status, u16::from(Status::PartitionNotFound));
}
