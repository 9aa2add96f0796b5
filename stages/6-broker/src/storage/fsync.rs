//! When a partition syncs: stage 2's four policies, owned here.
//!
//! The names and meanings are stage 2's (`always`, `every-batch`,
//! `interval-<N>ms`, `never`; see its chapter). The engine keeps its own copy
//! of the enum rather than importing stage 2's: a change made to teach
//! something in stage 2 must never change what the broker accepts or
//! promises. A test in the bench crate checks that every parser of these
//! names (stage 2's, the workloads', this one) agrees.

use std::time::Duration;

// ANCHOR: fsync_policy
/// When a partition calls `fdatasync`: the trade between what a crash can
/// lose and what each append costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append is written and synced before it is acknowledged.
    Always,
    /// Records wait in memory until a batch is full (`flush_count` records
    /// or `flush_bytes`) or the saver runs; each batch is written and synced
    /// as one. An append's answer says whether its records are synced yet
    /// (`durable`): a small produce is answered before its batch is.
    EveryBatch,
    /// Writes are synced by the background saver at most this often; an
    /// acknowledged append may be lost if the machine fails within this long.
    Interval(Duration),
    /// Never synced by us: the operating system writes back when it likes.
    Never,
}
// ANCHOR_END: fsync_policy

impl FsyncPolicy {
    /// The policy's name: `always`, `every-batch`, `interval-100ms`, `never`.
    pub fn name(&self) -> String {
        match self {
            FsyncPolicy::Always => "always".to_string(),
            FsyncPolicy::EveryBatch => "every-batch".to_string(),
            FsyncPolicy::Interval(every) => format!("interval-{}ms", every.as_millis()),
            FsyncPolicy::Never => "never".to_string(),
        }
    }

    /// Parses a name; `None` if it is not one of the four. An interval of
    /// 0 ms parses, and [`crate::Config::validate`] refuses it with its reason.
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text {
            "always" => Some(FsyncPolicy::Always),
            "every-batch" => Some(FsyncPolicy::EveryBatch),
            "never" => Some(FsyncPolicy::Never),
            _ => {
                let ms = text.strip_prefix("interval-")?.strip_suffix("ms")?;
                Some(FsyncPolicy::Interval(Duration::from_millis(
                    ms.parse().ok()?,
                )))
            }
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<FsyncPolicy, String> {
        FsyncPolicy::parse(text).ok_or_else(|| {
            format!(
                "unknown fsync policy {text:?}: use always, every-batch, interval-<N>ms \
                 (N at least 1, e.g. interval-250ms) or never"
            )
        })
    }
}

/// A settings file spells a policy by its name.
impl serde::Serialize for FsyncPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FsyncPolicy, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_names_read_back_and_nonsense_is_refused() {
        for policy in [
            FsyncPolicy::Always,
            FsyncPolicy::EveryBatch,
            FsyncPolicy::Interval(Duration::from_millis(250)),
            FsyncPolicy::Never,
        ] {
            assert_eq!(FsyncPolicy::parse(&policy.name()), Some(policy));
        }
        for bad in ["interval-ms", "interval-5s", "sometimes", ""] {
            assert_eq!(FsyncPolicy::parse(bad), None, "{bad}");
        }
    }
}
