//! What the tables show, in words generated with them: a chapter that
//! compares two rows includes a sentence written from the same results file
//! as the table, so the text can never say "faster" where the table says
//! slower. Also the words the tables themselves need: what a crash may lose
//! under an fsync policy ([`crash_loss`]), and the notes under a table whose
//! columns need reading ([`table_notes`]).

use std::fmt::Write as _;

use crate::report::{duration, not_measured, page_start};
use crate::results::{Group, ResultsFile, Row, RowKind};

/// Two figures closer than this (as a share of the second) are called the same.
pub const SAME_WITHIN: f64 = 0.05;

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// MB/s: more is better.
    Throughput,
    /// The median latency: less is better.
    P50,
    /// The 99th percentile latency: less is better.
    P99,
}

/// One sentence: a row of a group against another row of the same group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What is compared, in words ("one shard against every switch on").
    pub label: &'static str,
    /// The group both rows are in.
    pub group: &'static str,
    /// The row read...
    pub row: &'static str,
    /// ...against this one.
    pub against: &'static str,
    /// On which figure.
    pub metric: Metric,
}

const fn f(
    label: &'static str,
    group: &'static str,
    row: &'static str,
    against: &'static str,
    metric: Metric,
) -> Finding {
    Finding {
        label,
        group,
        row,
        against,
        metric,
    }
}

use Metric::{P50, P99, Throughput};

/// A page of findings: `book/src/generated/<name>`, from one suite.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The generated file's name.
    pub name: &'static str,
    /// The suite whose results files it reads.
    pub suite: &'static str,
    /// The sentences, in order.
    pub findings: &'static [Finding],
}

/// Every page of findings the book includes, in chapter order.
pub const PAGES: &[Page] = &[
    Page {
        name: "stage1-findings.md",
        suite: "stage1",
        findings: &[
            f(
                "opening the files per append against keeping them open",
                "stage1-append",
                "open-per-append",
                "kept-handle",
                Throughput,
            ),
            f(
                "a kept handle (two writes per message) against one raw write per record",
                "stage1-append",
                "kept-handle",
                "raw-write-per-record",
                Throughput,
            ),
            f(
                "sync every append against a raw write + fsync per record",
                "stage1-append",
                "sync-every-append",
                "raw-write-fsync-per-record",
                Throughput,
            ),
            f(
                "raw large writes against one raw write per record",
                "stage1-append",
                "raw-large-writes",
                "raw-write-per-record",
                Throughput,
            ),
            f(
                "poll against the raw read of the same bytes",
                "stage1-poll",
                "poll",
                "raw-read",
                Throughput,
            ),
        ],
    },
    Page {
        name: "stage2-findings.md",
        suite: "stage2",
        findings: &[
            f(
                "`always` at batch size 1 against stage 1's sync per message",
                "stage2-append",
                "always-b1",
                "stage1-sync-every-append",
                Throughput,
            ),
            f(
                "`always` at batch size 1 against the raw write + fdatasync of one message",
                "stage2-append",
                "always-b1",
                "raw-fdatasync-b1",
                Throughput,
            ),
            f(
                "`always` at batch size 1000 against the raw write + fdatasync of 1000",
                "stage2-append",
                "always-b1000",
                "raw-fdatasync-b1000",
                Throughput,
            ),
            f(
                "`always` at batch size 1000 against `always` at batch size 1",
                "stage2-append",
                "always-b1000",
                "always-b1",
                Throughput,
            ),
            f(
                "`every-batch` against `always`, batch size 1",
                "stage2-append",
                "every-batch-b1",
                "always-b1",
                Throughput,
            ),
            f(
                "`every-batch` against `never`, batch size 1",
                "stage2-append",
                "every-batch-b1",
                "never-b1",
                Throughput,
            ),
            f(
                "the median call of `every-batch` against that of `always`, batch size 10",
                "stage2-append",
                "every-batch-b10",
                "always-b10",
                P50,
            ),
            f(
                "the p99 of `every-batch` against that of `always`, batch size 10",
                "stage2-append",
                "every-batch-b10",
                "always-b10",
                P99,
            ),
            f(
                "`always-prealloc` against `always`, batch size 1",
                "stage2-append",
                "always-prealloc-b1",
                "always-b1",
                Throughput,
            ),
            f(
                "`always-prealloc` against `always`, batch size 1000",
                "stage2-append",
                "always-prealloc-b1000",
                "always-b1000",
                Throughput,
            ),
            f(
                "`never` (no sync at all) against the raw write + fdatasync of 1000",
                "stage2-append",
                "never-b1000",
                "raw-fdatasync-b1000",
                Throughput,
            ),
        ],
    },
    Page {
        name: "stage3-findings.md",
        suite: "network",
        findings: &[
            f(
                "the writer with 1 reader against the writer alone",
                "contention",
                "writer-r1",
                "writer-r0",
                Throughput,
            ),
            f(
                "the writer with 4 readers against the writer alone",
                "contention",
                "writer-r4",
                "writer-r0",
                Throughput,
            ),
            f(
                "the writer's p99 with 4 readers against the writer alone",
                "contention",
                "writer-r4",
                "writer-r0",
                P99,
            ),
            f(
                "4 readers together against 1 reader",
                "contention",
                "readers-r4",
                "readers-r1",
                Throughput,
            ),
            f(
                "a poll's median with 4 readers against with 1",
                "contention",
                "readers-r4",
                "readers-r1",
                P50,
            ),
        ],
    },
    Page {
        name: "stage4-findings.md",
        suite: "network",
        findings: &[
            f(
                "stage 4 against stage 3, 1 producer",
                "producers",
                "stage4-p1",
                "stage3-p1",
                Throughput,
            ),
            f(
                "stage 4 against stage 3, 2 producers",
                "producers",
                "stage4-p2",
                "stage3-p2",
                Throughput,
            ),
            f(
                "stage 4 against stage 3, 4 producers",
                "producers",
                "stage4-p4",
                "stage3-p4",
                Throughput,
            ),
            f(
                "stage 4 with 4 producers against stage 4 with 1",
                "producers",
                "stage4-p4",
                "stage4-p1",
                Throughput,
            ),
            f(
                "stage 3 with 4 producers against stage 3 with 1",
                "producers",
                "stage3-p4",
                "stage3-p1",
                Throughput,
            ),
            f(
                "a produce's p99, stage 4 against stage 3, 4 producers",
                "producers",
                "stage4-p4",
                "stage3-p4",
                P99,
            ),
        ],
    },
    Page {
        name: "stage5-findings.md",
        suite: "stage5",
        findings: &[
            f(
                "decoding only: stage 5's views against stage 4's owned records",
                "stage5-decode",
                "stage5-views",
                "stage4-owned",
                Throughput,
            ),
            f(
                "decoding only: stage 4's owned records against a raw copy of the batch",
                "stage5-decode",
                "stage4-owned",
                "raw-copy",
                Throughput,
            ),
            f(
                "decoding only: rkyv, validated, against stage 5's views",
                "stage5-decode",
                "rkyv-validated",
                "stage5-views",
                Throughput,
            ),
            f(
                "decoding only: rkyv, unchecked, against stage 5's views",
                "stage5-decode",
                "rkyv-unchecked",
                "stage5-views",
                Throughput,
            ),
            f(
                "checksums checked: stage 5's views against stage 4's owned records",
                "stage5-verify",
                "stage5-views",
                "stage4-owned",
                Throughput,
            ),
            f(
                "checksums checked: stage 5's views against a raw crc32c per record",
                "stage5-verify",
                "stage5-views",
                "raw-crc32c-per-record",
                Throughput,
            ),
            f(
                "one crc32c over the batch against one per record",
                "stage5-verify",
                "raw-crc32c",
                "raw-crc32c-per-record",
                Throughput,
            ),
            f(
                "produce: stage 5's stamp against stage 4's decode and encode",
                "stage5-produce",
                "stage5-stamp",
                "stage4-produce",
                Throughput,
            ),
            f(
                "produce: stage 5's stamp against a raw crc32c per record",
                "stage5-produce",
                "stage5-stamp",
                "raw-crc32c-per-record",
                Throughput,
            ),
        ],
    },
    Page {
        name: "stage6-io-uring-findings.md",
        suite: "stage6_storage",
        findings: &[
            f(
                "direct writes of 1 MiB, compio against blocking `pwrite`",
                "stage6-storage-append",
                "raw-direct-write-compio-1024k",
                "raw-direct-write-1024k",
                Throughput,
            ),
            f(
                "direct writes of 4 MiB, compio against blocking `pwrite`",
                "stage6-storage-append",
                "raw-direct-write-compio-4096k",
                "raw-direct-write-4096k",
                Throughput,
            ),
            f(
                "direct reads of 1 MiB, compio against blocking `pread`",
                "stage6-storage-read",
                "raw-direct-read-compio-1024k",
                "raw-direct-read-1024k",
                Throughput,
            ),
            f(
                "direct reads of 4 MiB, compio against blocking `pread`",
                "stage6-storage-read",
                "raw-direct-read-compio-4096k",
                "raw-direct-read-4096k",
                Throughput,
            ),
        ],
    },
    Page {
        name: "stage6-direct-io-findings.md",
        suite: "stage6_storage",
        findings: &[
            f(
                "appends written 1 MiB at a time, Direct I/O against buffered",
                "stage6-storage-append",
                "append-direct-1024k",
                "append-buffered-1024k",
                Throughput,
            ),
            f(
                "the same, p99",
                "stage6-storage-append",
                "append-direct-1024k",
                "append-buffered-1024k",
                P99,
            ),
            f(
                "appends written 4 MiB at a time, Direct I/O against buffered",
                "stage6-storage-append",
                "append-direct-4096k",
                "append-buffered-4096k",
                Throughput,
            ),
            f(
                "the same, p99",
                "stage6-storage-append",
                "append-direct-4096k",
                "append-buffered-4096k",
                P99,
            ),
            f(
                "direct appends against the raw direct write, 1 MiB",
                "stage6-storage-append",
                "append-direct-1024k",
                "raw-direct-write-1024k",
                Throughput,
            ),
            f(
                "direct appends against the raw direct write, 4 MiB",
                "stage6-storage-append",
                "append-direct-4096k",
                "raw-direct-write-4096k",
                Throughput,
            ),
            f(
                "the appends' CPU time alone against the raw direct write, 1 MiB",
                "stage6-storage-append",
                "append-direct-cpu-1024k",
                "raw-direct-write-1024k",
                Throughput,
            ),
            f(
                "the appends' CPU time alone against the raw direct write, 4 MiB",
                "stage6-storage-append",
                "append-direct-cpu-4096k",
                "raw-direct-write-4096k",
                Throughput,
            ),
            f(
                "direct writes of 1 MiB, compio against blocking `pwrite`",
                "stage6-storage-append",
                "raw-direct-write-compio-1024k",
                "raw-direct-write-1024k",
                Throughput,
            ),
            f(
                "direct writes of 4 MiB, compio against blocking `pwrite`",
                "stage6-storage-append",
                "raw-direct-write-compio-4096k",
                "raw-direct-write-4096k",
                Throughput,
            ),
            f(
                "direct polls against the raw direct read, 1 MiB",
                "stage6-storage-read",
                "poll-direct-1024k",
                "raw-direct-read-1024k",
                Throughput,
            ),
            f(
                "buffered polls against the raw direct read, 1 MiB",
                "stage6-storage-read",
                "poll-buffered-1024k",
                "raw-direct-read-1024k",
                Throughput,
            ),
        ],
    },
    Page {
        name: "stage6-ablation-findings.md",
        suite: "stage6_ablation",
        findings: &[
            f(
                "stage 6 (its defaults) against stage 5, producers",
                "stage6-ablation",
                "stage6-producer",
                "stage5-producer",
                Throughput,
            ),
            f(
                "stage 6 (its defaults) against stage 5, consumers",
                "stage6-ablation",
                "stage6-consumer",
                "stage5-consumer",
                Throughput,
            ),
            f(
                "the talk's setting (a shard per core, pinned) against stage 5, producers",
                "stage6-ablation",
                "stage6-talk-producer",
                "stage5-producer",
                Throughput,
            ),
            f(
                "beside a CPU hog: stage 6 (its defaults) against stage 5, producers",
                "stage6-ablation",
                "stage6-noisy-producer",
                "stage5-noisy-producer",
                Throughput,
            ),
            f(
                "beside a CPU hog: stage 6 (its defaults) against stage 5, a produce's p99",
                "stage6-ablation",
                "stage6-noisy-producer",
                "stage5-noisy-producer",
                P99,
            ),
            f(
                "beside a CPU hog: the talk's setting against stage 5, producers",
                "stage6-ablation",
                "stage6-talk-noisy-producer",
                "stage5-noisy-producer",
                Throughput,
            ),
            f(
                "beside a CPU hog: the talk's setting against stage 5, a produce's p99",
                "stage6-ablation",
                "stage6-talk-noisy-producer",
                "stage5-noisy-producer",
                P99,
            ),
            f(
                "stage 6 (its defaults) beside a CPU hog against on a quiet machine, producers",
                "stage6-ablation",
                "stage6-noisy-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "stage 6 against stage 5, producers, on split cores",
                "stage6-ablation",
                "stage6-split-cores-producer",
                "stage5-split-cores-producer",
                Throughput,
            ),
            f(
                "stage 6 on split cores against stage 6 beside the load generator, producers",
                "stage6-ablation",
                "stage6-split-cores-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "a shard per core against one per core but one (the default), producers",
                "stage6-ablation",
                "stage6-every-core-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "pinning on against off (the default), producers",
                "stage6-ablation",
                "stage6-pinned-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "Direct I/O off against on, producers",
                "stage6-ablation",
                "stage6-direct-io-off-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "Direct I/O off against on, consumers",
                "stage6-ablation",
                "stage6-direct-io-off-consumer",
                "stage6-consumer",
                Throughput,
            ),
            f(
                "the polling driver against io_uring, producers",
                "stage6-ablation",
                "stage6-polling-producer",
                "stage6-producer",
                Throughput,
            ),
            f(
                "the polling driver against io_uring, a produce's p99",
                "stage6-ablation",
                "stage6-polling-producer",
                "stage6-producer",
                P99,
            ),
        ],
    },
];

/// Every page of findings, rendered from the committed results files.
pub fn pages() -> anyhow::Result<Vec<(String, String)>> {
    let mut pages = Vec::new();
    for page in PAGES {
        let files = ResultsFile::all_for_suite(page.suite)?;
        pages.push((
            page.name.to_string(),
            render(page.suite, page.findings, &files),
        ));
    }
    Ok(pages)
}

/// A list item per finding, for every profile that measured the suite; a
/// finding whose rows a profile lacks is left out, and a suite nobody has
/// measured says so.
pub fn render(suite: &str, findings: &[Finding], files: &[ResultsFile]) -> String {
    let mut out = page_start(suite);
    if files.is_empty() {
        return not_measured(out, suite);
    }
    for file in files {
        let _ = writeln!(
            out,
            "What the run on profile `{}` (commit `{}`) shows, row against row \
             (two figures within {:.0}% of each other are called the same):\n",
            file.machine.profile,
            file.commit,
            SAME_WITHIN * 100.0
        );
        for finding in findings {
            let row = |id: &str| {
                file.groups
                    .iter()
                    .find(|group| group.name == finding.group)
                    .and_then(|group| group.rows.iter().find(|row| row.id == id))
            };
            let (Some(row), Some(against)) = (row(finding.row), row(finding.against)) else {
                continue;
            };
            if let Some(sentence) = sentence(finding, row, against) {
                let _ = writeln!(out, "- {sentence}");
            }
        }
        out.push('\n');
    }
    out
}

/// "label: 380.5 against 397.1 MB/s, 4% less: the same.", or `None` if a
/// latency is compared and a row has none.
fn sentence(finding: &Finding, row: &Row, against: &Row) -> Option<String> {
    let (a, b, shown) = match finding.metric {
        Throughput => {
            let (a, b) = (row.mb_per_s(), against.mb_per_s());
            (a, b, format!("{a:.1} against {b:.1} MB/s"))
        }
        P50 | P99 => {
            let pick = |row: &Row| {
                row.latency.map(|p| {
                    if finding.metric == P50 {
                        p.p50 as f64
                    } else {
                        p.p99 as f64
                    }
                })
            };
            let (a, b) = (pick(row)?, pick(against)?);
            (a, b, format!("{} against {}", duration(a), duration(b)))
        }
    };
    let verdict = compare(a, b, finding.metric == Throughput);
    Some(format!("{}: {shown}, {verdict}.", finding.label))
}

/// The first figure against the second, in words: "the same", "12% faster",
/// "3.4 times as fast", "30% shorter"...
pub fn compare(a: f64, b: f64, more_is_better: bool) -> String {
    if !(a > 0.0 && b > 0.0) {
        return "not comparable".to_string();
    }
    let ratio = a / b;
    if (ratio - 1.0).abs() < SAME_WITHIN {
        return format!("the same ({:+.1}%)", (ratio - 1.0) * 100.0);
    }
    let (up, down) = if more_is_better {
        ("faster", "slower")
    } else {
        ("longer", "shorter")
    };
    if ratio >= 2.0 {
        let times = if more_is_better { "as fast" } else { "as long" };
        format!("{ratio:.1} times {times}")
    } else if ratio > 1.0 {
        format!("{:.0}% {up}", (ratio - 1.0) * 100.0)
    } else if ratio > 0.5 {
        format!("{:.0}% {down}", (1.0 - ratio) * 100.0)
    } else if more_is_better {
        format!("{:.1} times slower", 1.0 / ratio)
    } else {
        format!("{:.1} times shorter", 1.0 / ratio)
    }
}

/// What a crash may lose, for the "what a crash may lose" column. Benches of
/// the servers record the fsync policy they ran under (`fsync every-batch`);
/// the table states what that policy risks. Every stage's server uses the
/// talk's thresholds (a batch is 1000 messages or 1 MiB, the saver runs every
/// 5 s). Any other label is already a loss, and is shown as it is.
pub fn crash_loss(label: &str) -> String {
    match label {
        "fsync always" => "nothing acknowledged".to_string(),
        "fsync every-batch" => {
            "the batch not yet synced (up to 1000 messages or 1 MiB)".to_string()
        }
        "fsync never" => "what the OS has not written back".to_string(),
        "one sync at the end" => "everything before its one sync at the end".to_string(),
        "none (memory to memory)" => "(no file: memory to memory)".to_string(),
        "none (reads)" => "(a read)".to_string(),
        other => match other
            .strip_prefix("fsync interval-")
            .and_then(|rest| rest.strip_suffix("ms"))
        {
            Some(ms) => format!("the batch not yet written, and up to {ms} ms of writes"),
            None => other.to_string(),
        },
    }
}

/// The notes a group's table needs below it: what a time without a range
/// is, and why a share may pass 100%. Empty when neither applies.
pub fn table_notes(group: &Group) -> String {
    let mut out = String::new();
    let totals = group
        .rows
        .iter()
        .any(|row| row.ns_low.is_none() || row.ns_high.is_none());
    if totals {
        let _ = writeln!(
            out,
            "*Time per iteration* without a range is the run's time divided by the \
             iterations done in it (criterion's rows give a mean and its 95% interval). \
             With one caller at a time that is about the mean call; with several \
             producers, consumers or readers at once it is the time between two \
             completions, shorter than one call takes (its p50), and where an \
             iteration is one message of a batch, one call covers many iterations.\n"
        );
    }
    let fastest_raw = group
        .rows
        .iter()
        .filter(|row| row.kind == RowKind::Raw)
        .map(Row::mb_per_s)
        .fold(0.0, f64::max);
    let over = |share: &dyn Fn(&Row) -> Option<f64>| -> Vec<&str> {
        group
            .rows
            .iter()
            .filter(|row| row.kind == RowKind::Stage)
            // Above what the table shows as 100%.
            .filter(|row| share(row).is_some_and(|share| share >= 1.005))
            .map(|row| row.id.as_str())
            .collect()
    };
    let over_fastest = over(&|row| (fastest_raw > 0.0).then(|| row.mb_per_s() / fastest_raw));
    let over_same = over(&|row| {
        let limit = row.limit.as_ref()?;
        let limit = group.rows.iter().find(|r| &r.id == limit)?;
        Some(row.mb_per_s() / limit.mb_per_s())
    });
    if !over_fastest.is_empty() || !over_same.is_empty() {
        let list = |ids: &[&str]| {
            ids.iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut which = Vec::new();
        if !over_same.is_empty() {
            which.push(format!("of raw, same calls: {}", list(&over_same)));
        }
        if !over_fastest.is_empty() {
            which.push(format!("of fastest raw: {}", list(&over_fastest)));
        }
        let _ = writeln!(
            out,
            "Above 100% ({}): the row did its iteration in less time than the raw row \
             it is read against. It does less than that row, not more than the machine \
             can: it skips a sync the raw row makes, is served from memory where the raw \
             row reads the device, or does not touch every byte the raw row moves; or, \
             a few percent over, the two differ by less than the run's noise. The \
             chapter says which.\n",
            which.join("; ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, kind: RowKind, ns: f64, interval: bool) -> Row {
        Row {
            id: id.to_string(),
            kind,
            durability: "fsync every-batch".to_string(),
            limit: None,
            bytes_per_iter: 1000,
            ns_per_iter: ns,
            ns_low: interval.then_some(ns * 0.9),
            ns_high: interval.then_some(ns * 1.1),
            latency: None,
            series: None,
            x: None,
        }
    }

    fn file(rows: Vec<Row>) -> ResultsFile {
        crate::results::test_file_of_rows(rows)
    }

    #[test]
    fn a_finding_states_the_direction_the_rows_have() {
        let findings = [
            f("new against old", "g", "new", "old", Throughput),
            f("old against new", "g", "old", "new", Throughput),
            f("close", "g", "close", "old", Throughput),
            f("missing", "g", "absent", "old", Throughput),
        ];
        let text = render(
            "s",
            &findings,
            &[file(vec![
                row("old", RowKind::Stage, 2000.0, true),
                row("new", RowKind::Stage, 1000.0, true),
                row("close", RowKind::Stage, 1960.0, true),
            ])],
        );
        assert!(
            text.contains("- new against old: 1000.0 against 500.0 MB/s, 2.0 times as fast."),
            "{text}"
        );
        assert!(
            text.contains("- old against new: 500.0 against 1000.0 MB/s, 2.0 times slower."),
            "{text}"
        );
        assert!(text.contains("- close: 510.2 against 500.0 MB/s, the same (+2.0%)."));
        assert!(!text.contains("missing"), "{text}");
        assert!(render("s", &findings, &[]).contains("Not measured on any profile yet"));
    }

    #[test]
    fn latency_is_better_shorter() {
        assert_eq!(compare(130.0, 100.0, false), "30% longer");
        assert_eq!(compare(70.0, 100.0, false), "30% shorter");
        assert_eq!(compare(130.0, 100.0, true), "30% faster");
        assert_eq!(compare(70.0, 100.0, true), "30% slower");
        assert_eq!(compare(25.0, 100.0, false), "4.0 times shorter");
    }

    #[test]
    fn a_policy_is_shown_as_what_a_crash_loses() {
        assert_eq!(crash_loss("fsync always"), "nothing acknowledged");
        assert!(crash_loss("fsync every-batch").starts_with("the batch not yet synced"));
        assert!(crash_loss("fsync interval-250ms").contains("250 ms of writes"));
        assert_eq!(crash_loss("nothing written"), "nothing written");
    }

    #[test]
    fn notes_explain_totals_and_shares_over_100_percent() {
        let mut fast = row("fast", RowKind::Stage, 500.0, false);
        fast.limit = Some("raw".to_string());
        let group = &file(vec![fast, row("raw", RowKind::Raw, 1000.0, true)]).groups[0];
        let notes = table_notes(group);
        assert!(notes.contains("run's time divided by"), "{notes}");
        assert!(notes.contains("of raw, same calls: `fast`"), "{notes}");
        assert!(notes.contains("of fastest raw: `fast`"), "{notes}");
        let quiet = &file(vec![row("slow", RowKind::Stage, 2000.0, true)]).groups[0];
        assert_eq!(table_notes(quiet), "");
    }
}
