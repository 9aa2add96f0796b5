//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 5` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. They build on
//! each other in the order of the chapter: a batch is validated with
//! `record_view_parse`, appended with `stamp`, read with `partition_read`,
//! and served by `zero_copy_poll`.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::path::Path;
use std::time::Instant;

use stage2_batching::{Config, FsyncPolicy};
use stage3_tcp_server::connection::ReplyBody;
use stage3_tcp_server::protocol::BodyError;
use stage4_partitions::protocol::Status;
use stage4_partitions::protocol::record::{RecordError, encode_record, encode_records};
use stage4_partitions::{Partitioning, TopicsConfig};
use stage5_zero_copy::partition::LOG_FILE;
use stage5_zero_copy::{Partition, ReceivedBatch, RecordView, Topics};

/// A producer's batch as it arrives, `ahead` bytes of request header first:
/// records with ids from `first_id`, offsets, timestamps and checksums 0.
fn body(ahead: usize, first_id: u64, payloads: &[&[u8]]) -> Vec<u8> {
    let mut bytes = vec![0xab; ahead];
    encode_records(
        &mut bytes,
        payloads
            .iter()
            .enumerate()
            .map(|(n, p)| (0, 0, first_id + n as u64, *p)),
    );
    bytes
}

// record_view_parse: one record, read where it lies.

#[test]
fn exercise_record_view_parse_reads_a_record_in_place() {
    let mut bytes = Vec::new();
    encode_record(&mut bytes, 5, 6, 7, b"hello");
    encode_record(&mut bytes, 8, 9, 10, b"");
    let (first, rest) = RecordView::parse(&bytes, 0).unwrap();
    assert_eq!((first.offset(), first.timestamp(), first.id()), (5, 6, 7));
    assert_eq!(first.payload(), b"hello");
    assert_eq!(
        first.as_bytes(),
        &bytes[..37],
        "the whole record, header and payload"
    );
    assert_eq!(
        first.payload().as_ptr(),
        bytes[32..].as_ptr(),
        "the payload is borrowed from the bytes, not copied"
    );
    assert_eq!(rest, &bytes[37..], "the rest starts at the next record");
    let (second, rest) = RecordView::parse(rest, 37).unwrap();
    assert_eq!((second.offset(), second.payload()), (8, &b""[..]));
    assert!(rest.is_empty());
}

#[test]
fn exercise_record_view_parse_a_short_header_or_payload_is_truncated() {
    let mut bytes = Vec::new();
    encode_record(&mut bytes, 5, 6, 7, b"hello");
    assert_eq!(
        RecordView::parse(&bytes[..31], 100).unwrap_err(),
        RecordError::Body(BodyError::Truncated {
            field: "record header",
            needed: 32,
            at: 100,
            available: 31
        })
    );
    assert_eq!(
        RecordView::parse(&bytes[..36], 100).unwrap_err(),
        RecordError::Body(BodyError::Truncated {
            field: "payload",
            needed: 5,
            at: 132,
            available: 4
        })
    );
    // A payload length of 4 GiB - 1: an error, not an overflow or a panic.
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        RecordView::parse(&bytes, 0),
        Err(RecordError::Body(BodyError::Truncated {
            field: "payload",
            ..
        }))
    ));
}

// stamp: the server's fields, written into the batch's own buffer.

#[test]
fn exercise_stamp_writes_offsets_timestamp_and_checksums_in_place() {
    let payloads: [&[u8]; 3] = [b"one", b"", b"three"];
    let mut batch = ReceivedBatch::validate(body(3, 42, &payloads), 3).unwrap();
    let before = batch.records().as_ptr();
    batch.stamp(100, 777);
    let mut expected = Vec::new();
    for ((n, id), payload) in (0..).zip(42..).zip(payloads) {
        encode_record(&mut expected, 100 + n, 777, id, payload);
    }
    assert_eq!(
        batch.records(),
        expected,
        "what stage 4 encodes, checksums included"
    );
    assert_eq!(
        batch.records().as_ptr(),
        before,
        "in place: the same buffer"
    );
    batch.view().verify().unwrap();
}

#[test]
fn exercise_stamp_changes_nothing_else() {
    let payloads: [&[u8]; 2] = [b"keep me", b"and me"];
    let original = body(5, 1, &payloads);
    let mut batch = ReceivedBatch::validate(original.clone(), 5).unwrap();
    batch.stamp(9, 1);
    let records = batch.records();
    let first_len = 32 + payloads[0].len();
    for (at, record) in [
        (0, &records[..first_len]),
        (first_len, &records[first_len..]),
    ] {
        let was = &original[5 + 4 + at..][..record.len()];
        assert_eq!(record[4..8], was[4..8], "the payload length");
        assert_eq!(record[24..], was[24..], "the id and the payload");
    }
    batch.stamp(20, 2);
    let view = batch.view();
    let offsets: Vec<u64> = view.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, [20, 21], "stamped again: the new offsets");
    view.verify().unwrap();
}

// partition_read: a byte range of the log, read as it is stored.

/// A partition holding records 0..5, payload sizes 10, 20, 30, 40, 50, and
/// the bytes of its log file.
fn five_records(dir: &Path) -> (Partition, Vec<u8>) {
    let config = Config::new(FsyncPolicy::Never);
    let mut partition = Partition::open(dir, config, Instant::now()).unwrap();
    let payloads: Vec<Vec<u8>> = (1..=5).map(|n| vec![n as u8; 10 * n]).collect();
    let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut batch = ReceivedBatch::validate(body(0, 0, &payloads), 0).unwrap();
    partition.append(&mut batch, 123, Instant::now()).unwrap();
    let log = std::fs::read(dir.join(LOG_FILE)).unwrap();
    (partition, log)
}

/// Where record `n` of [`five_records`] starts (each is 32 + 10 (n + 1) bytes).
fn start(n: usize) -> usize {
    (0..n).map(|k| 32 + 10 * (k + 1)).sum()
}

#[test]
fn exercise_partition_read_returns_the_records_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, log) = five_records(dir.path());
    let polled = partition.read(1, 3, usize::MAX).unwrap();
    assert_eq!(polled.count, 3);
    assert_eq!(
        polled.records,
        log[start(1)..start(4)],
        "records 1, 2 and 3"
    );
    let polled = partition.read(0, 100, usize::MAX).unwrap();
    assert_eq!((polled.count, polled.records), (5, log.clone()));
}

#[test]
fn exercise_partition_read_cuts_to_max_bytes_but_never_below_one() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, log) = five_records(dir.path());
    // Records 0 and 1 are 94 bytes, with record 2 156.
    for (max_bytes, count) in [(94, 2), (155, 2), (156, 3), (1, 1), (0, 1)] {
        let polled = partition.read(0, 5, max_bytes).unwrap();
        assert_eq!(polled.count, count, "max_bytes {max_bytes}");
        assert_eq!(
            polled.records,
            log[..start(count as usize)],
            "max_bytes {max_bytes}"
        );
    }
}

#[test]
fn exercise_partition_read_at_and_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, log) = five_records(dir.path());
    let last = partition.read(4, 10, usize::MAX).unwrap();
    assert_eq!((last.count, last.records), (1, log[start(4)..].to_vec()));
    for offset in [5, 6, u64::MAX] {
        let polled = partition.read(offset, 10, usize::MAX).unwrap();
        assert_eq!(
            (polled.count, polled.records.len()),
            (0, 0),
            "offset {offset}"
        );
    }
    assert_eq!(partition.read(0, 0, usize::MAX).unwrap().count, 0);
}

// zero_copy_poll: the reply is the bytes read, with a count in front.

#[tokio::test]
async fn exercise_zero_copy_poll_answers_the_stored_bytes_with_their_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TopicsConfig::new(dir.path(), FsyncPolicy::Never);
    config.max_poll_records = 3;
    let topics = Topics::open(config).await.unwrap();
    topics.create(1, 1).await.unwrap();
    let payloads: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddd", b"eeeee"];
    let batch = ReceivedBatch::validate(body(0, 0, &payloads), 0).unwrap();
    topics
        .produce(1, &Partitioning::Explicit(0), batch)
        .await
        .unwrap();
    let log = std::fs::read(dir.path().join("1/0").join(LOG_FILE)).unwrap();
    let reply = topics.poll(1, 0, 1, 10).await.unwrap();
    let first = 32 + 1;
    let three = first + 3 * 32 + 2 + 3 + 4;
    assert_eq!(
        reply,
        ReplyBody::counted(3, log[first..three].to_vec()),
        "at most max_poll_records, the bytes as they are in the log"
    );
    let reply = topics.poll(1, 0, 4, 10).await.unwrap();
    assert_eq!(reply, ReplyBody::counted(1, log[three..].to_vec()));
    let reply = topics.poll(1, 0, 5, 10).await.unwrap();
    assert_eq!(reply, ReplyBody::counted(0, Vec::new()));
}

#[tokio::test]
async fn exercise_zero_copy_poll_names_what_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::open(TopicsConfig::new(dir.path(), FsyncPolicy::Never))
        .await
        .unwrap();
    topics.create(1, 2).await.unwrap();
    let error = topics.poll(9, 0, 0, 10).await.unwrap_err();
    assert_eq!(error.status, u16::from(Status::TopicNotFound));
    let error = topics.poll(1, 2, 0, 10).await.unwrap_err();
    assert_eq!(error.status, u16::from(Status::PartitionNotFound));
}
