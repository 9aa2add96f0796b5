//! Latency percentiles from an HdrHistogram, as results files store them.
//!
//! One histogram per actor, merged with `Histogram::add` before reading
//! percentiles: a percentile of a merged histogram is exact (to its precision),
//! while an average of per-actor percentiles is not a percentile of anything.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram of nanoseconds from 1 ns to 100 s, at 3 significant figures
/// (a reading of 1234567 ns is kept as 1234000 to 1235000).
#[allow(clippy::expect_used)] // constant, valid bounds: no input can make this fail
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid constant bounds")
}

/// Nanoseconds in the unit that keeps three significant figures readable
/// (`bench`'s report pages use this one too).
pub fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The percentiles the book reports, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// The largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Reads the percentiles of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = histogram();
        for ns in 1..=1000 {
            h.record(ns * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        // 3 significant figures: equivalent values within 0.1%.
        assert!(h.equivalent(p.p50, 500_000), "{}", p.p50);
        assert!(h.equivalent(p.p99, 990_000), "{}", p.p99);
        assert!(h.equivalent(p.max, 1_000_000), "{}", p.max);
    }
}
