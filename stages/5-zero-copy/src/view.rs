//! Views: records read where they lie, in a buffer someone else owns.
//!
//! The record is stage 4's (`stage4_partitions::protocol::record`), a fixed
//! 32-byte header and the payload:
//!
//! ```text
//! 0   u32  crc32c       of bytes 4 .. 32 + payload_len
//! 4   u32  payload_len
//! 8   u64  offset
//! 16  u64  timestamp    µs since the UNIX epoch
//! 24  u64  id
//! 32  [u8] payload
//! ```
//!
//! and a batch is `count u32` followed by `count` records, nothing after them.
//!
//! Invariants:
//! - a [`BatchView`] exists only for bytes that passed [`BatchView::parse`]:
//!   the count is at most what the bytes could hold, every record's header and
//!   payload lie inside them, and no byte is left over. The check is done once,
//!   walking the headers; the payloads are not touched;
//! - a [`RecordView`] is one whole record: its header is a `&[u8; 32]`, so each
//!   field is read with `from_le_bytes` at a constant place, at any alignment,
//!   with no length check left to fail.
//!
//! The small functions are `#[inline]`: a non-generic function is not inlined
//! into another crate without it (or link-time optimisation), and a call per
//! field read would cost more than the read. The codec bench showed it.
//!
//! Nothing here allocates or copies a payload: a view is two references. What
//! a view does *not* promise is that a record's checksum matches; that costs a
//! pass over every payload byte, so it is asked for ([`RecordView::verify`],
//! [`BatchView::verify`]) rather than done on every parse. Errors are stage 4's
//! `RecordError` (with stage 3's `BodyError` inside), so a hostile batch gets
//! the same message from stage 5 as from stage 4.

use stage3_tcp_server::protocol::BodyError;
use stage4_partitions::protocol::record::{RECORD_HEADER_LEN, Record, RecordError};

/// Where each field of a record header starts: stage 4's layout, from stage 4.
pub use stage4_partitions::protocol::record::field;

/// Bytes of a batch's `count` field.
pub const COUNT_LEN: usize = 4;

/// A record header as a fixed-size array.
pub type Header = [u8; RECORD_HEADER_LEN];

// ANCHOR: read_field
/// The `N` bytes at `AT` in a record header.
///
/// `AT` and `N` are constants, and the `const` block refuses, at compile time,
/// a range that does not lie inside the 32-byte header: the index below cannot
/// fail, and the compiler drops its check.
fn read_field<const AT: usize, const N: usize>(header: &Header) -> [u8; N] {
    const { assert!(AT + N <= RECORD_HEADER_LEN) };
    let mut bytes = [0; N];
    bytes.copy_from_slice(&header[AT..AT + N]);
    bytes
}
// ANCHOR_END: read_field

// ANCHOR: record_view
/// One record, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The first 32 bytes of `record`.
    header: &'a Header,
    /// The whole record, header and payload: what is written and sent as it is.
    record: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record at the start of `bytes`, and the bytes after it. `at` is
    /// where `bytes` starts in the whole body, for the error message.
    #[inline]
    pub fn parse(bytes: &'a [u8], at: usize) -> Result<(RecordView<'a>, &'a [u8]), RecordError> {
        // EXERCISE: record_view_parse
        // HINT: the header is bytes.first_chunk() (a &[u8; 32], or BodyError::Truncated);
        // HINT: read payload_len with read_field, then split_at_checked the whole record off
        // HINT: the rest, without a copy and without a length that can overflow or panic.
        let header: &Header = bytes.first_chunk().ok_or(BodyError::Truncated {
            field: "record header",
            needed: RECORD_HEADER_LEN,
            at,
            available: bytes.len(),
        })?;
        let payload_len = u32::from_le_bytes(read_field::<{ field::PAYLOAD_LEN }, 4>(header));
        let truncated = BodyError::Truncated {
            field: "payload",
            needed: payload_len as usize,
            at: at + RECORD_HEADER_LEN,
            available: bytes.len() - RECORD_HEADER_LEN,
        };
        // A length past the end is an error here, never an index out of bounds.
        let (record, rest) = RECORD_HEADER_LEN
            .checked_add(payload_len as usize)
            .and_then(|len| bytes.split_at_checked(len))
            .ok_or(truncated)?;
        Ok((RecordView { header, record }, rest))
        // EXERCISE_END
    }

    /// The stored checksum.
    #[inline]
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes(read_field::<{ field::CHECKSUM }, 4>(self.header))
    }

    /// Payload bytes.
    #[inline]
    pub fn payload_len(&self) -> u32 {
        u32::from_le_bytes(read_field::<{ field::PAYLOAD_LEN }, 4>(self.header))
    }

    /// The record's offset in its partition.
    #[inline]
    pub fn offset(&self) -> u64 {
        u64::from_le_bytes(read_field::<{ field::OFFSET }, 8>(self.header))
    }

    /// Server time of the append, µs since the UNIX epoch.
    #[inline]
    pub fn timestamp(&self) -> u64 {
        u64::from_le_bytes(read_field::<{ field::TIMESTAMP }, 8>(self.header))
    }

    /// The producer's id.
    #[inline]
    pub fn id(&self) -> u64 {
        u64::from_le_bytes(read_field::<{ field::ID }, 8>(self.header))
    }

    /// The payload, borrowed.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.record.get(RECORD_HEADER_LEN..).unwrap_or_default()
    }

    /// The whole record, header and payload, as it is on the wire and on disk.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.record
    }
}
// ANCHOR_END: record_view

impl RecordView<'_> {
    /// The checksum the record's bytes have (everything after the checksum field).
    pub fn computed_checksum(&self) -> u32 {
        crc32c::crc32c(self.record.get(field::PAYLOAD_LEN..).unwrap_or_default())
    }

    /// Checks the stored checksum against the bytes.
    pub fn verify(&self) -> Result<(), RecordError> {
        let (stored, computed) = (self.checksum(), self.computed_checksum());
        if stored == computed {
            Ok(())
        } else {
            Err(RecordError::Checksum {
                offset: self.offset(),
                stored,
                computed,
            })
        }
    }

    /// An owned copy (allocates: for tests and callers that keep records).
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset(),
            timestamp: self.timestamp(),
            id: self.id(),
            payload: self.payload().to_vec(),
        }
    }
}

// ANCHOR: batch_view
/// A batch whose count and lengths have been checked: `count` records, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView<'a> {
    count: u32,
    /// The records, without the count in front of them.
    records: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Checks that `bytes` is `count u32` and exactly `count` whole records.
    pub fn parse(bytes: &'a [u8]) -> Result<BatchView<'a>, RecordError> {
        BatchView::parse_at(bytes, 0)
    }

    /// [`BatchView::parse`] for bytes that start at `at` in a larger body.
    pub fn parse_at(bytes: &'a [u8], at: usize) -> Result<BatchView<'a>, RecordError> {
        let (count, records) = bytes.split_first_chunk().ok_or(BodyError::Truncated {
            field: "record count",
            needed: COUNT_LEN,
            at,
            available: bytes.len(),
        })?;
        let count = u32::from_le_bytes(*count);
        // A lying count is refused before the walk: it cannot make us loop (or,
        // elsewhere, reserve memory) for records that are not there.
        if (count as usize).saturating_mul(RECORD_HEADER_LEN) > records.len() {
            return Err(BodyError::CountTooLarge {
                field: "record count",
                count,
                available: records.len(),
            }
            .into());
        }
        let mut rest = records;
        for _ in 0..count {
            let position = at + COUNT_LEN + (records.len() - rest.len());
            (_, rest) = RecordView::parse(rest, position)?;
        }
        if !rest.is_empty() {
            return Err(BodyError::TrailingBytes { extra: rest.len() }.into());
        }
        Ok(BatchView { count, records })
    }

    /// The records, one view each, in order.
    #[inline]
    pub fn iter(&self) -> Records<'a> {
        Records {
            rest: self.records,
            left: self.count,
        }
    }
}
// ANCHOR_END: batch_view

impl<'a> BatchView<'a> {
    /// A view of `count` records in `records`, which passed [`BatchView::parse`]
    /// before (its caller keeps that promise; `crate::batch` does). A broken
    /// promise cannot read out of bounds: iteration would just end early.
    #[inline]
    pub(crate) fn validated(count: u32, records: &'a [u8]) -> BatchView<'a> {
        BatchView { count, records }
    }

    /// How many records.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The records' bytes, without the count: what the log stores.
    #[inline]
    pub fn records(&self) -> &'a [u8] {
        self.records
    }

    /// Checks every record's checksum (a pass over every byte).
    pub fn verify(&self) -> Result<(), RecordError> {
        self.iter().try_for_each(|record| record.verify())
    }
}

impl<'a> IntoIterator for BatchView<'a> {
    type Item = RecordView<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &BatchView<'a> {
    type Item = RecordView<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

/// The records of a [`BatchView`], one view each.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordView<'a>> {
        self.left = self.left.checked_sub(1)?;
        // The batch was validated, so this parse cannot fail; if it somehow
        // did, the iteration ends instead of panicking.
        let (record, rest) = RecordView::parse(self.rest, 0).ok()?;
        self.rest = rest;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Records<'_> {}

#[cfg(test)]
mod tests {
    use stage4_partitions::protocol::record::encode_records;

    use super::*;

    fn batch(records: &[(u64, u64, u64, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_records(&mut bytes, records.iter().copied());
        bytes
    }

    #[test]
    fn view_reads_each_field_where_stage4_wrote_it() {
        let bytes = batch(&[(5, 6, 7, b"hello"), (8, 9, 10, b"")]);
        let view = BatchView::parse(&bytes).unwrap();
        assert_eq!(view.count(), 2);
        let records: Vec<Record> = view.iter().map(|r| r.to_record()).collect();
        assert_eq!(records[0].offset, 5);
        assert_eq!(records[0].timestamp, 6);
        assert_eq!(records[0].id, 7);
        assert_eq!(records[0].payload, b"hello");
        assert_eq!(records[1].payload, b"");
        view.verify().unwrap();
        assert_eq!(view.records(), &bytes[4..]);
    }

    #[test]
    fn view_lying_count_and_lengths_are_errors() {
        let mut bytes = batch(&[(1, 2, 3, b"abc")]);
        bytes[0] = 200; // 200 records in 35 bytes
        assert!(matches!(
            BatchView::parse(&bytes),
            Err(RecordError::Body(BodyError::CountTooLarge {
                count: 200,
                ..
            }))
        ));
        let mut bytes = batch(&[(1, 2, 3, b"abc")]);
        bytes[4 + field::PAYLOAD_LEN] = 4; // one byte more than is there
        assert!(matches!(
            BatchView::parse(&bytes),
            Err(RecordError::Body(BodyError::Truncated {
                field: "payload",
                ..
            }))
        ));
        let mut bytes = batch(&[(1, 2, 3, b"abc")]);
        bytes.push(0);
        assert!(matches!(
            BatchView::parse(&bytes),
            Err(RecordError::Body(BodyError::TrailingBytes { extra: 1 }))
        ));
    }
}
