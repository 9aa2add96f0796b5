//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 2` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. Every message
//! goes in through `append`, so the later exercises' tests need
//! `flush_decision` done first. The batcher's tests pass the time in; the
//! saver's run on Tokio's paused clock: no test waits for real time.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::path::Path;
use std::time::{Duration, Instant};

use stage1_file_log::HEADER_LEN;
use stage2_batching::{Batcher, BatchingStream, Config, FsyncPolicy, Message, Status};

/// A batcher that writes a batch at 10 messages (or 1 MiB), opened at `opened`.
fn batcher(dir: &Path, fsync: FsyncPolicy, opened: Instant) -> Batcher {
    let config = Config {
        flush_count: 10,
        ..Config::new(fsync)
    };
    Batcher::open(1, dir, config, opened).unwrap()
}

fn one(id: u64) -> Vec<Message> {
    vec![Message::new(id, vec![id as u8; 10])]
}

fn status(durable: u64, written: u64, next_offset: u64) -> Status {
    Status {
        durable,
        written,
        next_offset,
    }
}

// flush_decision: what an append does once its messages are buffered.

#[test]
fn exercise_flush_decision_every_batch_writes_and_syncs_when_the_count_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, now);
    for id in 0..9 {
        assert!(!b.append(one(id), now).unwrap().durable, "message {id}");
    }
    assert_eq!(b.status(), status(0, 0, 9), "nine messages stay buffered");
    let tenth = b.append(one(9), now).unwrap();
    assert_eq!((tenth.offsets, tenth.durable), (9..10, true));
    assert_eq!(
        b.status(),
        status(10, 10, 10),
        "the tenth writes and syncs all ten"
    );
}

#[test]
fn exercise_flush_decision_the_bytes_threshold_counts_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        flush_count: 1000,
        flush_bytes: 3 * (HEADER_LEN + 10),
        ..Config::new(FsyncPolicy::EveryBatch)
    };
    let now = Instant::now();
    let mut b = Batcher::open(1, dir.path(), config, now).unwrap();
    b.append(one(0), now).unwrap();
    b.append(one(1), now).unwrap();
    assert_eq!(b.status(), status(0, 0, 2));
    assert!(b.append(one(2), now).unwrap().durable);
    assert_eq!(b.status(), status(3, 3, 3), "three records are flush_bytes");
}

#[test]
fn exercise_flush_decision_always_syncs_before_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::Always, now);
    for id in 0..3 {
        let appended = b.append(one(id), now).unwrap();
        assert_eq!((appended.offsets, appended.durable), (id..id + 1, true));
        assert_eq!(b.status(), status(id + 1, id + 1, id + 1));
    }
}

#[test]
fn exercise_flush_decision_interval_and_never_write_a_full_batch_without_syncing() {
    for policy in [
        FsyncPolicy::Interval(Duration::from_secs(1)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        let mut b = batcher(dir.path(), policy, now);
        for id in 0..9 {
            b.append(one(id), now).unwrap();
        }
        assert_eq!(
            b.status(),
            status(0, 0, 9),
            "{policy:?}: below the threshold"
        );
        assert!(!b.append(one(9), now).unwrap().durable, "{policy:?}");
        assert_eq!(
            b.status(),
            status(0, 10, 10),
            "{policy:?}: written, not synced"
        );
    }
}

// fsync_due: the saver's step under FsyncPolicy::Interval.

#[test]
fn exercise_fsync_due_writes_at_every_tick_and_syncs_once_the_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let mut b = batcher(
        dir.path(),
        FsyncPolicy::Interval(Duration::from_secs(2)),
        t0,
    );
    b.append(one(0), t0).unwrap();
    b.tick(at(1000)).unwrap();
    assert_eq!(
        b.status(),
        status(0, 1, 1),
        "1 s after open: written, not synced"
    );
    b.tick(at(2000)).unwrap();
    assert_eq!(b.status(), status(1, 1, 1), "2 s after open: synced");
}

#[test]
fn exercise_fsync_due_counts_the_interval_from_the_last_sync() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let mut b = batcher(
        dir.path(),
        FsyncPolicy::Interval(Duration::from_secs(2)),
        t0,
    );
    // Nothing to sync at 2 s: the interval has passed, but there is no sync
    // to make, so the last sync stays the open, and 2.5 s syncs at once.
    b.tick(at(2000)).unwrap();
    b.append(one(0), at(2100)).unwrap();
    b.tick(at(2500)).unwrap();
    assert_eq!(b.status(), status(1, 1, 1), "2.5 s after the last sync");
    // From that sync at 2.5 s, the next is due at 4.5 s, not before.
    b.append(one(1), at(3000)).unwrap();
    b.tick(at(4000)).unwrap();
    assert_eq!(b.status(), status(1, 2, 2), "1.5 s after the last sync");
    b.tick(at(4500)).unwrap();
    assert_eq!(b.status(), status(2, 2, 2), "2 s after the last sync");
}

// buffered_poll: reading across the file and the buffer.

#[test]
fn exercise_buffered_poll_reads_the_file_then_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, now);
    for id in 0..13 {
        b.append(one(id), now).unwrap();
    }
    assert_eq!(
        b.status(),
        status(10, 10, 13),
        "ten in the file, three buffered"
    );
    let offsets =
        |messages: Vec<Message>| -> Vec<u64> { messages.iter().map(|m| m.offset).collect() };
    assert_eq!(offsets(b.poll(8, 4).unwrap()), [8, 9, 10, 11]);
    assert_eq!(
        offsets(b.poll(0, 100).unwrap()),
        (0..13).collect::<Vec<_>>()
    );
    assert_eq!(offsets(b.poll(11, 5).unwrap()), [11, 12]);
    assert_eq!(offsets(b.poll(2, 3).unwrap()), [2, 3, 4]);
    let message = &b.poll(12, 1).unwrap()[0];
    assert_eq!((message.id, &message.payload[..]), (12, &[12u8; 10][..]));
}

#[test]
fn exercise_buffered_poll_at_or_past_the_end_and_huge_counts() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, now);
    for id in 0..13 {
        b.append(one(id), now).unwrap();
    }
    assert!(b.poll(13, 10).unwrap().is_empty());
    assert!(b.poll(100, 10).unwrap().is_empty());
    assert!(b.poll(5, 0).unwrap().is_empty());
    assert_eq!(
        b.poll(5, u64::MAX).unwrap().len(),
        8,
        "offset + count overflows"
    );
    assert_eq!(b.poll(11, u64::MAX).unwrap().len(), 2);
}

// saver: the background task.

#[tokio::test(start_paused = true)]
async fn exercise_saver_writes_and_syncs_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), Config::new(FsyncPolicy::EveryBatch))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(0, b"hi".to_vec())])
        .await
        .unwrap();
    // The talk's 5 s saver: nothing at 4.9 s, everything at 5.1 s.
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert_eq!(stream.status().unwrap(), status(0, 0, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stream.status().unwrap(), status(1, 1, 1));
    // And again for the next message, at the next tick.
    stream
        .append(vec![Message::new(1, b"again".to_vec())])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(stream.status().unwrap(), status(2, 2, 2));
    stream.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn exercise_saver_ticks_at_the_fsync_interval_when_it_is_shorter() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FsyncPolicy::Interval(Duration::from_secs(2));
    let stream = BatchingStream::open(1, dir.path(), Config::new(policy))
        .await
        .unwrap();
    stream
        .append(vec![Message::new(0, b"a".to_vec())])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert_eq!(stream.status().unwrap(), status(0, 0, 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stream.status().unwrap(), status(1, 1, 1));
    stream.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn exercise_saver_stops_when_the_stream_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let stream = BatchingStream::open(1, dir.path(), Config::new(FsyncPolicy::EveryBatch))
        .await
        .unwrap();
    // Tokio's clock is paused: a saver that never returns would tick on
    // forever in no time, and this timeout, in paused time, would end it.
    tokio::time::timeout(Duration::from_secs(3600), stream.shutdown())
        .await
        .expect("shutdown waits for the saver to stop, and it never did")
        .unwrap();
}
