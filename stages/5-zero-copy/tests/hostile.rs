//! Bad bytes: hostile frames get stage 4's errors and a closed connection
//! while a normal client keeps being served, and views over truncated, lying
//! or arbitrary buffers return errors, never panic or read out of bounds.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::BodyReader;
use stage3_tcp_server::protocol::PutLe;
use stage3_tcp_server::protocol::frame::{DEFAULT_MAX_FRAME_LEN, read_frame};
use stage4_partitions::protocol::record::{Checksum, Record, decode_records, encode_records};
use stage4_partitions::protocol::{Request as Stage4Request, Status, code};
use stage4_partitions::{Client, Partitioning};
use stage5_zero_copy::protocol::Request;
use stage5_zero_copy::{BatchView, ReceivedBatch};
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

async fn still_serves(client: &mut Client, id: u64) {
    client
        .produce(1, Partitioning::Explicit(0), [(id, b"ok".to_vec())])
        .await
        .unwrap();
    let records = client.poll(1, 0, 0, 1000).await.unwrap();
    assert_eq!(records.last().unwrap().id, id);
}

fn produce_body(payloads: &[Vec<u8>]) -> Vec<u8> {
    let records = payloads
        .iter()
        .enumerate()
        .map(|(n, payload)| Record {
            offset: 0,
            timestamp: 0,
            id: n as u64,
            payload: payload.clone(),
        })
        .collect();
    Stage4Request::Produce {
        topic: 1,
        partitioning: Partitioning::RoundRobin,
        records,
    }
    .encode()
    .1
}

#[tokio::test]
async fn hostile_frames_get_stage4_errors_and_a_normal_client_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();
    // One well-behaved client, connected throughout.
    let mut client = Client::connect(addr).await.unwrap();
    client.create_topic(1, 2).await.unwrap();
    still_serves(&mut client, 0).await;

    // A length prefix over the limit: refused before anything is allocated.
    let mut huge = Vec::new();
    huge.put_u32(DEFAULT_MAX_FRAME_LEN + 1);
    huge.put_u16(code::PRODUCE);
    huge.put_u32(1);
    expect_error_then_close(addr, &huge, Status::FrameTooLarge).await;
    still_serves(&mut client, 1).await;

    // Stage 3's append code is not a command here.
    expect_error_then_close(addr, &frame(2, 1, &[0; 8]), Status::UnknownCommand).await;
    still_serves(&mut client, 2).await;

    // A partitioning kind that does not exist.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(9);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 3, &body), Status::Malformed).await;
    assert!(message.contains("partitioning kind 9"), "{message}");
    still_serves(&mut client, 3).await;

    // A record count that lies.
    let mut body = Vec::new();
    body.put_u32(1);
    body.push(1);
    body.put_u32(u32::MAX);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 4, &body), Status::Malformed).await;
    assert!(message.contains("record count"), "{message}");
    still_serves(&mut client, 4).await;

    // A payload that runs past the body, and a body with a byte too many.
    let mut body = produce_body(&[vec![1; 100]]);
    body.truncate(body.len() - 50);
    let message =
        expect_error_then_close(addr, &frame(code::PRODUCE, 5, &body), Status::Malformed).await;
    assert!(message.contains("payload"), "{message}");
    let mut body = produce_body(&[vec![1; 10]]);
    body.push(0);
    expect_error_then_close(addr, &frame(code::PRODUCE, 6, &body), Status::Malformed).await;
    still_serves(&mut client, 5).await;

    // A poll body cut short.
    expect_error_then_close(addr, &frame(code::POLL, 7, &[1, 0, 0]), Status::Malformed).await;
    still_serves(&mut client, 6).await;

    // Nothing hostile reached the log: partition 0 holds exactly ids 0..=6.
    let ids: Vec<u64> = client
        .poll(1, 0, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, (0..=6).collect::<Vec<_>>());
    server.shutdown().await.unwrap();
}

/// Records as stage 4 encodes them: `count u32` and the records.
fn encoded(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_records(
        &mut bytes,
        payloads
            .iter()
            .enumerate()
            .map(|(n, p)| (n as u64, 7, 100 + n as u64, p.as_slice())),
    );
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_arbitrary_bytes_never_panic_a_view_or_decoder(
        code in 8u16..16,
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Ok(view) = BatchView::parse(&bytes) {
            // Whatever parses can be walked to the end, every byte accounted for.
            let walked: usize = view.iter().map(|r| r.as_bytes().len()).sum();
            prop_assert_eq!(walked + 4, bytes.len());
            prop_assert_eq!(view.iter().count(), view.count() as usize);
            let _ = view.verify();
        }
        let _ = ReceivedBatch::validate(bytes.clone(), 0);
        let _ = Request::decode(code, bytes);
    }

    #[test]
    fn hostile_every_truncation_and_any_lying_count_is_an_error(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
        lie in 1u32..1000,
    ) {
        let bytes = encoded(&payloads);
        prop_assert!(BatchView::parse(&bytes).is_ok());
        for cut in 0..bytes.len() {
            prop_assert!(BatchView::parse(&bytes[..cut]).is_err(), "cut at {}", cut);
        }
        // A count that is not the number of records there, higher or lower.
        let count = payloads.len() as u32;
        for wrong in [count + lie, count - 1] {
            let mut lying = bytes.clone();
            lying[..4].copy_from_slice(&wrong.to_le_bytes());
            prop_assert!(BatchView::parse(&lying).is_err(), "count {}", wrong);
        }
    }

    #[test]
    fn views_read_what_stage4_decodes(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let bytes = encoded(&payloads);
        let owned = decode_records(&mut BodyReader::new(&bytes), Checksum::Verify).unwrap();
        let view = BatchView::parse(&bytes).unwrap();
        view.verify().unwrap();
        let viewed: Vec<Record> = view.iter().map(|r| r.to_record()).collect();
        prop_assert_eq!(viewed, owned);
    }
}
