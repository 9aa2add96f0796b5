//! Record payloads that tests can check byte for byte.

/// The payload of record `id`: recognisable bytes, no two records alike.
pub fn payload(id: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|n| (id.wrapping_mul(31).wrapping_add(n as u64 * 7) % 251) as u8 + 1)
        .collect()
}
