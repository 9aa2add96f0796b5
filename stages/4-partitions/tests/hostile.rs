//! Bad bytes against stage 4: each gets an error and a closed connection, a
//! well-behaved client is served throughout, and no byte string panics a decoder.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::PutLe;
use stage3_tcp_server::protocol::frame::{DEFAULT_MAX_FRAME_LEN, read_frame};
use stage4_partitions::protocol::{Request, Response, Status, code};
use stage4_partitions::{Client, Partitioning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.put_u32(6 + body.len() as u32);
    bytes.put_u16(code);
    bytes.put_u32(correlation);
    bytes.extend_from_slice(body);
    bytes
}

async fn expect_error_then_close(addr: SocketAddr, bytes: &[u8], status: Status) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let wait = Duration::from_secs(5);
    let reply = tokio::time::timeout(wait, read_frame(&mut socket, DEFAULT_MAX_FRAME_LEN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Status::from_code(reply.code), Some(status));
    let mut rest = Vec::new();
    assert!(matches!(
        tokio::time::timeout(wait, socket.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    ));
    String::from_utf8(reply.body).unwrap()
}

async fn still_serves(addr: SocketAddr, id: u64) {
    let mut client = Client::connect(addr).await.unwrap();
    client.create_topic(1, 2).await.unwrap();
    client
        .produce(1, Partitioning::Explicit(0), [(id, b"ok".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        client.poll(1, 0, 0, 1000).await.unwrap().last().unwrap().id,
        id
    );
}

#[tokio::test]
async fn hostile_requests_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();
    still_serves(addr, 0).await;

    // A length prefix over the limit.
    let mut huge = Vec::new();
    huge.put_u32(DEFAULT_MAX_FRAME_LEN + 1);
    huge.put_u16(code::PRODUCE);
    huge.put_u32(1);
    expect_error_then_close(addr, &huge, Status::FrameTooLarge).await;
    still_serves(addr, 1).await;

    // Stage 3's append code is not a stage 4 command.
    expect_error_then_close(addr, &frame(2, 1, &[0; 8]), Status::UnknownCommand).await;
    still_serves(addr, 2).await;

    // A partitioning kind that does not exist.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(9);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 3, &body), Status::Malformed).await;
    assert!(message.contains("partitioning kind 9"), "{message}");
    still_serves(addr, 3).await;

    // A record count that lies, and a record whose payload runs past the body.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(1);
    body.put_u32(u32::MAX);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 4, &body), Status::Malformed).await;
    assert!(message.contains("record count"), "{message}");
    let (_, mut body) = Request::Produce {
        topic: 1,
        partitioning: Partitioning::RoundRobin,
        records: vec![stage4_partitions::protocol::record::Record {
            offset: 0,
            timestamp: 0,
            id: 1,
            payload: vec![1; 100],
        }],
    }
    .encode();
    body.truncate(body.len() - 50);
    expect_error_then_close(addr, &frame(code::PRODUCE, 5, &body), Status::Malformed).await;
    still_serves(addr, 4).await;

    server.shutdown().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_arbitrary_bytes_never_panic_a_decoder(code in 0u16..16, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::decode(code, &body);
        let _ = Response::decode(code, &body);
    }

    #[test]
    fn hostile_valid_requests_survive_any_truncation(cut in 0usize..200, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let request = Request::Produce {
            topic: 1,
            partitioning: Partitioning::Key(b"k".to_vec()),
            records: vec![stage4_partitions::protocol::record::Record { offset: 0, timestamp: 0, id: 2, payload }],
        };
        let (code, body) = request.encode();
        prop_assert_eq!(Request::decode(code, &body), Some(Ok(request)));
        if cut < body.len() {
            prop_assert!(matches!(Request::decode(code, &body[..cut]), Some(Err(_))));
        }
    }
}
