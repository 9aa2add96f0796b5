//! Retention: whole sealed segments deleted by size and by age, oldest first,
//! never the active one; polls of deleted offsets served from the first
//! stored one; reopening after retention, and after a deletion a crash
//! interrupted (stray index files, several logs gone).

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{batch, config, log_files, on_both_drivers, payload, read_all};
use stage6_broker::{Config, FsyncPolicy, Partition};

/// 16 KiB segments of 1000-byte payloads: 15 records (5 batches) a segment.
const SEGMENT_SIZE: u64 = 16 << 10;
const PAYLOAD: usize = 1000;
const BATCH: usize = 3;

fn retention_config(bytes: Option<u64>, age: Option<Duration>) -> Config {
    Config {
        retention_bytes: bytes,
        retention_age: age,
        ..config(SEGMENT_SIZE, true, FsyncPolicy::EveryBatch)
    }
}

fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Appends `batches` batches of records whose ids are their offsets, all at
/// `timestamp`; returns the next offset.
async fn fill(partition: &mut Partition, batches: u64, timestamp: u64) -> u64 {
    let mut next = partition.next_offset();
    for _ in 0..batches {
        let mut records = batch(next, &[PAYLOAD; BATCH]);
        let appended = partition.append_at(&mut records, timestamp).await.unwrap();
        assert_eq!(appended.offsets.start, next);
        next = appended.offsets.end;
    }
    next
}

/// Checks that the partition holds exactly `first..next`, dense and intact,
/// and returns how many records.
async fn assert_holds(partition: &Partition, first: u64, next: u64) -> u64 {
    assert_eq!(partition.first_offset(), first);
    assert_eq!(partition.next_offset(), next);
    let (records, _) = read_all(partition, first, 7).await;
    assert_eq!(records.len() as u64, next - first);
    for (offset, record) in (first..).zip(&records) {
        assert_eq!(record.offset, offset, "offsets are dense from {first}");
        assert_eq!(
            record.id, offset,
            "record {offset} is the one appended there"
        );
        assert!(
            record.payload == payload(offset, PAYLOAD),
            "payload of {offset}"
        );
    }
    records.len() as u64
}

/// The files in `dir` named for segment `base`, with any extension.
fn files_of(dir: &Path, base: u64) -> Vec<String> {
    let prefix = format!("{base:020}.");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

#[test]
fn retention_by_size_deletes_oldest_sealed_segments_until_under_the_limit() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let limit = 3 * SEGMENT_SIZE;
        let mut partition = Partition::open(dir.path(), retention_config(Some(limit), None))
            .await
            .unwrap();
        // Nothing to delete in one segment, or under the limit.
        fill(&mut partition, 2, 1_000).await;
        assert!(
            partition
                .enforce_retention(SystemTime::now())
                .await
                .unwrap()
                .is_empty()
        );
        let next = fill(&mut partition, 30, 2_000).await;
        let before = partition.info();
        let bases = partition.segment_bases();
        assert!(before.bytes > limit, "{before:?}");

        let deleted = partition
            .enforce_retention(SystemTime::now())
            .await
            .unwrap();
        assert!(!deleted.is_empty());
        assert_eq!(deleted, bases[..deleted.len()], "oldest first");
        let after = partition.info();
        assert!(after.bytes <= limit, "{after:?}");
        // One segment fewer deleted would still be over the limit: no more
        // than needed went.
        let last_deleted = (bases[deleted.len()] - deleted[deleted.len() - 1]) * 1032;
        assert!(after.bytes + last_deleted > limit, "{after:?}");
        assert_eq!(after.segments as usize, bases.len() - deleted.len());
        assert_eq!(after.first_offset, bases[deleted.len()]);
        for base in &deleted {
            assert!(files_of(dir.path(), *base).is_empty(), "{base} left files");
        }
        assert_eq!(log_files(dir.path()).len(), after.segments as usize);
        assert_holds(&partition, after.first_offset, next).await;
        // A second run has nothing left to do.
        assert!(
            partition
                .enforce_retention(SystemTime::now())
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn retention_by_age_deletes_segments_whose_newest_record_is_too_old() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let mut partition = Partition::open(dir.path(), retention_config(None, Some(hour)))
            .await
            .unwrap();
        let now = SystemTime::now();
        let old = micros(now - 2 * hour);
        // 17 batches: three segments and two batches of a fourth, all old;
        // then new records, from the fourth segment on.
        let first_new = fill(&mut partition, 17, old).await;
        let next = fill(&mut partition, 10, micros(now)).await;
        let bases = partition.segment_bases();
        let mixed = bases.partition_point(|&base| base <= first_new) - 1;
        assert_eq!(mixed, 3, "{bases:?}");

        let deleted = partition.enforce_retention(now).await.unwrap();
        assert_eq!(deleted, bases[..mixed], "segments with only old records");
        // The segment holding old and new records stays: its newest is new.
        assert_holds(&partition, bases[mixed], next).await;
        assert!(partition.first_offset() <= first_new);
        // A timestamp older than everything kept finds the first kept record.
        assert_eq!(partition.offset_at(0), Some(bases[mixed]));
    });
}

#[test]
fn retention_runs_from_tick() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let minute = Duration::from_secs(60);
        let mut partition = Partition::open(dir.path(), retention_config(None, Some(minute)))
            .await
            .unwrap();
        let old = micros(SystemTime::now() - 2 * minute);
        fill(&mut partition, 12, old).await;
        let next = fill(&mut partition, 1, micros(SystemTime::now())).await;
        assert!(partition.segment_bases().len() > 1);
        partition.tick(Instant::now()).await.unwrap();
        assert_eq!(
            partition.segment_bases().len(),
            1,
            "only the active one left"
        );
        let first = partition.first_offset();
        assert!(first > 0);
        assert_holds(&partition, first, next).await;
    });
}

#[test]
fn retention_never_deletes_the_active_segment() {
    on_both_drivers(|_| async {
        // By age: the active segment alone, every record in it ancient.
        let dir = tempfile::tempdir().unwrap();
        let config = retention_config(None, Some(Duration::from_secs(1)));
        let mut partition = Partition::open(dir.path(), config).await.unwrap();
        let next = fill(&mut partition, 3, 1_000_000).await;
        assert_eq!(partition.segment_bases().len(), 1);
        assert!(
            partition
                .enforce_retention(SystemTime::now())
                .await
                .unwrap()
                .is_empty()
        );
        assert_holds(&partition, 0, next).await;

        // By size, at the smallest limit (one segment): every sealed segment
        // goes, the active one (over the limit with the sealed ones) stays.
        let dir = tempfile::tempdir().unwrap();
        let config = retention_config(Some(SEGMENT_SIZE), Some(Duration::from_secs(1)));
        let mut partition = Partition::open(dir.path(), config).await.unwrap();
        let next = fill(&mut partition, 14, 1_000_000).await;
        let bases = partition.segment_bases();
        assert_eq!(bases.len(), 3);
        let deleted = partition
            .enforce_retention(SystemTime::now())
            .await
            .unwrap();
        assert_eq!(deleted, bases[..2]);
        assert_holds(&partition, bases[2], next).await;
        // And the partition takes appends as before.
        let next = fill(&mut partition, 1, 2_000_000).await;
        assert_holds(&partition, bases[2], next).await;
    });
}

#[test]
fn poll_of_a_deleted_offset_gets_the_first_available_record() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let config = retention_config(Some(SEGMENT_SIZE), None);
        let mut partition = Partition::open(dir.path(), config).await.unwrap();
        let next = fill(&mut partition, 12, 1_000).await;
        partition
            .enforce_retention(SystemTime::now())
            .await
            .unwrap();
        let first = partition.first_offset();
        assert!(first > 0);
        for deleted in [0, first - 1] {
            let polled = partition.poll(deleted, 2).await.unwrap();
            assert_eq!(polled.first_offset, first, "the answer shows the jump");
            assert_eq!(polled.count, 2);
            let records = common::parse(polled.bytes.as_slice());
            assert_eq!(records[0].offset, first);
            assert_eq!(records[0].id, first);
        }
        // At and past the end: no records.
        for end in [next, next + 1, u64::MAX] {
            let polled = partition.poll(end, 5).await.unwrap();
            assert_eq!(polled.count, 0);
            assert!(polled.bytes.is_empty());
        }
    });
}

#[test]
fn reopen_after_retention_keeps_offsets_and_continues_them() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let config = retention_config(Some(2 * SEGMENT_SIZE), None);
        let (first, next) = {
            let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
            let next = fill(&mut partition, 20, 1_000).await;
            let deleted = partition
                .enforce_retention(SystemTime::now())
                .await
                .unwrap();
            assert!(!deleted.is_empty());
            partition.flush().await.unwrap();
            (partition.first_offset(), next)
        };
        let mut partition = Partition::open(dir.path(), config).await.unwrap();
        assert_eq!(partition.recovery().stray_files_removed, 0);
        assert_holds(&partition, first, next).await;
        let info = partition.info();
        assert_eq!(info.first_offset, first);
        assert_eq!(info.next_offset, next);
        assert_eq!(info.durable_offset, next);
        let next = fill(&mut partition, 2, 2_000).await;
        assert_holds(&partition, first, next).await;
    });
}

#[test]
fn interrupted_deletions_recover_from_their_leftovers() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let config = retention_config(None, None);
        let next = {
            let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
            let next = fill(&mut partition, 25, 1_000).await;
            partition.flush().await.unwrap();
            next
        };
        let bases: Vec<u64> = log_files(dir.path())
            .iter()
            .map(|path| path.file_stem().unwrap().to_str().unwrap().parse().unwrap())
            .collect();
        assert!(bases.len() >= 5, "{bases:?}");
        // A crash after step 1 of the first two deletions (logs unlinked,
        // indexes left), and a stray index from an older life with junk in it.
        for base in &bases[..2] {
            std::fs::remove_file(dir.path().join(format!("{base:020}.log"))).unwrap();
            assert_eq!(files_of(dir.path(), *base).len(), 2);
        }
        std::fs::write(dir.path().join(format!("{:020}.timeindex", 0)), [7u8; 29]).unwrap();

        let partition = Partition::open(dir.path(), config.clone()).await.unwrap();
        assert_eq!(partition.recovery().stray_files_removed, 4);
        for base in &bases[..2] {
            assert!(files_of(dir.path(), *base).is_empty());
        }
        assert_holds(&partition, bases[2], next).await;
        assert_eq!(partition.offset_at(0), Some(bases[2]));
        drop(partition);

        // A crash after step 2 but before the directory sync: nothing left
        // to repair. Every file gone except the active segment's: it alone.
        for base in &bases[2..bases.len() - 1] {
            for name in files_of(dir.path(), *base) {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        let mut partition = Partition::open(dir.path(), config).await.unwrap();
        assert_eq!(partition.recovery().stray_files_removed, 0);
        let active = bases[bases.len() - 1];
        assert_holds(&partition, active, next).await;
        let next = fill(&mut partition, 1, 2_000).await;
        assert_holds(&partition, active, next).await;
    });
}

#[test]
fn retention_config_is_validated_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = stage6_broker::IoDriver::Auto.runtime().unwrap();
    for (key, config) in [
        (
            "retention_bytes",
            retention_config(Some(SEGMENT_SIZE - 1), None),
        ),
        (
            "retention_age",
            retention_config(None, Some(Duration::ZERO)),
        ),
    ] {
        let error = runtime
            .block_on(Partition::open(dir.path(), config))
            .unwrap_err();
        assert!(error.to_string().contains(key), "{error}");
    }
}
