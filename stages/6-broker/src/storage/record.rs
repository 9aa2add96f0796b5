//! The record, as stage 6 stores it: stage 4's wire record, byte for byte.
//!
//! ```text
//! 0   u32  crc32c       of bytes 4 .. 32 + payload_len
//! 4   u32  payload_len
//! 8   u64  offset       stamped by the partition
//! 16  u64  timestamp    µs since the UNIX epoch, stamped by the partition
//! 24  u64  id           the producer's
//! 32  [u8] payload
//! ```
//!
//! Stage 5's `view` and `batch` modules read and stamp these records in the
//! frame's buffer. The storage core keeps its own few helpers over plain
//! `&[u8]` instead: it works on byte ranges of segments and of aligned
//! buffers, which outlive no frame, and it needs exactly three things: the
//! header's fields, stamping in place, and a checksum check.
//!
//! The layout is owned here, for the broker and every client built on the
//! engine: a change to a teaching stage cannot change what is on disk. The
//! bench crate's `wire_compat` test checks these bytes against stage 4's
//! `encode_record`, so the two layouts cannot drift apart unnoticed.

use crate::storage::error::BatchError;

/// Bytes before the payload.
pub const RECORD_HEADER_LEN: usize = 32;

/// Where each field of a record header starts.
pub mod field {
    /// `crc32c u32`.
    pub const CHECKSUM: usize = 0;
    /// `payload_len u32`.
    pub const PAYLOAD_LEN: usize = 4;
    /// `offset u64`.
    pub const OFFSET: usize = 8;
    /// `timestamp u64`.
    pub const TIMESTAMP: usize = 16;
    /// `id u64`.
    pub const ID: usize = 24;
}

/// A record header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stored checksum.
    pub checksum: u32,
    /// Payload bytes after the header.
    pub payload_len: u32,
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
        Header {
            checksum: u32::from_le_bytes(array_at(header, field::CHECKSUM)),
            payload_len: u32::from_le_bytes(array_at(header, field::PAYLOAD_LEN)),
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

/// The checksum a record's bytes have: crc32c of everything after the checksum field.
pub fn checksum_of(record: &[u8]) -> u32 {
    crc32c::crc32c(record.get(field::PAYLOAD_LEN..).unwrap_or_default())
}

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
/// before it is used, so a lying length is an error, never a slice panic.
pub fn walk(records: &[u8]) -> Result<Extents, BatchError> {
    let mut extents = Vec::new();
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
        let header = header_at(&records[at..]).ok_or(BatchError::Truncated {
            at,
            needed: RECORD_HEADER_LEN,
            available,
        })?;
        let len = RECORD_HEADER_LEN + header.payload_len as usize;
        if len > available {
            return Err(BatchError::Truncated {
                at,
                needed: len,
                available,
            });
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
pub fn stamp(records: &mut [u8], extents: &Extents, first_offset: u64, timestamp: u64) {
    for (offset, &(at, len)) in (first_offset..).zip(extents) {
        let Some(record) = records.get_mut(at..at + len) else {
            continue; // `extents` came from `walk` over these bytes: never taken
        };
        record[field::OFFSET..field::OFFSET + 8].copy_from_slice(&offset.to_le_bytes());
        record[field::TIMESTAMP..field::TIMESTAMP + 8].copy_from_slice(&timestamp.to_le_bytes());
        // The checksum covers the offset and timestamp, so it is computed last.
        let crc = checksum_of(record);
        record[field::CHECKSUM..field::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    }
}
// ANCHOR_END: stamp

// ANCHOR: encode
/// Appends a whole record to `out`: what a producer sends (offset and
/// timestamp 0, for the partition to stamp) or what a poll returns.
pub fn encode(out: &mut Vec<u8>, offset: u64, timestamp: u64, id: u64, payload: &[u8]) {
    let start = out.len();
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[0; 4]); // the checksum, computed last
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum_of(&out[start..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}
// ANCHOR_END: encode

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
}
