//! `ln` and `exp` from additions, multiplications and divisions only.
//!
//! `f64::ln` and `f64::exp` call the platform's libm, and libms differ in the
//! last bit (glibc, musl and macOS each round their own way). A message size
//! is `round(median * exp(sigma * z))`, so one last-bit difference can move a
//! size that falls near a half to the next integer, and the "same" workload
//! would differ between two machines. IEEE 754 makes `+ - * /` and `sqrt`
//! correctly rounded everywhere, and Rust never fuses a multiply and an add
//! behind our back, so these two functions give the same bits on every
//! machine. They are accurate to a few units in the last place, which is all a
//! size draw needs; they are not a replacement for libm.

use std::f64::consts::{LN_2, SQRT_2};

/// ln(2) split in two (fdlibm's constants, by their bits): `LN2_HI` has its
/// low 32 bits zero, so `k * LN2_HI` is exact for every `k` used here and the
/// reduction `x - k ln 2` loses no bits.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// Natural logarithm of `x`; `-inf` for 0 and NaN for negative or NaN input.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    if x < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first.
        return ln(x * (1u64 << 54) as f64) - 54.0 * LN_2;
    }
    // x = m * 2^e with m in [1, 2), then m in (sqrt(2)/2, sqrt(2)].
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), with |s| <= 0.1716:
    // each term is 34 times smaller than the one before, so 14 terms reach
    // far below the last bit.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..14 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    2.0 * sum + e as f64 * LN_2
}

/// `e` to the power `x`; 0 below about -745, infinity above about 709.8.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.79 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // x = k ln 2 + r with |r| <= ln(2)/2, then e^x = 2^k e^r.
    let k = (x / LN_2).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r by Horner's rule; |r| <= 0.347, so the 20th term
    // is below 1e-27.
    let mut p = 1.0;
    for n in (1..=20).rev() {
        p = 1.0 + p * r / f64::from(n);
    }
    // 2^k in two halves, so neither factor leaves the normal range even
    // where the result is subnormal.
    let k = k as i64;
    let half = k / 2;
    p * pow2(half) * pow2(k - half)
}

/// 2^k for k in the normal exponent range.
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn ln_agrees_with_libm_to_a_few_ulps() {
        let mut x = 1e-300;
        while x < 1e300 {
            assert!(close(ln(x), x.ln()), "ln({x}) = {} vs {}", ln(x), x.ln());
            x *= 1.37;
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(close(ln(5e-324), (5e-324f64).ln()));
    }

    #[test]
    fn exp_agrees_with_libm_to_a_few_ulps() {
        let mut x = -700.0;
        while x < 700.0 {
            assert!(
                close(exp(x), x.exp()),
                "exp({x}) = {} vs {}",
                exp(x),
                x.exp()
            );
            x += 0.731;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
    }
}
