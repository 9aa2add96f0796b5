//! Producer partitioning: explicit, round robin and key hash place batches
//! exactly as specified, and each partition keeps its own dense offsets.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use stage2_batching::FsyncPolicy;
use stage4_partitions::protocol::Status;
use stage4_partitions::{Client, ClientError, Partitioning};

#[tokio::test]
async fn partitioning_explicit_goes_where_it_is_told() {
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
    let ids = |records: Vec<stage4_partitions::protocol::record::Record>| {
        records.iter().map(|r| (r.offset, r.id)).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(client.poll(1, 0, 0, 100).await.unwrap()),
        vec![(0, 10), (1, 11), (2, 12), (3, 13)]
    );
    assert!(client.poll(1, 1, 0, 100).await.unwrap().is_empty());
    let two = ids(client.poll(1, 2, 0, 100).await.unwrap());
    assert_eq!(
        two.iter().map(|p| p.0).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(two[4], (4, 20));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitioning_round_robin_takes_partitions_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
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
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitioning_by_key_is_crc32c_of_the_key_modulo_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(2, 5).await.unwrap();
    for key in ["user-1", "user-2", "order-77", "", "ü"] {
        let expected = crc32c::crc32c(key.as_bytes()) % 5;
        for n in 0..3 {
            let produced = client
                .produce(
                    2,
                    Partitioning::Key(key.as_bytes().to_vec()),
                    common::messages(n, 2),
                )
                .await
                .unwrap();
            assert_eq!(produced.partition, expected, "key {key:?}");
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitioning_errors_name_what_is_wrong() {
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

fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Option<Status>, String) {
    match result {
        Err(ClientError::Server { status, message }) => (status, message),
        other => panic!("expected a server error, got {other:?}"),
    }
}
