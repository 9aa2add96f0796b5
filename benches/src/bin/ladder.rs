//! `ladder`: every stage that exists, on one workload, on this machine, beside
//! the machine's own limits, in one run; prints the table and writes
//! `benches/results/<profile>/ladder-<workload>.json`.
//!
//! `cargo run --release -p bench --bin ladder -- --workload quick`
//!
//! `RIVULET_PROFILE` names the machine (default `local`); `RIVULET_BENCH_DIR` is
//! where files are written (default: the system's temporary folder): put it on
//! the disk you mean to measure.

use std::path::PathBuf;

use anyhow::Context;
use bench::ladder::limits::Sizes;
use bench::ladder::{LadderResults, Options, RUNGS, run};
use clap::Parser;
use rivulet_datasets::Workload;

#[derive(Debug, Parser)]
#[command(about = "Every Rivulet stage on one workload, beside this machine's limits")]
struct Cli {
    /// A workload in datasets/ (its file name without .toml).
    #[arg(long, default_value = "quick")]
    workload: String,
    /// Measure the raw limits with a few megabytes only (a smoke test).
    #[arg(long)]
    tiny_limits: bool,
    /// Worker threads of each server the network rungs start.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Where to write the results [default: benches/results/PROFILE/ladder-WORKLOAD.json].
    #[arg(long, value_name = "PATH", conflicts_with = "no_json")]
    json: Option<PathBuf>,
    /// Write no results file.
    #[arg(long)]
    no_json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let workload = Workload::load(&cli.workload).context("loading the workload")?;
    let options = Options {
        workload,
        data_dir: bench::bench_data_dir(),
        limit_sizes: if cli.tiny_limits {
            Sizes::tiny()
        } else {
            Sizes::full()
        },
        server_threads: cli.server_threads,
    };
    let progress = indicatif::ProgressBar::new(RUNGS.len() as u64 + 1);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut steps = 0;
    let results = run(&options, |step| {
        if steps > 0 {
            progress.inc(1);
        }
        steps += 1;
        progress.set_message(step.to_string());
    })?;
    progress.finish_and_clear();

    println!(
        "ladder: workload {} ({}) on {} · commit {}",
        results.workload,
        results.workload_description,
        results.machine.summary(),
        results.commit
    );
    println!("{}\n", results.plan);
    print!("{}", results.limits_table());
    println!();
    print!("{}", results.table());
    if !cli.no_json {
        let path = cli.json.unwrap_or_else(|| {
            LadderResults::default_path(&results.machine.profile, &results.workload)
        });
        results.write(&path)?;
        println!("\nresults written to {}", path.display());
    }
    Ok(())
}
