//! The consumer groups chapter's table, `groups.md`, from `groups.json`
//! (written by `benches/benches/groups.rs`): how long a rebalance takes when
//! a member joins, leaves, or is killed, with the members polling or busy,
//! as times and as multiples of the session timeout.

use std::fmt::Write;

use crate::report::{profile_heading, render_per_file};
use crate::results::{Group, ResultsFile, Row};

/// The suite's name: its results files are `benches/results/<profile>/groups.json`.
pub const SUITE: &str = "groups";

/// The page: a section per profile that has measured the suite, or a note
/// saying nobody has yet.
pub fn render(files: &[ResultsFile]) -> String {
    render_per_file(SUITE, files, render_file)
}

fn render_file(out: &mut String, file: &ResultsFile) {
    profile_heading(out, file);
    for group in &file.groups {
        render_group(out, group);
    }
}

/// A group's title, by its name.
fn title(group: &str) -> &str {
    match group {
        "join" => "A member joins",
        "leave" => "A member leaves",
        "kill" => "A member is killed",
        other => other,
    }
}

/// What a row's group looks like before and after, from its id
/// (`<event>-<members>-<behaviour>`).
fn change(row: &Row) -> String {
    let mut parts = row.id.splitn(3, '-');
    let (event, size) = (parts.next().unwrap_or_default(), parts.next());
    let Some(size) = size.and_then(|size| size.parse::<u64>().ok()) else {
        return row.id.clone();
    };
    match event {
        "join" => format!("{size} → {}", size + 1),
        _ => format!("{size} → {}", size.saturating_sub(1)),
    }
}

fn render_group(out: &mut String, group: &Group) {
    let _ = writeln!(out, "**{}**: {}.\n", title(&group.name), group.iteration);
    let _ = writeln!(
        out,
        "| members | the members meanwhile | rounds | median | max | median ÷ session timeout \
         | max ÷ session timeout |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in &group.rows {
        let Some(latency) = row.latency else { continue };
        let session_ns = row.x.map(|ms| ms as f64 * 1e6);
        let of_session = |ns: u64| {
            session_ns.map_or_else(String::new, |session| format!("{:.3}", ns as f64 / session))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            change(row),
            row.series.as_deref().unwrap_or_default(),
            latency.count,
            seconds(latency.p50),
            seconds(latency.max),
            of_session(latency.p50),
            of_session(latency.max),
        );
    }
    out.push('\n');
}

/// Nanoseconds as milliseconds below a second, else as seconds, three
/// significant figures or so.
fn seconds(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Percentiles;
    use crate::machine::Machine;
    use crate::results::{RowKind, WorkloadSummary};

    fn row(id: &str, p50_ms: u64, max_ms: u64) -> Row {
        Row {
            id: id.to_string(),
            kind: RowKind::Stage,
            durability: String::new(),
            limit: None,
            bytes_per_iter: 0,
            ns_per_iter: 0.0,
            ns_low: None,
            ns_high: None,
            latency: Some(Percentiles {
                count: 9,
                p50: p50_ms * 1_000_000,
                p90: max_ms * 1_000_000,
                p99: max_ms * 1_000_000,
                p999: max_ms * 1_000_000,
                p9999: max_ms * 1_000_000,
                max: max_ms * 1_000_000,
            }),
            series: Some("busy".to_string()),
            x: Some(10_000),
        }
    }

    #[test]
    fn groups_page_shows_times_and_multiples_of_the_session() {
        let file = ResultsFile {
            suite: SUITE.to_string(),
            date: "2026-01-01T00:00:00Z".to_string(),
            commit: "abc".to_string(),
            machine: Machine {
                profile: "dev-2core".to_string(),
                cpu: "cpu".to_string(),
                cores: 2,
                memory_bytes: 1 << 30,
                kernel: "6".to_string(),
                filesystem: "ext4".to_string(),
            },
            workload: WorkloadSummary {
                name: SUITE.to_string(),
                description: "membership only".to_string(),
                message_size: 0,
            },
            groups: vec![Group {
                name: "kill".to_string(),
                iteration: "from the kill".to_string(),
                x_label: None,
                rows: vec![row("kill-4-busy", 9_500, 12_100)],
            }],
        };
        let page = render(&[file]);
        assert!(
            page.contains("**A member is killed**: from the kill."),
            "{page}"
        );
        assert!(
            page.contains("| 4 → 3 | busy | 9 | 9.50 s | 12.10 s | 0.950 | 1.210 |"),
            "{page}"
        );
        assert!(render(&[]).contains("Not measured on any profile yet"));
    }
}
