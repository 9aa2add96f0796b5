//! What machine a result was measured on, read from `/proc` and the file system.
//!
//! A number without its machine is not a result; every results file carries one
//! of these. The profile name comes from `RIVULET_PROFILE` (default `local`), so
//! runs on a named cloud profile (say `aws-i3en.3xlarge`) are filed under it.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine, as far as results depend on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// The hardware profile the run is filed under (`benches/results/<profile>/`).
    pub profile: String,
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available.
    pub cores: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// File system type of the folder the benchmarks wrote to.
    pub filesystem: String,
}

impl Machine {
    /// Describes this machine; `data_dir` is where the benchmarks write.
    pub fn detect(data_dir: &Path) -> Machine {
        Machine {
            profile: std::env::var("RIVULET_PROFILE").unwrap_or_else(|_| "local".to_string()),
            cpu: cpu_model().unwrap_or_else(|| "unknown".to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_bytes().unwrap_or(0),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            filesystem: filesystem_of(data_dir).unwrap_or_else(|| "unknown".to_string()),
        }
    }

    /// One line for a table caption: "AMD EPYC, 2 cores, 23 GiB, ext4, Linux 6.18".
    pub fn summary(&self) -> String {
        format!(
            "{}, {} {}, {} GiB, {}, Linux {}",
            self.cpu,
            self.cores,
            if self.cores == 1 { "core" } else { "cores" },
            self.memory_bytes >> 30,
            self.filesystem,
            self.kernel
        )
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `df --output=fstype` of the folder: the mount it is on decides what we measure.
fn filesystem_of(dir: &Path) -> Option<String> {
    let output = Command::new("df")
        .arg("--output=fstype")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.lines().nth(1).map(|fs| fs.trim().to_string())
}

/// The commit being measured (`git rev-parse HEAD`), with `-dirty` if the work
/// tree has changes, or `unknown` outside a git checkout. Changes to results
/// files and the book pages generated from them do not count: a run of several
/// suites rewrites them one after the other, and none of them is code.
pub fn commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(crate::repo_root())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => match run(&[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)benches/results",
            ":(exclude)book/src/generated",
        ]) {
            Some(changes) if !changes.is_empty() => format!("{hash}-dirty"),
            _ => hash,
        },
        None => "unknown".to_string(),
    }
}

/// Now, as UTC `YYYY-MM-DDTHH:MM:SSZ`, without a date crate.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
