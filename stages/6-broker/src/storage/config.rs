//! How a partition stores its records: one struct, every key with a default.

use std::time::Duration;

use crate::storage::fsync::FsyncPolicy;
use thiserror::Error;

use crate::storage::aligned::ALIGN;

// ANCHOR: config
/// The storage settings of a partition. [`Config::default`] is what the
/// broker runs with; every key can be changed, and [`Config::validate`] names
/// the key that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bytes of records per segment: where it rolls over to the next one.
    /// A multiple of 4096, and at most 4 GiB (index positions are `u32`).
    /// The file is allocated up to it in steps of `preallocate_step`.
    pub segment_size: u64,
    /// The unit a segment's file grows in: a new segment's file is
    /// allocated this many bytes (or `segment_size`, if smaller), and an
    /// append that would reach past the allocated length first grows it by
    /// as much as it holds, from one step to sixteen (see
    /// [`crate::storage::segment::growth_target`]); the next sync commits
    /// the new length, once per grow. So an idle partition takes one step
    /// of disk. A multiple of 4096.
    pub preallocate_step: u64,
    /// Open segments with `O_DIRECT`: writes and reads go between the aligned
    /// buffers and the device, past the page cache. Off, the same code makes
    /// the same calls through the page cache, to measure the difference.
    pub direct_io: bool,
    /// When to sync (stage 2's policies, with stage 2's meaning).
    pub fsync: FsyncPolicy,
    /// Write buffered records once this many are waiting...
    pub flush_count: usize,
    /// ... or once they hold this many bytes. Also the size of each of an
    /// active segment's three buffers (rounded up to blocks, plus the tail
    /// block: one written while appends fill another, and the last written
    /// one kept for reads), so it is the size of a normal write too.
    pub flush_bytes: usize,
    /// How often the saver (`Partition::tick`) is expected to run; under
    /// `Interval` it syncs no more often than the interval itself.
    pub saver_interval: Duration,
    /// At most this many bytes of records per poll (at least one record is
    /// always returned, however large), so a poll's buffer is bounded.
    pub max_poll_bytes: u64,
    /// Retention by size: once the partition's records take more than this
    /// many bytes, its oldest sealed segments are deleted, whole, until they
    /// do not (the active segment is never deleted). `None` keeps everything.
    /// At least one `segment_size`. Counted in bytes of records, as
    /// `PartitionInfo::bytes` shows them; the disk holds a little more, as
    /// each file is allocated ahead of its records (by at most 16
    /// `preallocate_step`s, 64 MiB by default).
    pub retention_bytes: Option<u64>,
    /// Retention by age: a sealed segment whose newest record is older than
    /// this is deleted, whole (so records live at least this long, and up to
    /// one segment's filling time longer). `None` keeps everything.
    pub retention_age: Option<Duration>,
}
// ANCHOR_END: config

impl Default for Config {
    fn default() -> Config {
        Config {
            // Iggy's default: few enough files for years of data, small enough
            // that retention frees space in useful steps.
            segment_size: 1 << 30,
            // What an idle partition costs the disk: a few MiB, so a topic
            // of a thousand partitions asks for 4 GiB, not a terabyte. Busy
            // files grow by what they hold, up to 16 steps (64 MiB) at once,
            // so a small first step costs a busy partition a few grows more,
            // not a grow per write (see `segment::growth_target`). Rejected:
            // 1 MiB, as small as a write; 64 MiB, a busy file's growth, for
            // every idle partition.
            preallocate_step: 4 << 20,
            direct_io: true,
            // What a durable broker promises per produce request.
            fsync: FsyncPolicy::EveryBatch,
            flush_count: 1000,
            // 1 MiB writes: past that, sequential direct writes gain little,
            // and below it the per-request cost starts to show.
            flush_bytes: 1 << 20,
            saver_interval: Duration::from_millis(100),
            max_poll_bytes: 8 << 20,
            // Deleting data is the operator's decision, never a default.
            retention_bytes: None,
            retention_age: None,
        }
    }
}

/// A configuration value that cannot work, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid config `{key}`: {reason}")]
pub struct ConfigError {
    /// The key, as it is spelled in the config struct and file.
    pub key: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl Config {
    /// Checks every key; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key, reason: String| Err(ConfigError { key, reason });
        if self.segment_size == 0 || !self.segment_size.is_multiple_of(ALIGN as u64) {
            return fail(
                "segment_size",
                format!(
                    "must be a positive multiple of {ALIGN} (Direct I/O writes whole blocks), got {}",
                    self.segment_size
                ),
            );
        }
        if self.segment_size > u64::from(u32::MAX) {
            return fail(
                "segment_size",
                format!(
                    "must be below 4 GiB (index positions are u32), got {}",
                    self.segment_size
                ),
            );
        }
        if self.preallocate_step == 0 || !self.preallocate_step.is_multiple_of(ALIGN as u64) {
            return fail(
                "preallocate_step",
                format!(
                    "must be a positive multiple of {ALIGN} (files grow in whole blocks), got {}",
                    self.preallocate_step
                ),
            );
        }
        if self.flush_count == 0 {
            return fail("flush_count", "must be at least 1".to_string());
        }
        if self.flush_bytes == 0 || self.flush_bytes > 1 << 30 {
            return fail(
                "flush_bytes",
                format!("must be from 1 to 1 GiB, got {}", self.flush_bytes),
            );
        }
        if self.saver_interval.is_zero() {
            return fail("saver_interval", "must be longer than zero".to_string());
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return fail("fsync", "an interval must be longer than zero".to_string());
        }
        if self.max_poll_bytes == 0 {
            return fail("max_poll_bytes", "must be at least 1".to_string());
        }
        if let Some(bytes) = self.retention_bytes
            && bytes < self.segment_size
        {
            // Retention deletes whole segments: a limit below one segment
            // could never be met, and would delete every sealed segment.
            return fail(
                "retention_bytes",
                format!(
                    "must be at least one segment_size ({}), got {bytes}",
                    self.segment_size
                ),
            );
        }
        if self.retention_age.is_some_and(|age| age.is_zero()) {
            return fail("retention_age", "must be longer than zero".to_string());
        }
        Ok(())
    }

    /// The capacity of a segment's write buffer: `flush_bytes` in whole
    /// blocks, plus one block for the partial tail block carried over.
    pub fn write_buffer_bytes(&self) -> usize {
        self.flush_bytes.div_ceil(ALIGN) * ALIGN + ALIGN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn config_bad_values_are_refused_by_key() {
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 11] = [
            ("segment_size", |c| c.segment_size = 4097),
            ("segment_size", |c| c.segment_size = 0),
            ("segment_size", |c| c.segment_size = 8 << 30),
            ("preallocate_step", |c| c.preallocate_step = 0),
            ("preallocate_step", |c| c.preallocate_step = 5000),
            ("flush_count", |c| c.flush_count = 0),
            ("flush_bytes", |c| c.flush_bytes = 0),
            ("saver_interval", |c| c.saver_interval = Duration::ZERO),
            ("fsync", |c| c.fsync = FsyncPolicy::Interval(Duration::ZERO)),
            ("retention_bytes", |c| c.retention_bytes = Some(4096)),
            ("retention_age", |c| c.retention_age = Some(Duration::ZERO)),
        ];
        for (key, spoil) in cases {
            let mut config = Config::default();
            spoil(&mut config);
            let error = config.validate().unwrap_err();
            assert_eq!(error.key, key);
            assert!(error.to_string().contains(key));
        }
    }

    #[test]
    fn config_write_buffer_is_whole_blocks_plus_the_tail_block() {
        let config = Config {
            flush_bytes: 5000,
            ..Config::default()
        };
        assert_eq!(config.write_buffer_bytes(), 3 * ALIGN);
    }
}
