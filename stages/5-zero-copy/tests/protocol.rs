//! Stage 4's protocol against a stage 5 server, through stage 4's own client:
//! the same requests get the same answers (partitioning, errors by status,
//! dense offsets under concurrency), records come back with valid checksums
//! and real timestamps, and the bytes on disk are the bytes on the wire.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
#[path = "../../4-partitions/tests/conformance/mod.rs"]
mod conformance;

use std::time::{SystemTime, UNIX_EPOCH};

use stage2_batching::FsyncPolicy;

use stage4_partitions::protocol::record::{Record, encode_record};
use stage4_partitions::{Client, Partitioning, TopicsConfig};
use stage5_zero_copy::partition::LOG_FILE;

fn ids(records: &[Record]) -> Vec<(u64, u64)> {
    records.iter().map(|r| (r.offset, r.id)).collect()
}

#[tokio::test]
async fn protocol_round_trip_stamps_offsets_timestamps_and_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Always).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(1, 2).await.unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let produced = client
        .produce(1, Partitioning::Explicit(1), common::messages(100, 3))
        .await
        .unwrap();
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(
        (produced.first_offset, produced.count, produced.durable),
        (0, 3, true)
    );
    // Stage 4's client verifies every checksum while decoding.
    let records = client.poll(1, 1, 0, 10).await.unwrap();
    assert_eq!(ids(&records), vec![(0, 100), (1, 101), (2, 102)]);
    for record in &records {
        assert_eq!(record.payload, common::payload(record.id));
        // Real time here (stage 4 sent 0): µs since the epoch, taken during the produce.
        assert!((before.as_micros()..=after.as_micros()).contains(&u128::from(record.timestamp)));
    }
    // Offsets go on from where they were; a poll from the middle starts there.
    client
        .produce(1, Partitioning::Explicit(1), common::messages(103, 2))
        .await
        .unwrap();
    assert_eq!(
        ids(&client.poll(1, 1, 3, 10).await.unwrap()),
        vec![(3, 103), (4, 104)]
    );
    assert!(client.poll(1, 1, 5, 10).await.unwrap().is_empty());
    assert!(client.poll(1, 0, 0, 10).await.unwrap().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn protocol_disk_bytes_are_the_wire_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(4, 1).await.unwrap();
    client
        .produce(4, Partitioning::RoundRobin, common::messages(7, 5))
        .await
        .unwrap();
    let records = client.poll(4, 0, 0, 10).await.unwrap();
    server.shutdown().await.unwrap();
    // The log holds exactly stage 4's encoding of what the poll returned.
    let mut expected = Vec::new();
    for r in &records {
        encode_record(&mut expected, r.offset, r.timestamp, r.id, &r.payload);
    }
    let log = std::fs::read(dir.path().join("4").join("0").join(LOG_FILE)).unwrap();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn protocol_partitioning_explicit_round_robin_and_key_as_in_stage4() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::partitioning(server.addr()).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn protocol_errors_have_stage4_statuses_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::errors(server.addr()).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn protocol_poll_respects_the_record_and_byte_caps() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TopicsConfig::new(dir.path(), FsyncPolicy::Never);
    config.max_poll_records = 10;
    let record_len = |id: u64| 32 + common::payload(id).len();
    // Room for records 0, 1 and 2, and not for 3.
    config.max_poll_bytes = (0..3).map(record_len).sum::<usize>() + record_len(3) - 1;
    let server = common::start_with(config).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(1, 1).await.unwrap();
    client
        .produce(1, Partitioning::Explicit(0), common::messages(0, 30))
        .await
        .unwrap();
    assert_eq!(client.poll(1, 0, 0, 100).await.unwrap().len(), 3);
    assert_eq!(client.poll(1, 0, 0, 2).await.unwrap().len(), 2);
    // Records 20..30 are shorter than 0..3 (their payloads vary): the byte cap
    // then lets the record cap of 10 decide.
    let late = client.poll(1, 0, 20, 100).await.unwrap();
    assert_eq!(ids(&late)[0], (20, 20));
    assert!(late.len() <= 10);
    server.shutdown().await.unwrap();

    // A record larger than the byte cap still comes back, alone.
    let dir = tempfile::tempdir().unwrap();
    let mut config = TopicsConfig::new(dir.path(), FsyncPolicy::Never);
    config.max_poll_bytes = 10;
    let server = common::start_with(config).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(1, 1).await.unwrap();
    client
        .produce(1, Partitioning::Explicit(0), common::messages(0, 3))
        .await
        .unwrap();
    assert_eq!(ids(&client.poll(1, 0, 1, 100).await.unwrap()), vec![(1, 1)]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_concurrent_producers_keep_each_partition_dense() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::concurrent_producers(server.addr()).await;
    server.shutdown().await.unwrap();
}
