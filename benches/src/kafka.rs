//! The Kafka listener's page, `kafka.md`, from `kafka.json` (written by
//! `benches/benches/kafka.rs`): the native and the Kafka path of one
//! `rivulet-server` side by side, throughput and p99, the ratio of the two
//! measured in the same run, and where the difference goes (CPU time per
//! message of what only the Kafka path does).

use std::fmt::Write;

use crate::latency::Percentiles;
use crate::report::{duration, profile_heading, render_per_file};
use crate::results::{Group, ResultsFile, Row};
use crate::tables::{batch_of, group, rate, round_range, row, signed};

/// The suite's name: its results files are `benches/results/<profile>/kafka.json`.
pub const SUITE: &str = "kafka";

/// The promises both paths were measured at, in page order: the suffix of
/// their groups (`paths-<name>`, `rounds-<name>`) and a title.
const PAIRINGS: [(&str, &str); 2] = [
    (
        "appended",
        "Both answered once appended (fsync every-batch; Kafka acks=1)",
    ),
    (
        "synced",
        "Both answered once synced (fsync always; Kafka acks=all)",
    ),
];
/// The group of CPU costs per batch.
const COST: &str = "cost";

/// What a line of the cost table shows.
enum Cost {
    /// One row's time.
    Row(&'static str),
    /// One row's time less another's (a step measured with the one before).
    Less(&'static str, &'static str),
}

/// The lines of the "where the difference goes" table.
const COSTS: [(Cost, &str); 5] = [
    (
        Cost::Row("kafka-decode-request"),
        "(a) decode the produce request (header and body; its record batch still bytes)",
    ),
    (
        Cost::Row("kafka-decode-batch"),
        "(a) decode its record batch (checksum, every record's varints)",
    ),
    (
        Cost::Less("kafka-translate", "kafka-decode-batch"),
        "(b) translate the records into Rivulet records (the listener's translation, less the \
         batch decode above)",
    ),
    (
        Cost::Row("kafka-fetch-batch"),
        "(c) build a fetch response's batch from stored records",
    ),
    (
        Cost::Row("kafka-fetch-frame"),
        "(c) encode the fetch response around it (one more copy of the batch)",
    ),
];

/// The rows whose sum is the Kafka path's extra work per message.
const EXTRA: [&str; 4] = [
    "kafka-decode-request",
    "kafka-translate",
    "kafka-fetch-batch",
    "kafka-fetch-frame",
];

/// The load generator's work per path: a label, the native row, the Kafka row.
const CLIENT: [(&str, &str, &str); 2] = [
    (
        "produce: build and encode the request",
        "client-native-produce",
        "client-kafka-produce",
    ),
    (
        "poll: decode the answer into messages (checksums checked)",
        "client-native-poll",
        "client-kafka-poll",
    ),
];

/// Rows for scale, after the sum.
const SCALE: [(&str, &str); 2] = [
    (
        "native-walk-stamp",
        "for scale: walk and stamp the records before the write (both paths)",
    ),
    ("raw-copy", "for scale: copy the message's bytes once"),
];

/// The page: a section per profile that has measured the suite, or a note
/// saying nobody has yet.
pub fn render(files: &[ResultsFile]) -> String {
    render_per_file(SUITE, files, render_file)
}

/// One percentile of a row's latency, formatted; empty without latency.
fn latency(row: &Row, pick: fn(&Percentiles) -> u64) -> String {
    row.latency
        .map_or_else(String::new, |p| duration(pick(&p) as f64))
}

/// `kafka`'s percentile over `native`'s, as "×1.23"; empty without both.
fn latency_ratio(kafka: &Row, native: &Row, pick: fn(&Percentiles) -> u64) -> String {
    match (kafka.latency, native.latency) {
        (Some(k), Some(n)) if pick(&n) > 0 => {
            format!("×{:.2}", pick(&k) as f64 / pick(&n) as f64)
        }
        _ => String::new(),
    }
}

/// Both paths' producer and consumer rows of a pairing, if measured.
struct Sides<'g> {
    native: (&'g Row, &'g Row),
    kafka: (&'g Row, &'g Row),
}

fn sides<'g>(paths: Option<&'g Group>) -> Option<Sides<'g>> {
    let side = |path: &str| {
        Some((
            row(paths, &format!("{path}-producer"))?,
            row(paths, &format!("{path}-consumer"))?,
        ))
    };
    Some(Sides {
        native: side("native")?,
        kafka: side("kafka")?,
    })
}

fn render_file(out: &mut String, file: &ResultsFile) {
    profile_heading(out, file);
    for (name, title) in PAIRINGS {
        render_pairing(out, file, name, title);
    }
    render_costs(out, file);
}

fn render_pairing(out: &mut String, file: &ResultsFile, name: &str, title: &str) {
    let paths = group(file, &format!("paths-{name}"));
    let Some(sides) = sides(paths) else {
        return;
    };
    if let Some(paths) = paths {
        let _ = writeln!(out, "**{title}**: one message is {}.\n", paths.iteration);
    }
    let _ = writeln!(
        out,
        "| path | produce msg/s | produce MB/s | produce p50 | produce p99 | consume msg/s | \
         poll p99 |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (label, (producer, consumer)) in [("native", sides.native), ("Kafka", sides.kafka)] {
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.1} | {} | {} | {:.0} | {} |",
            rate(producer),
            producer.mb_per_s(),
            latency(producer, |p| p.p50),
            latency(producer, |p| p.p99),
            rate(consumer),
            latency(consumer, |p| p.p99),
        );
    }
    let ((np, nc), (kp, kc)) = (sides.native, sides.kafka);
    let rounds = group(file, &format!("rounds-{name}"));
    let _ = writeln!(
        out,
        "| **Kafka / native** | ×{:.2}{} | ×{:.2} | {} | {} | ×{:.2}{} | {} |",
        rate(kp) / rate(np),
        round_range(rounds, "native", "kafka", "producer"),
        kp.mb_per_s() / np.mb_per_s(),
        latency_ratio(kp, np, |p| p.p50),
        latency_ratio(kp, np, |p| p.p99),
        rate(kc) / rate(nc),
        round_range(rounds, "native", "kafka", "consumer"),
        latency_ratio(kc, nc, |p| p.p99),
    );
    let _ = writeln!(
        out,
        "\nWhat an answer promised: {}; {}.\n",
        np.durability, kp.durability
    );
}

fn render_costs(out: &mut String, file: &ResultsFile) {
    let cost = group(file, COST);
    let Some(cost_group) = cost else {
        return;
    };
    let per_batch = batch_of(&cost_group.iteration) as f64;
    let per_message = |id: &str| row(cost, id).map(|row| row.ns_per_iter / per_batch);
    let _ = writeln!(
        out,
        "**Where the difference goes**: CPU time per message of the work only the Kafka path \
         does, each step measured alone with the listener's own functions (criterion; one \
         iteration is {}).\n",
        cost_group.iteration
    );
    let _ = writeln!(out, "| per message | CPU time |\n|---|---:|");
    for (cost, label) in COSTS {
        let ns = match cost {
            Cost::Row(id) => per_message(id),
            Cost::Less(id, less) => per_message(id).zip(per_message(less)).map(|(a, b)| a - b),
        };
        if let Some(ns) = ns {
            let _ = writeln!(out, "| {label} | {} |", signed_if_negative(ns));
        }
    }
    let extra: Option<f64> = EXTRA.iter().map(|id| per_message(id)).sum();
    if let Some(extra) = extra {
        let _ = writeln!(
            out,
            "| **the Kafka path's extra CPU per message, produced and fetched** | **{}** |",
            duration(extra)
        );
    }
    for (id, label) in SCALE {
        if let Some(ns) = per_message(id) {
            let _ = writeln!(out, "| {label} | {} |", duration(ns));
        }
    }
    out.push('\n');

    // The load generator runs on the same cores as the server: its own
    // work for each path is in the measured difference too.
    let client: Vec<(&str, f64, f64)> = CLIENT
        .iter()
        .filter_map(|(label, native, kafka)| {
            Some((*label, per_message(native)?, per_message(kafka)?))
        })
        .collect();
    if !client.is_empty() {
        let _ = writeln!(
            out,
            "The load generator's side of each path, CPU time per message (it shares the \
             cores with the server, so this is in the measured difference too):\n"
        );
        let _ = writeln!(
            out,
            "| per message | native | Kafka | Kafka less native |\n|---|---:|---:|---:|"
        );
        for (label, native, kafka) in &client {
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} |",
                duration(*native),
                duration(*kafka),
                signed(kafka - native)
            );
        }
        if client.len() == CLIENT.len() {
            let native: f64 = client.iter().map(|c| c.1).sum();
            let kafka: f64 = client.iter().map(|c| c.2).sum();
            let _ = writeln!(
                out,
                "| **both** | **{}** | **{}** | **{}** |",
                duration(native),
                duration(kafka),
                signed(kafka - native)
            );
        }
        out.push('\n');
    }

    // Wall time per message over every producer (or consumer) at once, not
    // CPU time: what the cores made of the extra work above.
    let measured: Vec<(&str, &Row, &Row, &Row, &Row)> = PAIRINGS
        .iter()
        .filter_map(|(name, _)| {
            let sides = sides(group(file, &format!("paths-{name}")))?;
            let ((np, nc), (kp, kc)) = (sides.native, sides.kafka);
            Some((*name, np, nc, kp, kc))
        })
        .collect();
    if !measured.is_empty() {
        let _ = writeln!(
            out,
            "Measured: Kafka's time per message less native's, from the tables above (wall \
             time, every producer or consumer at once):\n"
        );
        let _ = writeln!(
            out,
            "| answered once | producers | consumers |\n|---|---:|---:|"
        );
        for (name, np, nc, kp, kc) in measured {
            let _ = writeln!(
                out,
                "| {name} | {} | {} |",
                signed(kp.ns_per_iter - np.ns_per_iter),
                signed(kc.ns_per_iter - nc.ns_per_iter)
            );
        }
        out.push('\n');
    }
}

/// A duration, signed only when negative (a difference of two estimates
/// within their noise).
fn signed_if_negative(ns: f64) -> String {
    if ns < 0.0 { signed(ns) } else { duration(ns) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ns: f64, p99: Option<u64>) -> Row {
        crate::results::test_row(id, &format!("{id} promise"), 1000, ns, p99)
    }

    fn file(groups: Vec<Group>) -> ResultsFile {
        crate::results::test_file(SUITE, groups)
    }

    fn group(name: &str, iteration: &str, rows: Vec<Row>) -> Group {
        crate::results::test_group(name, iteration, rows)
    }

    #[test]
    fn the_page_sets_the_paths_side_by_side_with_their_ratio() {
        let paths = group(
            "paths-appended",
            "one message",
            vec![
                row("native-producer", 1000.0, Some(2_000_000)),
                row("native-consumer", 1000.0, Some(1_000_000)),
                row("kafka-producer", 1250.0, Some(3_000_000)),
                row("kafka-consumer", 2000.0, Some(1_500_000)),
            ],
        );
        let rounds = group(
            "rounds-appended",
            "rounds",
            vec![
                row("native-producer-0", 1000.0, None),
                row("kafka-producer-0", 1250.0, None),
                row("native-producer-1", 1000.0, None),
                row("kafka-producer-1", 1100.0, None),
            ],
        );
        let cost = group(
            COST,
            "one batch of 100 messages of 1000 bytes",
            vec![
                row("kafka-decode-request", 1_000.0, None),
                row("kafka-decode-batch", 10_000.0, None),
                row("kafka-translate", 30_000.0, None),
                row("kafka-fetch-batch", 30_000.0, None),
                row("kafka-fetch-frame", 4_000.0, None),
                row("raw-copy", 5_000.0, None),
                row("client-native-produce", 10_000.0, None),
                row("client-kafka-produce", 25_000.0, None),
                row("client-native-poll", 20_000.0, None),
                row("client-kafka-poll", 15_000.0, None),
            ],
        );
        let text = render(&[file(vec![paths, rounds, cost])]);
        assert!(
            text.contains("**Both answered once appended (fsync every-batch; Kafka acks=1)**"),
            "{text}"
        );
        assert!(
            !text.contains("once synced (fsync"),
            "a pairing not measured is left out"
        );
        assert!(
            text.contains("| native | 1000000 | 1000.0 | 1.00 ms | 2.00 ms | 1000000 | 1.00 ms |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| **Kafka / native** | ×0.80 (rounds ×0.80 – ×0.91) | ×0.80 | ×1.50 | ×1.50 | \
                 ×0.50 | ×1.50 |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "What an answer promised: native-producer promise; kafka-producer promise."
            )
        );
        // Per message: a batch of 100; (b) is the translation less the batch decode.
        assert!(
            text.contains(
                "| (a) decode its record batch (checksum, every record's varints) | 100 ns |"
            ),
            "{text}"
        );
        assert!(
            text.contains("the batch decode above) | 200 ns |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| **the Kafka path's extra CPU per message, produced and fetched** | **650 ns** |"
            ),
            "{text}"
        );
        assert!(text.contains("| for scale: copy the message's bytes once | 50 ns |"));
        assert!(
            text.contains("| produce: build and encode the request | 100 ns | 250 ns | +150 ns |"),
            "{text}"
        );
        assert!(
            text.contains("| **both** | **300 ns** | **400 ns** | **+100 ns** |"),
            "{text}"
        );
        assert!(text.contains("| appended | +250 ns | +1.00 µs |"), "{text}");
        assert!(
            !text.contains("walk and stamp"),
            "a row not measured is left out"
        );
    }

    #[test]
    fn no_results_says_so_instead_of_a_number() {
        let text = render(&[]);
        assert!(text.contains("Not measured on any profile yet"));
        assert!(text.contains("scripts/bench kafka"));
    }
}
