//! Workloads shared by every stage's benchmarks, and the payloads they send.
//!
//! A workload is a TOML file in this crate's folder (`datasets/<name>.toml`), so
//! every stage is measured on exactly the same work, named the same way in every
//! results file. Payloads come from a seeded generator: the same seed gives the same
//! bytes on every machine and every run.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

mod payload;

pub use payload::{PayloadKind, Payloads};

/// One workload, as read from `datasets/<name>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The file name without `.toml`; filled in by [`Workload::load`].
    #[serde(skip)]
    pub name: String,
    /// One line saying what the workload is.
    pub description: String,
    /// Messages to send in total.
    pub messages: u64,
    /// Payload bytes per message.
    pub message_size: u32,
    /// What the payload bytes look like.
    pub payload: PayloadKind,
    /// Seed of the payload generator.
    pub seed: u64,
}

/// Why a workload could not be loaded.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The file is missing or unreadable.
    #[error("cannot read workload {}: {source}", path.display())]
    Read {
        /// The file tried.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not a valid workload.
    #[error("invalid workload {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the line.
        source: toml::de::Error,
    },
}

impl Workload {
    /// The folder holding the workload files.
    pub fn dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// Loads `datasets/<name>.toml`.
    pub fn load(name: &str) -> Result<Workload, WorkloadError> {
        Workload::load_path(&Workload::dir().join(format!("{name}.toml")))
    }

    /// Loads a workload from any path; its name is the file stem.
    pub fn load_path(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut workload: Workload =
            toml::from_str(&text).map_err(|source| WorkloadError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        workload.name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(workload)
    }

    /// The payload generator this workload specifies.
    pub fn payloads(&self) -> Payloads {
        Payloads::new(self.payload, self.seed)
    }

    /// Total payload bytes of the workload.
    pub fn payload_bytes(&self) -> u64 {
        self.messages * u64::from(self.message_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_workload_loads_with_its_name() {
        let workload = Workload::load("quick").unwrap();
        assert_eq!(workload.name, "quick");
        assert_eq!(workload.message_size, 1024);
        assert!(workload.messages > 0);
    }

    #[test]
    fn a_misspelled_key_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("rivulet-datasets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("typo.toml");
        std::fs::write(
            &path,
            "description = \"x\"\nmessages = 1\nmesage_size = 1\npayload = \"random\"\nseed = 1\n",
        )
        .unwrap();
        let error = Workload::load_path(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("mesage_size"), "{error}");
    }
}
