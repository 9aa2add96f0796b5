//! The record: one message as it sits in the log file.
//!
//! The layout is the talk's, little-endian, with the message id added:
//!
//! ```text
//! offset       u64   8 bytes   position of the message in the stream, from 0
//! id           u64   8 bytes   chosen by the producer, stored as given
//! payload_len  u32   4 bytes   number of payload bytes that follow
//! payload      [u8]  payload_len bytes
//! ```
//!
//! Deliberate simplifications, each fixed later in the book: there is no checksum
//! (a flipped bit is served as if it were data; stage 4's batch format adds crc32c),
//! and no timestamp (stage 4 adds one, stage 6 indexes it).

use thiserror::Error;

/// Bytes before the payload: offset, id and payload length.
pub const HEADER_LEN: usize = 8 + 8 + 4;

/// A message with the offset the stream gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Position in the stream, assigned by [`crate::Stream::append`].
    pub offset: u64,
    /// The producer's identifier for the message; the log does not interpret it.
    pub id: u64,
    /// The bytes the producer sent.
    pub payload: Vec<u8>,
}

/// Why bytes could not be turned into a record, or a record into bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// The payload length does not fit the record's `u32` length field.
    #[error("payload of {len} bytes does not fit a record (at most {max} bytes)", max = u32::MAX)]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The bytes end before the record does: a torn write, or a lying length.
    #[error("record needs {needed} bytes but only {available} are there")]
    Truncated {
        /// Bytes the header says the record occupies.
        needed: u64,
        /// Bytes actually available.
        available: usize,
    },
}

/// The fixed-size part of a record, readable without touching the payload.
///
/// Recovery walks the log header by header, skipping payloads, so it never
/// allocates what a (possibly torn) length field claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The record's offset field.
    pub offset: u64,
    /// The record's id field.
    pub id: u64,
    /// How many payload bytes follow the header.
    pub payload_len: u32,
}

impl Header {
    /// Reads the header from the first [`HEADER_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Header {
        // Fixed ranges inside a fixed-size array: no length check can fail here.
        let mut offset = [0; 8];
        let mut id = [0; 8];
        let mut payload_len = [0; 4];
        offset.copy_from_slice(&bytes[0..8]);
        id.copy_from_slice(&bytes[8..16]);
        payload_len.copy_from_slice(&bytes[16..20]);
        Header {
            offset: u64::from_le_bytes(offset),
            id: u64::from_le_bytes(id),
            payload_len: u32::from_le_bytes(payload_len),
        }
    }

    /// Total bytes of the record this header starts: header plus payload.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

impl Message {
    /// A message to append; the stream overwrites `offset` with the next one.
    pub fn new(id: u64, payload: impl Into<Vec<u8>>) -> Message {
        Message {
            offset: 0,
            id,
            payload: payload.into(),
        }
    }

    /// Bytes this message occupies in the log.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    // ANCHOR: as_bytes
    /// Encodes the record: offset, id, payload length, payload.
    ///
    /// One fresh `Vec` per message, as in the talk. Stage 5 removes this
    /// allocation by encoding a whole batch into one buffer in place.
    pub fn as_bytes(&self) -> Result<Vec<u8>, RecordError> {
        let mut bytes = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut bytes)?;
        Ok(bytes)
    }

    /// Appends the record to `bytes`; on error, `bytes` is left as it was.
    pub fn encode_into(&self, bytes: &mut Vec<u8>) -> Result<(), RecordError> {
        // EXERCISE: encode_into
        // HINT: check the payload's length fits a u32 first (else PayloadTooLarge, nothing
        // HINT: appended), then append offset, id, length and payload, little-endian.
        let payload_len =
            u32::try_from(self.payload.len()).map_err(|_| RecordError::PayloadTooLarge {
                len: self.payload.len(),
            })?;
        bytes.extend_from_slice(&self.offset.to_le_bytes());
        bytes.extend_from_slice(&self.id.to_le_bytes());
        bytes.extend_from_slice(&payload_len.to_le_bytes());
        bytes.extend_from_slice(&self.payload);
        Ok(())
        // EXERCISE_END
    }
    // ANCHOR_END: as_bytes

    // ANCHOR: from_bytes
    /// Decodes the record at the start of `bytes`; bytes after it are ignored.
    ///
    /// The talk indexes `bytes[12..12 + length]` directly, which panics on a
    /// short buffer. Here every length is checked against what is there first,
    /// so a torn or lying record is an error, never a panic or an over-read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Message, RecordError> {
        // EXERCISE: from_bytes
        // HINT: fewer than HEADER_LEN bytes, or fewer than the header's length says, is
        // HINT: RecordError::Truncated (never a panic); Header::from_bytes reads the fields.
        let header: &[u8; HEADER_LEN] = bytes.first_chunk().ok_or(RecordError::Truncated {
            needed: HEADER_LEN as u64,
            available: bytes.len(),
        })?;
        let header = Header::from_bytes(header);
        let payload = bytes
            .get(HEADER_LEN..)
            .and_then(|rest| rest.get(..header.payload_len as usize))
            .ok_or(RecordError::Truncated {
                needed: header.record_len(),
                available: bytes.len(),
            })?;
        Ok(Message {
            offset: header.offset,
            id: header.id,
            payload: payload.to_vec(),
        })
        // EXERCISE_END
    }
    // ANCHOR_END: from_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_reads_each_field_from_its_place() {
        let bytes = Message {
            offset: 0x0102,
            id: 0x0304,
            payload: vec![9; 5],
        }
        .as_bytes()
        .unwrap();
        let header = Header::from_bytes(bytes.first_chunk().unwrap());
        assert_eq!(
            header,
            Header {
                offset: 0x0102,
                id: 0x0304,
                payload_len: 5
            }
        );
        assert_eq!(header.record_len(), 25);
    }

    #[test]
    fn a_length_past_the_end_is_truncated_not_a_panic() {
        let mut bytes = Message::new(1, b"hello".to_vec()).as_bytes().unwrap();
        bytes[16] = 0xff; // claim a 255-byte payload
        assert_eq!(
            Message::from_bytes(&bytes),
            Err(RecordError::Truncated {
                needed: 20 + 255,
                available: 25
            })
        );
    }
}
