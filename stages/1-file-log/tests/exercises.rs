//! The exercises' tests: each is named `exercise_<name>_...` after the
//! exercise it grades (the body marked `// EXERCISE: <name>` in `src/`).
//! `scripts/exercise 1` runs them against a copy of this crate with those
//! bodies taken out; here they run against the real code. Each builds its
//! input by hand, so an exercise's tests need no other exercise done first.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::fs::File;
use std::path::Path;

use stage1_file_log::index::read_entry;
use stage1_file_log::stream::{INDEX_FILE, LOG_FILE};
use stage1_file_log::{AppendMode, Error, Message, RecordError, Stream};

/// The talk's first record, "hello" at offset 0 with id 1, byte by byte.
#[rustfmt::skip]
const HELLO: [u8; 25] = [
    0, 0, 0, 0, 0, 0, 0, 0, // offset 0
    1, 0, 0, 0, 0, 0, 0, 0, // id 1
    5, 0, 0, 0,             // payload length 5
    b'h', b'e', b'l', b'l', b'o',
];

/// A record's bytes, written out by hand (not with `encode_into`).
fn record(offset: u64, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = offset.to_le_bytes().to_vec();
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

// encode_into: a message's record, appended to a buffer.

#[test]
fn exercise_encode_into_writes_the_talks_hello_record() {
    let mut bytes = vec![0xaa];
    Message {
        offset: 0,
        id: 1,
        payload: b"hello".to_vec(),
    }
    .encode_into(&mut bytes)
    .unwrap();
    assert_eq!(bytes[0], 0xaa, "the bytes already in the buffer stay");
    assert_eq!(bytes[1..], HELLO, "offset, id, length, payload");
}

#[test]
fn exercise_encode_into_puts_each_field_little_endian_in_its_place() {
    let message = Message {
        offset: 0x0102_0304_0506_0708,
        id: 0x1112_1314_1516_1718,
        payload: vec![7; 300],
    };
    let mut bytes = Vec::new();
    message.encode_into(&mut bytes).unwrap();
    assert_eq!(bytes, record(message.offset, message.id, &message.payload));
    assert_eq!(
        bytes[16..20],
        [0x2c, 0x01, 0, 0],
        "300 as a little-endian u32"
    );
    assert_eq!(
        message.as_bytes().unwrap(),
        bytes,
        "as_bytes is encode_into"
    );
}

// from_bytes: the record at the start of a buffer, every length checked.

#[test]
fn exercise_from_bytes_reads_the_talks_hello_record() {
    let hello = Message {
        offset: 0,
        id: 1,
        payload: b"hello".to_vec(),
    };
    assert_eq!(Message::from_bytes(&HELLO).unwrap(), hello);
    let mut two = HELLO.to_vec();
    two.extend_from_slice(&record(1, 2, b"world"));
    assert_eq!(
        Message::from_bytes(&two).unwrap(),
        hello,
        "the bytes after the record are not part of it"
    );
}

#[test]
fn exercise_from_bytes_a_short_header_is_truncated() {
    for len in [0, 1, 19] {
        assert_eq!(
            Message::from_bytes(&HELLO[..len]),
            Err(RecordError::Truncated {
                needed: 20,
                available: len
            }),
            "{len} bytes"
        );
    }
}

#[test]
fn exercise_from_bytes_a_short_payload_is_truncated_not_a_panic() {
    assert_eq!(
        Message::from_bytes(&HELLO[..24]),
        Err(RecordError::Truncated {
            needed: 25,
            available: 24
        })
    );
    // A length field that lies: 4 GiB - 1 of payload claimed in 25 bytes.
    let mut lying = HELLO;
    lying[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Message::from_bytes(&lying),
        Err(RecordError::Truncated {
            needed: 20 + u64::from(u32::MAX),
            available: 25
        })
    );
}

// read_entry: one index entry, by a positional read.

#[test]
fn exercise_read_entry_reads_entry_n_at_four_times_n() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(INDEX_FILE);
    let positions: [u32; 3] = [0, 25, 70_000];
    let bytes: Vec<u8> = positions.iter().flat_map(|p| p.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    let index = File::open(&path).unwrap();
    // Out of order: each read says where it reads.
    for n in [2, 0, 1, 2] {
        assert_eq!(
            read_entry(&index, n).unwrap(),
            positions[n as usize],
            "entry {n}"
        );
    }
}

#[test]
fn exercise_read_entry_past_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(INDEX_FILE);
    // One whole entry, and half of a second (a torn write).
    std::fs::write(&path, [25, 0, 0, 0, 50, 0]).unwrap();
    let index = File::open(&path).unwrap();
    assert_eq!(read_entry(&index, 0).unwrap(), 25);
    for n in [1, 2] {
        let error = read_entry(&index, n).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "entry {n}");
    }
}

// walk_records: recovery's walk of the log, header by header.

/// A stream folder with `log` and `index` as its files.
fn files(dir: &Path, log: &[u8], index: &[u32]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(LOG_FILE), log).unwrap();
    let index: Vec<u8> = index.iter().flat_map(|p| p.to_le_bytes()).collect();
    std::fs::write(dir.join(INDEX_FILE), index).unwrap();
}

/// Three records of 25, 26 and 27 bytes: at 0, 25 and 51, ending at 78.
fn three_records() -> Vec<u8> {
    let mut log = record(0, 10, b"first");
    log.extend(record(1, 11, b"second"));
    log.extend(record(2, 12, b"thirdly"));
    log
}

#[test]
fn exercise_walk_records_rebuilds_a_lost_index_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path(), &three_records(), &[]);
    let stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
    assert_eq!(stream.next_offset(), 3);
    assert_eq!(stream.log_len(), 78);
    assert_eq!(stream.recovery().index_entries_rebuilt, 3);
    drop(stream);
    let index = std::fs::read(dir.path().join(INDEX_FILE)).unwrap();
    assert_eq!(index, [0, 0, 0, 0, 25, 0, 0, 0, 51, 0, 0, 0]);
}

#[test]
fn exercise_walk_records_cuts_a_torn_tail() {
    // A fourth record cut in its header, then in its payload.
    let fourth = record(3, 13, b"fourth");
    for cut in [5, 20, 25] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = three_records();
        log.extend_from_slice(&fourth[..cut]);
        files(dir.path(), &log, &[0, 25, 51]);
        let stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
        assert_eq!(stream.next_offset(), 3, "cut at {cut}");
        assert_eq!(stream.log_len(), 78, "cut at {cut}");
        assert_eq!(stream.recovery().log_bytes_truncated, cut as u64);
        drop(stream);
        let on_disk = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert_eq!(
            on_disk, 78,
            "cut at {cut}: the torn bytes are gone from the file"
        );
    }
}

#[test]
fn exercise_walk_records_refuses_a_record_with_the_wrong_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = record(0, 10, b"first");
    log.extend(record(1, 11, b"second"));
    log.extend(record(5, 12, b"thirdly")); // whole, but offset 5 where 2 belongs
    files(dir.path(), &log, &[]);
    match Stream::open(1, dir.path(), AppendMode::KeptHandle) {
        Err(Error::Corrupt { position, .. }) => assert_eq!(position, 51),
        other => panic!("expected Error::Corrupt at 51, got {other:?}"),
    }
    let on_disk = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    assert_eq!(
        on_disk, log,
        "a corrupt log is left for an operator, untouched"
    );
}
