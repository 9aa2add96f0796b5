//! Opening a stream repairs what a crash can leave: torn tails and a lagging index.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::fs::OpenOptions;
use std::path::Path;

use stage1_file_log::stream::{INDEX_FILE, LOG_FILE};
use stage1_file_log::{AppendMode, Error, HEADER_LEN, Message, RecoveryReport, Stream};

const MESSAGES: u64 = 5;
const PAYLOAD: usize = 30;
const RECORD: u64 = (HEADER_LEN + PAYLOAD) as u64;

fn payload(n: u64) -> Vec<u8> {
    vec![n as u8 + 1; PAYLOAD]
}

/// A healthy stream of `MESSAGES` records; returns its log and index bytes.
fn healthy_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut stream = Stream::open(1, dir, AppendMode::SyncEveryAppend).unwrap();
    for n in 0..MESSAGES {
        stream.append(Message::new(n, payload(n))).unwrap();
    }
    drop(stream);
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

/// Checks the stream holds exactly messages `0..count`, intact, and accepts more.
fn assert_holds_intact(dir: &Path, count: u64) -> RecoveryReport {
    let mut stream = Stream::open(1, dir, AppendMode::KeptHandle).unwrap();
    assert_eq!(stream.next_offset(), count);
    assert_eq!(stream.log_len(), count * RECORD);
    let messages = stream.poll(0, u64::MAX).unwrap();
    assert_eq!(messages.len() as u64, count);
    for (message, n) in messages.iter().zip(0..) {
        assert_eq!((message.offset, message.id), (n, n));
        assert_eq!(message.payload, payload(n));
    }
    let report = stream.recovery();
    assert_eq!(
        stream.append(Message::new(count, payload(count))).unwrap(),
        count
    );
    report
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_truncated() {
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    let last_start = (MESSAGES - 1) * RECORD;
    // cut = bytes of the last record that reached the disk before the crash.
    for cut in 0..RECORD {
        let torn_log = &log[..(last_start + cut) as usize];
        // The index may have the last entry (written after the log in a reordered
        // flush) or not (the usual case): both must recover the same way.
        for index in [&index[..], &index[..index.len() - 4]] {
            let dir = root.path().join(format!("cut-{cut}-{}", index.len()));
            write_files(&dir, torn_log, index);
            let report = assert_holds_intact(&dir, MESSAGES - 1);
            assert_eq!(report.log_bytes_truncated, cut, "cut {cut}");
        }
    }
}

#[test]
fn torn_index_entry_is_dropped_and_rewritten() {
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    for torn in 1..4 {
        let dir = root.path().join(format!("torn-{torn}"));
        let keep = index.len() - 4 + torn;
        write_files(&dir, &log, &index[..keep]);
        let report = assert_holds_intact(&dir, MESSAGES);
        assert_eq!(report.index_entries_dropped, 1);
        assert_eq!(report.index_entries_rebuilt, 1);
    }
}

#[test]
fn index_shorter_than_the_log_is_rebuilt_from_the_log() {
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
}

#[test]
fn missing_index_file_is_rebuilt_from_the_log() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stream");
    let (_, index) = healthy_files(&dir);
    std::fs::remove_file(dir.join(INDEX_FILE)).unwrap();
    let report = assert_holds_intact(&dir, MESSAGES);
    assert_eq!(report.index_entries_rebuilt, MESSAGES);
    assert_eq!(
        std::fs::read(dir.join(INDEX_FILE)).unwrap()[..index.len()],
        index[..]
    );
}

#[test]
fn index_entries_pointing_past_the_log_are_dropped() {
    let root = tempfile::tempdir().unwrap();
    let (log, mut index) = healthy_files(&root.path().join("healthy"));
    let dir = root.path().join("ahead");
    // Entries for records that are not in the log, and one that goes backwards.
    for garbage in [u32::MAX, 3, 10_000] {
        index.extend_from_slice(&garbage.to_le_bytes());
    }
    write_files(&dir, &log, &index);
    let report = assert_holds_intact(&dir, MESSAGES);
    assert_eq!(report.index_entries_dropped, 3);
    assert_eq!(report.log_bytes_truncated, 0);
}

#[test]
fn healthy_reopen_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stream");
    let (log, index) = healthy_files(&dir);
    let stream = Stream::open(1, &dir, AppendMode::KeptHandle).unwrap();
    assert_eq!(
        stream.recovery(),
        RecoveryReport {
            messages: MESSAGES,
            ..RecoveryReport::default()
        }
    );
    assert_eq!(std::fs::read(dir.join(LOG_FILE)).unwrap(), log);
    assert_eq!(std::fs::read(dir.join(INDEX_FILE)).unwrap(), index);
}

#[test]
fn damage_in_the_middle_is_an_error_not_a_silent_truncation() {
    let root = tempfile::tempdir().unwrap();
    let (mut log, _) = healthy_files(&root.path().join("healthy"));
    let dir = root.path().join("damaged");
    // Record 2 claims to be offset 99; with the index gone, the walk meets it.
    log[(2 * RECORD) as usize] = 99;
    write_files(&dir, &log, &[]);
    match Stream::open(1, &dir, AppendMode::KeptHandle) {
        Err(Error::Corrupt { position, .. }) => assert_eq!(position, 2 * RECORD),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was cut: the operator still has every byte to look at.
    assert_eq!(std::fs::read(dir.join(LOG_FILE)).unwrap(), log);
}

#[test]
fn repaired_files_reopen_with_nothing_left_to_repair() {
    // A repair leaves files that a second open accepts as they are.
    let root = tempfile::tempdir().unwrap();
    let (log, index) = healthy_files(&root.path().join("healthy"));
    let dir = root.path().join("twice");
    write_files(&dir, &log[..log.len() - 7], &index);
    drop(Stream::open(1, &dir, AppendMode::KeptHandle).unwrap());
    let len = OpenOptions::new()
        .read(true)
        .open(dir.join(LOG_FILE))
        .unwrap()
        .metadata()
        .unwrap()
        .len();
    assert_eq!(len, (MESSAGES - 1) * RECORD);
    let report = assert_holds_intact(&dir, MESSAGES - 1);
    assert_eq!(
        report,
        RecoveryReport {
            messages: MESSAGES - 1,
            ..Default::default()
        }
    );
}
