//! Consumer offsets stored in the partition's directory: stored and read
//! back after a reopen, the last store winning, a torn tail cut, the file
//! compacted once it grows, bad names and offsets refused, and, under fsync
//! `always`, every acknowledged store surviving a SIGKILL.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{batch, config, on_both_drivers};
use stage6_broker::storage::consumer_offsets::{CONSUMER_OFFSETS_FILE, MAX_CONSUMER_NAME_LEN};
use stage6_broker::{Config, Error, FsyncPolicy, IoDriver, Partition};

fn offsets_config(fsync: FsyncPolicy) -> Config {
    config(1 << 20, true, fsync)
}

/// A partition in `dir` with `records` records, so offsets up to it can be stored.
async fn partition_with(dir: &Path, fsync: FsyncPolicy, records: u64) -> Partition {
    let mut partition = Partition::open(dir, offsets_config(fsync)).await.unwrap();
    let mut next = partition.next_offset();
    while next < records {
        let count = (records - next).min(500) as usize;
        let mut bytes = batch(next, &vec![0; count]);
        next = partition.append(&mut bytes).await.unwrap().offsets.end;
    }
    partition
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(CONSUMER_OFFSETS_FILE))
        .unwrap()
        .len()
}

#[test]
fn consumer_offsets_are_stored_and_read_back_after_reopen() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut partition = partition_with(dir.path(), FsyncPolicy::EveryBatch, 100).await;
            assert_eq!(partition.consumer_offset("billing"), None);
            assert!(partition.consumer_offsets().is_empty());
            partition
                .store_consumer_offset("billing", 10)
                .await
                .unwrap();
            partition.store_consumer_offset("audit", 100).await.unwrap();
            partition
                .store_consumer_offset("billing", 42)
                .await
                .unwrap();
            // Last wins, backwards too: a consumer may rewind.
            partition.store_consumer_offset("audit", 7).await.unwrap();
            assert_eq!(partition.consumer_offset("billing"), Some(42));
            partition.flush().await.unwrap();
        }
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::EveryBatch))
            .await
            .unwrap();
        assert_eq!(partition.consumer_offset("billing"), Some(42));
        assert_eq!(partition.consumer_offset("audit"), Some(7));
        assert_eq!(partition.consumer_offset("nobody"), None);
        assert_eq!(
            partition.consumer_offsets(),
            vec![("audit".to_string(), 7), ("billing".to_string(), 42)]
        );
    });
}

#[test]
fn consumer_offsets_torn_tail_is_cut_and_written_over() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut partition = partition_with(dir.path(), FsyncPolicy::Always, 50).await;
            partition.store_consumer_offset("a", 1).await.unwrap();
            partition.store_consumer_offset("b", 2).await.unwrap();
            partition.store_consumer_offset("a", 3).await.unwrap();
        }
        // The last entry ("a" = 3, 15 bytes) torn: 6 bytes of it lost.
        let path = dir.path().join(CONSUMER_OFFSETS_FILE);
        let whole = file_len(dir.path());
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - 6).unwrap();
        {
            let mut partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::Always))
                .await
                .unwrap();
            assert_eq!(
                partition.consumer_offset("a"),
                Some(1),
                "the torn store is gone"
            );
            assert_eq!(partition.consumer_offset("b"), Some(2));
            assert_eq!(
                file_len(dir.path()),
                whole - 15,
                "cut at the last whole entry"
            );
            partition.store_consumer_offset("c", 4).await.unwrap();
        }
        // Junk after the entries (a torn write's remains): ignored too.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xAB; 40]);
        std::fs::write(&path, bytes).unwrap();
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::Always))
            .await
            .unwrap();
        assert_eq!(
            partition.consumer_offsets(),
            vec![
                ("a".to_string(), 1),
                ("b".to_string(), 2),
                ("c".to_string(), 4)
            ]
        );
    });
}

#[test]
fn consumer_offsets_file_is_compacted_as_it_grows() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let stores = 10_000u64;
        {
            let mut partition = partition_with(dir.path(), FsyncPolicy::EveryBatch, stores).await;
            for n in 1..=stores {
                let consumer = ["c1", "c2", "c3"][(n % 3) as usize];
                partition.store_consumer_offset(consumer, n).await.unwrap();
            }
            // 10 000 entries of 16 bytes would be 160 000 bytes: compacted,
            // the file stays near its 64 KiB bound.
            assert!(file_len(dir.path()) <= 64 << 10, "{}", file_len(dir.path()));
            partition.flush().await.unwrap();
        }
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::EveryBatch))
            .await
            .unwrap();
        assert_eq!(
            partition.consumer_offsets(),
            vec![
                ("c1".to_string(), stores - 1),
                ("c2".to_string(), stores),
                ("c3".to_string(), stores - 2)
            ]
        );
        // A compaction a crash interrupted before its rename leaves its
        // temporary file: removed on open, the offsets as they were.
        drop(partition);
        let leftover = dir.path().join("consumer-offsets.compacting");
        std::fs::write(&leftover, [1u8; 100]).unwrap();
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::EveryBatch))
            .await
            .unwrap();
        assert!(!leftover.exists());
        assert_eq!(partition.consumer_offset("c2"), Some(stores));
    });
}

#[test]
fn consumer_offsets_bad_names_and_offsets_are_refused() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let mut partition = partition_with(dir.path(), FsyncPolicy::EveryBatch, 10).await;
        let longest = "x".repeat(MAX_CONSUMER_NAME_LEN);
        partition.store_consumer_offset(&longest, 10).await.unwrap();
        for (name, offset) in [
            ("x".repeat(MAX_CONSUMER_NAME_LEN + 1), 1),
            ("y".repeat(1 << 20), 1),
            (String::new(), 1),
            ("ok".to_string(), 11),
        ] {
            let error = partition
                .store_consumer_offset(&name, offset)
                .await
                .unwrap_err();
            assert!(
                matches!(error, Error::InvalidConsumerOffset { .. }),
                "{error}"
            );
        }
        assert_eq!(partition.consumer_offsets(), vec![(longest.clone(), 10)]);
        assert!(
            partition.failure().is_none(),
            "a refused store fails nothing"
        );
        // Flushed, as the broker does at shutdown: the records the offset
        // points past are written, and the offset after them.
        partition.flush().await.unwrap();
        drop(partition);
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::EveryBatch))
            .await
            .unwrap();
        assert_eq!(partition.consumer_offsets(), vec![(longest, 10)]);
    });
}

/// The child's side of the SIGKILL test: stores offsets under `always`,
/// printing each one once its store has returned.
fn store_until_killed(dir: &Path) {
    let runtime = IoDriver::Auto.runtime().unwrap();
    runtime.block_on(async {
        let mut partition = partition_with(dir, FsyncPolicy::Always, 5_000).await;
        for n in 1..=5_000u64 {
            let consumer = format!("consumer-{}", n % 3);
            partition.store_consumer_offset(&consumer, n).await.unwrap();
            println!("stored {consumer} {n}");
        }
        // Done before the kill: wait for it, however late it comes.
        loop {
            std::thread::park();
        }
    });
}

const CHILD_DIR: &str = "RIVULET_CONSUMER_OFFSETS_CHILD_DIR";

#[test]
fn consumer_offsets_under_always_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        store_until_killed(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // This test binary again, running only this test, as the child.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "consumer_offsets_under_always_survive_sigkill"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = std::collections::BTreeMap::new();
    let mut note = |line: String| {
        // The test harness's own lines are not stores.
        if let Some((consumer, n)) = line.strip_prefix("stored ").and_then(|l| l.split_once(' ')) {
            acked.insert(consumer.to_string(), n.parse::<u64>().unwrap());
        }
    };
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.ends_with(" 300");
        note(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9), "died of SIGKILL");
    // What it printed before it died: every store acknowledged.
    for line in lines {
        note(line.unwrap());
    }
    assert_eq!(acked.len(), 3);

    let runtime = IoDriver::Auto.runtime().unwrap();
    runtime.block_on(async {
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::Always))
            .await
            .unwrap();
        for (consumer, &acked) in &acked {
            let stored = partition.consumer_offset(consumer).unwrap();
            // Every acknowledged store is there; at most the one in flight
            // when the kill came (three stores on) is newer.
            assert!(
                stored == acked || stored == acked + 3,
                "{consumer}: acked {acked}, stored {stored}"
            );
        }
    });
}

#[test]
fn consumer_offsets_past_the_log_are_brought_back_to_its_end_at_open() {
    on_both_drivers(|_| async {
        let dir = tempfile::tempdir().unwrap();
        let mut partition = partition_with(dir.path(), FsyncPolicy::EveryBatch, 5).await;
        partition.flush().await.unwrap();
        drop(partition);
        // What the sync order now prevents, written by hand: a stored offset
        // (300) past the log's end (5), as a crash used to leave it.
        let mut entry = Vec::new();
        entry.extend_from_slice(&1u16.to_le_bytes());
        entry.extend_from_slice(b"c");
        entry.extend_from_slice(&300u64.to_le_bytes());
        let mut file = crc32c::crc32c(&entry).to_le_bytes().to_vec();
        file.extend_from_slice(&entry);
        std::fs::write(dir.path().join(CONSUMER_OFFSETS_FILE), file).unwrap();
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::EveryBatch))
            .await
            .unwrap();
        assert_eq!(partition.consumer_offset("c"), Some(5));
        drop(partition);
        // And the repair is stored, not redone at every start.
        let partition = Partition::open(dir.path(), offsets_config(FsyncPolicy::Always))
            .await
            .unwrap();
        assert_eq!(partition.consumer_offset("c"), Some(5));
    });
}

#[test]
fn consumer_offsets_never_reach_the_file_before_the_records_they_point_past() {
    on_both_drivers(|_| async {
        for fsync in [FsyncPolicy::EveryBatch, FsyncPolicy::Never] {
            let dir = tempfile::tempdir().unwrap();
            // Records accepted, still in the partition's buffer: not safe.
            let mut partition = partition_with(dir.path(), fsync, 300).await;
            partition.store_consumer_offset("c", 300).await.unwrap();
            assert_eq!(
                partition.consumer_offset("c"),
                Some(300),
                "reads see it at once"
            );
            assert_eq!(file_len(dir.path()), 0, "{fsync:?}: held, not written");
            // Once the records are safe, the offset follows them to the file.
            partition.tick(std::time::Instant::now()).await.unwrap();
            assert!(
                file_len(dir.path()) > 0,
                "{fsync:?}: written after its records"
            );
        }
    });
}
