//! A rough compressibility figure, with no codec dependency.
//!
//! Good enough to show that the payload kinds differ as claimed and by how
//! much, not to predict what zstd or lz4 would make of them: it models a
//! greedy LZ77 coder (the family both belong to) with no entropy stage.

/// The size a simple greedy LZ77 coder would write for `bytes`, as a
/// fraction of `bytes.len()`: a little above 1 for incompressible bytes,
/// lower the more the bytes repeat themselves. 1 for an empty slice.
///
/// The model: at each position, look up the last earlier position whose
/// next 4 bytes hashed the same; if they match and are at most 64 KiB back,
/// emit a match (3 bytes: offset and length, lengths up to 258) and skip it,
/// else emit a literal (1 byte). Each token also costs a 1-bit flag.
pub fn lz_ratio(bytes: &[u8]) -> f64 {
    const MIN_MATCH: usize = 4;
    const MAX_MATCH: usize = 258;
    const WINDOW: usize = 1 << 16;
    const HASH_BITS: u32 = 15;
    if bytes.is_empty() {
        return 1.0;
    }
    let hash = |at: usize| {
        let word = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        (word.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
    };
    // Last position + 1 per hash, 0 for none.
    let mut last = vec![0usize; 1 << HASH_BITS];
    let mut bits = 0u64;
    let mut at = 0;
    while at < bytes.len() {
        if at + MIN_MATCH <= bytes.len() {
            let h = hash(at);
            let candidate = last[h];
            last[h] = at + 1;
            if let Some(from) = candidate.checked_sub(1)
                && at - from <= WINDOW
            {
                let len = bytes[at..]
                    .iter()
                    .zip(&bytes[from..])
                    .take(MAX_MATCH)
                    .take_while(|(a, b)| a == b)
                    .count();
                if len >= MIN_MATCH {
                    bits += 3 * 8 + 1;
                    at += len;
                    continue;
                }
            }
        }
        bits += 8 + 1;
        at += 1;
    }
    bits as f64 / 8.0 / bytes.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_compress_and_noise_does_not() {
        assert!(lz_ratio(&[b'a'; 10_000]) < 0.02);
        let mut rng = crate::rng::SplitMix64(1);
        let noise: Vec<u8> = (0..10_000).map(|_| rng.next() as u8).collect();
        assert!(lz_ratio(&noise) > 0.9, "{}", lz_ratio(&noise));
        assert_eq!(lz_ratio(&[]), 1.0);
        assert_eq!(lz_ratio(b"abc"), 9.0 / 8.0);
    }
}
