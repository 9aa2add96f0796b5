//! The real binary, stopped two ways: data acknowledged before a SIGKILL
//! survives (stage 2's durability underneath), and SIGTERM flushes everything.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::os::unix::process::ExitStatusExt;

use stage1_file_log::Message;
use stage3_tcp_server::Client;
use stage3_tcp_server::protocol::Response;

fn batch(ids: std::ops::Range<u64>) -> Vec<Message> {
    ids.map(|id| Message::new(id, vec![id as u8; 64])).collect()
}

#[tokio::test]
async fn restart_after_sigkill_keeps_every_durable_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn_binary(dir.path(), "always");
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_stream(4).await.unwrap();
    for n in 0..20 {
        let appended = client.append(4, batch(n * 3..n * 3 + 3)).await.unwrap();
        assert!(matches!(appended, Response::Appended { durable: true, .. }));
    }
    assert_eq!(server.kill().unwrap().signal(), Some(9));

    let server = common::spawn_binary(dir.path(), "always");
    let mut client = Client::connect(server.addr()).await.unwrap();
    let messages = client.poll(4, 0, 1000).await.unwrap();
    assert_eq!(messages.len(), 60);
    assert!(
        messages
            .iter()
            .zip(0..)
            .all(|(m, n)| m.offset == n && m.id == n && m.payload == vec![n as u8; 64])
    );
    server.kill().unwrap();
}

#[tokio::test]
async fn restart_after_sigterm_keeps_even_unsynced_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn_binary(dir.path(), "never");
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_stream(1).await.unwrap();
    client.append(1, batch(0..5)).await.unwrap();
    assert!(
        server.terminate().unwrap().success(),
        "graceful shutdown exits 0"
    );

    let server = common::spawn_binary(dir.path(), "never");
    let mut client = Client::connect(server.addr()).await.unwrap();
    assert_eq!(client.poll(1, 0, 100).await.unwrap().len(), 5);
    server.kill().unwrap();
}
