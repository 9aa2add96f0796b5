//! Bad bytes from a raw socket: each gets an error response and a closed
//! connection, and a well-behaved client is served throughout.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::Client;
use stage3_tcp_server::protocol::frame::{DEFAULT_MAX_FRAME_LEN, read_frame};
use stage3_tcp_server::protocol::{PutLe, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(len: u32, code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.put_u32(len);
    bytes.put_u16(code);
    bytes.put_u32(correlation);
    bytes.extend_from_slice(body);
    bytes
}

/// How long to wait for an answer or a close that should take milliseconds:
/// the bound only turns a hang into a failure, so it is set for a busy machine.
const GENEROUS: Duration = Duration::from_secs(60);

/// Sends `bytes`, expects one error frame with `status`, then the server's close.
async fn expect_error_then_close(addr: SocketAddr, bytes: &[u8], status: Status) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let reply = tokio::time::timeout(GENEROUS, read_frame(&mut socket, DEFAULT_MAX_FRAME_LEN))
        .await
        .unwrap() // the server answers, rather than waiting for more bytes
        .unwrap();
    assert_eq!(Status::from_code(reply.code), Some(status));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(GENEROUS, socket.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "connection closed after the error"
    );
    String::from_utf8(reply.body).unwrap()
}

/// A well-behaved client appends and reads back, proving the server still serves.
async fn still_serves(addr: SocketAddr, id: u64) {
    let mut client = Client::connect(addr).await.unwrap();
    client.create_stream(1).await.unwrap();
    client
        .append(1, vec![Message::new(id, b"ok".to_vec())])
        .await
        .unwrap();
    let all = client.poll(1, 0, 1000).await.unwrap();
    assert_eq!(all.last().unwrap().id, id);
}

#[tokio::test]
async fn hostile_frames_get_errors_and_closed_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();
    still_serves(addr, 0).await;

    // A length prefix claiming 4 GiB: refused before any allocation.
    let message =
        expect_error_then_close(addr, &frame(u32::MAX, 2, 77, &[]), Status::FrameTooLarge).await;
    assert!(message.contains("limit"), "{message}");
    still_serves(addr, 1).await;

    // A frame too short to hold its own header.
    expect_error_then_close(addr, &frame(2, 0, 0, &[]), Status::Malformed).await;
    still_serves(addr, 2).await;

    // An unknown command code.
    let message =
        expect_error_then_close(addr, &frame(6, 999, 5, &[]), Status::UnknownCommand).await;
    assert!(message.contains("999"), "{message}");
    still_serves(addr, 3).await;

    // A poll body cut short (the frame is whole; its body is not a poll).
    expect_error_then_close(addr, &frame(6 + 3, 3, 6, &[1, 0, 0]), Status::Malformed).await;
    still_serves(addr, 4).await;

    // An append whose message count lies: a billion messages in 16 bytes.
    let mut body = Vec::new();
    body.put_u32(1);
    body.put_u32(1_000_000_000);
    body.extend_from_slice(&[0; 16]);
    let message =
        expect_error_then_close(addr, &frame(6 + 24, 2, 7, &body), Status::Malformed).await;
    assert!(message.contains("message count"), "{message}");
    still_serves(addr, 5).await;

    // An append whose payload length runs past the body.
    let mut body = Vec::new();
    body.put_u32(1);
    body.put_u32(1);
    body.put_u64(9);
    body.put_u32(1 << 20);
    body.extend_from_slice(b"tiny");
    let len = 6 + body.len() as u32;
    expect_error_then_close(addr, &frame(len, 2, 8, &body), Status::Malformed).await;
    still_serves(addr, 6).await;

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_half_frames_and_garbage_do_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();

    // A client that sends half a header and goes away, one that sends a header
    // promising a body and never sends it, and one that sends random bytes.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[10, 0]).await.unwrap();
    drop(half);
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&frame(1000, 2, 1, &[])).await.unwrap();
    let mut noisy = TcpStream::connect(addr).await.unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let _ = noisy.write_all(&garbage).await;

    // Meanwhile the server answers a normal client as usual.
    for id in 0..20 {
        still_serves(addr, id).await;
    }
    drop(stalled);
    server.shutdown().await.unwrap();
}
