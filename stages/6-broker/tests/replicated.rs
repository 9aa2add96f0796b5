//! A follower's append: records taken as another partition stored them,
//! offsets, timestamps and checksums kept, so the two partitions hold the
//! same bytes; a batch that does not continue the log is refused whole; and
//! a follower with a tail its leader lacks truncates and takes the leader's.
//! Each test runs on both compio drivers.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::Path;

use common::{assert_dense, batch, config, log_files, on_both_drivers, read_all};
use stage6_broker::storage::record::RECORD_HEADER_LEN;
use stage6_broker::{Config, Error, FsyncPolicy, Partition};

fn size_of(id: u64) -> usize {
    [100, 4000, 777][(id % 3) as usize]
}

/// `batches` batches of three appended to `partition` from offset `from`,
/// each at its own time.
async fn append_batches(partition: &mut Partition, from: u64, batches: u64) -> u64 {
    let mut next = from;
    for _ in 0..batches {
        let sizes: Vec<usize> = (next..next + 3).map(size_of).collect();
        let at = 1_000_000 + next;
        next = partition
            .append_at(&mut batch(next, &sizes), at)
            .await
            .unwrap()
            .offsets
            .end;
    }
    next
}

/// Copies `leader`'s records from `from` to its end into `follower`, a poll
/// at a time, as a follower's fetch loop would.
async fn replicate(leader: &Partition, follower: &mut Partition, from: u64) {
    let mut offset = from;
    while offset < leader.next_offset() {
        let polled = leader.poll(offset, 7).await.unwrap();
        let appended = follower
            .append_replicated(polled.bytes.as_slice())
            .await
            .unwrap();
        assert_eq!(appended.offsets, offset..offset + polled.count);
        offset += polled.count;
    }
}

fn open_config() -> Config {
    config(16 << 10, true, FsyncPolicy::EveryBatch)
}

async fn open(dir: &Path) -> Partition {
    Partition::open(dir, open_config()).await.unwrap()
}

#[test]
fn a_follower_holds_the_leaders_bytes_exactly() {
    on_both_drivers(|_| async {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path()).await;
        let mut follower = open(follower_dir.path()).await;
        let next = append_batches(&mut leader, 0, 20).await;
        replicate(&leader, &mut follower, 0).await;
        leader.flush().await.unwrap();
        follower.flush().await.unwrap();
        let (leader_records, leader_bytes) = read_all(&leader, 0, 1000).await;
        let (_, follower_bytes) = read_all(&follower, 0, 1000).await;
        assert_eq!(leader_records.len() as u64, next);
        assert!(leader_bytes == follower_bytes, "the same bytes polled");
        assert_eq!(leader.segment_bases(), follower.segment_bases());
        // The time index follows the leader's stamps: a lookup by time finds
        // the same offset on both.
        for at in [1_000_000, 1_000_030, 1_000_059] {
            assert_eq!(leader.offset_at(at), follower.offset_at(at), "time {at}");
        }
        drop((leader, follower));
        // And the same files, byte for byte.
        let files = |dir: &Path| -> Vec<Vec<u8>> {
            log_files(dir)
                .iter()
                .map(|f| std::fs::read(f).unwrap())
                .collect()
        };
        assert!(files(leader_dir.path()) == files(follower_dir.path()));
        let follower = open(follower_dir.path()).await;
        let (records, _) = read_all(&follower, 0, 1000).await;
        assert_dense(&records, size_of);
    });
}

#[test]
fn a_batch_that_does_not_continue_the_log_is_refused_whole() {
    on_both_drivers(|_| async {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path()).await;
        let mut follower = open(follower_dir.path()).await;
        append_batches(&mut leader, 0, 4).await;
        // Starting at offset 3 on an empty follower: a gap.
        let polled = leader.poll(3, 3).await.unwrap();
        match follower.append_replicated(polled.bytes.as_slice()).await {
            Err(Error::NotReplicable {
                expected: 0,
                found: 3,
                checksum_matches: true,
            }) => {}
            other => panic!("expected NotReplicable, got {other:?}"),
        }
        // A flipped payload bit in the second record: refused, nothing stored.
        let polled = leader.poll(0, 3).await.unwrap();
        let mut bytes = polled.bytes.as_slice().to_vec();
        let second = RECORD_HEADER_LEN + size_of(0);
        bytes[second + RECORD_HEADER_LEN + 5] ^= 1;
        match follower.append_replicated(&bytes).await {
            Err(Error::NotReplicable {
                expected: 1,
                checksum_matches: false,
                ..
            }) => {}
            other => panic!("expected NotReplicable, got {other:?}"),
        }
        assert_eq!(follower.next_offset(), 0);
        assert_eq!(follower.failure(), None);
        // The intact batch goes in.
        replicate(&leader, &mut follower, 0).await;
        assert_eq!(follower.next_offset(), leader.next_offset());
    });
}

#[test]
fn a_follower_with_a_tail_its_leader_lacks_truncates_and_takes_the_leaders() {
    on_both_drivers(|_| async {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path()).await;
        let mut follower = open(follower_dir.path()).await;
        // Both hold the first 12 records; then each took different ones (the
        // follower was the leader once, and its last records never reached
        // the others).
        let common = append_batches(&mut leader, 0, 4).await;
        replicate(&leader, &mut follower, 0).await;
        append_batches(&mut follower, common, 10).await;
        append_batches(&mut leader, common, 3).await;
        follower.truncate_to(common).await.unwrap();
        replicate(&leader, &mut follower, common).await;
        let (_, leader_bytes) = read_all(&leader, 0, 1000).await;
        let (records, follower_bytes) = read_all(&follower, 0, 1000).await;
        assert!(leader_bytes == follower_bytes);
        assert_dense(&records, size_of);
        follower.flush().await.unwrap();
        drop(follower);
        let follower = open(follower_dir.path()).await;
        assert_eq!(follower.next_offset(), leader.next_offset());
    });
}

#[test]
fn a_follower_behind_the_leaders_retention_restarts_empty_at_its_first_offset() {
    on_both_drivers(|_| async {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path()).await;
        let mut follower = open(follower_dir.path()).await;
        append_batches(&mut leader, 0, 20).await;
        append_batches(&mut follower, 0, 2).await;
        // The leader kept only its last segments; the follower restarts there.
        let restart = leader.segment_bases()[2];
        assert!(
            matches!(
                follower.restart_at(1).await,
                Err(Error::RestartBehind { offset: 1, next: 6 })
            ),
            "never backwards"
        );
        follower.restart_at(restart).await.unwrap();
        assert_eq!(
            (follower.first_offset(), follower.next_offset()),
            (restart, restart)
        );
        assert_eq!(follower.segment_bases(), vec![restart]);
        replicate(&leader, &mut follower, restart).await;
        follower.flush().await.unwrap();
        drop(follower);
        let follower = open(follower_dir.path()).await;
        assert_eq!(follower.first_offset(), restart);
        assert_eq!(follower.next_offset(), leader.next_offset());
        let (_, leader_bytes) = read_all(&leader, restart, 1000).await;
        let (_, follower_bytes) = read_all(&follower, restart, 1000).await;
        assert!(leader_bytes == follower_bytes);
    });
}

#[test]
fn a_restart_cut_short_by_a_crash_leaves_the_old_log_whole() {
    on_both_drivers(|_| async {
        // What a crash right after the restart's first step leaves: the old
        // segments, then a new, empty one at an offset their records do not
        // reach.
        let dir = tempfile::tempdir().unwrap();
        let mut partition = open(dir.path()).await;
        let next = append_batches(&mut partition, 0, 20).await;
        partition.flush().await.unwrap();
        let bases = partition.segment_bases();
        drop(partition);
        let restart = next + 100;
        for extension in ["log", "index", "timeindex"] {
            let name = stage6_broker::storage::segment::file_name(restart, extension);
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let partition = open(dir.path()).await;
        assert_eq!(partition.recovery().segments_discarded, 1);
        assert_eq!(partition.segment_bases(), bases);
        assert_eq!(partition.next_offset(), next);
        let (records, _) = read_all(&partition, 0, 1000).await;
        assert_dense(&records, size_of);
    });
}
