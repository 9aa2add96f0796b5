//! Hardware profiles: what a machine kind is, read from `hw-profiles/<name>.toml`.
//!
//! A profile names the machine results are filed under
//! (`benches/results/<profile>/`, chosen by `RIVULET_PROFILE`) and says what a
//! reader needs to judge them: CPU, vCPUs, memory, disks, network, the
//! vendor's published disk figures with their source, and how to run the
//! suite there. Cloud profiles are written by hand from the vendor's pages;
//! `scripts/profile-host` writes one for the machine it runs on, with a
//! `[detected]` table of what it found. `hw-profiles/README.md` documents
//! every key; this module is the schema, and `deny_unknown_fields` keeps the
//! two in step: a key the struct does not know is an error naming it.
//!
//! Invariants the tests hold every committed profile to: its `name` is its
//! file's name; every workload it recommends exists in `datasets/`; it
//! recommends no more shards than it has vCPUs. What a profile does *not*
//! hold is a measured figure: those live in results files, measured in the
//! same run as the stages, never typed here.

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One machine kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name: its file name without `.toml`, and the folder its
    /// results go to.
    pub name: String,
    /// What kind of machine: `cloud instance`, `shared virtual machine`,
    /// `detected host` (written by `scripts/profile-host`)...
    pub kind: String,
    /// CPU model, as the vendor or `/proc/cpuinfo` names it.
    pub cpu: String,
    /// Logical CPUs the OS schedules on (vCPUs on a cloud instance): the
    /// count every results file records as `cores`.
    pub cores: u32,
    /// Physical cores behind them, where known (a vCPU is a hyperthread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_cores: Option<u32>,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// The storage in one line ("1 x 7,500 GB NVMe SSD, instance store").
    pub storage: String,
    /// Anything else a reader of its results should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Figures in this file not confirmed against their source yet, each
    /// saying which and why; shown beside the profile in the book.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<String>,
    /// The disks, one entry per kind of disk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// The network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The vendor's published disk figures, with their source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// How to run the suite on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunParams>,
    /// What `scripts/profile-host` detected on the machine itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<Detected>,
}

/// Disks of one kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// What they are: `NVMe SSD (instance store)`, `EBS gp3`...
    pub kind: String,
    /// How many.
    pub count: u32,
    /// Size of each, GB (10^9 bytes, as vendors count).
    pub size_gb: u64,
}

/// The network interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Bandwidth, Gbit/s.
    pub bandwidth_gbps: f64,
    /// `true` when the figure is "up to": a burst over a lower baseline.
    #[serde(default)]
    pub up_to: bool,
}

/// Disk figures as a vendor publishes them: what the hardware is sold as,
/// beside which the ladder's own raw limits are read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Who published them (`AWS`).
    pub by: String,
    /// Where, as a URL.
    pub source: String,
    /// Random read IOPS of all the instance's disks together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_read_iops: Option<u64>,
    /// Write IOPS of all the instance's disks together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<u64>,
    /// The block size the IOPS are quoted at, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_block_size: Option<u32>,
    /// Sequential throughput, MB/s, where the vendor publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_mb_per_s: Option<u64>,
    /// The conditions the figures hold under, in the vendor's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// The recommended way to run the suite on this machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// The folder to measure in (`RIVULET_BENCH_DIR`): on the disk under test.
    pub data_dir: String,
    /// Shards (threads) for the thread-per-core stage: one per vCPU on a host
    /// the broker has to itself, one per core but one on a shared machine.
    pub shards: u32,
    /// Workloads worth running here, by name in `datasets/`.
    pub workloads: Vec<String>,
}

/// What `scripts/profile-host` found on the machine it ran on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Detected {
    /// When, UTC.
    pub date: String,
    /// CPU model from `/proc/cpuinfo` (on a cloud instance, the one you got).
    pub cpu: String,
    /// Logical CPUs this process may run on (`nproc`).
    pub cores: u32,
    /// Physical cores (`lscpu`), where it could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_cores: Option<u32>,
    /// Memory, GiB, where `/proc/meminfo` could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The data folder examined (`RIVULET_BENCH_DIR`, or the temp folder).
    pub data_dir: String,
    /// Its file system type.
    pub filesystem: String,
    /// The block device under it (`nvme1n1`, `vda`), or `unknown`.
    pub block_device: String,
    /// That device's logical block size: the alignment Direct I/O needs.
    pub logical_block_size: BlockSize,
    /// Whether io_uring can be used.
    pub io_uring: IoUring,
}

/// A logical block size in bytes, or `"unknown"` (an overlay or network
/// file system, a container without `/sys`): a profile says so rather than
/// failing or guessing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum BlockSize {
    /// Bytes.
    Bytes(u32),
    /// The word `unknown`.
    Unknown(UnknownWord),
}

/// The string `"unknown"`, and nothing else.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownWord {
    /// `unknown`.
    Unknown,
}

/// Whether io_uring is usable, from the kernel version and
/// `/proc/sys/kernel/io_uring_disabled` (Linux 6.6 and later).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IoUring {
    /// Kernel 5.1 or later, present and not disabled. (A container's seccomp
    /// filter may still refuse it: stage 6 falls back and says so.)
    Available,
    /// `io_uring_disabled = 1`: only root and the `io_uring_group` may use it.
    Restricted,
    /// `io_uring_disabled = 2`, or the kernel was built without it.
    Disabled,
    /// A kernel older than 5.1, which has no io_uring.
    KernelTooOld,
    /// Could not tell.
    Unknown,
}

/// Why a profile could not be read.
#[derive(Debug)]
pub enum ProfileError {
    /// The file or folder is unreadable.
    Read {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid profile (a misspelled or missing key, a wrong type).
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the line.
        source: Box<toml::de::Error>,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::Read { path, source } => {
                write!(f, "cannot read profile {}: {source}", path.display())
            }
            ProfileError::Parse { path, source } => {
                write!(f, "invalid profile {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProfileError::Read { source, .. } => Some(source),
            ProfileError::Parse { source, .. } => Some(source.as_ref()),
        }
    }
}

impl Profile {
    /// The folder of the profiles: `hw-profiles/` at the repository's root.
    pub fn dir() -> PathBuf {
        crate::repo_root().join("hw-profiles")
    }

    /// Parses a profile's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        toml::from_str(text).map_err(|source| ProfileError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Reads one profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::parse(&text, path)
    }

    /// Every profile in `dir`, sorted by name.
    pub fn load_all(dir: &Path) -> Result<Vec<Profile>, ProfileError> {
        let read = |source| ProfileError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut profiles = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read)? {
            let path = entry.map_err(read)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                profiles.push(Profile::load(&path)?);
            }
        }
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(profiles)
    }
}

// ANCHOR: render_page
/// The book's table of profiles, generated from the files so no figure is
/// typed twice: one row per profile, then each profile's published source
/// and the figures still to check. Markdown, for `book/src/generated/`.
pub fn render_page(profiles: &[Profile]) -> String {
    let mut out = String::from(
        "<!-- Generated from hw-profiles/*.toml by bench::profile::render_page. \
         Edit those, not this. -->\n\n",
    );
    if profiles.is_empty() {
        out.push_str("*No hardware profiles yet.*\n");
        return out;
    }
    out.push_str(
        "| profile | kind | CPU | vCPUs | memory | storage | network | \
         published IOPS (read / write) | run with |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for profile in profiles {
        let network = profile.network.as_ref().map_or("-".to_string(), |n| {
            format!(
                "{}{} Gbit/s",
                if n.up_to { "up to " } else { "" },
                n.bandwidth_gbps
            )
        });
        let iops = profile
            .published
            .as_ref()
            .and_then(|p| Some((p.random_read_iops?, p.write_iops?)))
            .map_or("-".to_string(), |(read, write)| {
                format!("{} / {}", thousands(read), thousands(write))
            });
        let run = profile.run.as_ref().map_or("-".to_string(), |run| {
            format!("`{}`, {} shards", run.data_dir, run.shards)
        });
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} | {} GiB | {} | {network} | {iops} | {run} |",
            cell(&profile.kind),
            cell(&profile.cpu),
            profile.cores,
            profile.memory_gib,
            cell(&profile.storage),
            name = profile.name,
        );
    }
    out.push('\n');
    for profile in profiles {
        let Some(published) = &profile.published else {
            continue;
        };
        let _ = writeln!(
            out,
            "- `{}`: IOPS as published by {}, <{}>{}",
            profile.name,
            published.by,
            published.source,
            published
                .notes
                .as_ref()
                .map_or(String::new(), |notes| format!(
                    " ({})",
                    notes.trim_end_matches('.')
                ))
        );
        for check in &profile.check {
            let _ = writeln!(out, "  - to check: {check}");
        }
    }
    out
}
// ANCHOR_END: render_page

/// Text made safe for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `250000` as `250,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(250_000), "250,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }
}
