//! The message record of stages 4 to 6: the bytes on the wire, and from stage 5
//! on the bytes on disk too.
//!
//! ```text
//! 0   u32  crc32c       of bytes 4 .. 32 + payload_len (everything after it)
//! 4   u32  payload_len
//! 8   u64  offset       assigned by the server
//! 16  u64  timestamp    microseconds since the UNIX epoch, assigned by the server
//! 24  u64  id           chosen by the producer
//! 32  [u8] payload
//! ```
//!
//! Designed for where the project ends rather than where it is. Stage 1's record
//! had offset, id and length; this one adds what a deployable broker needs:
//! - a **checksum**, so a flipped bit on disk or on the wire is detected rather
//!   than served (crc32c: hardware-accelerated on x86 and ARM, and the same one
//!   iSCSI, ext4 and Kafka use). It covers the offset and timestamp, so the
//!   server computes it when it stamps them; producers send 0;
//! - a **timestamp**, for polling by time (stage 6 indexes it);
//! - the **length before the offset**, so a reader knows a record's extent from
//!   its first 8 bytes;
//! - a **fixed 32-byte header** with every field at a multiple of its size, so
//!   stage 5 can read fields in place and stamp offsets without moving bytes.
//!
//! Stage 4 still stores stage 1's records underneath and converts on the way in
//! and out (it keeps no timestamp, so polls return 0 there); stage 5 stores these
//! bytes as they are.

use stage3_tcp_server::protocol::{BodyError, BodyReader};

/// Bytes before the payload.
pub const RECORD_HEADER_LEN: usize = 32;

/// Where each field of a record header starts (the table above).
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

/// A record as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset in its partition.
    pub offset: u64,
    /// Server time of the append, µs since the epoch (0 where not stored).
    pub timestamp: u64,
    /// The producer's id.
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

// ANCHOR: encode_record
/// Appends one record to `out`, computing its checksum.
pub fn encode_record(out: &mut Vec<u8>, offset: u64, timestamp: u64, id: u64, payload: &[u8]) {
    // EXERCISE: encode_record
    // HINT: append the 32-byte header (a 0 where the checksum goes), then the payload;
    // HINT: then put crc32c::crc32c of everything after the checksum field in its place.
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // the checksum, filled in below
    // Payloads come from frames, which are far below 4 GiB.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    // EXERCISE_END
}
// ANCHOR_END: encode_record

/// Whether to check each record's checksum while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Check it: records that came from a server.
    Verify,
    /// Ignore it: records a producer sent, which the server stamps and sums itself.
    Ignore,
}

/// Why a record did not decode, beyond a short body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The body is malformed.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The checksum does not match the bytes.
    #[error("record at offset {offset}: checksum {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The record's offset field.
        offset: u64,
        /// The checksum in the record.
        stored: u32,
        /// The checksum of its bytes.
        computed: u32,
    },
}

// ANCHOR: decode_records
/// Reads `count u32` and that many records.
pub fn decode_records(
    reader: &mut BodyReader<'_>,
    checksum: Checksum,
) -> Result<Vec<Record>, RecordError> {
    // EXERCISE: decode_records
    // HINT: reader.count, then per record the header fields and the payload with the
    // HINT: BodyReader (it refuses what is not there); under Checksum::Verify, compare the
    // HINT: stored crc32c with one computed over bytes 4.. of the record.
    let count = reader.count("record count", RECORD_HEADER_LEN)?;
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let stored = reader.u32("crc32c")?;
        let header = reader.take("record header", RECORD_HEADER_LEN - 4)?;
        let mut fields = BodyReader::new(header);
        let payload_len = fields.u32("payload length")?;
        let offset = fields.u64("offset")?;
        let timestamp = fields.u64("timestamp")?;
        let id = fields.u64("id")?;
        let payload = reader.take("payload", payload_len as usize)?;
        if checksum == Checksum::Verify {
            let computed = crc32c::crc32c_append(crc32c::crc32c(header), payload);
            if computed != stored {
                return Err(RecordError::Checksum {
                    offset,
                    stored,
                    computed,
                });
            }
        }
        records.push(Record {
            offset,
            timestamp,
            id,
            payload: payload.to_vec(),
        });
    }
    Ok(records)
    // EXERCISE_END
}
// ANCHOR_END: decode_records

/// Encodes `count` and the records, as a produce request or poll reply carries them.
pub fn encode_records<'a>(
    out: &mut Vec<u8>,
    records: impl ExactSizeIterator<Item = (u64, u64, u64, &'a [u8])>,
) {
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (offset, timestamp, id, payload) in records {
        encode_record(out, offset, timestamp, id, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_records(
            &mut out,
            records
                .iter()
                .map(|r| (r.offset, r.timestamp, r.id, r.payload.as_slice())),
        );
        out
    }

    #[test]
    fn golden_record_bytes() {
        let mut out = Vec::new();
        encode_record(&mut out, 1, 2, 3, b"hi");
        let crc = crc32c::crc32c(&out[4..]).to_le_bytes();
        #[rustfmt::skip]
        let expected = [
            crc[0], crc[1], crc[2], crc[3], 2, 0, 0, 0,
            1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0, 0, 0, 0, 0,
            3, 0, 0, 0, 0, 0, 0, 0,
            b'h', b'i',
        ];
        assert_eq!(out, expected);
        // crc32c's standard check value: the algorithm is the Castagnoli one.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn records_round_trip_and_a_flipped_bit_is_caught() {
        let records = vec![
            Record {
                offset: 5,
                timestamp: 6,
                id: 7,
                payload: b"hello".to_vec(),
            },
            Record {
                offset: 6,
                timestamp: 6,
                id: 8,
                payload: Vec::new(),
            },
        ];
        let mut bytes = encoded(&records);
        let decoded = decode_records(&mut BodyReader::new(&bytes), Checksum::Verify).unwrap();
        assert_eq!(decoded, records);
        bytes[4 + RECORD_HEADER_LEN + 1] ^= 1; // inside "hello"
        assert!(matches!(
            decode_records(&mut BodyReader::new(&bytes), Checksum::Verify),
            Err(RecordError::Checksum { offset: 5, .. })
        ));
        assert!(decode_records(&mut BodyReader::new(&bytes), Checksum::Ignore).is_ok());
    }
}
