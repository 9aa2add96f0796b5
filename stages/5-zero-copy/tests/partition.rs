//! The partition's rules, on the synchronous core with explicit times: stage
//! 2's fsync policies and watermarks with no buffer in front, a full log
//! refused whole, polls cut to their caps.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::time::{Duration, Instant};

use stage2_batching::{Config, FsyncPolicy, Status};
use stage4_partitions::protocol::record::encode_records;
use stage5_zero_copy::{BatchView, Error, Partition, ReceivedBatch};

const PAYLOAD: usize = 10;
const RECORD: usize = 32 + PAYLOAD;

fn batch(n: u64) -> ReceivedBatch {
    let payload = [7u8; PAYLOAD];
    let mut bytes = Vec::new();
    encode_records(
        &mut bytes,
        (0..n as u32).map(|id| (0, 0, u64::from(id), &payload[..])),
    );
    ReceivedBatch::validate(bytes, 0).unwrap()
}

/// A partition opened at `opened`, which counts as its last sync: every time a
/// test passes afterwards is measured from this instant, never from the clock.
fn partition(dir: &std::path::Path, fsync: FsyncPolicy, opened: Instant) -> Partition {
    let config = Config {
        flush_count: 10,
        flush_bytes: 1 << 20,
        ..Config::new(fsync)
    };
    Partition::open(dir, config, opened).unwrap()
}

fn status(durable: u64, next_offset: u64) -> Status {
    Status {
        durable,
        // No buffer: everything accepted is written.
        written: next_offset,
        next_offset,
    }
}

#[test]
fn fsync_always_is_durable_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = partition(dir.path(), FsyncPolicy::Always, Instant::now());
    for n in 0..3 {
        let appended = p.append(&mut batch(2), 1, Instant::now()).unwrap();
        assert_eq!(
            (appended.offsets, appended.durable),
            (2 * n..2 * n + 2, true)
        );
    }
    assert_eq!(p.status(), status(6, 6));
}

#[test]
fn fsync_every_batch_syncs_when_a_threshold_passes_and_the_saver_syncs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut p = partition(dir.path(), FsyncPolicy::EveryBatch, now);
    for _ in 0..3 {
        assert!(!p.append(&mut batch(3), 1, now).unwrap().durable);
    }
    assert_eq!(p.status(), status(0, 9));
    assert!(p.needs_tick(now));
    // The tenth message reaches flush_count: its answer is durable.
    assert!(p.append(&mut batch(1), 1, now).unwrap().durable);
    assert_eq!(p.status(), status(10, 10));
    assert!(!p.needs_tick(now));
    p.append(&mut batch(2), 1, now).unwrap();
    p.tick(now).unwrap();
    assert_eq!(p.status(), status(12, 12));
}

#[test]
fn fsync_every_batch_threshold_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        flush_count: 1000,
        flush_bytes: 3 * RECORD,
        ..Config::new(FsyncPolicy::EveryBatch)
    };
    let now = Instant::now();
    let mut p = Partition::open(dir.path(), config, now).unwrap();
    assert!(!p.append(&mut batch(2), 1, now).unwrap().durable);
    assert!(p.append(&mut batch(1), 1, now).unwrap().durable);
}

#[test]
fn fsync_interval_syncs_only_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_millis(100);
    // The open counts as the last sync, at `start`: the times below are
    // `start` plus what the test says, however long the open itself took.
    let start = Instant::now();
    let mut p = partition(dir.path(), FsyncPolicy::Interval(every), start);
    assert!(!p.append(&mut batch(20), 1, start).unwrap().durable);
    p.tick(start + every / 2).unwrap();
    assert_eq!(p.status(), status(0, 20));
    assert!(!p.needs_tick(start + every / 2));
    assert!(p.needs_tick(start + every));
    p.tick(start + every).unwrap();
    assert_eq!(p.status(), status(20, 20));
}

#[test]
fn fsync_never_never_syncs_but_flush_does() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut p = partition(dir.path(), FsyncPolicy::Never, now);
    assert!(!p.append(&mut batch(50), 1, now).unwrap().durable);
    p.tick(now + Duration::from_secs(3600)).unwrap();
    assert!(!p.needs_tick(now + Duration::from_secs(3600)));
    assert_eq!(p.status(), status(0, 50));
    p.flush(now).unwrap(); // what shutdown does
    assert_eq!(p.status(), status(50, 50));
}

#[test]
fn full_log_refuses_the_whole_batch_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(FsyncPolicy::Never);
    let mut p =
        Partition::open_with_limit(dir.path(), config, Instant::now(), 5 * RECORD as u64).unwrap();
    p.append(&mut batch(4), 1, Instant::now()).unwrap();
    match p.append(&mut batch(2), 1, Instant::now()) {
        Err(Error::LogFull { batch_len, .. }) => assert_eq!(batch_len, 2 * RECORD as u64),
        other => panic!("expected LogFull, got {other:?}"),
    }
    // Nothing of the refused batch was written; one more record still fits.
    assert_eq!(p.status(), status(0, 4));
    assert_eq!(
        p.append(&mut batch(1), 1, Instant::now()).unwrap().offsets,
        4..5
    );
}

#[test]
fn read_returns_the_stored_bytes_cut_to_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = partition(dir.path(), FsyncPolicy::Never, Instant::now());
    p.append(&mut batch(10), 42, Instant::now()).unwrap();
    let all = p.read(0, 100, usize::MAX).unwrap();
    assert_eq!((all.count, all.records.len()), (10, 10 * RECORD));
    let by_count = p.read(3, 4, usize::MAX).unwrap();
    assert_eq!(by_count.records, all.records[3 * RECORD..7 * RECORD]);
    let by_bytes = p.read(3, 100, 3 * RECORD + RECORD / 2).unwrap();
    assert_eq!(by_bytes.count, 3);
    assert_eq!(by_bytes.records, all.records[3 * RECORD..6 * RECORD]);
    // Never fewer than one, however small the byte cap.
    assert_eq!(p.read(9, 100, 1).unwrap().count, 1);
    assert_eq!(p.read(10, 100, usize::MAX).unwrap().count, 0);
    // What comes back is records, stamped, with valid checksums.
    let mut body = by_count.count.to_le_bytes().to_vec();
    body.extend_from_slice(&by_count.records);
    let view = BatchView::parse(&body).unwrap();
    view.verify().unwrap();
    let stamped: Vec<(u64, u64)> = view.iter().map(|r| (r.offset(), r.timestamp())).collect();
    assert_eq!(stamped, vec![(3, 42), (4, 42), (5, 42), (6, 42)]);
}
