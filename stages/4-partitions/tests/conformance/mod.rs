//! The protocol of stages 4 to 6, as a client sees it: one set of checks run
//! against a stage 4, a stage 5 and a stage 6 server, so "byte-compatible"
//! is tested once and proved three times. Stages 5 and 6 include this file
//! from their tests (`#[path = ...] mod conformance;`) rather than copying it.
//!
//! Every check takes the address of a fresh server (no topics yet) and uses
//! its own topic ids, so checks can share a server.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part of this

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use stage3_tcp_server::protocol::PutLe;
use stage3_tcp_server::protocol::frame::{DEFAULT_MAX_FRAME_LEN, read_frame};
use stage4_partitions::protocol::record::Record;
use stage4_partitions::protocol::{Request, Status, code};
use stage4_partitions::{Client, ClientError, Partitioning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` messages with ids from `first`, payloads naming their id.
pub fn messages(first: u64, n: u64) -> Vec<(u64, Vec<u8>)> {
    (first..first + n)
        .map(|id| (id, format!("message {id}").into_bytes()))
        .collect()
}

/// (offset, id) of each record.
pub fn ids(records: &[Record]) -> Vec<(u64, u64)> {
    records.iter().map(|r| (r.offset, r.id)).collect()
}

/// The status and message of a server error; anything else fails the test.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Option<Status>, String) {
    match result {
        Err(ClientError::Server { status, message }) => (status, message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Explicit, round-robin and key partitioning place batches exactly as the
/// protocol reference says, and each partition keeps its own dense offsets.
/// Uses topics 1, 2 and 7.
pub async fn partitioning(addr: SocketAddr) {
    let mut client = Client::connect(addr).await.unwrap();
    client.create_topic(1, 3).await.unwrap();
    for (partition, first_id) in [(2, 0), (0, 10), (2, 20)] {
        let produced = client
            .produce(1, Partitioning::Explicit(partition), messages(first_id, 4))
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
    assert_eq!(
        two.iter().map(|p| p.0).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(two[4], (4, 20));

    client.create_topic(7, 3).await.unwrap();
    let mut placed = Vec::new();
    for n in 0..7 {
        let produced = client
            .produce(7, Partitioning::RoundRobin, messages(n, 1))
            .await
            .unwrap();
        placed.push(produced.partition);
    }
    assert_eq!(placed, vec![0, 1, 2, 0, 1, 2, 0]);

    client.create_topic(2, 5).await.unwrap();
    for key in ["user-1", "user-2", "order-77", "", "ü"] {
        let expected = crc32c::crc32c(key.as_bytes()) % 5;
        for n in 0..3 {
            let key = Partitioning::Key(key.as_bytes().to_vec());
            let produced = client.produce(2, key, messages(n, 2)).await.unwrap();
            assert_eq!(produced.partition, expected);
        }
    }
}

/// Errors carry the protocol's statuses and name what is wrong, and the
/// connection stays usable after them. Uses topics 8, 9 and 10.
pub async fn errors(addr: SocketAddr) {
    let mut client = Client::connect(addr).await.unwrap();
    let produce = client
        .produce(9, Partitioning::RoundRobin, messages(0, 1))
        .await;
    let (status, message) = status_of(produce);
    assert_eq!(status, Some(Status::TopicNotFound));
    assert!(message.contains("topic 9"), "{message}");

    client.create_topic(9, 2).await.unwrap();
    let produce = client
        .produce(9, Partitioning::Explicit(2), messages(0, 1))
        .await;
    let (status, message) = status_of(produce);
    assert_eq!(status, Some(Status::PartitionNotFound));
    assert!(message.contains("has 2"), "{message}");
    assert_eq!(
        status_of(client.poll(9, 5, 0, 1).await).0,
        Some(Status::PartitionNotFound)
    );
    assert_eq!(
        status_of(client.poll(8, 0, 0, 1).await).0,
        Some(Status::TopicNotFound)
    );

    let (status, message) = status_of(client.create_topic(9, 3).await);
    assert_eq!(status, Some(Status::Invalid));
    assert!(message.contains("exists with 2"), "{message}");
    assert_eq!(
        status_of(client.create_topic(10, 0).await).0,
        Some(Status::Invalid)
    );

    client
        .produce(9, Partitioning::Explicit(1), messages(0, 1))
        .await
        .unwrap();
}

/// Six producers round-robining over four partitions: every batch gets its own
/// offsets and each partition's offsets are dense. Uses topic 3.
pub async fn concurrent_producers(addr: SocketAddr) {
    const PRODUCERS: u64 = 6;
    const BATCHES: u64 = 30;
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
                    .produce(3, Partitioning::RoundRobin, messages(first_id, 2))
                    .await
                    .unwrap();
                placed.push(produced);
            }
            placed
        }));
    }
    let mut per_partition = vec![BTreeSet::new(); 4];
    for task in tasks {
        for produced in task.await.unwrap() {
            for offset in produced.first_offset..produced.first_offset + u64::from(produced.count) {
                assert!(
                    per_partition[produced.partition as usize].insert(offset),
                    "offset given twice"
                );
            }
        }
    }
    let total: usize = per_partition.iter().map(BTreeSet::len).sum();
    assert_eq!(total as u64, PRODUCERS * BATCHES * 2);
    let mut client = Client::connect(addr).await.unwrap();
    for (partition, offsets) in per_partition.iter().enumerate() {
        assert_eq!(
            offsets.iter().copied().collect::<Vec<_>>(),
            (0..offsets.len() as u64).collect::<Vec<_>>()
        );
        let stored = client.poll(3, partition as u32, 0, 1000).await.unwrap();
        assert_eq!(stored.len(), offsets.len());
    }
}

/// A frame with a correct length prefix around `body`.
pub fn frame(code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.put_u32(6 + body.len() as u32);
    bytes.put_u16(code);
    bytes.put_u32(correlation);
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` on a new connection, expects one error frame with `status`
/// and then the server's close; returns the error message.
pub async fn expect_error_then_close(addr: SocketAddr, bytes: &[u8], status: Status) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    // Only turns a hang into a failure (an answer takes milliseconds), so it
    // is set for a busy machine, not a quiet one.
    let wait = Duration::from_secs(60);
    let reply = tokio::time::timeout(wait, read_frame(&mut socket, DEFAULT_MAX_FRAME_LEN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Status::from_code(reply.code), Some(status));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(wait, socket.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "connection closed after the error"
    );
    String::from_utf8(reply.body).unwrap()
}

/// A well-behaved client produces to topic 1 and reads its record back.
pub async fn still_serves(client: &mut Client, id: u64) {
    client
        .produce(1, Partitioning::Explicit(0), [(id, b"ok".to_vec())])
        .await
        .unwrap();
    let records = client.poll(1, 0, 0, 1000).await.unwrap();
    assert_eq!(records.last().unwrap().id, id);
}

/// Hostile frames each get an error response and a closed connection, while a
/// well-behaved client on its own connection keeps being served, and nothing
/// hostile reaches the log. Uses topic 1.
pub async fn hostile(addr: SocketAddr) {
    let mut client = Client::connect(addr).await.unwrap();
    client.create_topic(1, 2).await.unwrap();
    still_serves(&mut client, 0).await;

    // A length prefix over the limit: refused before anything is allocated.
    let mut huge = Vec::new();
    huge.put_u32(u32::MAX);
    huge.put_u16(code::PRODUCE);
    huge.put_u32(1);
    expect_error_then_close(addr, &huge, Status::FrameTooLarge).await;
    // Shorter than its own code and correlation.
    let mut short = Vec::new();
    short.put_u32(2);
    short.extend_from_slice(&[0; 6]);
    expect_error_then_close(addr, &short, Status::Malformed).await;
    // Stage 3's append code is not a command of this protocol.
    expect_error_then_close(addr, &frame(2, 1, &[0; 8]), Status::UnknownCommand).await;
    still_serves(&mut client, 1).await;

    // A partitioning kind that does not exist.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(9);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 3, &body), Status::Malformed).await;
    assert!(message.contains("partitioning"), "{message}");
    // A record count that lies (the status is the protocol's; the wording of
    // the message is each server's own).
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(1);
    body.put_u32(u32::MAX);
    expect_error_then_close(addr, &frame(code::PRODUCE, 4, &body), Status::Malformed).await;
    // A record whose payload length runs past the body.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(1);
    body.put_u32(1);
    body.extend_from_slice(&[0; 4]);
    body.put_u32(1000);
    body.extend_from_slice(&[0; 24]);
    expect_error_then_close(addr, &frame(code::PRODUCE, 5, &body), Status::Malformed).await;
    // A valid produce body with one byte too many.
    let (_, mut body) = Request::Produce {
        topic: 1,
        partitioning: Partitioning::RoundRobin,
        records: vec![Record {
            offset: 0,
            timestamp: 0,
            id: 9,
            payload: vec![1; 10],
        }],
    }
    .encode();
    body.push(0);
    expect_error_then_close(addr, &frame(code::PRODUCE, 6, &body), Status::Malformed).await;
    // A poll body cut short.
    expect_error_then_close(addr, &frame(code::POLL, 7, &[1, 0, 0]), Status::Malformed).await;
    still_serves(&mut client, 2).await;

    // Nothing hostile reached the log.
    let records = client.poll(1, 0, 0, 1000).await.unwrap();
    assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2]);
}
