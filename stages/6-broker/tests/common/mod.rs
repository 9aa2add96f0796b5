//! Helpers shared by the integration tests: batches of records, a partition's
//! records read back, and running a test on both compio drivers.

#![allow(dead_code)] // each test file uses its own share of these

use std::future::Future;
use std::path::Path;

pub use payload::payload;
use stage6_broker::shards::driver::driver_name;
use stage6_broker::storage::record::{encode as encode_record, header_at, walk};
use stage6_broker::{Config, FsyncPolicy, IoDriver, Partition};

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub offset: u64,
    pub timestamp: u64,
    pub id: u64,
    pub payload: Vec<u8>,
}

/// Runs `test` on an io_uring runtime and on a polling runtime, saying which.
/// Where the kernel refuses io_uring, the first run is compio's own choice
/// (its fallback), and the output says so.
pub fn on_both_drivers<F, Fut>(test: F)
where
    F: Fn(IoDriver) -> Fut,
    Fut: Future<Output = ()>,
{
    for driver in [IoDriver::IoUring, IoDriver::Polling] {
        let (driver, runtime) = match driver.runtime() {
            Ok(runtime) => (driver, runtime),
            Err(error) => {
                eprintln!(
                    "{} unavailable ({error}): running on compio's choice",
                    driver.name()
                );
                (IoDriver::Auto, IoDriver::Auto.runtime().unwrap())
            }
        };
        eprintln!("driver: {}", driver_name(&runtime));
        runtime.block_on(test(driver));
    }
}

/// A small-segment config for tests.
pub fn config(segment_size: u64, direct_io: bool, fsync: FsyncPolicy) -> Config {
    Config {
        segment_size,
        direct_io,
        fsync,
        ..Config::default()
    }
}

/// A producer's batch: records with ids from `first_id`, payload sizes as given,
/// offsets, timestamps and checksums left for the partition to stamp.
pub fn batch(first_id: u64, sizes: &[usize]) -> Vec<u8> {
    let mut records = Vec::new();
    for (id, &size) in (first_id..).zip(sizes) {
        encode_record(&mut records, 0, 0, id, &payload(id, size));
    }
    records
}

// The crash tests' writer binary includes the same file, so the test can
// tell what every record's payload should be.
#[path = "payload.rs"]
mod payload;

/// Splits stored bytes into records.
pub fn parse(bytes: &[u8]) -> Vec<Stored> {
    if bytes.is_empty() {
        return Vec::new();
    }
    walk(bytes)
        .unwrap()
        .into_iter()
        .map(|(at, len)| {
            let header = header_at(&bytes[at..]).unwrap();
            Stored {
                offset: header.offset,
                timestamp: header.timestamp,
                id: header.id,
                payload: bytes[at + 32..at + len].to_vec(),
            }
        })
        .collect()
}

/// Every record from `from` to the end, polled `per_poll` at a time, with
/// their bytes as stored.
pub async fn read_all(partition: &Partition, from: u64, per_poll: u64) -> (Vec<Stored>, Vec<u8>) {
    let mut records = Vec::new();
    let mut bytes = Vec::new();
    let mut offset = from;
    while offset < partition.status().next_offset {
        let polled = partition.poll(offset, per_poll).await.unwrap();
        assert!(polled.count > 0, "poll at {offset} returned nothing");
        let got = parse(polled.bytes.as_slice());
        assert_eq!(got.len() as u64, polled.count);
        bytes.extend_from_slice(polled.bytes.as_slice());
        records.extend(got);
        offset += polled.count;
    }
    (records, bytes)
}

/// Checks `records` are offsets `0..` with ids equal to offsets, the payload
/// of `payload(id, size_of(id))`.
pub fn assert_dense(records: &[Stored], size_of: impl Fn(u64) -> usize) {
    for (n, record) in (0..).zip(records) {
        assert_eq!(record.offset, n, "offsets are dense");
        assert_eq!(record.id, n, "record {n} is the one appended at {n}");
        assert!(record.payload == payload(n, size_of(n)), "payload of {n}");
    }
}

/// The segment log files in `dir`, in order.
pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// Copies every file of `from` into a new folder `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
