//! Opening a partition repairs what a crash can leave, and refuses what no
//! crash explains: hand-made torn, lagging and corrupted files.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::path::Path;
use std::time::Instant;

use stage1_file_log::RecoveryReport;
use stage2_batching::{Config, FsyncPolicy};
use stage4_partitions::protocol::record::encode_records;
use stage5_zero_copy::partition::{INDEX_FILE, LOG_FILE};
use stage5_zero_copy::{BatchView, Error, Partition, ReceivedBatch};

const MESSAGES: u64 = 5;
const PAYLOAD: usize = 30;
const RECORD: u64 = (32 + PAYLOAD) as u64;

fn payload(n: u64) -> Vec<u8> {
    vec![n as u8 + 1; PAYLOAD]
}

fn config() -> Config {
    Config::new(FsyncPolicy::Always)
}

/// A produced batch of the messages `ids`, as it arrives in a frame.
fn batch(ids: std::ops::Range<u64>) -> ReceivedBatch {
    let mut bytes = Vec::new();
    let messages: Vec<(u64, Vec<u8>)> = ids.map(|id| (id, payload(id))).collect();
    encode_records(
        &mut bytes,
        messages.iter().map(|(id, p)| (0, 0, *id, p.as_slice())),
    );
    ReceivedBatch::validate(bytes, 0).unwrap()
}

/// A healthy partition of `MESSAGES` records, appended in two batches;
/// returns its log and index bytes.
fn healthy_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut partition = Partition::open(dir, config(), Instant::now()).unwrap();
    partition
        .append(&mut batch(0..2), 1, Instant::now())
        .unwrap();
    partition
        .append(&mut batch(2..MESSAGES), 2, Instant::now())
        .unwrap();
    drop(partition);
    (
        std::fs::read(dir.join(LOG_FILE)).unwrap(),
        std::fs::read(dir.join(INDEX_FILE)).unwrap(),
    )
}

fn write_files(dir: &Path, log: &[u8], index: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(LOG_FILE), log).unwrap();
    std::fs::write(dir.join(INDEX_FILE), index).unwrap();
}

/// Checks the partition holds exactly records `0..count`, intact, and accepts more.
fn assert_holds_intact(dir: &Path, count: u64) -> RecoveryReport {
    let mut partition = Partition::open(dir, config(), Instant::now()).unwrap();
    assert_eq!(partition.status().next_offset, count);
    assert_eq!(partition.log_len(), count * RECORD);
    let polled = partition.read(0, u32::MAX, usize::MAX).unwrap();
    assert_eq!(u64::from(polled.count), count);
    let mut counted = polled.count.to_le_bytes().to_vec();
    counted.extend_from_slice(&polled.records);
    let view = BatchView::parse(&counted).unwrap();
    view.verify().unwrap();
    for (record, n) in view.iter().zip(0..) {
        assert_eq!((record.offset(), record.id()), (n, n));
        assert_eq!(record.payload(), payload(n));
    }
    let report = partition.recovery();
    let appended = partition
        .append(&mut batch(count..count + 1), 3, Instant::now())
        .unwrap();
    assert_eq!(appended.offsets, count..count + 1);
    report
}

#[test]
fn recovery_torn_tail_at_every_length_of_the_last_record_is_cut() {
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    let last_start = (MESSAGES - 1) * RECORD;
    // cut = bytes of the last record that reached the disk before the crash.
    for cut in 0..RECORD {
        let torn_log = &log[..(last_start + cut) as usize];
        // With and without the last index entry (written after the log).
        for index in [&index[..], &index[..index.len() - 4]] {
            let dir = root.path().join(format!("cut-{cut}-{}", index.len()));
            write_files(&dir, torn_log, index);
            let report = assert_holds_intact(&dir, MESSAGES - 1);
            assert_eq!(report.log_bytes_truncated, cut, "cut {cut}");
        }
    }
}

#[test]
fn recovery_bad_checksum_at_the_tail_is_a_torn_write() {
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    let last_start = ((MESSAGES - 1) * RECORD) as usize;
    // The last record's length reached the disk, some of its bytes did not:
    // zeros where a page was not written, or one flipped bit.
    for damage in [last_start + 40, last_start + 8, last_start] {
        let mut torn = log.clone();
        torn[damage] ^= 0x10;
        let dir = root.path().join(format!("flip-{damage}"));
        write_files(&dir, &torn, &index);
        let report = assert_holds_intact(&dir, MESSAGES - 1);
        assert_eq!(report.log_bytes_truncated, RECORD);
    }
    // A tail of zeros (the file grew, the data never came): many 32-byte
    // "records" of length 0, none with a valid checksum.
    let mut zeros = log.clone();
    zeros.extend_from_slice(&[0; 200]);
    let dir = root.path().join("zeros");
    write_files(&dir, &zeros, &index);
    let report = assert_holds_intact(&dir, MESSAGES);
    assert_eq!(report.log_bytes_truncated, 200);
}

#[test]
fn recovery_flipped_bit_in_the_middle_is_corruption_and_files_are_untouched() {
    let root = tempfile::tempdir().unwrap();
    let (mut log, _) = healthy_files(&root.path().join("healthy"));
    let dir = root.path().join("damaged");
    // A bit in record 2's payload; with the index gone the walk meets it,
    // and valid records follow it.
    log[(2 * RECORD + 40) as usize] ^= 0x01;
    write_files(&dir, &log, &[]);
    match Partition::open(&dir, config(), Instant::now()) {
        Err(Error::Corrupt {
            position, reason, ..
        }) => {
            assert_eq!(position, 2 * RECORD);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was cut or rewritten: the operator has every byte to look at.
    assert_eq!(std::fs::read(dir.join(LOG_FILE)).unwrap(), log);
    assert_eq!(std::fs::read(dir.join(INDEX_FILE)).unwrap(), b"");
}

#[test]
fn recovery_valid_record_with_the_wrong_offset_is_corruption() {
    let root = tempfile::tempdir().unwrap();
    let (mut log, _) = healthy_files(&root.path().join("healthy"));
    // Record 3 swapped for a copy of record 1: whole, checksum valid, misplaced.
    let (one, three) = ((RECORD) as usize, (3 * RECORD) as usize);
    let copy = log[one..one + RECORD as usize].to_vec();
    log[three..three + RECORD as usize].copy_from_slice(&copy);
    let dir = root.path().join("misplaced");
    write_files(&dir, &log, &[]);
    match Partition::open(&dir, config(), Instant::now()) {
        Err(Error::Corrupt { position, .. }) => assert_eq!(position, 3 * RECORD),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(std::fs::read(dir.join(LOG_FILE)).unwrap(), log);
}

#[test]
fn recovery_index_behind_missing_or_ahead_is_rebuilt_from_the_log() {
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    for entries in 0..MESSAGES as usize {
        let dir = root.path().join(format!("entries-{entries}"));
        write_files(&dir, &log, &index[..entries * 4]);
        let report = assert_holds_intact(&dir, MESSAGES);
        assert_eq!(report.index_entries_rebuilt, MESSAGES - entries as u64);
        // The rebuilt index is byte for byte the one appends wrote.
        assert_eq!(
            std::fs::read(dir.join(INDEX_FILE)).unwrap()[..index.len()],
            index[..]
        );
    }
    // A torn last entry, and entries pointing past the log or backwards.
    let mut ahead = index[..index.len() - 1].to_vec();
    let dir = root.path().join("torn-entry");
    write_files(&dir, &log, &ahead);
    let report = assert_holds_intact(&dir, MESSAGES);
    assert_eq!(
        (report.index_entries_dropped, report.index_entries_rebuilt),
        (1, 1)
    );
    ahead = index.clone();
    for garbage in [u32::MAX, 3, 10_000] {
        ahead.extend_from_slice(&garbage.to_le_bytes());
    }
    let dir = root.path().join("ahead");
    write_files(&dir, &log, &ahead);
    let report = assert_holds_intact(&dir, MESSAGES);
    assert_eq!(report.index_entries_dropped, 3);
    assert_eq!(report.log_bytes_truncated, 0);
}

#[test]
fn recovery_healthy_reopen_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("partition");
    let (log, index) = healthy_files(&dir);
    let partition = Partition::open(&dir, config(), Instant::now()).unwrap();
    assert_eq!(
        partition.recovery(),
        RecoveryReport {
            messages: MESSAGES,
            ..RecoveryReport::default()
        }
    );
    assert_eq!(partition.status().durable, MESSAGES);
    assert_eq!(std::fs::read(dir.join(LOG_FILE)).unwrap(), log);
    assert_eq!(std::fs::read(dir.join(INDEX_FILE)).unwrap(), index);
}
