//! Requests and responses against a real server on loopback.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::{Response, Status};
use stage3_tcp_server::{Client, ClientError};

fn batch(ids: std::ops::Range<u64>) -> Vec<Message> {
    ids.map(|id| Message::new(id, format!("message {id}").into_bytes()))
        .collect()
}

#[tokio::test]
async fn round_trip_create_append_poll() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Always).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_stream(1).await.unwrap();
    client.create_stream(1).await.unwrap(); // creating twice is fine

    let appended = client.append(1, batch(0..3)).await.unwrap();
    assert_eq!(
        appended,
        Response::Appended {
            first_offset: 0,
            count: 3,
            durable: true
        }
    );
    let appended = client.append(1, batch(3..5)).await.unwrap();
    assert!(matches!(
        appended,
        Response::Appended {
            first_offset: 3,
            count: 2,
            ..
        }
    ));

    let polled = client.poll(1, 1, 3).await.unwrap();
    let got: Vec<(u64, u64, String)> = polled
        .into_iter()
        .map(|m| (m.offset, m.id, String::from_utf8(m.payload).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1, "message 1".to_string()),
            (2, 2, "message 2".to_string()),
            (3, 3, "message 3".to_string())
        ]
    );
    assert!(client.poll(1, 5, 10).await.unwrap().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_trip_streams_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    for stream in [1, 2] {
        client.create_stream(stream).await.unwrap();
    }
    client.append(1, batch(0..4)).await.unwrap();
    client.append(2, batch(100..101)).await.unwrap();
    assert_eq!(client.poll(1, 0, 100).await.unwrap().len(), 4);
    let two = client.poll(2, 0, 100).await.unwrap();
    assert_eq!((two.len(), two[0].id, two[0].offset), (1, 100, 0));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_trip_unknown_stream_is_an_error_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    match client.append(9, batch(0..1)).await {
        Err(ClientError::Server { status, message }) => {
            assert_eq!(status, Status::StreamNotFound);
            assert!(message.contains("stream 9"), "{message}");
        }
        other => panic!("expected StreamNotFound, got {other:?}"),
    }
    client.create_stream(9).await.unwrap();
    client.append(9, batch(0..1)).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_trip_poll_is_capped_but_never_empty_when_data_exists() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_stream(1).await.unwrap();
    for chunk in 0..3 {
        client
            .append(1, batch(chunk * 500..(chunk + 1) * 500))
            .await
            .unwrap();
    }
    // The server returns at most 1000 messages per poll, whatever is asked.
    assert_eq!(client.poll(1, 0, u32::MAX).await.unwrap().len(), 1000);
    assert_eq!(client.poll(1, 1000, u32::MAX).await.unwrap().len(), 500);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_trip_shutdown_flushes_what_was_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_stream(3).await.unwrap();
    client.append(3, batch(0..7)).await.unwrap();
    server.shutdown().await.unwrap();

    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let mut client = Client::connect(server.addr()).await.unwrap();
    assert_eq!(client.poll(3, 0, 100).await.unwrap().len(), 7);
    server.shutdown().await.unwrap();
}
