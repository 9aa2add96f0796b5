//! The segment-roll table, `segment-roll.md`, from `segment_roll.json`
//! (written by `benches/benches/segment_roll.rs`): each build's produce
//! latency across several segment rolls in page-cache mode, its maximum
//! beside the goal, so the chapter never types a figure itself.

use std::fmt::Write;

use crate::latency::duration;
use crate::report::{profile_heading, render_per_file};
use crate::results::{ResultsFile, Row};

/// The suite's name: its results files are `benches/results/<profile>/segment_roll.json`.
pub const SUITE: &str = "segment_roll";

/// The goal for the longest produce across the rolls.
pub const GOAL_MAX_NS: u64 = 50_000_000;

/// The page: a section per profile that has measured the suite.
pub fn render(files: &[ResultsFile]) -> String {
    render_per_file(SUITE, files, render_file)
}

fn render_file(out: &mut String, file: &ResultsFile) {
    profile_heading(out, file);
    for group in &file.groups {
        let _ = writeln!(out, "One call is {}.\n", group.iteration);
        let _ = writeln!(
            out,
            "| build | segments | MB/s | p50 | p99 | p99.9 | **max** | max under {}? |",
            duration(GOAL_MAX_NS as f64)
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
        for row in &group.rows {
            render_row(out, row);
        }
        let max = |id: &str| {
            group
                .rows
                .iter()
                .find(|row| row.id == id)
                .and_then(|row| row.latency)
                .map(|latency| latency.max)
        };
        if let (Some(before), Some(after)) = (max("baseline-produce"), max("today-produce")) {
            let _ = writeln!(
                out,
                "\nThe longest produce: {} before, {} today ({:.0}x shorter).",
                duration(before as f64),
                duration(after as f64),
                before as f64 / (after as f64).max(1.0)
            );
        }
        out.push('\n');
    }
}

fn render_row(out: &mut String, row: &Row) {
    let build = row.id.trim_end_matches("-produce");
    let Some(latency) = row.latency else {
        let _ = writeln!(out, "| {build} | | {:.0} | | | | | |", row.mb_per_s());
        return;
    };
    let segments = row.x.map_or(String::new(), |rolls| (rolls + 1).to_string());
    let _ = writeln!(
        out,
        "| {build} | {segments} | {:.0} | {} | {} | {} | **{}** | {} |",
        row.mb_per_s(),
        duration(latency.p50 as f64),
        duration(latency.p99 as f64),
        duration(latency.p999 as f64),
        duration(latency.max as f64),
        if latency.max < GOAL_MAX_NS {
            "yes"
        } else {
            "no"
        },
    );
}
