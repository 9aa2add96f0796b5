//! Recovery on hand-made damage: torn tails cut at every position, flipped
//! bits at the end (a torn tail) and in the middle (corruption, reported and
//! never served), indexes missing, short or ahead, and sealed segments.
//! Each test runs on both compio drivers.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::{Path, PathBuf};

use common::{assert_dense, batch, config, copy_dir, on_both_drivers, read_all};
use stage6_broker::storage::segment::file_name;
use stage6_broker::{Config, Error, FsyncPolicy, Partition};

/// Payload sizes of the test partition: records 0..3 (one batch, at time 10)
/// end at byte 4056, and record 3 (its own batch, at time 20) straddles the
/// first block boundary, 4056..4148.
const SIZES: [usize; 4] = [100, 200, 3660, 60];
const LAST_AT: u64 = 4056;
const LAST_LEN: u64 = 92;
const MIDDLE_AT: u64 = 132; // record 1

fn size_of(id: u64) -> usize {
    SIZES.get(id as usize).copied().unwrap_or(10)
}

fn test_config() -> Config {
    config(64 << 10, true, FsyncPolicy::Always)
}

fn log(dir: &Path) -> PathBuf {
    dir.join(file_name(0, "log"))
}

fn index(dir: &Path, extension: &str) -> PathBuf {
    dir.join(file_name(0, extension))
}

/// The four records, written and synced, the partition closed.
async fn make_partition(dir: &Path) {
    let mut partition = Partition::open(dir, test_config()).await.unwrap();
    partition
        .append_at(&mut batch(0, &SIZES[..3]), 10)
        .await
        .unwrap();
    partition
        .append_at(&mut batch(3, &SIZES[3..]), 20)
        .await
        .unwrap();
    assert_eq!(partition.status().durable, 4);
}

/// Changes bytes of a file in place.
fn patch(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// Opens, checks the records are `0..count` and dense, and that an append
/// continues from there.
async fn check_records(dir: &Path, count: u64) -> Partition {
    let mut partition = Partition::open(dir, test_config()).await.unwrap();
    assert_eq!(partition.status().next_offset, count);
    let (records, _) = read_all(&partition, 0, 100).await;
    assert_dense(&records, size_of);
    let appended = partition
        .append(&mut batch(count, &[size_of(count)]))
        .await
        .unwrap();
    assert_eq!(appended.offsets, count..count + 1);
    let (records, _) = read_all(&partition, 0, 100).await;
    assert_dense(&records, size_of);
    partition
}

#[test]
fn torn_last_record_cut_at_every_position_is_dropped() {
    on_both_drivers(|_| async {
        let original = tempfile::tempdir().unwrap();
        make_partition(original.path()).await;
        let work = tempfile::tempdir().unwrap();
        for cut in 0..LAST_LEN {
            let dir = work.path().join(format!("cut-{cut}"));
            copy_dir(original.path(), &dir);
            // The write reached the disk up to `cut` bytes into the record.
            patch(&log(&dir), |bytes| {
                bytes[(LAST_AT + cut) as usize..(LAST_AT + LAST_LEN) as usize].fill(0);
            });
            let partition = Partition::open(&dir, test_config()).await.unwrap();
            let report = *partition.recovery();
            assert_eq!(report.records, 3, "cut {cut}");
            // The index had an entry for the record: it was ahead, and is cut.
            assert_eq!(report.index_entries_dropped, 1, "cut {cut}");
            // Zeros where its header would be (cut 0) end the log cleanly; any
            // byte of it left is a torn write, erased.
            assert_eq!(
                report.torn_bytes_erased > 0,
                cut > 0,
                "cut {cut}: {report:?}"
            );
            drop(partition);
            let bytes = std::fs::read(log(&dir)).unwrap();
            assert!(
                bytes[LAST_AT as usize..].iter().all(|&b| b == 0),
                "cut {cut}: erased"
            );
            check_records(&dir, 3).await;
        }
    });
}

#[test]
fn torn_tail_with_stray_blocks_after_it_is_erased_once() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        make_partition(dir.path()).await;
        // Half of record 3, then a block of a later write that did persist.
        patch(&log(dir.path()), |bytes| {
            bytes[(LAST_AT + 40) as usize..(LAST_AT + LAST_LEN) as usize].fill(0);
            bytes[5 * 4096..6 * 4096].fill(0xab);
        });
        let partition = Partition::open(dir.path(), test_config()).await.unwrap();
        assert_eq!(partition.recovery().records, 3);
        assert_eq!(partition.recovery().torn_bytes_erased, 6 * 4096 - LAST_AT);
        drop(partition);
        let bytes = std::fs::read(log(dir.path())).unwrap();
        assert!(bytes[LAST_AT as usize..].iter().all(|&b| b == 0));
        // Erased for good: the next open finds a clean end at once.
        let partition = check_records(dir.path(), 3).await;
        assert_eq!(partition.recovery().torn_bytes_erased, 0);
    });
}

#[test]
fn corrupt_flipped_bit_in_last_record_is_a_torn_tail() {
    on_both_drivers(|_| async {
        let original = tempfile::tempdir().unwrap();
        make_partition(original.path()).await;
        let work = tempfile::tempdir().unwrap();
        for byte in 0..LAST_LEN {
            let dir = work.path().join(format!("flip-{byte}"));
            copy_dir(original.path(), &dir);
            patch(&log(&dir), |bytes| bytes[(LAST_AT + byte) as usize] ^= 0x10);
            let partition = Partition::open(&dir, test_config()).await.unwrap();
            assert_eq!(partition.recovery().records, 3, "flipped byte {byte}");
            drop(partition);
            check_records(&dir, 3).await;
        }
    });
}

#[test]
fn corrupt_flipped_bit_in_middle_record_is_reported_not_served() {
    on_both_drivers(|_| async {
        // Walked (no index): recovery finds valid records after the bad one,
        // so it is corruption, and the partition is not opened.
        let dir = tempfile::tempdir().unwrap();
        make_partition(dir.path()).await;
        patch(&log(dir.path()), |bytes| {
            bytes[MIDDLE_AT as usize + 50] ^= 1
        });
        std::fs::remove_file(index(dir.path(), "index")).unwrap();
        match Partition::open(dir.path(), test_config()).await {
            Err(Error::Corrupt {
                segment, position, ..
            }) => {
                assert_eq!(segment, log(dir.path()));
                assert_eq!(position, MIDDLE_AT);
            }
            other => panic!("expected corruption, got {other:?}"),
        }

        // Trusted by the index (not walked at open): found by the poll that
        // reaches it, which refuses to serve it; records around it are served,
        // the good ones before it by that same poll.
        let dir = tempfile::tempdir().unwrap();
        make_partition(dir.path()).await;
        patch(&log(dir.path()), |bytes| {
            bytes[MIDDLE_AT as usize + 50] ^= 1
        });
        let partition = Partition::open(dir.path(), test_config()).await.unwrap();
        assert_eq!(partition.status().next_offset, 4);
        let before = partition.poll(0, 10).await.unwrap();
        assert_eq!(
            (before.first_offset, before.count),
            (0, 1),
            "record 0, not the bad one"
        );
        assert_eq!(
            before.bytes.len() as u64,
            MIDDLE_AT,
            "exactly record 0's bytes"
        );
        match partition.poll(1, 10).await {
            Err(Error::Corrupt {
                segment, position, ..
            }) => {
                assert_eq!(segment, log(dir.path()));
                assert_eq!(position, MIDDLE_AT);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        assert!(matches!(
            partition.poll(1, 1).await,
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(partition.poll(0, 1).await.unwrap().count, 1);
        assert_eq!(partition.poll(2, 10).await.unwrap().count, 2);
    });
}

#[test]
fn index_missing_short_or_ahead_is_rebuilt_from_the_log() {
    on_both_drivers(|_| async {
        let original = tempfile::tempdir().unwrap();
        make_partition(original.path()).await;
        let offsets = std::fs::read(index(original.path(), "index")).unwrap();
        let times = std::fs::read(index(original.path(), "timeindex")).unwrap();
        assert_eq!(
            (offsets.len(), times.len()),
            (16, 24),
            "4 positions, 2 timestamps"
        );
        type Damage = fn(&Path);
        let damages: [(&str, Damage); 7] = [
            ("missing", |dir| {
                std::fs::remove_file(index(dir, "index")).unwrap()
            }),
            ("short", |dir| {
                patch(&index(dir, "index"), |b| b.truncate(8))
            }),
            ("torn entry", |dir| {
                patch(&index(dir, "index"), |b| b.truncate(14))
            }),
            ("ahead", |dir| {
                patch(&index(dir, "index"), |b| {
                    b.extend_from_slice(&9000u32.to_le_bytes())
                })
            }),
            ("wrong", |dir| patch(&index(dir, "index"), |b| b[4] = 7)),
            // The first entry whole but wrong: nothing in the index is
            // trusted, so the walk must start at byte 0, not where it says.
            ("first wrong", |dir| {
                patch(&index(dir, "index"), |b| b[0] = 8)
            }),
            ("time missing", |dir| {
                std::fs::remove_file(index(dir, "timeindex")).unwrap()
            }),
        ];
        let work = tempfile::tempdir().unwrap();
        for (name, damage) in damages {
            let dir = work.path().join(name);
            copy_dir(original.path(), &dir);
            damage(&dir);
            let partition = Partition::open(&dir, test_config()).await.unwrap();
            let report = *partition.recovery();
            assert_eq!(report.records, 4, "{name}");
            assert_eq!(partition.offset_at(15), Some(3), "{name}");
            drop(partition);
            assert_eq!(
                std::fs::read(index(&dir, "index")).unwrap(),
                offsets,
                "{name}"
            );
            assert_eq!(
                std::fs::read(index(&dir, "timeindex")).unwrap(),
                times,
                "{name}"
            );
            check_records(&dir, 4).await;
        }
    });
}

/// Forty batches of three records (300, 400 and 500 bytes) in a new
/// partition, flushed and closed; its segments' base offsets.
async fn forty_batches(dir: &Path, config: &Config) -> Vec<u64> {
    let mut partition = Partition::open(dir, config.clone()).await.unwrap();
    for n in 0..40 {
        partition
            .append(&mut batch(n * 3, &[300, 400, 500]))
            .await
            .unwrap();
    }
    partition.flush().await.unwrap();
    partition.segment_bases()
}

#[test]
fn recovery_of_sealed_segments_trusts_their_index_or_walks_them() {
    on_both_drivers(|_| async {
        let original = tempfile::tempdir().unwrap();
        let config = config(16 << 10, true, FsyncPolicy::Never);
        let bases = forty_batches(original.path(), &config).await;
        assert!(bases.len() >= 4, "{bases:?}");
        let sizes = |id: u64| [300, 400, 500][(id % 3) as usize];

        // Intact: a reopen walks about one batch per segment.
        let partition = Partition::open(original.path(), config.clone())
            .await
            .unwrap();
        let report = *partition.recovery();
        assert_eq!(report.records, 120);
        assert!(
            report.records_verified <= 3 * bases.len() as u64,
            "{report:?}"
        );
        drop(partition);

        // A sealed segment's lost index is rebuilt by a walk of that segment.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        std::fs::remove_file(dir.path().join(file_name(bases[1], "index"))).unwrap();
        let partition = Partition::open(dir.path(), config.clone()).await.unwrap();
        assert_eq!(
            partition.recovery().index_entries_rebuilt,
            bases[2] - bases[1]
        );
        let (records, _) = read_all(&partition, 0, 1000).await;
        assert_dense(&records, sizes);
        drop(partition);

        // A sealed segment that lost its last record is corrupt: the next
        // segment's name says how many it must hold.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let sealed = dir.path().join(file_name(bases[0], "log"));
        let last_position = {
            let index = std::fs::read(dir.path().join(file_name(bases[0], "index"))).unwrap();
            u32::from_le_bytes(index[index.len() - 4..].try_into().unwrap()) as usize
        };
        patch(&sealed, |bytes| bytes[last_position..].fill(0));
        match Partition::open(dir.path(), config).await {
            Err(Error::Corrupt { segment, .. }) => assert_eq!(segment, sealed),
            other => panic!("expected corruption, got {other:?}"),
        }
    });
}

#[test]
fn a_torn_last_sealed_segment_cuts_the_partition_where_its_records_end() {
    on_both_drivers(|_| async {
        // What a power loss can leave since sealing syncs in the background:
        // the last sealed segment's final pages never reached the disk, the
        // active segment after it did (or some of it did).
        let dir = tempfile::tempdir().unwrap();
        let config = config(16 << 10, false, FsyncPolicy::Never);
        let bases = forty_batches(dir.path(), &config).await;
        assert!(bases.len() >= 3, "{bases:?}");
        let last_sealed = bases[bases.len() - 2];
        let active = bases[bases.len() - 1];
        // Lose the last sealed segment's records from its third one on.
        let cut_at = {
            let index = std::fs::read(dir.path().join(file_name(last_sealed, "index"))).unwrap();
            u32::from_le_bytes(index[8..12].try_into().unwrap()) as usize
        };
        patch(&dir.path().join(file_name(last_sealed, "log")), |bytes| {
            bytes[cut_at..].fill(0)
        });
        // The power went before that segment's sync returned, so the seal
        // mark still names the segment before it.
        let mark = dir
            .path()
            .join(stage6_broker::storage::seal_mark::SEAL_MARK_FILE);
        assert!(mark.exists());
        std::fs::remove_file(&mark).unwrap();

        let mut partition = Partition::open(dir.path(), config.clone()).await.unwrap();
        let report = *partition.recovery();
        assert_eq!(report.segments_discarded, 1, "{report:?}");
        // Dense up to the tear, and the active segment's files are gone.
        assert_eq!(partition.next_offset(), last_sealed + 2);
        assert_eq!(partition.segment_bases(), bases[..bases.len() - 1].to_vec());
        for extension in ["log", "index", "timeindex"] {
            assert!(!dir.path().join(file_name(active, extension)).exists());
        }
        let sizes = |id: u64| [300, 400, 500][(id % 3) as usize];
        let (records, _) = read_all(&partition, 0, 1000).await;
        assert_dense(&records, sizes);
        assert_eq!(records.len() as u64, last_sealed + 2);
        // The cut segment takes appends again, at the next offset.
        let next = last_sealed + 2;
        let appended = partition
            .append(&mut batch(next, &[300, 400, 500]))
            .await
            .unwrap();
        assert_eq!(appended.offsets, next..next + 3);
        partition.flush().await.unwrap();
        drop(partition);
        let partition = Partition::open(dir.path(), config).await.unwrap();
        assert_eq!(partition.recovery().segments_discarded, 0);
        assert_eq!(partition.next_offset(), next + 3);
    });
}

#[test]
fn recovery_of_an_empty_or_unpreallocated_active_segment() {
    on_both_drivers(|_| async {
        // A crash between creating the file and preallocating it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(log(dir.path()), b"").unwrap();
        let mut partition = Partition::open(dir.path(), test_config()).await.unwrap();
        assert_eq!(partition.status().next_offset, 0);
        partition
            .append(&mut batch(0, &[size_of(0)]))
            .await
            .unwrap();
        drop(partition);
        let size = std::fs::metadata(log(dir.path())).unwrap().len();
        assert_eq!(size, test_config().segment_size);
        check_records(dir.path(), 1).await;
    });
}
