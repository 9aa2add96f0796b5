//! Reading and writing frame bodies: little-endian fields, every length checked.

use thiserror::Error;

/// A body that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    /// The body ends before a field does.
    #[error("body truncated: {field} needs {needed} bytes at byte {at}, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its size.
        needed: usize,
        /// Where it starts.
        at: usize,
        /// Bytes left in the body.
        available: usize,
    },
    /// Bytes are left over after the last field.
    #[error("{extra} unexpected bytes after the body's last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field that selects a variant holds a value with no variant.
    #[error("{field} kind {kind} is not one this protocol knows")]
    UnknownKind {
        /// The field.
        field: &'static str,
        /// Its value.
        kind: u8,
    },
    /// A count promises more items than the body could possibly hold.
    #[error("{field} of {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// The count field.
        field: &'static str,
        /// Its value.
        count: u32,
        /// Bytes left in the body.
        available: usize,
    },
}

/// A cursor over a body. Every read checks the remaining length first.
#[derive(Debug)]
pub struct BodyReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> BodyReader<'a> {
    /// Starts at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> BodyReader<'a> {
        BodyReader { bytes, at: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], BodyError> {
        let rest = &self.bytes[self.at..];
        let taken = rest.get(..n).ok_or(BodyError::Truncated {
            field,
            needed: n,
            at: self.at,
            available: rest.len(),
        })?;
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BodyError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(field, N)?);
        Ok(array)
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, BodyError> {
        self.array(field).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, BodyError> {
        self.array(field).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, BodyError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A single byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, BodyError> {
        self.array::<1>(field).map(|[byte]| byte)
    }

    /// Reads a count of items that take at least `min_item_len` bytes each, and
    /// refuses one the rest of the body cannot hold: a lying count must not
    /// reserve memory for items that are not there.
    pub fn count(&mut self, field: &'static str, min_item_len: usize) -> Result<u32, BodyError> {
        let count = self.u32(field)?;
        let available = self.remaining();
        if (count as usize).saturating_mul(min_item_len) > available {
            return Err(BodyError::CountTooLarge {
                field,
                count,
                available,
            });
        }
        Ok(count)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Ends the body: leftover bytes mean the two sides disagree on the format.
    pub fn finish(self) -> Result<(), BodyError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(BodyError::TrailingBytes { extra }),
        }
    }
}

/// Appends little-endian fields to a body.
pub trait PutLe {
    /// Appends a `u16`.
    fn put_u16(&mut self, value: u16);
    /// Appends a `u32`.
    fn put_u32(&mut self, value: u32);
    /// Appends a `u64`.
    fn put_u64(&mut self, value: u64);
}

impl PutLe for Vec<u8> {
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_and_truncation_is_an_error() {
        let mut body = Vec::new();
        body.put_u16(7);
        body.put_u32(8);
        body.put_u64(9);
        let mut reader = BodyReader::new(&body);
        assert_eq!(reader.u16("a"), Ok(7));
        assert_eq!(reader.u32("b"), Ok(8));
        assert_eq!(reader.u64("c"), Ok(9));
        assert!(matches!(
            reader.u8("d"),
            Err(BodyError::Truncated { field: "d", .. })
        ));
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn a_count_larger_than_the_body_is_refused() {
        let mut body = Vec::new();
        body.put_u32(u32::MAX);
        body.extend_from_slice(&[0; 20]);
        let mut reader = BodyReader::new(&body);
        assert_eq!(
            reader.count("messages", 12),
            Err(BodyError::CountTooLarge {
                field: "messages",
                count: u32::MAX,
                available: 20
            })
        );
    }
}
