//! A produced batch, kept in the buffer it arrived in, and stamped there.
//!
//! Stage 4 decoded a produce request into a `Vec<Record>` (a payload copy and
//! an allocation per message), turned that into stage 1 `Message`s, and encoded
//! those again into one buffer for the write. Here the frame's body buffer is
//! handed to the request (stage 3's `Service::decode` takes it by value), the
//! records in it are validated once ([`BatchView`]), the server's fields are
//! written into it in place, and the records region is what the log writes.
//!
//! Invariant: a [`ReceivedBatch`] holds a buffer whose bytes from `count_at`
//! on passed [`BatchView::parse`], and keeps them that way: [`ReceivedBatch::stamp`]
//! writes only inside the fixed-size header fields (offset, timestamp,
//! checksum), never a length, so every later view or walk is still valid.

use stage4_partitions::protocol::record::{RECORD_HEADER_LEN, RecordError};

use crate::view::{BatchView, COUNT_LEN, field};

/// A validated batch inside the buffer of the frame that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedBatch {
    buffer: Vec<u8>,
    /// Where the `count` field is in `buffer`; the records follow it.
    count_at: usize,
    count: u32,
}

impl ReceivedBatch {
    /// Takes `buffer` whose bytes from `count_at` on are `count u32` and the
    /// records, and validates them (count, lengths, nothing left over).
    pub fn validate(buffer: Vec<u8>, count_at: usize) -> Result<ReceivedBatch, RecordError> {
        let batch = buffer.get(count_at..).unwrap_or_default();
        let count = BatchView::parse_at(batch, count_at)?.count();
        Ok(ReceivedBatch {
            buffer,
            count_at,
            count,
        })
    }

    /// How many records.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The records, without the count: the bytes the log stores.
    pub fn records(&self) -> &[u8] {
        self.buffer
            .get(self.count_at + COUNT_LEN..)
            .unwrap_or_default()
    }

    /// A view of the records, without checking them again: they were checked
    /// when this batch was made, and stamping never changes a length.
    pub fn view(&self) -> BatchView<'_> {
        BatchView::validated(self.count, self.records())
    }

    // ANCHOR: stamp
    /// Gives the records offsets from `first_offset` and the `timestamp`, and
    /// computes each one's checksum, all in place: nothing is allocated or
    /// moved, and the checksum pass is the only one over the payloads.
    pub fn stamp(&mut self, first_offset: u64, timestamp: u64) {
        // EXERCISE: stamp
        // HINT: walk the records in self.buffer (each 32 + payload_len bytes, from
        // HINT: count_at + COUNT_LEN); write offset and timestamp with write_value_at, then
        // HINT: the crc32c of the record's bytes after its checksum field, last.
        let start = self.count_at + COUNT_LEN;
        let Some(records) = self.buffer.get_mut(start..) else {
            return;
        };
        let mut at = 0;
        for offset in first_offset..first_offset + u64::from(self.count) {
            let len = RECORD_HEADER_LEN + payload_len_at(records, at) as usize;
            write_value_at(records, offset.to_le_bytes(), at + field::OFFSET);
            write_value_at(records, timestamp.to_le_bytes(), at + field::TIMESTAMP);
            // The checksum covers everything after itself, offset and timestamp
            // included, so it is computed last.
            let covered = records.get(at + field::PAYLOAD_LEN..at + len);
            let crc = crc32c::crc32c(covered.unwrap_or_default());
            write_value_at(records, crc.to_le_bytes(), at + field::CHECKSUM);
            at += len;
        }
        // EXERCISE_END
    }
    // ANCHOR_END: stamp
}

// ANCHOR: write_value_at
/// The talk's `write_value_at`: copy `value` into `bytes` at `position`.
///
/// The talk writes it with `unsafe { copy_nonoverlapping }` to skip the bounds
/// check. Here the check stays: it is one comparison against a length already
/// in a register, branch-predicted right every time, and in return a wrong
/// position is a skipped write instead of a write past the buffer. The positions
/// come from a validated batch, so in practice it never skips.
fn write_value_at<const N: usize>(bytes: &mut [u8], value: [u8; N], position: usize) {
    if let Some(slot) = bytes.get_mut(position..position + N) {
        slot.copy_from_slice(&value);
    }
}
// ANCHOR_END: write_value_at

/// The payload length of the record at `at` (0 if the bytes are not there,
/// which validation rules out).
fn payload_len_at(records: &[u8], at: usize) -> u32 {
    let at = at + field::PAYLOAD_LEN;
    records
        .get(at..at + 4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use stage4_partitions::protocol::record::{encode_record, encode_records};

    use super::*;

    #[test]
    fn stamp_writes_exactly_what_stage4_encodes() {
        let payloads: [&[u8]; 3] = [b"one", b"", b"three"];
        let mut body = vec![9, 9, 9]; // bytes before the count, like a produce header
        encode_records(&mut body, payloads.iter().map(|p| (0, 0, 42, *p)));
        let mut batch = ReceivedBatch::validate(body, 3).unwrap();
        batch.stamp(100, 777);
        let mut expected = Vec::new();
        for (n, payload) in payloads.iter().enumerate() {
            encode_record(&mut expected, 100 + n as u64, 777, 42, payload);
        }
        assert_eq!(batch.records(), expected);
        batch.view().verify().unwrap();
        assert_eq!(batch.view().count(), 3);
    }
}
