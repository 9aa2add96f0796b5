//! Truncation: a partition cut back to an offset inside its active segment,
//! at a segment's base, across sealed segments and to its first offset,
//! with Direct I/O on and off; every cut survives a reopen, the next append
//! gets the cut offset, and what stayed is what was there. Each test runs on
//! both compio drivers.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;

use common::{assert_dense, batch, config, on_both_drivers, read_all};
use proptest::prelude::*;
use stage6_broker::storage::segment::file_name;
use stage6_broker::{Config, Error, FsyncPolicy, Partition};

/// Payload sizes: three records a batch, crossing block boundaries.
fn size_of(id: u64) -> usize {
    [300, 4000, 1234][(id % 3) as usize]
}

/// A partition of several 16 KiB segments, `batches` batches of three.
async fn filled(dir: &Path, config: &Config, batches: u64) -> Partition {
    let mut partition = Partition::open(dir, config.clone()).await.unwrap();
    for n in 0..batches {
        let sizes: Vec<usize> = (n * 3..n * 3 + 3).map(size_of).collect();
        partition.append(&mut batch(n * 3, &sizes)).await.unwrap();
    }
    partition
}

/// Cuts a filled partition to `offset`, checks it, appends a batch at the
/// cut, reopens, and checks again.
async fn cut_and_check(config: &Config, offset_of: impl Fn(&[u64]) -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = filled(dir.path(), config, 20).await;
    let bases = partition.segment_bases();
    assert!(bases.len() >= 4, "{bases:?}");
    let offset = offset_of(&bases);
    partition.truncate_to(offset).await.unwrap();
    assert_eq!(partition.next_offset(), offset);
    assert!(partition.durable_offset() <= offset);
    let kept: Vec<u64> = bases.iter().copied().filter(|&b| b <= offset).collect();
    assert_eq!(partition.segment_bases(), kept);
    for gone in bases.iter().filter(|&&b| b > offset) {
        for extension in ["log", "index", "timeindex"] {
            assert!(!dir.path().join(file_name(*gone, extension)).exists());
        }
    }
    let (records, _) = read_all(&partition, 0, 1000).await;
    assert_eq!(records.len() as u64, offset);
    assert_dense(&records, size_of);

    // The next append gets the cut offset; its bytes are the new record's.
    let ids = offset..offset + 3;
    let sizes: Vec<usize> = ids.clone().map(size_of).collect();
    let appended = partition.append(&mut batch(offset, &sizes)).await.unwrap();
    assert_eq!(appended.offsets, ids);
    partition.flush().await.unwrap();
    drop(partition);

    let partition = Partition::open(dir.path(), config.clone()).await.unwrap();
    assert_eq!(partition.next_offset(), offset + 3);
    assert_eq!(partition.recovery().segments_discarded, 0);
    let (records, _) = read_all(&partition, 0, 1000).await;
    assert_eq!(records.len() as u64, offset + 3);
    assert_dense(&records, size_of);
}

fn both_modes() -> [Config; 2] {
    [
        config(16 << 10, true, FsyncPolicy::EveryBatch),
        config(16 << 10, false, FsyncPolicy::Never),
    ]
}

#[test]
fn truncate_inside_the_active_segment() {
    on_both_drivers(|_| async {
        for config in both_modes() {
            cut_and_check(&config, |bases| bases[bases.len() - 1] + 1).await;
        }
    });
}

#[test]
fn truncate_across_sealed_segments_reopens_the_one_that_holds_the_offset() {
    on_both_drivers(|_| async {
        for config in both_modes() {
            cut_and_check(&config, |bases| bases[1] + 2).await;
        }
    });
}

#[test]
fn truncate_at_a_segment_base_leaves_it_empty_and_active() {
    on_both_drivers(|_| async {
        for config in both_modes() {
            cut_and_check(&config, |bases| bases[2]).await;
        }
    });
}

#[test]
fn truncate_to_the_first_offset_empties_the_partition() {
    on_both_drivers(|_| async {
        for config in both_modes() {
            cut_and_check(&config, |_| 0).await;
        }
    });
}

#[test]
fn a_cut_on_a_block_boundary_erases_that_block_too() {
    on_both_drivers(|_| async {
        // Offset 0 is at byte 0, a block boundary: nothing of the block is
        // kept, and its old records must not come back at the next open.
        // (The erasure wrote nothing for such a block once: padding an empty
        // buffer to the block is no bytes at all.)
        for config in both_modes() {
            let dir = tempfile::tempdir().unwrap();
            let mut partition = filled(dir.path(), &config, 1).await;
            partition.truncate_to(0).await.unwrap();
            partition.flush().await.unwrap();
            drop(partition);
            let partition = Partition::open(dir.path(), config).await.unwrap();
            assert_eq!(partition.next_offset(), 0);
        }
    });
}

#[test]
fn truncate_outside_the_partition_is_refused_and_changes_nothing() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let config = config(16 << 10, true, FsyncPolicy::Always);
        let mut partition = filled(dir.path(), &config, 5).await;
        let next = partition.next_offset();
        match partition.truncate_to(next + 1).await {
            Err(Error::TruncateOutOfRange {
                offset,
                first,
                next: at,
            }) => {
                assert_eq!((offset, first, at), (next + 1, 0, next));
            }
            other => panic!("expected TruncateOutOfRange, got {other:?}"),
        }
        // At the end: nothing to cut, nothing cut.
        partition.truncate_to(next).await.unwrap();
        assert_eq!(partition.next_offset(), next);
        assert_eq!(partition.failure(), None);
        let (records, _) = read_all(&partition, 0, 1000).await;
        assert_eq!(records.len() as u64, next);
    });
}

#[test]
fn truncate_moves_consumer_offsets_back_to_the_cut() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let config = config(16 << 10, true, FsyncPolicy::Always);
        let mut partition = filled(dir.path(), &config, 10).await;
        partition.store_consumer_offset("behind", 4).await.unwrap();
        partition.store_consumer_offset("ahead", 25).await.unwrap();
        partition.truncate_to(12).await.unwrap();
        assert_eq!(partition.consumer_offset("behind"), Some(4));
        assert_eq!(partition.consumer_offset("ahead"), Some(12));
        drop(partition);
        let partition = Partition::open(dir.path(), config).await.unwrap();
        assert_eq!(partition.consumer_offset("ahead"), Some(12));
    });
}

/// The base offset the seal mark names, if it names one.
fn marked(dir: &Path) -> Option<u64> {
    let path = dir.join(stage6_broker::storage::seal_mark::SEAL_MARK_FILE);
    let bytes = std::fs::read(path).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[test]
fn a_sealed_segment_cut_open_is_no_longer_vouched_for_until_sealed_again() {
    on_both_drivers(|_| async {
        // A cut into a sealed segment makes it take appends again. Until its
        // next seal's sync returns, the seal mark must not name it: a power
        // cut meanwhile would otherwise have recovery trust a tail that
        // never reached the disk.
        let dir = tempfile::tempdir().unwrap();
        let config = config(16 << 10, false, FsyncPolicy::Never);
        let mut partition = filled(dir.path(), &config, 20).await;
        partition.flush().await.unwrap();
        let bases = partition.segment_bases();
        let reopened = bases[1];
        partition.truncate_to(reopened + 1).await.unwrap();
        assert_eq!(marked(dir.path()), Some(bases[0]));
        let mut next = reopened + 1;
        while partition.segment_bases().len() < 3 {
            let sizes: Vec<usize> = (next..next + 3).map(size_of).collect();
            next = partition
                .append(&mut batch(next, &sizes))
                .await
                .unwrap()
                .offsets
                .end;
        }
        // Sealed again and synced: named again.
        partition.flush().await.unwrap();
        assert_eq!(marked(dir.path()), Some(reopened));
        drop(partition);
        let partition = Partition::open(dir.path(), config).await.unwrap();
        let (records, _) = read_all(&partition, 0, 1000).await;
        assert_eq!(records.len() as u64, next);
        assert_dense(&records, size_of);
    });
}

/// Every record a partition holds, as (id, payload length), polled from the start.
async fn contents(partition: &Partition) -> Vec<(u64, usize)> {
    let (records, _) = read_all(partition, 0, 1000).await;
    records.iter().map(|r| (r.id, r.payload.len())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any batches, a cut anywhere, more batches after it, a reopen: the
    /// partition holds the model's records, in order, at dense offsets.
    // At most four records of under 3 KB a batch: a batch fits a 16 KiB segment.
    #[test]
    fn truncate_then_append_matches_a_model(
        batches in proptest::collection::vec(proptest::collection::vec(0usize..3000, 1..5), 1..30),
        cut in 0.0f64..=1.0,
        after in proptest::collection::vec(proptest::collection::vec(0usize..3000, 1..5), 0..6),
        direct_io in any::<bool>(),
    ) {
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let config = config(16 << 10, direct_io, FsyncPolicy::EveryBatch);
            let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
            let mut model: Vec<(u64, usize)> = Vec::new();
            let mut id = 0;
            for sizes in &batches {
                partition.append(&mut batch(id, sizes)).await.unwrap();
                for &size in sizes {
                    model.push((id, size));
                    id += 1;
                }
            }
            let offset = (model.len() as f64 * cut).floor() as u64;
            partition.truncate_to(offset).await.unwrap();
            model.truncate(offset as usize);
            for sizes in &after {
                partition.append(&mut batch(id, sizes)).await.unwrap();
                for &size in sizes {
                    model.push((id, size));
                    id += 1;
                }
            }
            assert_eq!(contents(&partition).await, model);
            partition.flush().await.unwrap();
            drop(partition);
            let partition = Partition::open(dir.path(), config).await.unwrap();
            assert_eq!(partition.next_offset(), model.len() as u64);
            assert_eq!(contents(&partition).await, model);
            let (records, _) = read_all(&partition, 0, 1000).await;
            for (offset, record) in records.iter().enumerate() {
                assert_eq!(record.offset, offset as u64);
            }
        });
    }
}
