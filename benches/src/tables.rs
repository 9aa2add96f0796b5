//! Small pieces the suites' own pages share (`kafka.md`, `small-messages.md`):
//! finding a group or a row in a results file, a row's rate, the spread of a
//! ratio over interleaved rounds, and how numbers are written.

use crate::latency::duration;
use crate::results::{Group, ResultsFile, Row};

/// The group of `file` named `name`.
pub(crate) fn group<'f>(file: &'f ResultsFile, name: &str) -> Option<&'f Group> {
    file.groups.iter().find(|group| group.name == name)
}

/// The row of `group` with id `id`.
pub(crate) fn row<'g>(group: Option<&'g Group>, id: &str) -> Option<&'g Row> {
    group?.rows.iter().find(|row| row.id == id)
}

/// Messages per second of a row whose iteration is one message.
pub(crate) fn rate(row: &Row) -> f64 {
    1e9 / row.ns_per_iter
}

/// The range over the rounds of `after`'s rate over `before`'s, each round's
/// two runs paired (rows `<before>-<what>-<round>` and
/// `<after>-<what>-<round>`): " (rounds ×0.81 – ×0.93)", or nothing with
/// fewer than two rounds.
pub(crate) fn round_range(rounds: Option<&Group>, before: &str, after: &str, what: &str) -> String {
    let mut ratios = Vec::new();
    for round in 0.. {
        let (Some(old), Some(new)) = (
            row(rounds, &format!("{before}-{what}-{round}")),
            row(rounds, &format!("{after}-{what}-{round}")),
        ) else {
            break;
        };
        ratios.push(rate(new) / rate(old));
    }
    if ratios.len() < 2 {
        return String::new();
    }
    let low = ratios.iter().copied().fold(f64::MAX, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    format!(" (rounds ×{low:.2} – ×{high:.2})")
}

/// The messages in one iteration of a cost group: the number after "batch
/// of" in its description, 1 if it has none.
pub(crate) fn batch_of(iteration: &str) -> u64 {
    iteration
        .split("batch of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// A duration with its sign: "+1.20 µs", "-300 ns".
pub(crate) fn signed(ns: f64) -> String {
    if ns < 0.0 {
        format!("-{}", duration(-ns))
    } else {
        format!("+{}", duration(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_size_is_read_from_the_description() {
        assert_eq!(
            batch_of("one produce batch of 100 messages of 1024 bytes"),
            100
        );
        assert_eq!(batch_of("one message"), 1);
    }

    #[test]
    fn a_signed_duration_says_its_sign() {
        assert_eq!(signed(-300.0), "-300 ns");
        assert!(signed(1200.0).starts_with('+'));
    }
}
