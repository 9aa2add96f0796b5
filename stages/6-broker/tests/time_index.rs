//! Lookups by time: the first offset appended at or after a timestamp, across
//! segments, with a clock that never goes backwards, before and after the
//! time index is rebuilt from the log.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;

use common::{batch, config, on_both_drivers, read_all};
use stage6_broker::{Config, FsyncPolicy, Partition};

fn small_segments() -> Config {
    config(8 << 10, true, FsyncPolicy::EveryBatch)
}

/// `(timestamp, records)` of each batch: 2000-byte records, so that a segment
/// holds four and the batches spread over several segments.
const BATCHES: [(u64, u64); 6] = [(100, 2), (200, 3), (200, 1), (300, 2), (50, 1), (400, 4)];

async fn check_lookups(partition: &Partition) {
    // Offsets: 100 -> 0..2, 200 -> 2..6, 300 -> 6..8, 50 (stamped 300) -> 8,
    // 400 -> 9..13.
    let cases = [
        (0, Some(0)),
        (100, Some(0)),
        (101, Some(2)),
        (200, Some(2)),
        (250, Some(6)),
        (300, Some(6)),
        (301, Some(9)),
        (400, Some(9)),
        (401, None),
    ];
    for (timestamp, offset) in cases {
        assert_eq!(partition.offset_at(timestamp), offset, "at {timestamp}");
    }
    let (records, _) = read_all(partition, 0, 100).await;
    let stamps: Vec<u64> = records.iter().map(|r| r.timestamp).collect();
    assert_eq!(
        stamps,
        [
            100, 100, 200, 200, 200, 200, 300, 300, 300, 400, 400, 400, 400
        ]
    );
}

fn remove_time_indexes(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "timeindex") {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn time_index_finds_the_first_offset_at_or_after_a_timestamp() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let mut partition = Partition::open(dir.path(), small_segments()).await.unwrap();
        let mut id = 0;
        for (timestamp, count) in BATCHES {
            let sizes = vec![2000; count as usize];
            partition
                .append_at(&mut batch(id, &sizes), timestamp)
                .await
                .unwrap();
            id += count;
        }
        assert!(partition.segment_bases().len() >= 3);
        check_lookups(&partition).await;
        partition.flush().await.unwrap();
        drop(partition);

        // The same answers after a reopen, and after the time indexes are
        // rebuilt from the records' timestamps.
        let partition = Partition::open(dir.path(), small_segments()).await.unwrap();
        check_lookups(&partition).await;
        drop(partition);
        remove_time_indexes(dir.path());
        let partition = Partition::open(dir.path(), small_segments()).await.unwrap();
        assert!(partition.recovery().time_entries_rebuilt >= 4);
        check_lookups(&partition).await;
    });
}

#[test]
fn time_index_of_an_empty_partition_finds_nothing() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = Partition::open(dir.path(), small_segments()).await.unwrap();
        assert_eq!(partition.offset_at(0), None);
    });
}
