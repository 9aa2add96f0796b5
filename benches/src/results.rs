//! Results files: criterion's estimates, with the machine, commit and workload.
//!
//! A bench declares each measurement as a [`RowSpec`] through [`Suite::bench`]:
//! what it is (a stage or a raw limit), the durability it promises, and which raw
//! row is its limit. After criterion has run, [`Suite::finish`] reads criterion's
//! own `estimates.json` for each row and writes `benches/results/<profile>/<suite>.json`.
//! Only estimates written during this run count, so a filtered run (`cargo bench
//! -- kept`) never mixes in stale numbers: it writes no results file at all.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, Throughput};
use rivulet_datasets::Workload;
use serde::{Deserialize, Serialize};

use crate::latency::Percentiles;
use crate::machine::{self, Machine};

/// One results file: everything needed to read its numbers without asking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultsFile {
    /// The suite (bench target) that produced it, e.g. `stage1`.
    pub suite: String,
    /// When it was measured (UTC).
    pub date: String,
    /// The commit measured.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
    /// The workload, by name and shape.
    pub workload: WorkloadSummary,
    /// The benchmark groups, each a table in the book.
    pub groups: Vec<Group>,
}

/// The parts of a workload a reader needs beside the numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadSummary {
    /// The workload's file name in `datasets/`.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// Payload bytes per message: the fixed size, or for a size distribution
    /// its expected size rounded (the description says which). Kept a plain
    /// number so every results file written before distributions still reads.
    pub message_size: u32,
}

/// A benchmark group: rows measured on the same unit of work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// criterion's group name.
    pub name: String,
    /// What one iteration is, in words ("one append of one message").
    pub iteration: String,
    /// For charts: what the rows' `x` is ("producers"); batch size if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_label: Option<String>,
    /// The measurements.
    pub rows: Vec<Row>,
}

/// Whether a row measures a stage or the machine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    /// Rivulet code.
    Stage,
    /// The same bytes with nothing in the way.
    Raw,
}

/// What a bench declares about one measurement before it runs.
#[derive(Debug, Clone)]
pub struct RowSpec {
    /// Stage or raw.
    pub kind: RowKind,
    /// What a crash may lose, stated beside every number.
    pub durability: &'static str,
    /// The id of the raw row in the same group that makes the same system calls.
    pub limit: Option<&'static str>,
    /// Bytes moved per iteration, for throughput.
    pub bytes_per_iter: u64,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// criterion's function id.
    pub id: String,
    /// Stage or raw.
    pub kind: RowKind,
    /// What a crash may lose; or, from the servers' benches, the fsync policy
    /// they ran under (`fsync every-batch`), which the tables state as what it
    /// loses (`findings::crash_loss`).
    pub durability: String,
    /// The raw row with the same system calls, if any.
    pub limit: Option<String>,
    /// Bytes per iteration.
    pub bytes_per_iter: u64,
    /// Mean time per iteration, nanoseconds (criterion's estimate, or a
    /// bench's own total time divided by iterations).
    pub ns_per_iter: f64,
    /// Lower bound of criterion's 95% confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_low: Option<f64>,
    /// Upper bound of criterion's 95% confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_high: Option<f64>,
    /// Per-iteration latency percentiles, for rows measured one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Percentiles>,
    /// For charts: the line this row belongs to (e.g. an fsync policy)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// ... and its position on the x axis (e.g. a batch size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<u64>,
}

impl Row {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_per_iter as f64 / self.ns_per_iter * 1e3
    }
}

/// A suite being measured: the rows declared so far, and where criterion writes.
pub struct Suite {
    name: String,
    workload: WorkloadSummary,
    started: SystemTime,
    criterion_dir: PathBuf,
    groups: Vec<PlannedGroup>,
}

/// A group as declared, before its estimates are read.
struct PlannedGroup {
    name: String,
    iteration: String,
    x_label: Option<String>,
    /// Rows criterion measures; their estimates are read in `finish`.
    rows: Vec<(String, RowSpec)>,
    /// Rows the bench measured itself (latency percentiles, say).
    measured: Vec<Row>,
}

impl Suite {
    /// Starts the suite `name` (the bench target's name) on `workload`.
    pub fn new(name: &str, workload: &Workload) -> Suite {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join("target"));
        Suite {
            name: name.to_string(),
            workload: WorkloadSummary {
                name: workload.name.clone(),
                description: workload.description.clone(),
                message_size: workload
                    .message_size
                    .fixed()
                    .unwrap_or_else(|| workload.message_size.mean_estimate().round() as u32),
            },
            started: SystemTime::now(),
            criterion_dir: target.join("criterion"),
            groups: Vec::new(),
        }
    }

    /// A criterion set up for these benches: short runs (the machines are small
    /// and shared, and ratios within one run are what we publish), the command
    /// line's filters applied, output where [`Suite::finish`] looks.
    pub fn criterion(&self) -> Criterion {
        Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .output_directory(&self.criterion_dir)
            .configure_from_args()
    }

    /// Starts a group whose iterations are described by `iteration`.
    pub fn group<'c>(
        &mut self,
        criterion: &'c mut Criterion,
        name: &str,
        iteration: &str,
    ) -> BenchmarkGroup<'c, WallTime> {
        self.groups.push(PlannedGroup {
            name: name.to_string(),
            iteration: iteration.to_string(),
            x_label: None,
            rows: Vec::new(),
            measured: Vec::new(),
        });
        criterion.benchmark_group(name)
    }

    /// Starts a group whose rows the bench measures itself (see [`Suite::record`]).
    pub fn custom_group(&mut self, name: &str, iteration: &str, x_label: Option<&str>) {
        self.groups.push(PlannedGroup {
            name: name.to_string(),
            iteration: iteration.to_string(),
            x_label: x_label.map(str::to_string),
            rows: Vec::new(),
            measured: Vec::new(),
        });
    }

    /// Adds a row the bench measured itself to the group started last.
    pub fn record(&mut self, row: Row) {
        if let Some(planned) = self.groups.last_mut() {
            planned.measured.push(row);
        }
    }

    /// Declares and runs one measurement in the group started last.
    pub fn bench<F>(
        &mut self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        id: &str,
        spec: RowSpec,
        routine: F,
    ) where
        F: FnMut(&mut Bencher<'_, WallTime>),
    {
        group.throughput(Throughput::Bytes(spec.bytes_per_iter));
        group.bench_function(id, routine);
        if let Some(planned) = self.groups.last_mut() {
            planned.rows.push((id.to_string(), spec));
        }
    }

    /// Gathers this run's estimates into a results file, and returns its path;
    /// `None` if some row was not measured in this run (filtered, or test mode).
    pub fn finish(self, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        let mut groups = Vec::new();
        for planned in &self.groups {
            let mut rows = Vec::new();
            for (id, spec) in &planned.rows {
                let Some(estimate) = self.fresh_estimate(&planned.name, id)? else {
                    return Ok(None);
                };
                rows.push(Row {
                    id: id.clone(),
                    kind: spec.kind,
                    durability: spec.durability.to_string(),
                    limit: spec.limit.map(str::to_string),
                    bytes_per_iter: spec.bytes_per_iter,
                    ns_per_iter: estimate.point_estimate,
                    ns_low: Some(estimate.confidence_interval.lower_bound),
                    ns_high: Some(estimate.confidence_interval.upper_bound),
                    latency: None,
                    series: None,
                    x: None,
                });
            }
            rows.extend(planned.measured.iter().cloned());
            groups.push(Group {
                name: planned.name.clone(),
                iteration: planned.iteration.clone(),
                x_label: planned.x_label.clone(),
                rows,
            });
        }
        let results = ResultsFile {
            suite: self.name.clone(),
            date: machine::utc_now(),
            commit: machine::commit(),
            machine: Machine::detect(data_dir),
            workload: self.workload.clone(),
            groups,
        };
        let path = results_dir()
            .join(&results.machine.profile)
            .join(format!("{}.json", self.name));
        results.write(&path)?;
        Ok(Some(path))
    }

    /// criterion's headline estimate for `group/id`, if written during this run:
    /// the regression slope when criterion fitted one, else the mean.
    fn fresh_estimate(&self, group: &str, id: &str) -> anyhow::Result<Option<Estimate>> {
        let path = self
            .criterion_dir
            .join(group)
            .join(id)
            .join("new")
            .join("estimates.json");
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return Ok(None);
        };
        if modified < self.started {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let estimates: Estimates =
            serde_json::from_str(&text).with_context(|| path.display().to_string())?;
        Ok(Some(estimates.slope.unwrap_or(estimates.mean)))
    }
}

/// The folder of all results files: `benches/results/`.
pub fn results_dir() -> PathBuf {
    crate::repo_root().join("benches").join("results")
}

impl ResultsFile {
    /// Reads a results file.
    pub fn read(path: &Path) -> anyhow::Result<ResultsFile> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes it, pretty-printed so a diff of two runs is readable.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| path.display().to_string())
    }

    /// Every results file of `suite`, one per profile, sorted by profile.
    pub fn all_for_suite(suite: &str) -> anyhow::Result<Vec<ResultsFile>> {
        let mut files = Vec::new();
        for profile in published_profiles()? {
            let path = profile.join(format!("{suite}.json"));
            if path.exists() {
                files.push(ResultsFile::read(&path)?);
            }
        }
        files.sort_by(|a, b| a.machine.profile.cmp(&b.machine.profile));
        Ok(files)
    }
}

/// The profile of a run made without `RIVULET_PROFILE`.
pub const LOCAL_PROFILE: &str = "local";

/// The folders of `benches/results/` the book is made from: every profile's
/// but [`LOCAL_PROFILE`]'s. That one holds what a run without
/// `RIVULET_PROFILE` wrote (the README's main command, for one), is ignored
/// by git, and would otherwise make `publish --check` (part of the test
/// command) call the committed book stale on any machine that ran it. To put
/// a machine's results in the book, name its profile.
pub fn published_profiles() -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    let Ok(entries) = std::fs::read_dir(results_dir()) else {
        return Ok(dirs);
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && !path.ends_with(LOCAL_PROFILE) {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The parts of criterion's `estimates.json` we read.
#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
    slope: Option<Estimate>,
}

#[derive(Deserialize, Clone, Copy)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: ConfidenceInterval,
}

#[derive(Deserialize, Clone, Copy)]
struct ConfidenceInterval {
    lower_bound: f64,
    upper_bound: f64,
}

/// A results file for the page generators' unit tests: fixed machine and
/// workload, `groups` as given (one place, not a copy per test module).
#[cfg(test)]
pub(crate) fn test_file(suite: &str, groups: Vec<Group>) -> ResultsFile {
    ResultsFile {
        suite: suite.into(),
        date: "d".into(),
        commit: "c".into(),
        machine: Machine {
            profile: "p".into(),
            cpu: "cpu".into(),
            cores: 2,
            memory_bytes: 1 << 30,
            kernel: "k".into(),
            filesystem: "ext4".into(),
        },
        workload: WorkloadSummary {
            name: "w".into(),
            description: "d".into(),
            message_size: 1000,
        },
        groups,
    }
}

/// A stage row for the page generators' unit tests: `ns` per iteration of
/// `bytes` bytes, and if given a latency whose p99 (and above) is `p99`.
#[cfg(test)]
pub(crate) fn test_row(id: &str, durability: &str, bytes: u64, ns: f64, p99: Option<u64>) -> Row {
    Row {
        id: id.to_string(),
        kind: RowKind::Stage,
        durability: durability.to_string(),
        limit: None,
        bytes_per_iter: bytes,
        ns_per_iter: ns,
        ns_low: None,
        ns_high: None,
        latency: p99.map(|p99| crate::latency::Percentiles {
            count: 10,
            p50: p99 / 2,
            p90: p99,
            p99,
            p999: p99,
            p9999: p99,
            max: p99,
        }),
        series: None,
        x: None,
    }
}

/// A group for the page generators' unit tests.
#[cfg(test)]
pub(crate) fn test_group(name: &str, iteration: &str, rows: Vec<Row>) -> Group {
    Group {
        name: name.into(),
        iteration: iteration.into(),
        x_label: None,
        rows,
    }
}

/// [`test_file`] with one group of `rows`.
#[cfg(test)]
pub(crate) fn test_file_of_rows(rows: Vec<Row>) -> ResultsFile {
    test_file(
        "s",
        vec![Group {
            name: "g".into(),
            iteration: "one thing".into(),
            x_label: None,
            rows,
        }],
    )
}
