//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 3` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. The framing's
//! tests read from and write to memory, and need no other exercise done;
//! the streams' call `Streams` directly, and `stream_poll`'s append first,
//! so `stream_append` comes before it.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::frame::{
    Frame, FrameError, MAX_BODY_PARTS, read_frame, write_frame, write_frame_parts,
};
use stage3_tcp_server::protocol::{Response, Status};
use stage3_tcp_server::{Streams, StreamsConfig};
use tokio::io::AsyncWrite;

/// A frame's bytes, written out by hand: `frame_len`, code, correlation, body.
fn frame(code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = (6 + body.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&code.to_le_bytes());
    bytes.extend_from_slice(&correlation.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

// read_frame: one frame off a byte stream, its length checked first.

#[tokio::test]
async fn exercise_read_frame_reads_frames_one_after_another() {
    let mut bytes = frame(2, 77, b"hello");
    bytes.extend(frame(3, 78, b""));
    let mut reader = &bytes[..];
    let first = read_frame(&mut reader, 1024).await.unwrap();
    assert_eq!(
        first,
        Frame {
            code: 2,
            correlation: 77,
            body: b"hello".to_vec()
        }
    );
    let second = read_frame(&mut reader, 1024).await.unwrap();
    assert_eq!((second.code, second.correlation), (3, 78));
    assert!(second.body.is_empty());
    let end = read_frame(&mut reader, 1024).await;
    assert!(matches!(end, Err(FrameError::Closed)), "{end:?}");
}

#[tokio::test]
async fn exercise_read_frame_refuses_a_frame_over_the_limit_before_reading_it() {
    // A header that claims 4 GiB, and nothing after it: the refusal must
    // come from the header alone, before any body is allocated or read.
    let mut bytes = u32::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&9u32.to_le_bytes());
    let error = read_frame(&mut &bytes[..], 1024).await;
    assert!(
        matches!(
            error,
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: 1024,
                correlation: 9
            })
        ),
        "{error:?}"
    );
    // At the limit is fine.
    let body = vec![1; 1024 - 6];
    let at_limit = read_frame(&mut &frame(1, 1, &body)[..], 1024)
        .await
        .unwrap();
    assert_eq!(at_limit.body, body);
}

#[tokio::test]
async fn exercise_read_frame_refuses_a_length_shorter_than_code_and_correlation() {
    let mut bytes = frame(1, 5, b"");
    bytes[0] = 5; // frame_len 5: not even a code and a correlation
    let error = read_frame(&mut &bytes[..], 1024).await;
    assert!(
        matches!(error, Err(FrameError::TooShort { len: 5 })),
        "{error:?}"
    );
}

#[tokio::test]
async fn exercise_read_frame_an_end_inside_a_frame_is_an_error_not_a_close() {
    let bytes = frame(2, 77, b"hello");
    for cut in [1, 9, 10, 14] {
        let error = read_frame(&mut &bytes[..cut], 1024).await;
        assert!(
            matches!(&error, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "cut at {cut}: {error:?}"
        );
    }
}

// write_frame_parts: one frame from several slices, with vectored writes.

/// A writer that takes at most 3 bytes per call, as a full socket might.
#[derive(Default)]
struct Trickle {
    bytes: Vec<u8>,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(3);
        self.bytes.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A writer that takes nothing: a peer that is gone.
struct Full;

impl AsyncWrite for Full {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(0))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn exercise_write_frame_parts_sends_the_same_bytes_as_one_body() {
    let parts: [&[u8]; 3] = [b"count", b"", b"the records region"];
    let mut whole = Vec::new();
    write_frame(&mut whole, 12, 99, &parts.concat())
        .await
        .unwrap();
    assert_eq!(whole, frame(12, 99, &parts.concat()));
    let mut trickle = Trickle::default();
    write_frame_parts(&mut trickle, 12, 99, &parts)
        .await
        .unwrap();
    assert_eq!(trickle.bytes, whole, "every byte, in order, 3 at a time");
}

#[tokio::test]
async fn exercise_write_frame_parts_with_no_parts_is_a_header() {
    let mut trickle = Trickle::default();
    write_frame_parts(&mut trickle, 0, 1, &[]).await.unwrap();
    assert_eq!(trickle.bytes, [6, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
}

#[tokio::test]
async fn exercise_write_frame_parts_refuses_too_many_parts_and_a_writer_that_takes_nothing() {
    let parts = [&b"x"[..]; MAX_BODY_PARTS + 1];
    let error = write_frame_parts(&mut Trickle::default(), 0, 1, &parts)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let error = write_frame_parts(&mut Full, 0, 1, &[b"x"])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
}

// stream_append and stream_poll: a request's work under the stream's lock.

async fn open_streams(
    dir: &std::path::Path,
    config: impl FnOnce(&mut StreamsConfig),
) -> Arc<Streams> {
    let mut streams_config = StreamsConfig::new(dir, FsyncPolicy::Never);
    config(&mut streams_config);
    let streams = Streams::open(streams_config).await.unwrap();
    streams.create(1).await.unwrap();
    streams
}

fn messages(ids: std::ops::Range<u64>) -> Vec<Message> {
    ids.map(|id| Message::new(id, format!("message {id}").into_bytes()))
        .collect()
}

#[tokio::test]
async fn exercise_stream_append_answers_offsets_count_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open_streams(dir.path(), |_| {}).await;
    assert_eq!(
        streams.append(1, messages(0..3)).await.unwrap(),
        Response::Appended {
            first_offset: 0,
            count: 3,
            durable: false
        }
    );
    assert_eq!(
        streams.append(1, messages(3..5)).await.unwrap(),
        Response::Appended {
            first_offset: 3,
            count: 2,
            durable: false
        }
    );
    let error = streams.append(9, messages(0..1)).await.unwrap_err();
    assert_eq!(error.status, u16::from(Status::StreamNotFound));
    let dir = tempfile::tempdir().unwrap();
    let always = open_streams(dir.path(), |c| c.stream.fsync = FsyncPolicy::Always).await;
    let appended = always.append(1, messages(0..2)).await.unwrap();
    assert!(matches!(appended, Response::Appended { durable: true, .. }));
}

#[tokio::test]
async fn exercise_stream_append_waits_for_polls_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open_streams(dir.path(), |_| {}).await;
    // A poll in progress: the stream's read lock, held.
    let reading = streams.get(1).unwrap().read_owned().await;
    let appending = tokio::spawn({
        let streams = Arc::clone(&streams);
        async move { streams.append(1, messages(0..1)).await }
    });
    // However long this waits, an append that takes the write lock cannot
    // finish while the read lock is held.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !appending.is_finished(),
        "the append must wait for the poll"
    );
    drop(reading);
    let appended = appending.await.unwrap().unwrap();
    assert!(matches!(appended, Response::Appended { count: 1, .. }));
}

fn offsets(response: Response) -> Vec<u64> {
    match response {
        Response::Polled { messages } => messages.iter().map(|m| m.offset).collect(),
        other => panic!("a poll answers Polled, not {other:?}"),
    }
}

#[tokio::test]
async fn exercise_stream_poll_returns_at_most_max_poll_messages() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open_streams(dir.path(), |c| c.max_poll_messages = 3).await;
    streams.append(1, messages(0..5)).await.unwrap();
    assert_eq!(offsets(streams.poll(1, 0, 100).await.unwrap()), [0, 1, 2]);
    assert_eq!(offsets(streams.poll(1, 1, 2).await.unwrap()), [1, 2]);
    assert_eq!(offsets(streams.poll(1, 4, 100).await.unwrap()), [4]);
    assert!(offsets(streams.poll(1, 5, 100).await.unwrap()).is_empty());
    let error = streams.poll(9, 0, 1).await.unwrap_err();
    assert_eq!(error.status, u16::from(Status::StreamNotFound));
}

#[tokio::test]
async fn exercise_stream_poll_keeps_the_reply_within_max_poll_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // "message N" is 9 bytes, a record 20 + 9: room for two, not three.
    let streams = open_streams(dir.path(), |c| c.max_poll_bytes = 2 * 29 + 28).await;
    streams.append(1, messages(0..5)).await.unwrap();
    assert_eq!(offsets(streams.poll(1, 0, 100).await.unwrap()), [0, 1]);
    let dir = tempfile::tempdir().unwrap();
    let tiny = open_streams(dir.path(), |c| c.max_poll_bytes = 1).await;
    tiny.append(1, messages(0..5)).await.unwrap();
    assert_eq!(
        offsets(tiny.poll(1, 2, 100).await.unwrap()),
        [2],
        "never fewer than one"
    );
}

#[tokio::test]
async fn exercise_stream_poll_runs_beside_other_polls() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open_streams(dir.path(), |_| {}).await;
    streams.append(1, messages(0..2)).await.unwrap();
    // Another poll in progress: a poll shares the read lock with it. One
    // that took the write lock would wait for ever; the bound is only
    // reached by that mistake.
    let _reading = streams.get(1).unwrap().read_owned().await;
    let polled = tokio::time::timeout(Duration::from_secs(60), streams.poll(1, 0, 10))
        .await
        .expect("a poll must not wait for another poll");
    assert_eq!(offsets(polled.unwrap()), [0, 1]);
}
