//! Issue 19's page, `small-messages.md`, from `small_messages.json` (written
//! by `benches/benches/small_messages.rs`): `rivulet-server` at 100-byte
//! messages in batches of 1000, this commit beside a baseline commit's
//! binary measured in the same run (messages per second and their ratio),
//! the server's CPU time per message and where it goes (which threads, user
//! space or kernel), and the per-message costs the change cut, measured in
//! process.
//!
//! The names of groups and rows are defined here, and the bench writes them
//! through these functions, so the two cannot disagree.

use std::fmt::Write;

use crate::report::{duration, render_per_file};
use crate::results::{Group, ResultsFile};
use crate::tables::{batch_of, group, rate, round_range, row, signed};

/// The suite's name: its results files are `benches/results/<profile>/small_messages.json`.
pub const SUITE: &str = "small_messages";

/// The server settings measured: the name in group ids, the flags both
/// binaries get, and a title.
///
/// Every flag that matters is given, to both binaries, rather than left to
/// each one's defaults: a default that changed between the two commits
/// would be measured as the code's doing. Pinning is one (on by default at
/// 30c8d0a, off since): both run pinned, a shard per core. The third
/// setting is not a default: with no fsync nothing waits for the disk, so
/// the CPU time per message decides the rate, which is what this change is
/// about; with fsync every-batch each producer waits for a write and a
/// sync per batch, and the disk sets most of the pace.
pub const SETTINGS: [Setting; 3] = [
    Setting {
        name: "direct",
        flags: &[
            "--direct-io",
            "true",
            "--fsync",
            "every-batch",
            "--pin",
            "true",
        ],
        title: "Direct I/O and fsync every-batch (the defaults)",
    },
    Setting {
        name: "page-cache",
        flags: &[
            "--direct-io",
            "false",
            "--fsync",
            "every-batch",
            "--pin",
            "true",
        ],
        title: "Page cache (--direct-io false), fsync every-batch",
    },
    Setting {
        name: "no-fsync",
        flags: &["--direct-io", "true", "--fsync", "never", "--pin", "true"],
        title: "Direct I/O, fsync never (nothing waits for the disk: the CPU sets the pace)",
    },
];

/// One server setting of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The suffix of its groups' names.
    pub name: &'static str,
    /// The flags both binaries are started with.
    pub flags: &'static [&'static str],
    /// What the page calls it.
    pub title: &'static str,
}

/// The two binaries: the baseline commit's and this commit's.
pub const SIDES: [&str; 2] = ["baseline", "current"];

/// The phases whose server CPU time is split by thread.
pub const PHASES: [&str; 2] = ["produce", "poll"];

/// The parts a phase's server CPU time is split into, and what each is.
pub const PARTS: [(&str, &str); 4] = [
    (
        "shard-user",
        "shard threads, user space (the engine's own code)",
    ),
    (
        "shard-system",
        "shard threads, kernel (sockets, io_uring submissions, waking and sleeping)",
    ),
    (
        "io-workers",
        "io_uring's worker threads (Direct I/O writes and fsync the kernel hands off)",
    ),
    (
        "other",
        "the other threads (and workers that ended during the run)",
    ),
];

/// The messages group of a setting: rates of the two binaries' median rounds.
pub fn messages_group(setting: &str) -> String {
    format!("messages-{setting}")
}

/// The server CPU group of a setting.
pub fn cpu_group(setting: &str) -> String {
    format!("server-cpu-{setting}")
}

/// The rounds group of a setting: every round of both binaries.
pub fn rounds_group(setting: &str) -> String {
    format!("rounds-{setting}")
}

/// The in-process cost group (criterion, per batch).
pub const COST: &str = "cost";

/// The group that names the baseline commit (no rows: its description).
pub const BASELINE: &str = "baseline";

/// The baseline group's description.
pub fn baseline_description(commit: &str) -> String {
    format!(
        "rivulet-server built from commit {commit} (scripts/build-baseline), run beside this \
         commit's with the same flags and workload, rounds interleaved"
    )
}

/// The commit in a [`baseline_description`].
fn baseline_commit(description: &str) -> Option<&str> {
    description
        .split("commit ")
        .nth(1)?
        .split_whitespace()
        .next()
}

/// Messages per second rows of a side (`{side}-{what}`): both at once
/// (`producer`, `consumer`), producers alone, consumers alone.
const RATES: [(&str, &str); 4] = [
    (
        "producer",
        "messages/s produced, 2 producers and 2 consumers at once",
    ),
    ("consumer", "messages/s read, in the same runs"),
    ("produce-only", "messages/s produced, producers alone"),
    (
        "poll-only",
        "messages/s read back, consumers alone (polls of 1000)",
    ),
];

/// CPU rows of a side (`{side}-{what}`).
const CPU: [(&str, &str); 4] = [
    (
        "mixed",
        "server CPU per message, produced and read (both at once)",
    ),
    (
        "client",
        "the load generator's CPU per message, in the same runs, on the same cores",
    ),
    (
        "produce",
        "server CPU per message produced (producers alone)",
    ),
    ("poll", "server CPU per message read back (consumers alone)"),
];

/// The cost rows, per message, and what each is.
const COSTS: [(&str, &str); 6] = [
    (
        "crc-crate",
        "a record's checksum (128 bytes) with the `crc32c` crate, as the baseline computes it",
    ),
    (
        "crc-engine",
        "the same checksum with the engine's own loop (this commit)",
    ),
    (
        "count",
        "count the records (the shard that reads a produce, before handing it on)",
    ),
    ("walk", "walk the records (the partition, before stamping)"),
    (
        "walk-stamp",
        "walk and stamp them: offset, timestamp, checksum (this commit)",
    ),
    ("copy", "for scale: copy the message's 132 bytes once"),
];

/// The page: a section per profile that has measured the suite, or a note
/// saying nobody has yet.
pub fn render(files: &[ResultsFile]) -> String {
    render_per_file(SUITE, files, render_file)
}

fn render_file(out: &mut String, file: &ResultsFile) {
    let baseline = group(file, BASELINE)
        .and_then(|group| baseline_commit(&group.iteration))
        .unwrap_or("?");
    let _ = writeln!(out, "#### Measured on profile `{}`\n", file.machine.profile);
    let _ = writeln!(
        out,
        "{} · commit `{}` against baseline `{baseline}` · {} · {}-byte payloads, workload \
         `{}`'s messages in the batches and actors each table states\n",
        file.machine.summary(),
        file.commit,
        file.date,
        file.workload.message_size,
        file.workload.name,
    );
    for setting in SETTINGS {
        render_setting(out, file, setting, baseline);
    }
    render_costs(out, file);
}

fn render_setting(out: &mut String, file: &ResultsFile, setting: Setting, baseline: &str) {
    let messages = group(file, &messages_group(setting.name));
    let cpu = group(file, &cpu_group(setting.name));
    let Some(messages_group) = messages else {
        return;
    };
    let _ = writeln!(
        out,
        "**{}**. One row's unit: {}.\n",
        setting.title, messages_group.iteration
    );
    let _ = writeln!(
        out,
        "| | baseline `{baseline}` | this commit `{}` | this / baseline |\n|---|---:|---:|---:|",
        file.commit
    );
    let rounds = group(file, &rounds_group(setting.name));
    for (what, label) in RATES {
        let (Some(old), Some(new)) = (
            row(messages, &format!("baseline-{what}")),
            row(messages, &format!("current-{what}")),
        ) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.0} | **×{:.2}**{} |",
            rate(old),
            rate(new),
            rate(new) / rate(old),
            round_range(rounds, "baseline", "current", what),
        );
    }
    if let (Some(old), Some(new)) = (
        row(messages, "baseline-producer"),
        row(messages, "current-producer"),
    ) && let (Some(old_p), Some(new_p)) = (old.latency, new.latency)
    {
        let _ = writeln!(
            out,
            "| producer p99, send to answer of a batch, both at once | {} | {} | ×{:.2} |",
            duration(old_p.p99 as f64),
            duration(new_p.p99 as f64),
            new_p.p99 as f64 / old_p.p99.max(1) as f64
        );
    }
    for (what, label) in CPU {
        let (Some(old), Some(new)) = (
            row(cpu, &format!("baseline-{what}")),
            row(cpu, &format!("current-{what}")),
        ) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | ×{:.2} |",
            duration(old.ns_per_iter),
            duration(new.ns_per_iter),
            new.ns_per_iter / old.ns_per_iter
        );
    }
    out.push('\n');
    render_split(out, cpu, baseline);
}

/// Where the server's CPU time per message goes, by thread, each phase.
fn render_split(out: &mut String, cpu: Option<&Group>, baseline: &str) {
    let mut lines = Vec::new();
    for phase in PHASES {
        let verb = if phase == "produce" {
            "produced"
        } else {
            "read back"
        };
        for (part, label) in PARTS {
            let (Some(old), Some(new)) = (
                row(cpu, &format!("baseline-{phase}-{part}")),
                row(cpu, &format!("current-{phase}-{part}")),
            ) else {
                continue;
            };
            // A part neither binary spent anything in (no io_uring worker
            // while reading back, say) is not a line.
            if old.ns_per_iter < 0.5 && new.ns_per_iter < 0.5 {
                continue;
            }
            lines.push(format!(
                "| {verb}: {label} | {} | {} | {} |",
                duration(old.ns_per_iter),
                duration(new.ns_per_iter),
                signed(new.ns_per_iter - old.ns_per_iter)
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Where the server's CPU time per message goes (from the kernel's count of each \
         thread's time, `/proc/<pid>/task/*/stat`; producers alone, then consumers alone):\n"
    );
    let _ = writeln!(
        out,
        "| per message | baseline `{baseline}` | this commit | difference |\n|---|---:|---:|---:|"
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn render_costs(out: &mut String, file: &ResultsFile) {
    let cost = group(file, COST);
    let Some(cost_group) = cost else {
        return;
    };
    let per_batch = batch_of(&cost_group.iteration) as f64;
    let _ = writeln!(
        out,
        "**Per message, in process** (criterion, this commit's code; one iteration is {}):\n",
        cost_group.iteration
    );
    let _ = writeln!(out, "| per message | CPU time |\n|---|---:|");
    for (id, label) in COSTS {
        if let Some(row) = row(cost, id) {
            let _ = writeln!(
                out,
                "| {label} | {} |",
                duration(row.ns_per_iter / per_batch)
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Row;

    fn row(id: &str, ns: f64, p99: Option<u64>) -> Row {
        crate::results::test_row(id, "fsync every-batch", 100, ns, p99)
    }

    fn group(name: &str, iteration: &str, rows: Vec<Row>) -> Group {
        crate::results::test_group(name, iteration, rows)
    }

    #[test]
    fn the_page_sets_both_binaries_side_by_side_with_their_ratio() {
        let messages = group(
            &messages_group("direct"),
            "one message of 100 bytes",
            vec![
                row("baseline-producer", 1000.0, Some(4_000_000)),
                row("current-producer", 800.0, Some(2_000_000)),
                row("baseline-consumer", 1000.0, None),
                row("current-consumer", 500.0, None),
            ],
        );
        let rounds = group(
            &rounds_group("direct"),
            "rounds",
            vec![
                row("baseline-producer-0", 1000.0, None),
                row("current-producer-0", 800.0, None),
                row("baseline-producer-1", 1000.0, None),
                row("current-producer-1", 500.0, None),
            ],
        );
        let cpu = group(
            &cpu_group("direct"),
            "server CPU",
            vec![
                row("baseline-produce", 400.0, None),
                row("current-produce", 300.0, None),
                row("baseline-produce-io-workers", 100.0, None),
                row("current-produce-io-workers", 120.0, None),
                row("baseline-poll-io-workers", 0.0, None),
                row("current-poll-io-workers", 0.0, None),
            ],
        );
        let baseline = group(BASELINE, &baseline_description("30c8d0adda98"), vec![]);
        let cost = group(
            COST,
            "one batch of 1000 records of 100-byte payloads",
            vec![
                row("crc-crate", 18_000.0, None),
                row("crc-engine", 9_000.0, None),
            ],
        );
        let file = crate::results::test_file(SUITE, vec![baseline, messages, rounds, cpu, cost]);
        let text = render(&[file]);
        assert!(
            text.contains("commit `c` against baseline `30c8d0adda98`"),
            "{text}"
        );
        assert!(
            text.contains("**Direct I/O and fsync every-batch (the defaults)**. One row's unit:"),
            "{text}"
        );
        assert!(
            text.contains(
                "| messages/s produced, 2 producers and 2 consumers at once | 1000000 | 1250000 | \
                 **×1.25** (rounds ×1.25 – ×2.00) |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| messages/s read, in the same runs | 1000000 | 2000000 | **×2.00** |"),
            "{text}"
        );
        assert!(text.contains("| 4.00 ms | 2.00 ms | ×0.50 |"), "{text}");
        assert!(
            text.contains(
                "| server CPU per message produced (producers alone) | 400 ns | 300 ns | ×0.75 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| produced: io_uring's worker threads (Direct I/O writes and fsync the kernel hands off) | 100 ns | 120 ns | +20 ns |"),
            "{text}"
        );
        assert!(
            text.contains("| a record's checksum (128 bytes) with the `crc32c` crate, as the baseline computes it | 18 ns |"),
            "{text}"
        );
        assert!(
            !text.contains("Page cache") && !text.contains("fsync never"),
            "a setting not measured is left out"
        );
        assert!(
            !text.contains("producers alone |"),
            "a row not measured is left out"
        );
        assert!(
            !text.contains("read back: io_uring"),
            "a part that is 0 on both sides is left out"
        );
    }

    #[test]
    fn no_results_says_so_instead_of_a_number() {
        let text = render(&[]);
        assert!(text.contains("Not measured on any profile yet"));
        assert!(text.contains("scripts/bench small_messages"));
    }

    #[test]
    fn the_baseline_commit_reads_back_from_its_description() {
        assert_eq!(
            baseline_commit(&baseline_description("30c8d0adda98")),
            Some("30c8d0adda98")
        );
        assert_eq!(baseline_commit("no such thing"), None);
    }
}
