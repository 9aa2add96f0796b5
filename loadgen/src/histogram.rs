//! Latency histograms: one per actor while the run goes, merged at the end.
//!
//! The histograms and their percentiles are the crate's own
//! ([`crate::latency`]), so load-generator results and criterion suites store
//! latency the same way: **nanoseconds**, **3 significant figures** (every
//! value exact to 0.1%), from 1 ns to 100 s. Nanoseconds, not microseconds,
//! because the in-process target answers in well under a microsecond, and a
//! microsecond histogram would report its p50 as 0 or 1.
//!
//! Each actor owns its histogram, so recording is a plain increment with no
//! lock and no atomic (a shared, locked histogram was rejected: the lock would
//! be measured too). The actors' histograms are then merged with
//! `Histogram::add`, which adds the counts bucket by bucket: the merged
//! percentiles are exactly those of one histogram fed every sample.
//! Averaging the actors' percentiles instead is wrong, and not by a little: an
//! actor that saw one slow stall and an actor that saw none average to a p99
//! that neither saw (`tests/loadgen.rs` shows by how much).

use hdrhistogram::Histogram;

pub use crate::latency::{Percentiles, histogram as new_histogram};

/// Why histograms could not be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramError(String);

impl std::fmt::Display for HistogramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "merging latency histograms: {}", self.0)
    }
}

impl std::error::Error for HistogramError {}

/// Records `ns`, clamped to the histogram's highest value (100 s): the run's
/// operation timeout keeps producer and poll samples far below it, and an
/// end-to-end sample that old is a backlog, reported as "100 s or more".
pub fn record(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(ns);
}

/// The actors' histograms added into one. It fails only if one has other
/// bounds than [`new_histogram`] gives, which no actor does.
pub fn merge<'a>(
    histograms: impl IntoIterator<Item = &'a Histogram<u64>>,
) -> Result<Histogram<u64>, HistogramError> {
    let mut merged = new_histogram();
    for histogram in histograms {
        merged
            .add(histogram)
            .map_err(|error| HistogramError(format!("{error:?}")))?;
    }
    Ok(merged)
}

/// The percentiles in table order, labelled.
pub fn labelled(percentiles: &Percentiles) -> [(&'static str, u64); 6] {
    [
        ("p50", percentiles.p50),
        ("p90", percentiles.p90),
        ("p99", percentiles.p99),
        ("p99.9", percentiles.p999),
        ("p99.99", percentiles.p9999),
        ("max", percentiles.max),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Merging against a known distribution, and why not averaging, is
    // tested in `tests/loadgen.rs`.

    #[test]
    fn an_empty_merge_has_zero_samples() {
        let merged = merge([&new_histogram(), &new_histogram()]).unwrap();
        let percentiles = Percentiles::of(&merged);
        assert_eq!(percentiles.count, 0);
        assert_eq!(percentiles.max, 0);
    }

    #[test]
    fn a_sample_past_the_highest_value_is_clamped_not_lost() {
        let mut histogram = new_histogram();
        record(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 1);
    }
}
