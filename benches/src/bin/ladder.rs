//! `ladder`: every stage that exists, on one workload, on this machine, beside
//! the machine's own limits, in one run; then the same on the `throughput`
//! workload with two more rungs beside a noisy neighbour. Prints each
//! ladder's tables and what bounds it, and writes
//! `benches/results/<profile>/ladder-<workload>.json` for each.
//!
//! `cargo run --release -p bench --bin ladder -- --workload quick`
//!
//! `--workload` names the first ladder's workload (default `quick`: one
//! message per request, so every network rung is a round trip per message);
//! `--throughput` names the second (default `throughput`: batches of 1000,
//! so the stages' copies and storage show), `--throughput none` leaves it
//! out, and naming the same workload twice runs it once. The noisy
//! neighbour's rungs (stages 5 and 6 over the network beside a CPU hog) go
//! with the second ladder, the hog on the last core unless `--noisy-core`
//! says otherwise; `--no-noisy` leaves them out. Rejected: one ladder per
//! invocation with `--workload` repeated, because the README's command
//! (`--workload quick`) must keep printing both.
//!
//! `RIVULET_PROFILE` names the machine (default `local`); `RIVULET_BENCH_DIR` is
//! where files are written (default: the system's temporary folder): put it on
//! the disk you mean to measure.

use std::path::PathBuf;

use anyhow::Context;
use bench::ladder::limits::Sizes;
use bench::ladder::page::readings;
use bench::ladder::{LadderResults, Options, run, steps};
use clap::Parser;
use rivulet_datasets::Workload;

#[derive(Debug, Parser)]
#[command(
    about = "Every Rivulet stage on one workload, then on a batched one, beside this \
                   machine's limits"
)]
struct Cli {
    /// The first ladder's workload, in datasets/ (its file name without .toml).
    #[arg(long, default_value = "quick")]
    workload: String,
    /// The second ladder's workload, run after the first with the noisy
    /// neighbour's rungs; `none` for the first ladder only.
    #[arg(long, value_name = "NAME", default_value = "throughput")]
    throughput: String,
    /// The core the noisy neighbour keeps busy [default: the last core this
    /// process may use].
    #[arg(long, value_name = "CORE", conflicts_with = "no_noisy")]
    noisy_core: Option<usize>,
    /// No rungs beside a noisy neighbour.
    #[arg(long)]
    no_noisy: bool,
    /// Measure the raw limits with a few megabytes only (a smoke test).
    #[arg(long)]
    tiny_limits: bool,
    /// Worker threads of each server the network rungs start (stages 3 to 5;
    /// stage 6 starts with its own defaults, as `rivulet-server` would).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Where to write the results files, `ladder-<WORKLOAD>.json` each
    /// [default: benches/results/PROFILE].
    #[arg(long, value_name = "DIR", conflicts_with = "no_json")]
    results_dir: Option<PathBuf>,
    /// Write no results file.
    #[arg(long)]
    no_json: bool,
}

impl Cli {
    /// The ladders to run, in order, each with its noisy core (if any).
    fn ladders(&self) -> Vec<(String, Option<usize>)> {
        let noisy =
            (!self.no_noisy).then(|| self.noisy_core.unwrap_or_else(bench::noisy::last_core));
        let second = (self.throughput != "none").then_some(self.throughput.as_str());
        match second {
            None => vec![(self.workload.clone(), None)],
            Some(second) if second == self.workload => vec![(second.to_string(), noisy)],
            Some(second) => vec![(self.workload.clone(), None), (second.to_string(), noisy)],
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Every workload is loaded (and checked) before anything is measured: a
    // typo in the second name fails now, not after the first ladder.
    let ladders = cli
        .ladders()
        .into_iter()
        .map(|(name, noisy)| {
            let workload =
                Workload::load(&name).with_context(|| format!("loading the workload {name}"))?;
            anyhow::Ok((workload, noisy))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, (workload, noisy)) in ladders.into_iter().enumerate() {
        if i > 0 {
            println!("\n");
        }
        let options = Options {
            workload,
            data_dir: bench::bench_data_dir(),
            limit_sizes: if cli.tiny_limits {
                Sizes::tiny()
            } else {
                Sizes::full()
            },
            server_threads: cli.server_threads,
            noisy,
        };
        let results = ladder(&options)?;
        print(&results);
        if !cli.no_json {
            let path = match &cli.results_dir {
                Some(dir) => dir.join(format!("ladder-{}.json", results.workload)),
                None => LadderResults::default_path(&results.machine.profile, &results.workload),
            };
            results.write(&path)?;
            println!("\nresults written to {}", path.display());
        }
    }
    Ok(())
}

/// Runs one ladder with a progress bar (on a terminal) naming each step.
fn ladder(options: &Options) -> anyhow::Result<LadderResults> {
    let progress = indicatif::ProgressBar::new(steps(options).len() as u64 + 1);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let workload = options.workload.name.clone();
    let mut count = 0;
    let results = run(options, |step| {
        if count > 0 {
            progress.inc(1);
        }
        count += 1;
        progress.set_message(format!("{workload}: {step}"));
    })?;
    progress.finish_and_clear();
    Ok(results)
}

/// The ladder's tables and readings, as the results page shows them.
fn print(results: &LadderResults) {
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
    for reading in readings(results) {
        println!("\n{reading}");
    }
}
