//! The fsync policy a workload asks for, by name.
//!
//! The names are the ones stage 2 introduces (`always`, `every-batch`,
//! `interval-<N>ms`, `never`) and every later stage keeps. This crate checks
//! the name when a workload loads but depends on no stage (the stages depend
//! on it), so the ladder turns it into a stage's own policy type by name:
//! `stage2_batching::FsyncPolicy::parse(&workload.fsync.name())`. A test in
//! the bench crate checks both parsers agree on every committed workload.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// When a stage syncs its log to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fsync {
    /// After every append, before acknowledging it.
    Always,
    /// After every batch, before acknowledging it (the default: what a
    /// durable broker promises per produce request).
    #[default]
    EveryBatch,
    /// On a timer: an acknowledged write may be lost if the machine fails
    /// within this long of it.
    Interval(Duration),
    /// Never: the OS writes back when it chooses.
    Never,
}

/// A policy name that is not one of the four.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "unknown fsync policy `{0}`: use always, every-batch, interval-<N>ms \
     (N at least 1, e.g. interval-100ms) or never"
)]
pub struct UnknownFsync(pub String);

impl Fsync {
    /// The policy's name, as written in workload files and results:
    /// `always`, `every-batch`, `interval-100ms`, `never`.
    pub fn name(&self) -> String {
        match self {
            Fsync::Always => "always".to_string(),
            Fsync::EveryBatch => "every-batch".to_string(),
            Fsync::Interval(every) => format!("interval-{}ms", every.as_millis()),
            Fsync::Never => "never".to_string(),
        }
    }

    /// Parses a name. An interval of 0 ms is refused: a timer that fires
    /// continuously is `always` under another name, and stage 2 refuses it too.
    pub fn parse(text: &str) -> Result<Fsync, UnknownFsync> {
        let unknown = || UnknownFsync(text.to_string());
        match text {
            "always" => Ok(Fsync::Always),
            "every-batch" => Ok(Fsync::EveryBatch),
            "never" => Ok(Fsync::Never),
            _ => {
                let ms: u64 = text
                    .strip_prefix("interval-")
                    .and_then(|rest| rest.strip_suffix("ms"))
                    .and_then(|ms| ms.parse().ok())
                    .filter(|&ms| ms > 0)
                    .ok_or_else(unknown)?;
                Ok(Fsync::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Fsync {
    type Err = UnknownFsync;

    fn from_str(text: &str) -> Result<Fsync, UnknownFsync> {
        Fsync::parse(text)
    }
}

impl Serialize for Fsync {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Fsync {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fsync, D::Error> {
        let text = String::deserialize(deserializer)?;
        Fsync::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fsync_name_reads_back_as_itself() {
        for name in [
            "always",
            "every-batch",
            "interval-100ms",
            "interval-1ms",
            "never",
        ] {
            assert_eq!(Fsync::parse(name).unwrap().name(), name);
        }
        assert_eq!(Fsync::default(), Fsync::EveryBatch);
    }

    #[test]
    fn unknown_fsync_names_are_errors_naming_them() {
        for bad in [
            "sometimes",
            "interval-0ms",
            "interval-5s",
            "interval-ms",
            "Always",
        ] {
            let error = Fsync::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
