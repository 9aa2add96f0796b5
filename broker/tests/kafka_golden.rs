//! The Kafka record batch the listener serves, byte by byte: two records
//! stored by a partition are made a batch by the fetch path's own functions
//! (`translate::stored_records`, then `translate::batch_from_records`), and
//! the batch is written out as an annotated hexdump, one field a line, that
//! the "Speaking Kafka" chapter includes. The annotations are read from the
//! bytes by this file's own small parser (big-endian fields, zigzag
//! varints), and the same bytes are decoded by the codec's
//! `RecordBatchDecoder`, the decoder Kafka clients' batches go through, so
//! the dump is proven to be a batch a Kafka client reads.
//!
//! The records are the ones the protocol reference dumps as Rivulet stores
//! them (`stages/6-broker/tests/golden/record-v2.hex`): a plain record
//! `paid`, then `paid` with key `order-7`, headers `trace` = `abc` and
//! `retry` (null) and create time 2026-01-01T00:00:00Z. Here they are stored
//! at offsets 40 and 41, appended 250 ms after that create time.
//!
//! After a deliberate change to the batch's bytes: `RIVULET_BLESS=1 cargo
//! test -p rivulet-broker --test kafka_golden` rewrites
//! `book/src/generated/kafka-batch.hex`; review its diff.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};
use rivulet_broker::kafka::translate::{batch_from_records, stored_records};
use stage6_broker::storage::record::{self, Contents, UserHeader, encode_contents};

/// The producer's create time: 2026-01-01T00:00:00Z, in ms.
const CREATED_MILLIS: i64 = 1_767_225_600_000;
/// The partition's append time, 250 ms later, in µs.
const STAMPED_MICROS: u64 = 1_767_225_600_250_000;
/// The first record's offset.
const FIRST_OFFSET: u64 = 40;

/// The golden file, relative to the workspace's root.
const GOLDEN: &str = "book/src/generated/kafka-batch.hex";

/// Bytes shown on one line of the dump; longer fields go on over more lines.
const BYTES_PER_LINE: usize = 8;

/// The two records as a partition stores them, stamped.
fn stored() -> Vec<u8> {
    let plain = Contents::plain(b"paid");
    let extended = Contents {
        create_time: Some(CREATED_MILLIS),
        key: Some(b"order-7"),
        headers: vec![
            UserHeader {
                name: "trace",
                value: Some(b"abc"),
            },
            UserHeader {
                name: "retry",
                value: None,
            },
        ],
        value: Some(b"paid"),
    };
    // As a producer sends them (offsets and times 0), then as the partition
    // stamps them.
    let mut records = Vec::new();
    encode_contents(&mut records, 0, 0, 3, &plain);
    encode_contents(&mut records, 0, 0, 3, &extended);
    let extents = record::walk(&records).unwrap();
    record::stamp(&mut records, &extents, FIRST_OFFSET, STAMPED_MICROS);
    records
}

/// Reads a record batch field by field and writes a line for each: where it
/// starts, its bytes, its name and what it says.
struct Dump<'a> {
    bytes: &'a [u8],
    at: usize,
    out: String,
}

impl<'a> Dump<'a> {
    fn new(bytes: &'a [u8]) -> Dump<'a> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "offset  {:width$}  field",
            "bytes",
            width = BYTES_PER_LINE * 3 - 1
        );
        Dump { bytes, at: 0, out }
    }

    /// `len` bytes as one field, with `name` and `says` on its first line.
    fn take(&mut self, len: usize, name: &str, says: &str) -> &'a [u8] {
        let field = &self.bytes[self.at..self.at + len];
        for (n, chunk) in field.chunks(BYTES_PER_LINE).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(
                self.out,
                "{:06x}  {:width$}",
                self.at + n * BYTES_PER_LINE,
                hex.join(" "),
                width = BYTES_PER_LINE * 3 - 1
            );
            if n == 0 {
                let _ = write!(self.out, "  {name}");
                if !says.is_empty() {
                    let _ = write!(self.out, ": {says}");
                }
            }
            self.out.push('\n');
        }
        self.at += len;
        field
    }

    /// A line with no bytes: where a record or a header begins.
    fn heading(&mut self, text: &str) {
        let _ = writeln!(
            self.out,
            "{:width$}  {text}",
            "",
            width = 6 + 2 + BYTES_PER_LINE * 3 - 1
        );
    }

    /// A big-endian integer field of `len` bytes, sign-extended.
    fn int(&mut self, len: usize, name: &str, says: impl Fn(i64) -> String) -> i64 {
        let field = &self.bytes[self.at..self.at + len];
        let mut value: i64 = if field[0] & 0x80 != 0 { -1 } else { 0 };
        for &byte in field {
            value = (value << 8) | i64::from(byte);
        }
        self.take(len, name, &says(value));
        value
    }

    /// A zigzag varint (Kafka's varint and varlong), as it is on the wire.
    fn varint(&mut self, name: &str, says: impl Fn(i64) -> String) -> i64 {
        let mut raw: u64 = 0;
        let mut len = 0;
        loop {
            let byte = self.bytes[self.at + len];
            raw |= u64::from(byte & 0x7f) << (7 * len);
            len += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
        self.take(len, name, &says(value));
        value
    }

    /// A varint length, then that many bytes (none for -1, null).
    fn nullable(&mut self, what: &str) -> Option<&'a [u8]> {
        let len = self.varint(&format!("{what} length"), |len| {
            if len < 0 {
                format!("{len} (null)")
            } else {
                len.to_string()
            }
        });
        let len = usize::try_from(len).ok()?;
        let field = &self.bytes[self.at..self.at + len];
        let text = String::from_utf8_lossy(field);
        Some(self.take(len, what, &format!("{text:?}")))
    }
}

/// The batch, dumped field by field; the dump and the field values the
/// test checks against the codec's reading.
fn dump(batch: &[u8]) -> (String, Vec<i64>) {
    let mut dump = Dump::new(batch);
    let mut seen = Vec::new();
    let number = |n: i64| n.to_string();
    seen.push(dump.int(8, "base offset", number));
    let length = dump.int(4, "batch length", |n| {
        format!("{n} (bytes after this field)")
    });
    assert_eq!(usize::try_from(length).unwrap(), batch.len() - 12);
    dump.int(4, "partition leader epoch", number);
    let magic = dump.int(1, "magic", number);
    assert_eq!(magic, 2, "record batch v2");
    let crc = dump.int(4, "crc", |crc| {
        format!("0x{:08x} (CRC-32C of bytes 0x15 to the end)", crc as u32)
    });
    assert_eq!(crc as u32, crc32c::crc32c(&batch[21..]), "the batch's CRC");
    dump.int(2, "attributes", |bits| {
        let compression = ["none", "gzip", "snappy", "lz4", "zstd"]
            .get((bits & 7) as usize)
            .copied()
            .unwrap_or("unknown");
        let time = if bits & 8 == 0 {
            "CreateTime"
        } else {
            "LogAppendTime"
        };
        let transactional = if bits & 16 == 0 {
            "not transactional"
        } else {
            "transactional"
        };
        let control = if bits & 32 == 0 {
            "not control"
        } else {
            "control"
        };
        format!("{bits} (compression {compression}, {time}, {transactional}, {control})")
    });
    seen.push(dump.int(4, "last offset delta", number));
    seen.push(dump.int(8, "base timestamp", |ms| format!("{ms} (ms)")));
    seen.push(dump.int(8, "max timestamp", |ms| format!("{ms} (ms)")));
    dump.int(8, "producer id", |id| format!("{id} (none)"));
    dump.int(2, "producer epoch", |epoch| format!("{epoch} (none)"));
    dump.int(4, "base sequence", |sequence| format!("{sequence} (none)"));
    let count = dump.int(4, "record count", number);
    for n in 0..count {
        dump.heading(&format!("record {n}"));
        let length = dump.varint("length", |len| format!("{len} (bytes after this field)"));
        let start = dump.at;
        dump.int(1, "attributes", number);
        seen.push(dump.varint("timestamp delta", |ms| format!("{ms} (ms)")));
        seen.push(dump.varint("offset delta", number));
        dump.nullable("key");
        dump.nullable("value");
        let headers = dump.varint("header count", number);
        for h in 0..headers {
            dump.heading(&format!("record {n}, header {h}"));
            dump.nullable("header key");
            dump.nullable("header value");
        }
        assert_eq!(
            dump.at - start,
            usize::try_from(length).unwrap(),
            "record {n}'s length"
        );
    }
    assert_eq!(dump.at, batch.len(), "bytes after the last record");
    let _ = writeln!(
        dump.out,
        "{:06x}  (end: {} bytes)",
        batch.len(),
        batch.len()
    );
    (dump.out, seen)
}

/// Compares `text` with the committed file, or rewrites it under `RIVULET_BLESS`.
fn check_golden(text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(GOLDEN);
    if std::env::var_os("RIVULET_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{GOLDEN} differs from the batch the fetch path builds \
         (RIVULET_BLESS=1 cargo test -p rivulet-broker --test kafka_golden rewrites it):\n{text}"
    );
}

#[test]
fn kafka_batch_golden_hexdump_and_the_codec_reads_it_back() {
    let records = stored();
    let stored = stored_records(&records).unwrap();
    assert_eq!(stored.len(), 2);
    let batch = batch_from_records(&stored).unwrap();

    let (text, seen) = dump(&batch);
    check_golden(&text);

    // The base offset, last offset delta, base and max timestamps, then each
    // record's timestamp and offset deltas, as read by the parser above.
    let appended_ms = i64::try_from(STAMPED_MICROS / 1000).unwrap();
    let first = i64::try_from(FIRST_OFFSET).unwrap();
    assert_eq!(
        seen,
        [
            first,
            1,
            CREATED_MILLIS,
            appended_ms,
            appended_ms - CREATED_MILLIS,
            0,
            0,
            1
        ]
    );

    // What a Kafka client reads.
    let set = RecordBatchDecoder::decode(&mut Bytes::clone(&batch)).unwrap();
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, Compression::None);
    let [plain, extended] = &set.records[..] else {
        panic!("two records, not {}", set.records.len());
    };
    for (n, got) in [plain, extended].into_iter().enumerate() {
        assert_eq!(got.offset, first + n as i64);
        assert_eq!(got.timestamp_type, TimestampType::Creation);
        assert_eq!(got.producer_id, -1);
        assert!(!got.transactional && !got.control);
        assert_eq!(got.value.as_deref(), Some(&b"paid"[..]));
    }
    // No create time: the partition's append time, in ms.
    assert_eq!(plain.timestamp, appended_ms);
    assert_eq!(plain.key, None);
    assert!(plain.headers.is_empty());
    // The producer's create time, key and headers, in order, null kept.
    assert_eq!(extended.timestamp, CREATED_MILLIS);
    assert_eq!(extended.key.as_deref(), Some(&b"order-7"[..]));
    let headers: Vec<(&str, Option<&[u8]>)> = extended
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_deref()))
        .collect();
    assert_eq!(headers, [("trace", Some(&b"abc"[..])), ("retry", None)]);
}
