//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 6` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. In the order of
//! the chapters: `tail_block` writes a segment (Direct I/O);
//! `trusted_positions` reopens partitions written with it; `owner` is
//! arithmetic (thread-per-core); `route` serves requests through a running
//! engine, which needs all three. Each runs in a second or less, on compio's
//! default driver.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{assert_dense, batch, config, read_all};
use stage6_broker::shards::frame::HEADER_LEN;
use stage6_broker::shards::protocol::{
    Produced, code, encode_create_topic, encode_poll, encode_produce_head,
};
use stage6_broker::shards::router::owner;
use stage6_broker::shards::wire::{Partitioning, status};
use stage6_broker::storage::aligned::ALIGN;
use stage6_broker::storage::record::{self, header_at};
use stage6_broker::storage::segment::{LOG_EXTENSION, Segment, file_name};
use stage6_broker::{Config, FsyncPolicy, IoDriver, Partition, ServerConfig};

/// Runs `test` to its end on compio's default driver (io_uring where the
/// kernel allows it, else polling).
fn on_compio<F: Future<Output = ()>>(test: F) {
    IoDriver::Auto.runtime().unwrap().block_on(test);
}

// tail_block: the partial last block, carried to the next write.

/// A new segment with Direct I/O and a write buffer of 4 blocks, and its file.
async fn segment(dir: &Path) -> (Segment, std::path::PathBuf) {
    let segment = Segment::create(dir, 0, 1 << 20, 1 << 20, true, 4 * ALIGN)
        .await
        .unwrap();
    (segment, dir.join(file_name(0, LOG_EXTENSION)))
}

/// Bytes unlike their neighbours, so a misplaced block shows.
fn bytes(from: u64, to: u64) -> Vec<u8> {
    (from..to)
        .map(|p| (p.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect()
}

#[test]
fn exercise_tail_block_the_next_write_rewrites_the_partial_block_whole() {
    on_compio(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut segment, path) = segment(dir.path()).await;
        // 6000 bytes: one whole block, and 1904 in the second.
        segment.append(&bytes(0, 6000)).await.unwrap();
        segment.write().await.unwrap();
        let file = std::fs::read(&path).unwrap();
        assert!(file[..6000] == bytes(0, 6000), "the records");
        assert!(
            file[6000..2 * ALIGN].iter().all(|&b| b == 0),
            "then zeros to the block's end"
        );
        // 100 more: the write starts at 4096 and carries the 1904 bytes again.
        segment.append(&bytes(6000, 6100)).await.unwrap();
        segment.write().await.unwrap();
        assert_eq!(segment.unwritten(), 0);
        let file = std::fs::read(&path).unwrap();
        assert!(
            file[..6100] == bytes(0, 6100),
            "the second write kept the first's tail"
        );
        assert!(file[6100..2 * ALIGN].iter().all(|&b| b == 0));
    });
}

#[test]
fn exercise_tail_block_reads_see_every_byte_wherever_it_is() {
    on_compio(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut segment, _) = segment(dir.path()).await;
        let mut end = 0;
        // Appends of odd sizes, a write after each: tails of every kind,
        // and a buffer that fills (4 blocks) in the middle of an append.
        for len in [1, 4095, 4097, 13, 20_000, 3] {
            segment.append(&bytes(end, end + len)).await.unwrap();
            segment.write().await.unwrap();
            end += len;
            let read = segment
                .read(0, end, stage6_broker::AlignedBuf::with_capacity(0).unwrap())
                .await
                .unwrap();
            assert!(read.as_slice() == bytes(0, end), "after {end} bytes");
        }
    });
}

// trusted_positions: which index entries recovery believes.

/// Payload sizes: records 0..3 in one batch (time 10), record 3 alone (time 20).
const SIZES: [usize; 4] = [100, 200, 3660, 60];

fn size_of(id: u64) -> usize {
    SIZES.get(id as usize).copied().unwrap_or(10)
}

fn test_config() -> Config {
    config(64 << 10, true, FsyncPolicy::Always)
}

/// Writes the four records, closes the partition, returns the offset
/// index's bytes (4 positions: 0, 132, 364, 4056).
async fn four_records(dir: &Path) -> Vec<u8> {
    let mut partition = Partition::open(dir, test_config()).await.unwrap();
    partition
        .append_at(&mut batch(0, &SIZES[..3]), 10)
        .await
        .unwrap();
    partition
        .append_at(&mut batch(3, &SIZES[3..]), 20)
        .await
        .unwrap();
    drop(partition);
    std::fs::read(dir.join(file_name(0, "index"))).unwrap()
}

#[test]
fn exercise_trusted_positions_keeps_the_consistent_prefix_and_rebuilds_the_rest() {
    on_compio(async {
        let original = tempfile::tempdir().unwrap();
        let index = four_records(original.path()).await;
        let entry = |n: usize| u32::from_le_bytes(index[4 * n..4 * n + 4].try_into().unwrap());
        assert_eq!((0..4).map(entry).collect::<Vec<_>>(), [0, 132, 364, 4056]);
        type Damage = fn(&mut Vec<u8>);
        // (what is done to the index, entries dropped, entries rebuilt)
        let cases: [(&str, Damage, u64, u64); 5] = [
            ("healthy", |_| {}, 0, 0),
            (
                "second inside the first's header",
                |b| b[4..8].copy_from_slice(&7u32.to_le_bytes()),
                3,
                3,
            ),
            (
                "third not a header after the second",
                |b| b[8..12].copy_from_slice(&140u32.to_le_bytes()),
                2,
                2,
            ),
            (
                "a fifth past the file's end",
                |b| b.extend(u32::MAX.to_le_bytes()),
                1,
                0,
            ),
            (
                "the last before the one before it",
                |b| b[12..].copy_from_slice(&100u32.to_le_bytes()),
                1,
                1,
            ),
        ];
        let work = tempfile::tempdir().unwrap();
        for (name, damage, dropped, rebuilt) in cases {
            let dir = work.path().join(name.replace(' ', "-"));
            common::copy_dir(original.path(), &dir);
            let path = dir.join(file_name(0, "index"));
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
            let partition = Partition::open(&dir, test_config()).await.unwrap();
            let report = *partition.recovery();
            assert_eq!(report.records, 4, "{name}");
            assert_eq!(
                (report.index_entries_dropped, report.index_entries_rebuilt),
                (dropped, rebuilt),
                "{name}: (dropped, rebuilt)"
            );
            let (records, _) = read_all(&partition, 0, 100).await;
            assert_dense(&records, size_of);
            drop(partition);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                index,
                "{name}: the index, repaired"
            );
        }
    });
}

#[test]
fn exercise_trusted_positions_of_a_sealed_segment_stop_at_its_record_count() {
    on_compio(async {
        let dir = tempfile::tempdir().unwrap();
        let sized = config(64 << 10, true, FsyncPolicy::Always);
        let mut partition = Partition::open(dir.path(), sized.clone()).await.unwrap();
        // 5000-byte payloads, a timestamp each: 13 records fill the first
        // 64 KiB segment, the other 7 go to the second.
        for id in 0..20 {
            partition
                .append_at(&mut batch(id, &[5000]), 1000 + id)
                .await
                .unwrap();
        }
        drop(partition);
        assert_eq!(common::log_files(dir.path()).len(), 2);
        // A 14th offset entry that looks right (after the 13th, inside the
        // file), and a time entry for it: only the record count the next
        // segment's name gives says they are one too many.
        let sealed = dir.path().join(file_name(0, "index"));
        let mut index = std::fs::read(&sealed).unwrap();
        assert_eq!(index.len(), 13 * 4);
        let last = u32::from_le_bytes(index[48..52].try_into().unwrap());
        index.extend((last + 1000).to_le_bytes());
        std::fs::write(&sealed, &index).unwrap();
        let times = dir.path().join(file_name(0, "timeindex"));
        let mut time_index = std::fs::read(&times).unwrap();
        time_index.extend(1_000_000u64.to_le_bytes());
        time_index.extend(13u32.to_le_bytes());
        std::fs::write(&times, &time_index).unwrap();

        let partition = Partition::open(dir.path(), sized).await.unwrap();
        let report = *partition.recovery();
        assert_eq!((report.segments, report.records), (2, 20));
        assert_eq!(
            (report.index_entries_dropped, report.time_entries_dropped),
            (1, 1),
            "the entries past the count"
        );
        let (records, _) = read_all(&partition, 0, 100).await;
        assert_dense(&records, |_| 5000);
    });
}

// owner: which shard owns a partition.

#[test]
fn exercise_owner_starts_a_topic_at_the_crc32c_of_its_id() {
    for topic in [0, 1, 5, 1000, u32::MAX] {
        let start = crc32c::crc32c(&topic.to_le_bytes());
        for shards in [1, 2, 3, 8] {
            assert_eq!(
                owner(topic, 0, shards),
                (start % shards as u32) as usize,
                "topic {topic}, {shards} shards"
            );
        }
    }
}

#[test]
fn exercise_owner_puts_consecutive_partitions_on_consecutive_shards() {
    for topic in [0, 7, 1000] {
        for shards in 1..8 {
            let mut owned = vec![0; shards];
            for partition in 0..shards as u32 * 3 {
                let shard = owner(topic, partition, shards);
                owned[shard] += 1;
                assert_eq!(owner(topic, partition + 1, shards), (shard + 1) % shards);
            }
            assert_eq!(owned, vec![3; shards], "topic {topic}, {shards} shards");
        }
    }
}

#[test]
fn exercise_owner_never_divides_by_zero_or_overflows() {
    assert_eq!(owner(5, 3, 0), 0, "no shards counts as one");
    assert!(owner(u32::MAX, u32::MAX, 7) < 7, "crc + partition past u32");
    let start = u64::from(crc32c::crc32c(&u32::MAX.to_le_bytes()));
    assert_eq!(
        owner(u32::MAX, u32::MAX, 7) as u64,
        (start + u64::from(u32::MAX)) % 7
    );
}

// route: a request handed to the shard that owns its partition.

/// One request and its reply: `(status, body)`.
fn call(stream: &mut TcpStream, code: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let mut frame = ((body.len() + 6) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(&7u32.to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
    let mut header = [0u8; HEADER_LEN];
    if let Err(error) = stream.read_exact(&mut header) {
        panic!("no answer ({error}): a shard that panicked closes the connection");
    }
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let status = u16::from_le_bytes(header[4..6].try_into().unwrap());
    let mut reply = vec![0; len - 6];
    stream.read_exact(&mut reply).unwrap();
    (status, reply)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    // Only a lost request waits this long; an answer comes in milliseconds.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

#[test]
fn exercise_route_serves_every_partition_from_any_shard() {
    const SHARDS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let server = stage6_broker::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: dir.path().to_path_buf(),
        shards: SHARDS,
        pin: false,
        storage: Config {
            segment_size: 256 << 10,
            ..Config::default()
        },
        ..ServerConfig::new()
    })
    .unwrap();
    // Four partitions over two shards: whichever shard took the connection
    // owns some of them and not the others.
    let owners: Vec<usize> = (0..4).map(|p| owner(5, p, SHARDS)).collect();
    assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    let mut stream = connect(server.addr());
    let (created, _) = call(&mut stream, code::CREATE_TOPIC, &encode_create_topic(5, 4));
    assert_eq!(created, status::OK);
    for partition in 0..4 {
        let ids: Vec<u64> = (0..3).map(|n| u64::from(partition) * 100 + n).collect();
        let mut body = encode_produce_head(5, &Partitioning::Explicit(partition), 3);
        for id in &ids {
            record::encode(&mut body, 0, 0, *id, format!("message {id}").as_bytes());
        }
        let (status, reply) = call(&mut stream, code::PRODUCE, &body);
        assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
        let produced = Produced::decode(&reply).unwrap();
        assert_eq!((produced.partition, produced.first_offset), (partition, 0));

        let (status, reply) = call(&mut stream, code::POLL, &encode_poll(5, partition, 0, 10));
        assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
        let records = &reply[4..];
        let polled: Vec<u64> = record::walk(records)
            .unwrap()
            .into_iter()
            .map(|(at, _)| header_at(&records[at..]).unwrap().id)
            .collect();
        assert_eq!(
            polled, ids,
            "partition {partition}, owned by shard {}",
            owners[partition as usize]
        );
    }
    drop(stream);
    server.shutdown().unwrap();
}
