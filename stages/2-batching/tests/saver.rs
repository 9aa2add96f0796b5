//! The background saver and shutdown, on Tokio's paused clock: `sleep` here
//! advances virtual time instantly, so a 5 s interval costs nothing to test.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::time::Duration;

use stage2_batching::{BatchingStream, Config, FsyncPolicy, Message, Status};

fn config(fsync: FsyncPolicy) -> Config {
    // The talk's 5 s saver and 1000-message batches: one message never fills one.
    Config::new(fsync)
}

fn status(durable: u64, written: u64, next_offset: u64) -> Status {
    Status {
        durable,
        written,
        next_offset,
    }
}

#[tokio::test(start_paused = true)]
async fn saver_flushes_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), config(FsyncPolicy::EveryBatch))
        .await
        .unwrap();
    let appended = stream
        .append(vec![Message::new(0, b"hi".to_vec())])
        .await
        .unwrap();
    assert!(!appended.durable);
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert_eq!(stream.status().unwrap(), status(0, 0, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stream.status().unwrap(), status(1, 1, 1));
    stream.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn saver_syncs_on_the_fsync_interval_and_writes_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Interval(Duration::from_secs(2));
    let stream = BatchingStream::open(1, dir.path(), config(policy))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(0, b"a".to_vec())])
        .await
        .unwrap();
    // The saver ticks every 2 s (the shorter of the two intervals): at the first
    // tick it writes, and 2 s have passed since open, so it syncs too.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert_eq!(stream.status().unwrap(), status(0, 0, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stream.status().unwrap(), status(1, 1, 1));
    stream.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn saver_never_syncs_under_fsync_never() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), config(FsyncPolicy::Never))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(0, b"a".to_vec())])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(stream.status().unwrap(), status(0, 1, 1));
    stream.shutdown().await.unwrap();
}

#[tokio::test]
async fn flush_waits_for_durability() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), config(FsyncPolicy::EveryBatch))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(0, b"a".to_vec())])
        .await
        .unwrap();
    stream.flush().await.unwrap();
    assert_eq!(stream.status().unwrap(), status(1, 1, 1));
    stream.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_flushes_and_syncs_everything_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), config(FsyncPolicy::Never))
        .await
        .unwrap();
    let batch = (0..7)
        .map(|n| Message::new(n, vec![n as u8; 100]))
        .collect();
    assert_eq!(stream.append(batch).await.unwrap().offsets, 0..7);
    assert_eq!(stream.status().unwrap(), status(0, 0, 7));
    stream.shutdown().await.unwrap();

    let reopened = BatchingStream::open(1, dir.path(), config(FsyncPolicy::Never))
        .await
        .unwrap();
    assert_eq!(reopened.status().unwrap(), status(7, 7, 7));
    let messages = reopened.poll(0, 100).await.unwrap();
    assert_eq!(messages.len(), 7);
    assert!(
        messages
            .iter()
            .all(|m| m.payload == vec![m.offset as u8; 100])
    );
}

#[tokio::test]
async fn poll_through_the_stream_sees_buffered_messages() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), config(FsyncPolicy::EveryBatch))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(9, b"x".to_vec())])
        .await
        .unwrap();
    let polled = stream.poll(0, 10).await.unwrap();
    assert_eq!((polled.len(), polled[0].id), (1, 9));
    stream.shutdown().await.unwrap();
}
