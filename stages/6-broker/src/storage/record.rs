//! The record, as stage 6 stores it: stage 4's wire record, byte for byte,
//! and a second version that carries a key, headers and the producer's
//! create time beside the value.
//!
//! Version 1, the plain record (every record before keys and headers, and
//! every record today that has none):
//!
//! ```text
//! 0   u32  crc32c       of bytes 4 .. 32 + payload_len
//! 4   u32  payload_len  bit 31 clear; bits 0..=30 the payload's length
//! 8   u64  offset       stamped by the partition
//! 16  u64  timestamp    µs since the UNIX epoch, stamped by the partition
//! 24  u64  id           the producer's
//! 32  [u8] payload      the value
//! ```
//!
//! Version 2, the extended record: the same 32-byte header with bit 31 of
//! the length word set ([`EXTENDED`]); the payload (still `payload_len`
//! bytes, bits 0..=30) begins with an extension section, and the value is
//! the rest of it:
//!
//! ```text
//! payload offset
//! 0   u32  section_len  bytes of the section after this field
//! 4   u8   flags        bit 0: the value is null (a Kafka tombstone; no value
//!                       bytes follow); the other bits are 0
//! 5   i64  create_time  the producer's timestamp, ms since the UNIX epoch; -1: none
//! 13  i32  key_len      -1: no key; else that many key bytes follow
//! 17  [u8] key
//!     u32  header_count
//!     per header: u32 name_len, name (UTF-8), i32 value_len (-1: null), value
//! 4 + section_len: the value, to the end of the payload
//! ```
//!
//! Every number is little-endian, and the checksum still covers bytes
//! `4..end`, the length word with its flag included. A record with no key,
//! no headers, no create time and a value is always written as version 1:
//! the extension costs only the records that use it.
//!
//! Why a flag bit in the length word. Rejected: a new, longer header (40
//! bytes, say) for every record, which changes every stored byte, so a data
//! folder written before would need a migration and stage 4's clients and
//! conformance tests would stop reading what the broker serves; and a format
//! version per data folder (or per segment), which cannot hold old and new
//! records side by side in one segment, so an upgrade would have to roll
//! every partition to a new segment first. A length word's top bit costs a
//! payload limit of 2 GiB - 1 ([`MAX_PAYLOAD_LEN`]), far above any frame the
//! server accepts, and a data folder written before keys and headers opens
//! unchanged: none of its records has the bit set.
//!
//! The limitation: a lesson-stage client (stage 4's or 5's) does not know
//! the flag. It reads an extended record's length as `payload_len` with bit
//! 31 set, more than 2 GiB, and refuses the reply as truncated; it cannot
//! read an extended record. Rivulet's own client (`rivulet-client`) reads
//! both versions, and a topic written only with plain records stays
//! readable by every stage's client.
//!
//! The extension section comes from a producer, so it is checked before it
//! is stored: [`walk`] and [`count`] parse every extended record's section
//! (each length against the bytes of the section, `header_count` against the
//! bytes it would need before any loop or allocation, names as UTF-8, the
//! flags, every byte accounted for, a null value with no bytes) and say
//! which record is wrong and why ([`BatchError::Extension`]). The shard that
//! reads a produce counts its records with [`count`], so a malformed section
//! never reaches a partition, let alone the disk.
//!
//! Stage 5's `view` and `batch` modules read and stamp these records in the
//! frame's buffer. The storage core keeps its own few helpers over plain
//! `&[u8]` instead: it works on byte ranges of segments and of aligned
//! buffers, which outlive no frame, and it needs exactly three things: the
//! header's fields, stamping in place, and a checksum check. The extension
//! section is opaque to stamping and to recovery (the checksum covers it);
//! only the checks above and [`contents`] look inside.
//!
//! The layout is owned here, for the broker and every client built on the
//! engine: a change to a teaching stage cannot change what is on disk. The
//! bench crate's `wire_compat` test checks the plain record against stage
//! 4's `encode_record`, so the two layouts cannot drift apart unnoticed;
//! `tests/record_format.rs` pins both versions against a golden hexdump.

use crate::storage::error::{BatchError, ExtensionError, Part};

/// Bytes before the payload.
pub const RECORD_HEADER_LEN: usize = 32;

/// Where each field of a record header starts.
pub mod field {
    /// `crc32c u32`.
    pub const CHECKSUM: usize = 0;
    /// `payload_len u32`, with the [`super::EXTENDED`] flag in bit 31.
    pub const PAYLOAD_LEN: usize = 4;
    /// `offset u64`.
    pub const OFFSET: usize = 8;
    /// `timestamp u64`.
    pub const TIMESTAMP: usize = 16;
    /// `id u64`.
    pub const ID: usize = 24;
}

// ANCHOR: extended
/// The flag bit in the length word: set, the payload begins with an
/// extension section (version 2); clear, the payload is the value (version 1).
pub const EXTENDED: u32 = 1 << 31;

/// The longest payload a record can have: the length word's other 31 bits.
pub const MAX_PAYLOAD_LEN: u32 = EXTENDED - 1;

/// Where each field of an extension section starts, from the start of the
/// payload, and the values its fields give a meaning to.
pub mod extension {
    /// `section_len u32`: bytes of the section after this field.
    pub const SECTION_LEN: usize = 0;
    /// `flags u8`.
    pub const FLAGS: usize = 4;
    /// `create_time i64`.
    pub const CREATE_TIME: usize = 5;
    /// `key_len i32`, then the key.
    pub const KEY_LEN: usize = 13;
    /// The key's first byte.
    pub const KEY: usize = 17;
    /// The shortest `section_len`: flags, create time, key length and
    /// header count (no key, no headers).
    pub const MIN_SECTION_LEN: usize = 1 + 8 + 4 + 4;
    /// The least bytes one header takes: its two lengths.
    pub const MIN_HEADER_LEN: usize = 4 + 4;
    /// Flag bit 0: the value is null (a tombstone), and no value bytes follow.
    pub const NULL_VALUE: u8 = 1;
    /// `create_time` of a record that has none.
    pub const NO_CREATE_TIME: i64 = -1;
    /// A `key_len` or header `value_len` that says null.
    pub const NULL_LEN: i32 = -1;
}
// ANCHOR_END: extended

/// A record header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stored checksum.
    pub checksum: u32,
    /// Payload bytes after the header: the length word without its flag.
    pub payload_len: u32,
    /// Whether the payload begins with an extension section (the length
    /// word's [`EXTENDED`] bit).
    pub extended: bool,
    /// The record's offset in its partition.
    pub offset: u64,
    /// Server time of the append, µs since the UNIX epoch.
    pub timestamp: u64,
    /// The producer's id.
    pub id: u64,
}

impl Header {
    /// Reads the fields of a 32-byte header.
    pub fn parse(header: &[u8; RECORD_HEADER_LEN]) -> Header {
        let length_word = u32::from_le_bytes(array_at(header, field::PAYLOAD_LEN));
        Header {
            checksum: u32::from_le_bytes(array_at(header, field::CHECKSUM)),
            payload_len: length_word & MAX_PAYLOAD_LEN,
            extended: length_word & EXTENDED != 0,
            offset: u64::from_le_bytes(array_at(header, field::OFFSET)),
            timestamp: u64::from_le_bytes(array_at(header, field::TIMESTAMP)),
            id: u64::from_le_bytes(array_at(header, field::ID)),
        }
    }

    /// Bytes of the whole record, header and payload.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// The `N` bytes at `at` of a header (zeros if they are not all there, which
/// the fixed 32-byte header rules out for every field above).
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

// ANCHOR: checksum
/// The checksum a record's bytes have: crc32c of everything after the checksum field.
pub fn checksum_of(record: &[u8]) -> u32 {
    crc32c(record.get(field::PAYLOAD_LEN..).unwrap_or_default())
}

/// Below this many bytes [`crc32c`] runs its own loop; from here on, the
/// `crc32c` crate's, which splits a long input into three streams the CPU
/// computes side by side. The crate's own threshold; measured on the
/// development VM, at 800 bytes the crate's took 47 ns and the plain loop 75.
const SHORT_CRC: usize = 768;

/// crc32c of `bytes`, the same value as `crc32c::crc32c`.
///
/// Why not the crate's function for every length: at 100-byte messages a
/// produce and a poll checksum 128 bytes per message each, and for inputs
/// that short the crate spends about as much on getting ready (bytes before
/// the first 8-aligned address taken one by one, a split into three streams
/// that stays empty) as on the checksum: it takes about twice as long as one
/// 8-byte `crc32` instruction after another (the `cost` rows of the
/// `small_messages` bench). The records of a batch are independent, so the
/// CPU overlaps one record's chain of instructions with the next one's: a
/// loop this plain is the fast one. Rejected: checksumming three records at
/// a time by hand, which measured no faster than what the CPU already
/// overlaps; and a carry-less-multiply (`pclmulqdq`) fold, not tried: it
/// pays off on long inputs, and at 128 bytes its setup and final reduction
/// would be most of the work, in far more unsafe code than this.
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() < SHORT_CRC && std::arch::is_x86_feature_detected!("sse4.2") {
        return sse42::crc32c(bytes);
    }
    ::crc32c::crc32c(bytes)
}

/// The SSE 4.2 loop of [`crc32c`] and [`stamp`]: one of the crate's few
/// modules with unsafe code (as [`crate::storage::aligned`] is), and its
/// unsafe part is a call, twice: into a function compiled for SSE 4.2, on
/// a CPU that has just said it has it. Its tests compare every length and
/// alignment with the `crc32c` crate.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u32, _mm_crc32_u64};

    /// crc32c of `bytes`, on a CPU that has SSE 4.2: the caller checked
    /// (`is_x86_feature_detected!`, cached by the standard library after
    /// the first look).
    pub(super) fn crc32c(bytes: &[u8]) -> u32 {
        // SAFETY: `words` needs SSE 4.2 and nothing else; the caller has
        // just seen the CPU report it.
        unsafe { words(bytes) }
    }

    /// crc32c of a record's covered header bytes, made of these values in
    /// the record's layout (length word, offset, timestamp, id: 28 bytes),
    /// then of `payload`, on a CPU that has SSE 4.2 (the caller checked).
    pub(super) fn stamped(
        length_word: u32,
        offset: u64,
        timestamp: u64,
        id: u64,
        payload: &[u8],
    ) -> u32 {
        // SAFETY: as in `crc32c`: SSE 4.2 only, which the caller has seen.
        unsafe { header_then_words(length_word, offset, timestamp, id, payload) }
    }

    /// The 28 header bytes as three 8-byte words and a 4-byte one, put
    /// together from the values (little-endian, as the record stores them),
    /// then `words`' loop over the payload.
    #[target_feature(enable = "sse4.2")]
    fn header_then_words(
        length_word: u32,
        offset: u64,
        timestamp: u64,
        id: u64,
        payload: &[u8],
    ) -> u32 {
        let mut crc = u64::from(u32::MAX);
        crc = _mm_crc32_u64(crc, u64::from(length_word) | offset << 32);
        crc = _mm_crc32_u64(crc, offset >> 32 | timestamp << 32);
        crc = _mm_crc32_u64(crc, timestamp >> 32 | id << 32);
        let crc = _mm_crc32_u32(crc as u32, (id >> 32) as u32);
        words_from(!crc, payload)
    }

    /// Eight bytes per `crc32` instruction, read unaligned (x86 loads do
    /// not care), then the last up to seven one by one. The standard
    /// initial value and final inversion make it crc32c's value.
    #[target_feature(enable = "sse4.2")]
    fn words(bytes: &[u8]) -> u32 {
        words_from(0, bytes)
    }

    /// crc32c of `bytes` after bytes whose crc32c was `before` (0: none).
    #[target_feature(enable = "sse4.2")]
    fn words_from(before: u32, bytes: &[u8]) -> u32 {
        let mut crc = u64::from(!before);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut le = [0; 8];
            le.copy_from_slice(word);
            crc = _mm_crc32_u64(crc, u64::from_le_bytes(le));
        }
        // `_mm_crc32_u64` leaves the 32-bit remainder in the low half.
        let mut crc = crc as u32;
        for &byte in words.remainder() {
            crc = _mm_crc32_u8(crc, byte);
        }
        !crc
    }
}
// ANCHOR_END: checksum

/// The header at the start of `bytes`, if 32 bytes are there.
pub fn header_at(bytes: &[u8]) -> Option<Header> {
    bytes.first_chunk::<RECORD_HEADER_LEN>().map(Header::parse)
}

/// Whether `record` (one whole record) carries the checksum of its bytes.
pub fn checksum_matches(record: &[u8]) -> bool {
    header_at(record).is_some_and(|header| header.checksum == checksum_of(record))
}

/// The records of a batch: `(start, len)` of each, in order. Built by
/// [`walk`], which checked that every one lies inside the bytes.
pub type Extents = Vec<(usize, usize)>;

/// Checks that `records` is whole records, nothing more, and returns where
/// each one is. A header's length field is checked against the bytes left
/// before it is used, so a lying length is an error, never a slice panic;
/// an extended record's section is checked too ([`contents`] says how).
pub fn walk(records: &[u8]) -> Result<Extents, BatchError> {
    // Sized once, from the first record's length: a producer's batch is
    // usually records of one size, so this is the count, and the list is
    // not grown (and copied) ten times on the way to a thousand records.
    // Never more than the bytes could hold, whatever the first length says.
    let first = header_at(records).map_or(RECORD_HEADER_LEN, |h| h.record_len() as usize);
    let estimate = records.len() / first.max(RECORD_HEADER_LEN) + 1;
    let mut extents = Vec::with_capacity(estimate);
    visit(records, |at, len| extents.push((at, len)))?;
    Ok(extents)
}

/// [`walk`]'s check without the list: how many whole records `records` is.
/// The shard that reads a produce only needs the count to compare with the
/// frame's; the owner walks again to stamp. Counting allocates nothing.
pub fn count(records: &[u8]) -> Result<usize, BatchError> {
    visit(records, |_, _| {})
}

/// Calls `each(at, len)` for every record of `records`, in order; the count.
fn visit(records: &[u8], mut each: impl FnMut(usize, usize)) -> Result<usize, BatchError> {
    let mut at = 0;
    let mut found = 0;
    while at < records.len() {
        let available = records.len() - at;
        // Only the length word is read: the walk needs nothing else, and
        // it runs over every record of every produce, twice.
        let length_word = records
            .get(at..)
            .and_then(<[u8]>::first_chunk::<RECORD_HEADER_LEN>)
            .map(|header| u32::from_le_bytes(array_at(header, field::PAYLOAD_LEN)))
            .ok_or(BatchError::Truncated {
                at,
                needed: RECORD_HEADER_LEN,
                available,
            })?;
        let len = RECORD_HEADER_LEN + (length_word & MAX_PAYLOAD_LEN) as usize;
        if len > available {
            return Err(BatchError::Truncated {
                at,
                needed: len,
                available,
            });
        }
        if length_word & EXTENDED != 0 {
            // Checked, not kept: no header list is built, nothing allocated.
            let payload = &records[at + RECORD_HEADER_LEN..at + len];
            parse_extension(payload, |_| {}).map_err(|reason| BatchError::Extension {
                record: found,
                at,
                reason,
            })?;
        }
        each(at, len);
        found += 1;
        at += len;
    }
    if found == 0 {
        return Err(BatchError::Empty);
    }
    Ok(found)
}

// ANCHOR: stamp
/// Gives the records offsets from `first_offset` and the `timestamp`, and
/// computes each checksum, in place: the server's three fields of each header
/// are written where they are, nothing is moved.
///
/// The checksum covers the offset and timestamp, but is computed from them as
/// values, before they are written (`stamped_checksum`), not read back from
/// the record afterwards: those reads would straddle the two 8-byte stores
/// just made, which the CPU cannot forward to a load that only partly
/// overlaps them, and each such load waits for the stores to reach the
/// cache. At 100-byte payloads that wait can cost as much as the checksum
/// itself; the `walk-stamp` row of the `small_messages` bench measures what
/// walking and stamping a record costs now.
pub fn stamp(records: &mut [u8], extents: &Extents, first_offset: u64, timestamp: u64) {
    for (offset, &(at, len)) in (first_offset..).zip(extents) {
        let Some(record) = records.get_mut(at..at + len) else {
            continue; // `extents` came from `walk` over these bytes: never taken
        };
        let crc = stamped_checksum(record, offset, timestamp);
        record[field::OFFSET..field::OFFSET + 8].copy_from_slice(&offset.to_le_bytes());
        record[field::TIMESTAMP..field::TIMESTAMP + 8].copy_from_slice(&timestamp.to_le_bytes());
        record[field::CHECKSUM..field::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The checksum `record` has once `offset` and `timestamp` are written into
/// it, computed without writing them: the 28 header bytes the checksum
/// covers (length word, offset, timestamp, id) from their values, then the
/// payload as it is.
fn stamped_checksum(record: &[u8], offset: u64, timestamp: u64) -> u32 {
    let Some(header) = record.first_chunk::<RECORD_HEADER_LEN>() else {
        return checksum_of(record); // `walk` let no record this short through
    };
    let length_word = u32::from_le_bytes(array_at(header, field::PAYLOAD_LEN));
    let id = u64::from_le_bytes(array_at(header, field::ID));
    let payload = &record[RECORD_HEADER_LEN..];
    #[cfg(target_arch = "x86_64")]
    if payload.len() < SHORT_CRC && std::arch::is_x86_feature_detected!("sse4.2") {
        return sse42::stamped(length_word, offset, timestamp, id, payload);
    }
    let mut covered = [0u8; RECORD_HEADER_LEN - field::PAYLOAD_LEN];
    covered[..4].copy_from_slice(&length_word.to_le_bytes());
    covered[4..12].copy_from_slice(&offset.to_le_bytes());
    covered[12..20].copy_from_slice(&timestamp.to_le_bytes());
    covered[20..].copy_from_slice(&id.to_le_bytes());
    ::crc32c::crc32c_append(::crc32c::crc32c(&covered), payload)
}
// ANCHOR_END: stamp

// ANCHOR: encode
/// Appends a whole plain record to `out`: what a producer sends (offset and
/// timestamp 0, for the partition to stamp) or what a poll returns.
pub fn encode(out: &mut Vec<u8>, offset: u64, timestamp: u64, id: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // the checksum, computed last
    out.extend_from_slice(&payload_len_word(payload.len(), false).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum_of(&out[start..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}
// ANCHOR_END: encode

/// The length word of a payload of `len` bytes. A payload over
/// [`MAX_PAYLOAD_LEN`] (never sent: a frame is far smaller) gets a length
/// that [`walk`] refuses as truncated, never one that sets the flag by
/// overflowing into it.
fn payload_len_word(len: usize, extended: bool) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX).min(MAX_PAYLOAD_LEN);
    if extended { len | EXTENDED } else { len }
}

// ANCHOR: contents
/// What a record carries besides the server's fields: the value, and in an
/// extended record a key, headers and the producer's create time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contents<'a> {
    /// The producer's timestamp, ms since the UNIX epoch. `Some(-1)` is
    /// stored as -1, which means none, and reads back as `None`.
    pub create_time: Option<i64>,
    /// The key; `None` is a null key (Kafka's), `Some(&[])` an empty one.
    pub key: Option<&'a [u8]>,
    /// The user's headers, in order; a name may repeat.
    pub headers: Vec<UserHeader<'a>>,
    /// The value; `None` is a null value (a Kafka tombstone).
    pub value: Option<&'a [u8]>,
}

/// One user header: a UTF-8 name and a value that may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserHeader<'a> {
    /// The name (UTF-8; the section stores its length first).
    pub name: &'a str,
    /// The value; `None` is null.
    pub value: Option<&'a [u8]>,
}

impl<'a> Contents<'a> {
    /// A record that is only its value: what every record was before keys.
    pub fn plain(value: &'a [u8]) -> Contents<'a> {
        Contents {
            create_time: None,
            key: None,
            headers: Vec::new(),
            value: Some(value),
        }
    }

    /// Whether these contents are written as a plain (version 1) record:
    /// a value, and no key, no headers and no create time.
    pub fn is_plain(&self) -> bool {
        self.create_time
            .is_none_or(|time| time == extension::NO_CREATE_TIME)
            && self.key.is_none()
            && self.headers.is_empty()
            && self.value.is_some()
    }
}

/// Appends a whole record to `out`: a plain record, byte-identical to
/// [`encode`], when `contents.is_plain()`; else an extended one.
///
/// A length over its field's range (over 2 GiB: never in a frame) is
/// written as a length that [`walk`] refuses, not wrapped into a valid one.
pub fn encode_contents(
    out: &mut Vec<u8>,
    offset: u64,
    timestamp: u64,
    id: u64,
    contents: &Contents<'_>,
) {
    if contents.is_plain() {
        return encode(
            out,
            offset,
            timestamp,
            id,
            contents.value.unwrap_or_default(),
        );
    }
    let start = out.len();
    out.reserve(encoded_len(contents));
    let value = contents.value.unwrap_or_default();
    let section_len = section_len(contents);
    let payload_len = 4 + section_len + value.len();
    out.extend_from_slice(&[0; 4]); // the checksum, computed last
    out.extend_from_slice(&payload_len_word(payload_len, true).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    // The extension section.
    out.extend_from_slice(&u32_len(section_len).to_le_bytes());
    let flags = if contents.value.is_none() {
        extension::NULL_VALUE
    } else {
        0
    };
    out.push(flags);
    let create_time = contents.create_time.unwrap_or(extension::NO_CREATE_TIME);
    out.extend_from_slice(&create_time.to_le_bytes());
    put_nullable(out, contents.key);
    out.extend_from_slice(&u32_len(contents.headers.len()).to_le_bytes());
    for header in &contents.headers {
        out.extend_from_slice(&u32_len(header.name.len()).to_le_bytes());
        out.extend_from_slice(header.name.as_bytes());
        put_nullable(out, header.value);
    }
    // The value: the rest of the payload.
    out.extend_from_slice(value);
    let crc = checksum_of(&out[start..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// `i32 len` (-1: null), then the bytes.
fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(&extension::NULL_LEN.to_le_bytes()),
        Some(bytes) => {
            let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}
// ANCHOR_END: contents

/// A length for a `u32` field (saturating: see [`encode_contents`]).
fn u32_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Bytes of the extension section after `section_len` itself.
fn section_len(contents: &Contents<'_>) -> usize {
    let key = contents.key.map_or(0, <[u8]>::len);
    let headers: usize = contents
        .headers
        .iter()
        .map(|h| extension::MIN_HEADER_LEN + h.name.len() + h.value.map_or(0, <[u8]>::len))
        .sum();
    extension::MIN_SECTION_LEN + key + headers
}

/// Bytes [`encode_contents`] appends for `contents`.
pub fn encoded_len(contents: &Contents<'_>) -> usize {
    let value = contents.value.map_or(0, <[u8]>::len);
    if contents.is_plain() {
        RECORD_HEADER_LEN + value
    } else {
        RECORD_HEADER_LEN + 4 + section_len(contents) + value
    }
}

/// The contents of one whole record, plain or extended (`record` starts
/// with its header; bytes after its length are not looked at). An extended
/// section that does not parse is [`BatchError::Extension`] (record 0, at 0);
/// the checksum is not verified here ([`checksum_matches`] does that).
pub fn contents(record: &[u8]) -> Result<Contents<'_>, BatchError> {
    let header = header_at(record).ok_or(BatchError::Truncated {
        at: 0,
        needed: RECORD_HEADER_LEN,
        available: record.len(),
    })?;
    let len = RECORD_HEADER_LEN + header.payload_len as usize;
    let payload = record
        .get(RECORD_HEADER_LEN..len)
        .ok_or(BatchError::Truncated {
            at: 0,
            needed: len,
            available: record.len(),
        })?;
    if !header.extended {
        return Ok(Contents::plain(payload));
    }
    let mut headers = Vec::new();
    let mut contents =
        parse_extension(payload, |header| headers.push(header)).map_err(|reason| {
            BatchError::Extension {
                record: 0,
                at: 0,
                reason,
            }
        })?;
    contents.headers = headers;
    Ok(contents)
}

// ANCHOR: parse_extension
/// Parses an extended record's payload: its contents without the headers,
/// which go to `each` in order. Every length is checked against the bytes
/// of the section before it is used, and `header_count` against the bytes
/// its headers would need at least before any header is read: a lying count
/// costs one comparison, not a loop or an allocation.
fn parse_extension<'a>(
    payload: &'a [u8],
    mut each: impl FnMut(UserHeader<'a>),
) -> Result<Contents<'a>, ExtensionError> {
    let past_payload = |needed: u64| ExtensionError::SectionPastPayload {
        needed,
        payload_len: payload.len(),
    };
    let section_len = payload
        .first_chunk::<4>()
        .map(|bytes| u32::from_le_bytes(*bytes))
        .ok_or(past_payload(4))?;
    let end = 4 + u64::from(section_len);
    if end > payload.len() as u64 {
        return Err(past_payload(end));
    }
    if (section_len as usize) < extension::MIN_SECTION_LEN {
        return Err(ExtensionError::SectionTooShort { section_len });
    }
    let (section, value) = payload[4..].split_at(section_len as usize);
    let mut section = Cursor(section);
    let flags = section.array::<1>(Part::Flags)?[0];
    if flags & !extension::NULL_VALUE != 0 {
        return Err(ExtensionError::UnknownFlags { flags });
    }
    let create_time = i64::from_le_bytes(section.array(Part::CreateTime)?);
    let key = section.nullable(Part::KeyLen, Part::Key)?;
    let header_count = u32::from_le_bytes(section.array(Part::HeaderCount)?);
    let room = section.0.len() / extension::MIN_HEADER_LEN;
    if header_count as usize > room {
        return Err(ExtensionError::TooManyHeaders {
            count: header_count,
            left: section.0.len(),
        });
    }
    for index in 0..header_count {
        let name_len = u32::from_le_bytes(section.array(Part::HeaderNameLen(index))?);
        let name = section.take(u64::from(name_len), Part::HeaderName(index))?;
        let name = std::str::from_utf8(name).map_err(|_| ExtensionError::NameNotUtf8 { index })?;
        let value = section.nullable(Part::HeaderValueLen(index), Part::HeaderValue(index))?;
        each(UserHeader { name, value });
    }
    if !section.0.is_empty() {
        return Err(ExtensionError::TrailingBytes {
            extra: section.0.len(),
        });
    }
    let null_value = flags & extension::NULL_VALUE != 0;
    if null_value && !value.is_empty() {
        return Err(ExtensionError::NullValueWithBytes {
            value_len: value.len(),
        });
    }
    Ok(Contents {
        create_time: (create_time != extension::NO_CREATE_TIME).then_some(create_time),
        key,
        headers: Vec::new(),
        value: (!null_value).then_some(value),
    })
}
// ANCHOR_END: parse_extension

/// The unread rest of an extension section.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// The next `len` bytes, if the section has them.
    fn take(&mut self, len: u64, part: Part) -> Result<&'a [u8], ExtensionError> {
        let left = self.0.len();
        let len = usize::try_from(len).ok().filter(|&len| len <= left).ok_or(
            ExtensionError::PastSection {
                part,
                needed: len,
                left,
            },
        )?;
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, part: Part) -> Result<[u8; N], ExtensionError> {
        let bytes = self.take(N as u64, part)?;
        Ok(array_at(bytes, 0))
    }

    /// `i32 len` (-1: null), then that many bytes.
    fn nullable(&mut self, len_part: Part, part: Part) -> Result<Option<&'a [u8]>, ExtensionError> {
        match i32::from_le_bytes(self.array(len_part)?) {
            extension::NULL_LEN => Ok(None),
            len if len < 0 => Err(ExtensionError::NegativeLength {
                part: len_part,
                len,
            }),
            len => self.take(len as u64, part).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode as encode_record;
    use super::*;

    #[test]
    fn stamp_writes_what_encode_writes() {
        let payloads: [&[u8]; 3] = [b"one", b"", b"three"];
        let mut batch = Vec::new();
        for payload in payloads {
            encode_record(&mut batch, 0, 0, 42, payload);
        }
        let extents = walk(&batch).unwrap();
        assert_eq!(extents, [(0, 35), (35, 32), (67, 37)]);
        stamp(&mut batch, &extents, 100, 777);
        let mut expected = Vec::new();
        for (n, payload) in payloads.iter().enumerate() {
            encode_record(&mut expected, 100 + n as u64, 777, 42, payload);
        }
        assert_eq!(batch, expected);
        let header = header_at(&batch[35..]).unwrap();
        assert_eq!((header.offset, header.timestamp, header.id), (101, 777, 42));
        assert!(checksum_matches(&batch[..35]));
        batch[40] ^= 1;
        assert!(!checksum_matches(&batch[35..67]));
    }

    #[test]
    fn checksum_is_crc32c_at_every_length_and_alignment() {
        // Past SHORT_CRC too, where the crate's own loop takes over; every
        // start address modulo 8, since the loop reads words unaligned.
        let bytes: Vec<u8> = (0..SHORT_CRC as u32 + 64)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for start in 0..8 {
            for end in start..bytes.len() {
                let slice = &bytes[start..end];
                assert_eq!(crc32c(slice), ::crc32c::crc32c(slice), "{start}..{end}");
            }
        }
        // The check value of the standard's test vector.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn stamp_checksums_what_it_wrote_at_every_payload_length() {
        // Across SHORT_CRC, where the crate takes over; records at odd
        // positions, as they are in a produce body.
        for len in (0..SHORT_CRC + 40).step_by(7) {
            let payload: Vec<u8> = (0..len).map(|n| (n * 31 % 251) as u8).collect();
            let mut batch = vec![0xee; 13];
            encode_record(&mut batch, 0, 0, 0x1122_3344_5566_7788, &payload);
            encode_record(&mut batch, 0, 0, u64::MAX, b"x");
            let extents = walk(&batch[13..]).unwrap();
            let offset = 0x0102_0304_0506_0708;
            stamp(&mut batch[13..], &extents, offset, u64::MAX - 5);
            for (n, &(at, len)) in extents.iter().enumerate() {
                let record = &batch[13 + at..13 + at + len];
                assert!(checksum_matches(record), "payload of {len} bytes");
                let header = header_at(record).unwrap();
                assert_eq!(header.offset, offset + n as u64);
                assert_eq!(header.timestamp, u64::MAX - 5);
            }
        }
    }

    #[test]
    fn walk_sizes_its_list_by_the_first_record_and_still_takes_any_mix() {
        let mut batch = Vec::new();
        encode_record(&mut batch, 0, 0, 1, &[7; 500]);
        for _ in 0..20 {
            encode_record(&mut batch, 0, 0, 1, b"");
        }
        let extents = walk(&batch).unwrap();
        assert_eq!(extents.len(), 21);
        assert_eq!(extents[20], (532 + 19 * 32, 32));
        assert_eq!(count(&batch), Ok(21));
    }

    #[test]
    fn walk_refuses_lying_lengths_and_empty_batches() {
        assert_eq!(walk(&[]), Err(BatchError::Empty));
        let mut batch = Vec::new();
        encode_record(&mut batch, 0, 0, 1, b"abc");
        batch[field::PAYLOAD_LEN] = 4; // one byte more than is there
        assert!(matches!(
            walk(&batch),
            Err(BatchError::Truncated { needed: 36, .. })
        ));
        batch[field::PAYLOAD_LEN] = 3;
        batch.push(1); // a byte that cannot be a header
        assert!(matches!(
            walk(&batch),
            Err(BatchError::Truncated { at: 35, .. })
        ));
    }

    fn encoded(contents: &Contents<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_contents(&mut out, 7, 8, 9, contents);
        assert_eq!(out.len(), encoded_len(contents));
        assert!(checksum_matches(&out));
        out
    }

    #[test]
    fn contents_plain_is_version_1_byte_for_byte() {
        for value in [&b""[..], b"hello"] {
            let plain = Contents::plain(value);
            assert!(plain.is_plain());
            let mut expected = Vec::new();
            encode_record(&mut expected, 7, 8, 9, value);
            assert_eq!(encoded(&plain), expected);
            let header = header_at(&expected).unwrap();
            assert!(!header.extended);
            assert_eq!(contents(&expected), Ok(plain));
        }
        // A create time of -1 is "none": still plain.
        let none = Contents {
            create_time: Some(extension::NO_CREATE_TIME),
            ..Contents::plain(b"v")
        };
        assert!(none.is_plain());
        assert_eq!(encoded(&none), encoded(&Contents::plain(b"v")));
    }

    #[test]
    fn contents_extended_round_trip_key_headers_create_time() {
        let full = Contents {
            create_time: Some(1_767_225_600_000),
            key: Some(b"user-42"),
            headers: vec![
                UserHeader {
                    name: "trace",
                    value: Some(b"abc"),
                },
                UserHeader {
                    name: "trace",
                    value: None,
                },
                UserHeader {
                    name: "",
                    value: Some(b""),
                },
            ],
            value: Some(b"the value"),
        };
        let bytes = encoded(&full);
        let header = header_at(&bytes).unwrap();
        assert!(header.extended);
        assert_eq!(header.record_len(), bytes.len() as u64);
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            EXTENDED | header.payload_len
        );
        assert_eq!(contents(&bytes), Ok(full));
        assert_eq!(walk(&bytes), Ok(vec![(0, bytes.len())]));
        // The value is the end of the payload.
        assert!(bytes.ends_with(b"the value"));
    }

    #[test]
    fn contents_null_key_null_value_and_empty_key_differ() {
        let cases = [
            // A tombstone: a key and a null value.
            Contents {
                key: Some(b"k"),
                value: None,
                ..Contents::default()
            },
            // Nothing at all but a null value.
            Contents::default(),
            // An empty key is a key.
            Contents {
                key: Some(b""),
                ..Contents::plain(b"v")
            },
            // Only a create time.
            Contents {
                create_time: Some(0),
                ..Contents::plain(b"")
            },
            // A negative create time other than -1 is kept.
            Contents {
                create_time: Some(-5),
                ..Contents::plain(b"x")
            },
        ];
        for case in cases {
            assert!(!case.is_plain(), "{case:?}");
            let bytes = encoded(&case);
            assert!(header_at(&bytes).unwrap().extended);
            assert_eq!(contents(&bytes).as_ref(), Ok(&case));
        }
    }

    #[test]
    fn contents_refuses_a_record_shorter_than_its_length() {
        let bytes = encoded(&Contents {
            key: Some(b"k"),
            ..Contents::plain(b"v")
        });
        assert!(matches!(
            contents(&bytes[..bytes.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            contents(&bytes[..10]),
            Err(BatchError::Truncated { needed: 32, .. })
        ));
    }

    /// A plain record, then an extended one with key `k`, create time 5, one
    /// header `a`=`1` and value `v`, edited by `edit` (the second record's
    /// bytes, at the offsets the layout gives: section_len at 32, flags 36,
    /// create_time 37, key_len 45, key 49, header_count 50, name_len 54,
    /// name 58, value_len 59, header value 63, value 64).
    fn walk_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Extents, BatchError> {
        let mut batch = Vec::new();
        encode_record(&mut batch, 0, 0, 1, b"abc");
        let mut second = encoded(&Contents {
            create_time: Some(5),
            key: Some(b"k"),
            headers: vec![UserHeader {
                name: "a",
                value: Some(b"1"),
            }],
            value: Some(b"v"),
        });
        assert_eq!(second.len(), 65);
        edit(&mut second);
        batch.extend_from_slice(&second);
        let walked = walk(&batch);
        assert_eq!(count(&batch).err(), walked.as_ref().err().cloned());
        walked
    }

    fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// The reason walk gives for the second record.
    fn refused(edit: impl FnOnce(&mut Vec<u8>)) -> ExtensionError {
        match walk_edited(edit) {
            Err(BatchError::Extension { record, at, reason }) => {
                assert_eq!((record, at), (1, 35));
                reason
            }
            other => panic!("not an extension error: {other:?}"),
        }
    }

    #[test]
    fn walk_refuses_each_kind_of_bad_extension_section() {
        assert!(walk_edited(|_| {}).is_ok());
        assert_eq!(
            refused(|r| put_u32(r, 32, 100)),
            ExtensionError::SectionPastPayload {
                needed: 104,
                payload_len: 33
            }
        );
        assert_eq!(
            refused(|r| r[36] = 0x82),
            ExtensionError::UnknownFlags { flags: 0x82 }
        );
        assert_eq!(
            refused(|r| put_u32(r, 45, (-2i32) as u32)),
            ExtensionError::NegativeLength {
                part: Part::KeyLen,
                len: -2
            }
        );
        assert_eq!(
            refused(|r| put_u32(r, 45, 1000)),
            ExtensionError::PastSection {
                part: Part::Key,
                needed: 1000,
                left: 15
            }
        );
        assert_eq!(
            refused(|r| put_u32(r, 50, u32::MAX)),
            ExtensionError::TooManyHeaders {
                count: u32::MAX,
                left: 10
            }
        );
        assert_eq!(
            refused(|r| put_u32(r, 50, 2)),
            ExtensionError::TooManyHeaders { count: 2, left: 10 }
        );
        assert_eq!(
            refused(|r| put_u32(r, 54, 200)),
            ExtensionError::PastSection {
                part: Part::HeaderName(0),
                needed: 200,
                left: 6
            }
        );
        assert_eq!(
            refused(|r| r[58] = 0xff),
            ExtensionError::NameNotUtf8 { index: 0 }
        );
        assert_eq!(
            refused(|r| put_u32(r, 59, (-5i32) as u32)),
            ExtensionError::NegativeLength {
                part: Part::HeaderValueLen(0),
                len: -5
            }
        );
        assert_eq!(
            refused(|r| put_u32(r, 59, 2)),
            ExtensionError::PastSection {
                part: Part::HeaderValue(0),
                needed: 2,
                left: 1
            }
        );
        assert_eq!(
            refused(|r| put_u32(r, 50, 0)),
            ExtensionError::TrailingBytes { extra: 10 }
        );
        assert_eq!(
            refused(|r| r[36] = extension::NULL_VALUE),
            ExtensionError::NullValueWithBytes { value_len: 1 }
        );
        // A section_len that ends before the fixed fields: the value would
        // start inside them.
        assert_eq!(
            refused(|r| put_u32(r, 32, 16)),
            ExtensionError::SectionTooShort { section_len: 16 }
        );
        // A payload too short to hold section_len itself.
        assert_eq!(
            refused(|r| {
                r.truncate(RECORD_HEADER_LEN + 2);
                put_u32(r, field::PAYLOAD_LEN, EXTENDED | 2);
            }),
            ExtensionError::SectionPastPayload {
                needed: 4,
                payload_len: 2
            }
        );
        // The message names the record and the reason.
        let error = walk_edited(|r| r[58] = 0xff).unwrap_err().to_string();
        assert_eq!(
            error,
            "record 1 (at byte 35): bad extension section: header 0's name is not UTF-8"
        );
    }

    #[test]
    fn encode_never_sets_the_flag_by_overflow() {
        assert_eq!(payload_len_word(5, false), 5);
        assert_eq!(payload_len_word(5, true), EXTENDED | 5);
        assert_eq!(payload_len_word(usize::MAX, false), MAX_PAYLOAD_LEN);
        assert_eq!(
            payload_len_word(MAX_PAYLOAD_LEN as usize + 1, true),
            EXTENDED | MAX_PAYLOAD_LEN
        );
    }
}
