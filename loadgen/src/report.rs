//! A run's figures, as a table for people and a JSON file for the book.
//!
//! The JSON file is the result: the config, the target and what its
//! acknowledgements promise, the machine, the commit, the date and every
//! figure, so a number read from it never needs the run's command line.
//! Units are in the field names: `_ns` nanoseconds, `_s` seconds, `mb_per_s`
//! in 10^6 bytes per second (payload bytes, as sent).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{LoadConfig, Stop};
use crate::histogram::{Percentiles, labelled};
use crate::latency::duration;
use crate::machine::{self, Machine};

/// Throughput and latency of one side (producers or consumers), over the
/// post-warmup window: from the end of the warmup to that side's last
/// measured operation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Side {
    /// Messages in measured operations.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The window's length, seconds.
    pub seconds: f64,
    /// Messages per second over the window.
    pub messages_per_s: f64,
    /// Payload MB (10^6 bytes) per second over the window.
    pub mb_per_s: f64,
    /// Latency per operation (produce: send to ack per batch; consume: poll
    /// round trip per poll that returned messages).
    pub latency: Percentiles,
}

impl Side {
    /// The figures for `messages` of `message_size` bytes each over `window`.
    pub fn new(messages: u64, message_size: u64, window: Duration, latency: Percentiles) -> Side {
        Side::with_bytes(messages, messages * message_size, window, latency)
    }

    /// The figures for `messages` carrying `bytes` payload bytes in all over
    /// `window`: what a run with a size distribution measures.
    ///
    /// Every float is the double nearest a short decimal (the window to the
    /// nanosecond, rates to 0.001), so a results file reads back bit for bit:
    /// serde_json without its `float_roundtrip` feature parses such decimals
    /// exactly, but may miss the last bit of a 17-digit one.
    pub fn with_bytes(messages: u64, bytes: u64, window: Duration, latency: Percentiles) -> Side {
        let nanos = window.as_nanos() as f64;
        let per_s = |count: f64| {
            if nanos > 0.0 {
                (count * 1e9 / nanos * 1e3).round() / 1e3
            } else {
                0.0
            }
        };
        Side {
            messages,
            bytes,
            seconds: nanos / 1e9,
            messages_per_s: per_s(messages as f64),
            mb_per_s: per_s(bytes as f64 / 1e6),
            latency,
        }
    }
}

/// Every figure of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// Producers: send to acknowledgement, per batch. Empty when consumers
    /// run alone (the fill is not measured).
    pub producer: Side,
    /// Consumers: poll round trip, per poll that returned messages. Its
    /// throughput counts every message returned by a poll started after the
    /// warmup, whenever it was sent: it is the rate consumers read at, which
    /// includes catching up with a backlog.
    pub consumer: Side,
    /// Payload timestamp to the end of the poll that read it, per message.
    /// Empty (count 0) when consumers run alone: their messages were all
    /// sent before they started, so send to read says nothing about them.
    pub end_to_end: Percentiles,
    /// Open loop only: how late the generator sent each batch after its
    /// intended time. Near the producer latency, it means the generator was
    /// the bottleneck.
    pub send_lag: Option<Percentiles>,
    /// Messages acknowledged, warmup included (when consumers run alone:
    /// the messages the topic was filled with).
    pub produced: u64,
    /// Messages read back, warmup included (equal to `produced` when there
    /// are consumers: the run fails otherwise).
    pub consumed: u64,
    /// Messages acknowledged per partition.
    pub produced_per_partition: Vec<u64>,
    /// Messages read back per partition.
    pub consumed_per_partition: Vec<u64>,
    /// Polls that returned nothing (consumers caught up with producers).
    pub empty_polls: u64,
}

/// One results file of the load generator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadResults {
    /// Always `loadgen`, telling these files apart from criterion suites.
    pub suite: String,
    /// The target driven (`memory`, `stage3`...).
    pub target: String,
    /// What the target's acknowledgement promised during the run.
    pub durability: String,
    /// The workload file the config came from, if any (`datasets/<name>.toml`).
    pub workload: Option<String>,
    /// When it was measured (UTC).
    pub date: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
    /// The run's config.
    pub config: LoadConfig,
    /// What it measured.
    pub figures: Figures,
}

impl LoadResults {
    /// The results of a run just made: dated now, at the current commit.
    pub fn new(
        target: &str,
        durability: &str,
        machine: Machine,
        config: LoadConfig,
        figures: Figures,
    ) -> LoadResults {
        LoadResults {
            suite: "loadgen".to_string(),
            target: target.to_string(),
            durability: durability.to_string(),
            workload: None,
            date: machine::utc_now(),
            commit: machine::commit(),
            machine,
            config,
            figures,
        }
    }

    /// Where results of `target` on `profile` go by default:
    /// `benches/results/<profile>/loadgen-<target>.json`.
    pub fn default_path(profile: &str, target: &str) -> PathBuf {
        crate::results_dir()
            .join(profile)
            .join(format!("loadgen-{target}.json"))
    }

    /// Writes it, pretty-printed so a diff of two runs is readable, creating
    /// the folder if needed.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| path.display().to_string())
    }

    /// Reads a results file.
    pub fn read(path: &Path) -> anyhow::Result<LoadResults> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The summary table, plain text with aligned columns:
    ///
    /// ```text
    /// target memory (none: in-process memory, ...) on <machine>
    /// 2 producers, 2 consumers, ...
    ///               msg/s      MB/s       p50       p90 ...
    /// producer    1234567    1264.2   1.02 µs   2.31 µs ...
    /// ```
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "target {} (acknowledged: {}) · commit {} · {}",
            self.target, self.durability, self.commit, self.date
        );
        let _ = writeln!(out, "{}", self.machine.summary());
        let _ = writeln!(out, "{}", self.config.summary());
        out.push('\n');
        let labels = labelled(&self.figures.end_to_end).map(|(label, _)| label);
        let _ = write!(out, "{:<12}{:>12}{:>10}", "", "msg/s", "MB/s");
        for label in labels {
            let _ = write!(out, "{label:>11}");
        }
        let _ = writeln!(out, "{:>11}", "samples");
        let figures = &self.figures;
        let rows = [
            (
                "producer",
                Some(&figures.producer),
                &figures.producer.latency,
            ),
            (
                "consumer",
                Some(&figures.consumer),
                &figures.consumer.latency,
            ),
            ("end-to-end", None, &figures.end_to_end),
        ];
        for (name, side, latency) in rows {
            let _ = write!(out, "{name:<12}");
            match side {
                Some(side) if side.messages > 0 => {
                    let _ = write!(out, "{:>12.0}{:>10.1}", side.messages_per_s, side.mb_per_s);
                }
                _ => {
                    let _ = write!(out, "{:>12}{:>10}", "-", "-");
                }
            }
            latency_cells(&mut out, latency);
        }
        if let Some(lag) = &figures.send_lag {
            let _ = write!(out, "{:<12}{:>12}{:>10}", "send lag", "", "");
            latency_cells(&mut out, lag);
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "produced {} · consumed {} (warmup included) · {} empty polls",
            figures.produced, figures.consumed, figures.empty_polls
        );
        let _ = writeln!(out, "{}", self.config.roles_reading());
        out
    }
}

/// A progress bar of messages acknowledged, drawn on stderr when `visible`
/// and stderr is a terminal, hidden otherwise (tests, CI, redirected output),
/// so a log never fills with redraws. A bar with a length when the run has a
/// message count (warmup included), a counter with a rate when it is timed.
pub fn progress_bar(config: &LoadConfig, visible: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !visible || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match config.stop {
        Stop::Messages(_) => {
            let total = (0..config.producers)
                .filter_map(|producer| config.producer_quota(producer))
                .sum();
            (
                ProgressBar::new(total),
                "{elapsed_precise} {wide_bar} {human_pos}/{human_len} messages {per_sec}",
            )
        }
        Stop::Duration(_) => (
            ProgressBar::new_spinner(),
            "{elapsed_precise} {spinner} {human_pos} messages {per_sec}",
        ),
    };
    // A bad template is this file's bug, not the user's: fall back to the default.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn latency_cells(out: &mut String, latency: &Percentiles) {
    for (_, ns) in labelled(latency) {
        let cell = if latency.count == 0 {
            "-".to_string()
        } else {
            duration(ns as f64)
        };
        let _ = write!(out, "{cell:>11}");
    }
    let _ = writeln!(out, "{:>11}", latency.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_over_the_window_in_decimal_megabytes() {
        let none = Percentiles::of(&crate::latency::histogram());
        let side = Side::new(2_000, 1_000, Duration::from_millis(500), none);
        assert_eq!(side.bytes, 2_000_000);
        assert_eq!(side.messages_per_s, 4_000.0);
        assert_eq!(side.mb_per_s, 4.0);
        let empty = Side::new(0, 1_000, Duration::ZERO, none);
        assert_eq!(empty.messages_per_s, 0.0);
    }

    #[test]
    fn sides_read_back_from_json_bit_for_bit() {
        let none = Percentiles::of(&crate::latency::histogram());
        // A spread of awkward windows and counts (a fixed LCG, no dependency).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let messages = x >> 40;
            let window = Duration::from_nanos((x >> 8) % 3_600_000_000_000 + 1);
            let side = Side::new(messages, 1 + x % 65_536, window, none);
            let text = serde_json::to_string(&side).unwrap();
            let read: Side = serde_json::from_str(&text).unwrap();
            assert_eq!(read, side, "{text}");
        }
    }
}
