//! When buffered messages are written and synced, policy by policy. These run
//! on the synchronous core with explicit times: no sleeps, no flakiness.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::time::{Duration, Instant};

use stage1_file_log::HEADER_LEN;
use stage2_batching::{Batcher, Config, FsyncPolicy, Message, Status};

/// A batcher opened at `opened`, which counts as its last sync: a test's
/// times are measured from this instant, never from the clock.
fn batcher(dir: &std::path::Path, fsync: FsyncPolicy, opened: Instant) -> Batcher {
    let config = Config {
        flush_count: 10,
        flush_bytes: 1 << 20,
        ..Config::new(fsync)
    };
    Batcher::open(1, dir, config, opened).unwrap()
}

fn one(n: u64) -> Vec<Message> {
    vec![Message::new(n, vec![n as u8; 10])]
}

fn status(durable: u64, written: u64, next_offset: u64) -> Status {
    Status {
        durable,
        written,
        next_offset,
    }
}

#[test]
fn threshold_count_writes_exactly_when_reached() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, now);
    for n in 0..9 {
        assert!(!b.append(one(n), now).unwrap().durable);
    }
    assert_eq!(b.status(), status(0, 0, 9));
    let tenth = b.append(one(9), now).unwrap();
    assert_eq!((tenth.offsets, tenth.durable), (9..10, true));
    assert_eq!(b.status(), status(10, 10, 10));
}

#[test]
fn threshold_bytes_writes_exactly_when_reached() {
    let dir = tempfile::tempdir().unwrap();
    let record = HEADER_LEN + 10;
    let config = Config {
        flush_count: 1000,
        flush_bytes: 3 * record,
        ..Config::new(FsyncPolicy::EveryBatch)
    };
    let now = Instant::now();
    let mut b = Batcher::open(1, dir.path(), config, now).unwrap();
    b.append(one(0), now).unwrap();
    b.append(one(1), now).unwrap();
    assert_eq!(b.status(), status(0, 0, 2));
    b.append(one(2), now).unwrap();
    assert_eq!(b.status(), status(3, 3, 3));
}

#[test]
fn threshold_one_big_batch_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, Instant::now());
    let batch = (0..25).map(|n| Message::new(n, vec![1; 3])).collect();
    let appended = b.append(batch, Instant::now()).unwrap();
    assert_eq!((appended.offsets, appended.durable), (0..25, true));
}

#[test]
fn fsync_always_syncs_before_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = batcher(dir.path(), FsyncPolicy::Always, Instant::now());
    let appended = b.append(one(0), Instant::now()).unwrap();
    assert!(appended.durable);
    assert_eq!(b.status(), status(1, 1, 1));
}

#[test]
fn fsync_never_writes_at_the_threshold_but_never_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::Never, now);
    for n in 0..10 {
        b.append(one(n), now).unwrap();
    }
    assert_eq!(b.status(), status(0, 10, 10));
    b.tick(now + Duration::from_secs(3600)).unwrap();
    assert_eq!(b.status(), status(0, 10, 10));
    // Only an explicit flush (or shutdown) syncs.
    b.flush(now).unwrap();
    assert_eq!(b.status(), status(10, 10, 10));
}

#[test]
fn fsync_interval_syncs_only_once_the_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_millis(100);
    let start = Instant::now();
    let mut b = Batcher::open(
        1,
        dir.path(),
        Config {
            flush_count: 10,
            ..Config::new(FsyncPolicy::Interval(every))
        },
        start,
    )
    .unwrap();
    for n in 0..12 {
        b.append(one(n), start).unwrap();
    }
    assert_eq!(b.status(), status(0, 10, 12));
    // A saver tick before the interval writes the rest but does not sync.
    b.tick(start + every / 2).unwrap();
    assert_eq!(b.status(), status(0, 12, 12));
    b.tick(start + every).unwrap();
    assert_eq!(b.status(), status(12, 12, 12));
}

#[test]
fn poll_sees_unflushed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::EveryBatch, now);
    for n in 0..15 {
        b.append(one(n), now).unwrap();
    }
    assert_eq!(b.status(), status(10, 10, 15));
    // Straddling the file and the buffer, inside the buffer, past the end.
    for (offset, count, expected) in [
        (8, 5, 8..13),
        (11, 2, 11..13),
        (0, 100, 0..15),
        (15, 5, 15..15),
    ] {
        let polled = b.poll(offset, count).unwrap();
        let offsets: Vec<u64> = polled.iter().map(|m| m.offset).collect();
        assert_eq!(
            offsets,
            expected.clone().collect::<Vec<_>>(),
            "{offset} {count}"
        );
        assert!(polled.iter().all(|m| m.payload == vec![m.offset as u8; 10]));
    }
}

#[test]
fn reopen_after_flush_keeps_everything_and_starts_durable() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut b = batcher(dir.path(), FsyncPolicy::Never, now);
    for n in 0..4 {
        b.append(one(n), now).unwrap();
    }
    b.flush(now).unwrap();
    drop(b);
    let b = batcher(dir.path(), FsyncPolicy::Never, Instant::now());
    assert_eq!(b.status(), status(4, 4, 4));
    assert_eq!(b.poll(0, 10).unwrap().len(), 4);
}

#[test]
fn bad_config_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        flush_count: 0,
        ..Config::new(FsyncPolicy::EveryBatch)
    };
    let error = Batcher::open(1, dir.path(), config, Instant::now()).unwrap_err();
    assert!(error.to_string().contains("flush_count"), "{error}");
}
