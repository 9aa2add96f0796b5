//! Self-describing payloads: a message's payload is a function of its id,
//! and carries its own checksum, so any record read back can be checked
//! without remembering what was sent.
//!
//! ```text
//! id u64 | filler (length and bytes from the id) | crc32c u32 of what precedes
//! ```
//!
//! The id is `producer << 48 | sequence`: a producer's messages are told
//! apart from every other's, and their order is the sequence's order. The
//! record's own checksum (the broker's) is checked by the poll; this one
//! checks the payload is the one that id was sent with, and not, say, a
//! neighbour's bytes under the right header.

use crate::rng::mix;

/// Bits of the id that hold the sequence; the producer is above them.
const SEQUENCE_BITS: u32 = 48;

/// The id of a producer's `sequence`th message.
pub fn id(producer: u64, sequence: u64) -> u64 {
    (producer << SEQUENCE_BITS) | (sequence & ((1 << SEQUENCE_BITS) - 1))
}

/// The producer of a message id.
pub fn producer_of(id: u64) -> u64 {
    id >> SEQUENCE_BITS
}

/// The sequence number of a message id.
pub fn sequence_of(id: u64) -> u64 {
    id & ((1 << SEQUENCE_BITS) - 1)
}

// ANCHOR: payload
/// The payload message `id` is sent with: 12 to 267 bytes.
pub fn payload(id: u64) -> Vec<u8> {
    let seed = mix(id);
    let filler = (seed % 256) as usize;
    let mut bytes = Vec::with_capacity(12 + filler);
    bytes.extend_from_slice(&id.to_le_bytes());
    let mut state = seed;
    for _ in 0..filler {
        state = mix(state);
        bytes.push(state as u8);
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Whether `bytes` is the payload of message `id`, whole.
pub fn is_payload_of(id: u64, bytes: &[u8]) -> bool {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return false;
    };
    crc32c::crc32c(body) == u32::from_le_bytes(*crc)
        && body.get(..8) == Some(&id.to_le_bytes()[..])
        && bytes == payload(id).as_slice()
}
// ANCHOR_END: payload
