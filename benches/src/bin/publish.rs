//! Regenerates the book's result tables from the results files.
//!
//! `publish` writes `book/src/generated/<suite>.md` for every suite (and
//! `<suite>-<group>.md` for the groups chapters show alone), and the SVG
//! charts of every results file that has series;
//! `publish --check` writes nothing and fails if any of them is out of date
//! (the test command runs this, so the book never disagrees with its data).

use anyhow::Context;
use bench::ladder::LadderResults;
use bench::profile::{Profile, render_page};
use bench::reliability;
use bench::report::{
    Gain, charts, render_gains, render_group_page, render_suite, render_talk_table,
};
use bench::results::ResultsFile;

/// The suites the book shows, in chapter order. A suite nobody has measured
/// still gets a page, saying so.
/// Each suite may also get a page per group, for chapters that show only one.
const SUITES: [(&str, &[&str]); 6] = [
    ("stage1", &[]),
    ("stage2", &[]),
    ("network", &["producers", "contention", "zero-copy"]),
    ("stage5", &[]),
    ("stage6_storage", &[]),
    ("stage6_ablation", &[]),
];

/// The stage 5 chapter's table in the talk's shape (regular, zero-copy, gain),
/// from the codec bench: `stage5-gains.md`.
const STAGE5_GAINS: [Gain; 3] = [
    Gain {
        label: "producer: the server's work before the write",
        group: "stage5-produce",
        regular: "stage4-produce",
        improved: "stage5-stamp",
    },
    Gain {
        label: "consumer: decode, checksums checked",
        group: "stage5-verify",
        regular: "stage4-owned",
        improved: "stage5-views",
    },
    Gain {
        label: "consumer: decode only",
        group: "stage5-decode",
        regular: "stage4-owned",
        improved: "stage5-views",
    },
];

fn main() -> anyhow::Result<()> {
    let check = std::env::args().skip(1).any(|arg| arg == "--check");
    let out_dir = bench::repo_root()
        .join("book")
        .join("src")
        .join("generated");
    std::fs::create_dir_all(&out_dir).with_context(|| out_dir.display().to_string())?;
    let mut stale = Vec::new();
    let mut pages = Vec::new();
    for (suite, groups) in SUITES {
        let files = ResultsFile::all_for_suite(suite)?;
        pages.push((format!("{suite}.md"), render_suite(suite, &files)));
        for group in groups {
            pages.push((
                format!("{suite}-{group}.md"),
                render_group_page(suite, group, &files),
            ));
        }
        for chart in files.iter().flat_map(charts) {
            pages.push((chart.file_name, chart.svg));
        }
    }
    let stage5 = ResultsFile::all_for_suite("stage5")?;
    pages.push((
        "stage5-gains.md".to_string(),
        render_gains("stage5", &STAGE5_GAINS, &stage5),
    ));
    // The talk's end-to-end table: stage 4 against stage 5 over loopback.
    let network = ResultsFile::all_for_suite("network")?;
    pages.push((
        "stage5-end-to-end.md".to_string(),
        render_talk_table(
            "network",
            "zero-copy",
            &[
                ("Producer", "stage4-producer", "stage5-producer"),
                ("Consumer", "stage4-consumer", "stage5-consumer"),
            ],
            &network,
        ),
    ));
    // The chapters' sentences that compare rows, from the same results files.
    pages.extend(bench::findings::pages()?);
    // The Kafka listener against the native protocol: both paths, their
    // ratio and where the difference goes, in a page of its own shape.
    // `kafka-details.md`: every row of it in the usual tables, every round.
    let kafka = ResultsFile::all_for_suite(bench::kafka::SUITE)?;
    pages.push(("kafka.md".to_string(), bench::kafka::render(&kafka)));
    pages.push((
        "kafka-details.md".to_string(),
        render_suite(bench::kafka::SUITE, &kafka),
    ));
    // The consumer groups chapter: rebalance times, as times and as
    // multiples of the session timeout.
    let groups = ResultsFile::all_for_suite(bench::groups::SUITE)?;
    pages.push(("groups.md".to_string(), bench::groups::render(&groups)));
    // No stall at a segment roll: each build's longest produce across the rolls.
    let rolls = ResultsFile::all_for_suite(bench::segment_roll::SUITE)?;
    pages.push((
        "segment-roll.md".to_string(),
        bench::segment_roll::render(&rolls),
    ));
    // Small messages: this commit's server against a baseline commit's, and
    // where the server's CPU goes per message.
    let small = ResultsFile::all_for_suite(bench::small_messages::SUITE)?;
    pages.push((
        "small-messages.md".to_string(),
        bench::small_messages::render(&small),
    ));
    // The Results chapter: every known profile, measured or not.
    let ladders = LadderResults::all()?;
    let hw_profiles = Profile::load_all(&Profile::dir())?;
    let mut profiles: Vec<String> = hw_profiles.iter().map(|p| p.name.clone()).collect();
    for run in &ladders {
        if !profiles.contains(&run.machine.profile) {
            profiles.push(run.machine.profile.clone());
        }
    }
    profiles.sort();
    let (page, ladder_charts) = bench::ladder::page::render(&profiles, &ladders);
    pages.push(("ladder.md".to_string(), page));
    pages.extend(
        ladder_charts
            .into_iter()
            .map(|chart| (chart.file_name, chart.svg)),
    );

    // The reliability chapter's crash-torture figures, from torture.json
    // (the driver's own format, so read by its own module).
    let torture = reliability::all()?;
    pages.push(("torture.md".to_string(), reliability::render(&torture)));

    // The Hardware profiles chapter's table, from hw-profiles/*.toml.
    pages.push(("hw-profiles.md".to_string(), render_page(&hw_profiles)));

    for (name, text) in pages {
        let path = out_dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, text).with_context(|| path.display().to_string())?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        anyhow::bail!(
            "out of date with benches/results (run `cargo run -p bench --bin publish`): {}",
            stale.join(", ")
        );
    }
    Ok(())
}
