//! Stage 4's protocol against a stage 5 server, through stage 4's own client:
//! the same requests get the same answers (partitioning, errors by status,
//! dense offsets under concurrency), records come back with valid checksums
//! and real timestamps, and the bytes on disk are the bytes on the wire.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use stage2_batching::FsyncPolicy;
use stage4_partitions::protocol::Status;
use stage4_partitions::protocol::record::{Record, encode_record};
use stage4_partitions::{Client, ClientError, Partitioning, TopicsConfig};
use stage5_zero_copy::partition::LOG_FILE;

fn ids(records: &[Record]) -> Vec<(u64, u64)> {
    records.iter().map(|r| (r.offset, r.id)).collect()
}

fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Option<Status>, String) {
    match result {
        Err(ClientError::Server { status, message }) => (status, message),
        other => panic!("expected a server error, got {other:?}"),
    }
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
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(1, 3).await.unwrap();
    for (partition, first_id) in [(2, 0), (0, 10), (2, 20)] {
        let produced = client
            .produce(
                1,
                Partitioning::Explicit(partition),
                common::messages(first_id, 4),
            )
            .await
            .unwrap();
        assert_eq!(produced.partition, partition);
    }
    assert_eq!(
        ids(&client.poll(1, 0, 0, 100).await.unwrap()),
        vec![(0, 10), (1, 11), (2, 12), (3, 13)]
    );
    assert!(client.poll(1, 1, 0, 100).await.unwrap().is_empty());
    let two = ids(&client.poll(1, 2, 0, 100).await.unwrap());
    assert_eq!(two.len(), 8);
    assert_eq!(two[4], (4, 20));

    client.create_topic(7, 3).await.unwrap();
    let mut placed = Vec::new();
    for n in 0..7 {
        let produced = client
            .produce(7, Partitioning::RoundRobin, common::messages(n, 1))
            .await
            .unwrap();
        placed.push(produced.partition);
    }
    assert_eq!(placed, vec![0, 1, 2, 0, 1, 2, 0]);

    client.create_topic(2, 5).await.unwrap();
    for key in ["user-1", "user-2", "order-77", "", "ü"] {
        let expected = crc32c::crc32c(key.as_bytes()) % 5;
        let produced = client
            .produce(
                2,
                Partitioning::Key(key.as_bytes().to_vec()),
                common::messages(0, 2),
            )
            .await
            .unwrap();
        assert_eq!(produced.partition, expected, "key {key:?}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn protocol_errors_have_stage4_statuses_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();

    let (status, message) = status_of(
        client
            .produce(9, Partitioning::RoundRobin, common::messages(0, 1))
            .await,
    );
    assert_eq!(status, Some(Status::TopicNotFound));
    assert!(message.contains("topic 9"), "{message}");

    client.create_topic(9, 2).await.unwrap();
    let (status, message) = status_of(
        client
            .produce(9, Partitioning::Explicit(2), common::messages(0, 1))
            .await,
    );
    assert_eq!(status, Some(Status::PartitionNotFound));
    assert!(message.contains("has 2"), "{message}");
    let (status, _) = status_of(client.poll(9, 5, 0, 1).await.map(|_| ()));
    assert_eq!(status, Some(Status::PartitionNotFound));
    let (status, _) = status_of(client.poll(8, 0, 0, 1).await.map(|_| ()));
    assert_eq!(status, Some(Status::TopicNotFound));

    let (status, message) = status_of(client.create_topic(9, 3).await);
    assert_eq!(status, Some(Status::Invalid));
    assert!(message.contains("exists with 2"), "{message}");
    let (status, _) = status_of(client.create_topic(10, 0).await);
    assert_eq!(status, Some(Status::Invalid));

    // After all those errors the connection still works.
    client
        .produce(9, Partitioning::Explicit(1), common::messages(0, 1))
        .await
        .unwrap();
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
    const PRODUCERS: u64 = 6;
    const BATCHES: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();
    Client::connect(addr)
        .await
        .unwrap()
        .create_topic(3, 4)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for producer in 0..PRODUCERS {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await.unwrap();
            let mut placed = Vec::new();
            for batch in 0..BATCHES {
                let first_id = producer * 1000 + batch * 2;
                let produced = client
                    .produce(3, Partitioning::RoundRobin, common::messages(first_id, 2))
                    .await
                    .unwrap();
                placed.push((produced, first_id));
            }
            placed
        }));
    }
    let mut per_partition = vec![BTreeSet::new(); 4];
    let mut expected_ids = vec![Vec::new(); 4];
    for task in tasks {
        for (produced, first_id) in task.await.unwrap() {
            let partition = produced.partition as usize;
            for n in 0..u64::from(produced.count) {
                assert!(
                    per_partition[partition].insert(produced.first_offset + n),
                    "offset given twice"
                );
                expected_ids[partition].push((produced.first_offset + n, first_id + n));
            }
        }
    }
    let total: usize = per_partition.iter().map(BTreeSet::len).sum();
    assert_eq!(total as u64, PRODUCERS * BATCHES * 2);
    let mut client = Client::connect(addr).await.unwrap();
    for (partition, mut expected) in expected_ids.into_iter().enumerate() {
        expected.sort();
        let stored = client.poll(3, partition as u32, 0, 1000).await.unwrap();
        // Dense from 0, and each offset holds the message its produce was told.
        assert_eq!(ids(&stored), expected);
    }
    server.shutdown().await.unwrap();
}
