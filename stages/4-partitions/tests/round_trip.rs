//! Records over the wire: checksums, concurrency across partitions, restarts.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod conformance;

use std::os::unix::process::ExitStatusExt;

use stage2_batching::FsyncPolicy;
use stage4_partitions::{Client, Partitioning};

#[tokio::test]
async fn round_trip_records_come_back_with_offsets_and_valid_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Always).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(1, 2).await.unwrap();
    let produced = client
        .produce(1, Partitioning::Explicit(1), common::messages(100, 3))
        .await
        .unwrap();
    assert_eq!(
        (produced.first_offset, produced.count, produced.durable),
        (0, 3, true)
    );
    // The client verifies every checksum while decoding; a bad one is an error.
    let records = client.poll(1, 1, 0, 10).await.unwrap();
    let got: Vec<(u64, u64, &[u8], u64)> = records
        .iter()
        .map(|r| (r.offset, r.id, r.payload.as_slice(), r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 100, &b"message 100"[..], 0),
            (1, 101, &b"message 101"[..], 0),
            (2, 102, &b"message 102"[..], 0)
        ]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_concurrent_producers_keep_each_partition_dense() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::concurrent_producers(server.addr()).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_trip_restart_after_sigkill_keeps_topics_and_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn_binary(dir.path(), "always");
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(5, 3).await.unwrap();
    for n in 0..9 {
        let produced = client
            .produce(5, Partitioning::RoundRobin, common::messages(n * 2, 2))
            .await
            .unwrap();
        assert!(produced.durable);
    }
    assert_eq!(server.kill().unwrap().signal(), Some(9));

    let server = common::spawn_binary(dir.path(), "always");
    let mut client = Client::connect(server.addr()).await.unwrap();
    for partition in 0..3 {
        let records = client.poll(5, partition, 0, 100).await.unwrap();
        assert_eq!(records.len(), 6, "partition {partition}");
    }
    // The topic still has 3 partitions: asking for 4 is refused.
    assert!(client.create_topic(5, 4).await.is_err());
    assert!(server.terminate().unwrap().success());
}
