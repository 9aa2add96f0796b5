//! The same batch archived with rkyv 0.8, the talk's "just use rkyv", measured
//! beside the hand-rolled layout of [`crate::view`].
//!
//! rkyv lays a value out so that the bytes *are* the value: accessing an
//! archive is a pointer cast, with nothing decoded. There are two ways in:
//!
//! - [`access_validated`] (`rkyv::access`, with bytecheck) walks the archive
//!   first and checks every relative pointer, length and field, so any bytes
//!   at all are safe to hand it: the way in for bytes from a network or a disk;
//! - [`TrustedBatch::archived`] (`rkyv::access_unchecked`) skips that walk. It
//!   is `unsafe` in rkyv because invalid bytes are undefined behaviour; here it
//!   is reached only through a [`TrustedBatch`], which can only be made from
//!   bytes rkyv itself wrote or bytes validated once. That is the condition
//!   under which unchecked access is acceptable: the bytes are known good and
//!   cannot have changed since.
//!
//! What rkyv cannot do for a log, and why Iggy moved to its own layout: an
//! archive is one root, at the *end* of the buffer, reaching its contents by
//! offsets relative to itself. Records 200..300 of an archived batch of 1000
//! are not an archive, so a poll cannot send a slice of what was stored; it
//! would have to archive a new batch. Any run of records of the hand-rolled
//! layout, behind a new count, is a batch ([`crate::view::BatchView`]).
//! rkyv also needs aligned bytes (an `AlignedVec`), where the hand-rolled
//! layout reads its fields with `from_le_bytes` at any alignment.
//!
//! This is the crate's only `unsafe` besides the counting allocator
//! ([`crate::alloc_count`]): one block, below, with its invariant.

#![allow(unsafe_code)]

use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

// ANCHOR: rkyv_types
/// A record with the wire record's fields, laid out by rkyv.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(attr(allow(missing_docs)))]
pub struct RkyvRecord {
    /// Offset in its partition.
    pub offset: u64,
    /// Server time of the append, µs since the epoch.
    pub timestamp: u64,
    /// The producer's id.
    pub id: u64,
    /// crc32c, as in the wire record.
    pub checksum: u32,
    /// The payload; archived as a relative pointer and a length.
    pub payload: Vec<u8>,
}

/// A batch: one archive root holding every record.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(attr(allow(missing_docs)))]
pub struct RkyvBatch {
    /// The records, in order.
    pub records: Vec<RkyvRecord>,
}
// ANCHOR_END: rkyv_types

/// Archives `batch` into a fresh aligned buffer.
pub fn archive(batch: &RkyvBatch) -> Result<AlignedVec, RkyvError> {
    rkyv::to_bytes::<RkyvError>(batch)
}

// ANCHOR: access_validated
/// Validated access: checks the whole archive (bytecheck), then casts. Safe
/// for any bytes; an invalid archive is an error.
pub fn access_validated(bytes: &[u8]) -> Result<&ArchivedRkyvBatch, RkyvError> {
    rkyv::access::<ArchivedRkyvBatch, RkyvError>(bytes)
}
// ANCHOR_END: access_validated

// ANCHOR: trusted_batch
/// Bytes known to hold a valid archived batch: written by rkyv here, or
/// validated once. Immutable from then on, so the knowledge stays true.
#[derive(Debug, Clone)]
pub struct TrustedBatch {
    bytes: AlignedVec,
}

impl TrustedBatch {
    /// Archives `batch`: rkyv's own output is valid by construction.
    pub fn archive(batch: &RkyvBatch) -> Result<TrustedBatch, RkyvError> {
        Ok(TrustedBatch {
            bytes: archive(batch)?,
        })
    }

    /// Validates `bytes` once, so that every later access can skip it.
    pub fn validate(bytes: AlignedVec) -> Result<TrustedBatch, RkyvError> {
        access_validated(&bytes)?;
        Ok(TrustedBatch { bytes })
    }

    /// Unchecked access: a pointer cast, no walk of the archive.
    pub fn archived(&self) -> &ArchivedRkyvBatch {
        // SAFETY: `self.bytes` was produced by rkyv's serializer for an
        // `RkyvBatch` (`archive`) or passed `rkyv::access` for
        // `ArchivedRkyvBatch` (`validate`), and no `&mut` to it is ever handed
        // out, so it still holds a valid archive with its root where rkyv
        // looks for it, in a buffer aligned for it (`AlignedVec`). That is
        // exactly `access_unchecked`'s precondition. The returned reference
        // borrows `self`, so the bytes outlive it.
        unsafe { rkyv::access_unchecked::<ArchivedRkyvBatch>(&self.bytes) }
    }
}
// ANCHOR_END: trusted_batch

impl TrustedBatch {
    /// The archive's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u64) -> RkyvBatch {
        RkyvBatch {
            records: (0..n)
                .map(|i| RkyvRecord {
                    offset: i,
                    timestamp: 1_700_000_000_000_000 + i,
                    id: 1000 + i,
                    checksum: i as u32 * 7,
                    payload: vec![i as u8; i as usize % 50],
                })
                .collect(),
        }
    }

    fn fields(archived: &ArchivedRkyvBatch) -> Vec<(u64, u64, u64, u32, Vec<u8>)> {
        archived
            .records
            .iter()
            .map(|r| {
                (
                    r.offset.to_native(),
                    r.timestamp.to_native(),
                    r.id.to_native(),
                    r.checksum.to_native(),
                    r.payload.as_slice().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn rkyv_unchecked_access_reads_what_validated_access_reads() {
        for n in [0, 1, 10, 300] {
            let original = batch(n);
            let trusted = TrustedBatch::archive(&original).unwrap();
            let validated = access_validated(trusted.bytes()).unwrap();
            assert_eq!(fields(trusted.archived()), fields(validated));
            let back: RkyvBatch =
                rkyv::deserialize::<RkyvBatch, RkyvError>(trusted.archived()).unwrap();
            assert_eq!(back, original);
            let revalidated = TrustedBatch::validate(archive(&original).unwrap()).unwrap();
            assert_eq!(fields(revalidated.archived()), fields(validated));
        }
    }

    #[test]
    fn rkyv_validation_refuses_damaged_and_sliced_archives() {
        let bytes = archive(&batch(10)).unwrap();
        // A slice of an archive is not an archive: the root is at the end,
        // and what it points to is not where a shorter buffer has it.
        let mut half = AlignedVec::<16>::new();
        half.extend_from_slice(&bytes[..bytes.len() / 2]);
        assert!(access_validated(&half).is_err());
        assert!(TrustedBatch::validate(half).is_err());
        // A length that points past the end is caught before any access.
        let mut lying = AlignedVec::<16>::new();
        lying.extend_from_slice(&bytes);
        let len = lying.len();
        lying[len - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(access_validated(&lying).is_err());
    }
}
