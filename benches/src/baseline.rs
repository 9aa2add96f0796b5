//! The code a change is measured against, in the same run: a `rivulet-server`
//! built from an earlier commit by `scripts/build-baseline <commit>`, which
//! leaves the binary at `target/baseline/<commit>/rivulet-server` with a
//! `COMMIT` file beside it, and prints the binary's path.
//!
//! A bench that compares with it (`small_messages`) takes the path from
//! [`ENV`], and the commit from the `COMMIT` file, so a results file names
//! both sides of its ratio. Why a binary and not the old code linked in: the
//! two sides then run exactly as an operator runs them, as separate
//! processes with the same flags, and the old code needs no copy in this
//! tree. Rejected: building the old commit from the bench itself (minutes of
//! compiling inside a measurement, on the cores it measures).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The variable that names the baseline binary.
pub const ENV: &str = "RIVULET_BASELINE_SERVER";

/// The file beside the binary that names the commit it was built from.
pub const COMMIT_FILE: &str = "COMMIT";

/// A `rivulet-server` of an earlier commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The binary.
    pub binary: PathBuf,
    /// The commit it was built from (as `COMMIT` says: a short hash).
    pub commit: String,
}

impl Baseline {
    /// The baseline [`ENV`] names, or an error saying how to get one.
    pub fn from_env() -> anyhow::Result<Baseline> {
        let Some(path) = std::env::var_os(ENV) else {
            bail!(
                "{ENV} is not set: this bench compares with rivulet-server as it was at an \
                 earlier commit. Build that one with `scripts/build-baseline <commit>` (it \
                 prints the binary's path) and run again with {ENV}=<that path>"
            );
        };
        Baseline::at(Path::new(&path))
    }

    /// The baseline binary at `binary`, its commit read from the
    /// `COMMIT` file beside it.
    pub fn at(binary: &Path) -> anyhow::Result<Baseline> {
        if !binary.is_file() {
            bail!(
                "{ENV}={}: no such file. `scripts/build-baseline <commit>` builds it (and \
                 prints its path); it may still be building",
                binary.display()
            );
        }
        let commit_file = binary.with_file_name(COMMIT_FILE);
        let commit = std::fs::read_to_string(&commit_file)
            .with_context(|| {
                format!(
                    "{}: the commit of the baseline binary; `scripts/build-baseline` writes it \
                     beside the binary",
                    commit_file.display()
                )
            })?
            .trim()
            .to_string();
        if commit.is_empty() {
            bail!("{} is empty", commit_file.display());
        }
        Ok(Baseline {
            binary: binary.to_path_buf(),
            commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_read_from_beside_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("rivulet-server");
        let error = Baseline::at(&binary).unwrap_err().to_string();
        assert!(error.contains("scripts/build-baseline"), "{error}");
        std::fs::write(&binary, b"").unwrap();
        let error = format!("{:#}", Baseline::at(&binary).unwrap_err());
        assert!(error.contains("COMMIT"), "{error}");
        std::fs::write(dir.path().join(COMMIT_FILE), "30c8d0adda98\n").unwrap();
        assert_eq!(
            Baseline::at(&binary).unwrap(),
            Baseline {
                binary: binary.clone(),
                commit: "30c8d0adda98".into()
            }
        );
    }
}
