//! The record format, both versions: a golden hexdump of one plain and one
//! extended record, as a partition stores them one after the other (the
//! protocol reference includes it), and properties:
//! whatever is encoded reads back as it was, and no bytes, however hostile,
//! make `walk` or `count` panic.
//!
//! After a deliberate format change: `RIVULET_BLESS=1 cargo test -p
//! stage6-broker --test record_format` rewrites the golden file; review its diff.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::fmt::Write as _;

use proptest::prelude::*;
use stage6_broker::BatchError;
use stage6_broker::storage::record::{
    self, Contents, EXTENDED, RECORD_HEADER_LEN, UserHeader, checksum_matches, contents,
    encode_contents, encoded_len, header_at,
};

/// The listing the book shows, kept as a file so the book includes it verbatim.
const GOLDEN: &str = include_str!("golden/record-v2.hex");

/// `hexdump -C`'s layout, as stage 1's `hexdump` prints it (stage 1 is not a
/// dependency of the engine, so the twenty lines are repeated here).
fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x} ", line * 16);
        for column in 0..16 {
            if column == 8 {
                out.push(' ');
            }
            match chunk.get(column) {
                Some(byte) => {
                    let _ = write!(out, " {byte:02x}");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    let _ = writeln!(out, "{:08x}", bytes.len());
    out
}

/// 2026-01-01T00:00:00Z in the server's µs and the producer's ms.
const STAMPED_MICROS: u64 = 1_767_225_600_000_000;
const CREATED_MILLIS: i64 = 1_767_225_600_000;

#[test]
fn record_format_golden_plain_then_extended() {
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
    // As a partition stores them: offsets 0 and 1, stamped and checksummed.
    let mut bytes = Vec::new();
    encode_contents(&mut bytes, 0, STAMPED_MICROS, 3, &plain);
    encode_contents(&mut bytes, 1, STAMPED_MICROS, 3, &extended);
    assert_eq!(bytes.len(), 36 + 93);
    assert_eq!(encoded_len(&plain) + encoded_len(&extended), bytes.len());

    // The plain record is stage 4's, byte for byte.
    let mut stage4 = Vec::new();
    record::encode(&mut stage4, 0, STAMPED_MICROS, 3, b"paid");
    assert_eq!(bytes[..36], stage4[..]);

    let extents = record::walk(&bytes).unwrap();
    assert_eq!(extents, [(0, 36), (36, 93)]);
    let second = &bytes[36..];
    assert!(checksum_matches(second));
    let header = header_at(second).unwrap();
    assert!(header.extended);
    assert_eq!(header.payload_len, 93 - 32);
    assert_eq!(contents(&bytes[..36]), Ok(plain));
    assert_eq!(contents(second), Ok(extended));

    // One dump per record, each from its own byte 0, so the offsets in the
    // dump are the offsets of the layout tables.
    let dump = format!("{}\n{}", hexdump(&bytes[..36]), hexdump(second));
    if std::env::var_os("RIVULET_BLESS").is_some() {
        // Regenerate after a deliberate format change, then review the diff.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/record-v2.hex");
        std::fs::write(path, &dump).unwrap();
    }
    assert_eq!(
        dump, GOLDEN,
        "tests/golden/record-v2.hex differs (RIVULET_BLESS=1 rewrites it)"
    );
}

/// Contents that own their bytes, for proptest to generate.
#[derive(Debug, Clone)]
struct Owned {
    create_time: Option<i64>,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    value: Option<Vec<u8>>,
}

impl Owned {
    fn contents(&self) -> Contents<'_> {
        Contents {
            create_time: self.create_time,
            key: self.key.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| UserHeader {
                    name,
                    value: value.as_deref(),
                })
                .collect(),
            value: self.value.as_deref(),
        }
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        // -1 is "none" in the format: `Some(-1)` reads back as `None`.
        proptest::option::of(any::<i64>().prop_filter("-1 means none", |t| *t != -1)),
        proptest::option::of(bytes(24)),
        proptest::collection::vec(("\\PC{0,8}", proptest::option::of(bytes(16))), 0..5),
        proptest::option::of(bytes(48)),
    )
        .prop_map(|(create_time, key, headers, value)| Owned {
            create_time,
            key,
            headers,
            value,
        })
}

/// Checks what a batch that `walk` accepted must satisfy: the extents cover
/// every byte, and each record's contents read.
fn accepted_batch_reads(batch: &[u8]) -> Result<(), TestCaseError> {
    let walked = record::walk(batch);
    prop_assert_eq!(
        record::count(batch),
        walked.as_ref().map(Vec::len).map_err(Clone::clone)
    );
    if let Ok(extents) = walked {
        let covered: usize = extents.iter().map(|&(_, len)| len).sum();
        prop_assert_eq!(covered, batch.len());
        for (at, len) in extents {
            prop_assert!(contents(&batch[at..at + len]).is_ok());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn record_format_contents_read_back_as_encoded(
        records in proptest::collection::vec(owned(), 1..6),
        offset in any::<u64>(),
        timestamp in any::<u64>(),
        id in any::<u64>(),
    ) {
        let mut batch = Vec::new();
        for owned in &records {
            let before = batch.len();
            encode_contents(&mut batch, offset, timestamp, id, &owned.contents());
            prop_assert_eq!(batch.len() - before, encoded_len(&owned.contents()));
        }
        let extents = record::walk(&batch).unwrap();
        prop_assert_eq!(record::count(&batch), Ok(records.len()));
        prop_assert_eq!(extents.len(), records.len());
        for (owned, (at, len)) in records.iter().zip(extents) {
            let bytes = &batch[at..at + len];
            let header = header_at(bytes).unwrap();
            prop_assert!(checksum_matches(bytes));
            prop_assert_eq!((header.offset, header.timestamp, header.id), (offset, timestamp, id));
            prop_assert_eq!(header.extended, !owned.contents().is_plain());
            prop_assert_eq!(contents(bytes).unwrap(), owned.contents());
        }
    }

    #[test]
    fn record_format_walk_and_count_never_panic_on_arbitrary_bytes(
        batch in bytes(512),
    ) {
        accepted_batch_reads(&batch)?;
        let _ = contents(&batch);
    }

    #[test]
    fn record_format_a_damaged_extended_record_is_an_error_or_still_reads(
        owned in owned(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        word in any::<u32>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // Extended for sure: a key.
        let owned = Owned { key: Some(owned.key.unwrap_or_default()), ..owned };
        let mut batch = Vec::new();
        encode_contents(&mut batch, 0, 0, 1, &owned.contents());
        // One byte of the section or value changed...
        let payload = RECORD_HEADER_LEN..batch.len();
        let mut damaged = batch.clone();
        damaged[payload.start + at.index(payload.len())] = byte;
        accepted_batch_reads(&damaged)?;
        // ... or a whole (unaligned) word: a lying length or count.
        let mut damaged = batch.clone();
        let place = payload.start + at.index(payload.len() - 3);
        damaged[place..place + 4].copy_from_slice(&word.to_le_bytes());
        accepted_batch_reads(&damaged)?;
        // Every cut short of the end is an error.
        let short = &batch[..cut.index(batch.len())];
        prop_assert!(record::walk(short).is_err());
        prop_assert!(record::count(short).is_err());
    }
}

#[test]
fn record_format_the_flag_is_bit_31_of_the_length_word() {
    let mut batch = Vec::new();
    encode_contents(
        &mut batch,
        0,
        0,
        0,
        &Contents {
            key: Some(b"k"),
            ..Contents::plain(b"")
        },
    );
    let word = u32::from_le_bytes(batch[4..8].try_into().unwrap());
    assert_eq!(word, EXTENDED | (batch.len() - RECORD_HEADER_LEN) as u32);
    // Cleared, the same bytes are a plain record whose value is the section.
    batch[7] &= 0x7f;
    let plain = contents(&batch).unwrap();
    assert!(plain.is_plain());
    assert_eq!(
        plain.value.map(<[u8]>::len),
        Some(batch.len() - RECORD_HEADER_LEN)
    );
    // And an extended record whose section does not parse is refused whole.
    batch[7] |= 0x80;
    batch[RECORD_HEADER_LEN + 4] = 0xfe; // unknown flags
    assert!(matches!(
        record::walk(&batch),
        Err(BatchError::Extension {
            record: 0,
            at: 0,
            ..
        })
    ));
}
