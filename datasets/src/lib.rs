//! Workloads shared by every stage's benchmarks, and the payloads they send.
//!
//! A workload is a TOML file in this crate's folder (`datasets/<name>.toml`), so
//! every stage is measured on exactly the same work, named the same way in every
//! results file. Sizes and payloads come from seeded generators: the same seed
//! gives the same sizes and bytes on every machine and every run.
//!
//! ## The file
//!
//! ```toml
//! description = "what it is for, in one line"   # required
//! messages = 20000         # required: messages per run (see `duration`)
//! message_size = 1024      # required: bytes, or a distribution table:
//! # message_size = { distribution = "log-normal", median = 1024, sigma = 1.0, min = 16, max = 65536 }
//! payload = "random"       # required: random, json-events or log-lines
//! seed = 42                # required: seed of the size and payload generators
//! batch = 1                # messages per append or produce request
//! producers = 1            # producer connections (network rungs)
//! consumers = 1            # consumer connections, 0 to 'partitions'
//! partitions = 1           # partitions (stage 3: streams) the producers spread over
//! rate = 50000             # optional: total messages/s, open loop; absent: closed loop
//! duration = "30s"         # optional: a timed run (500ms, 30s, 2m)
//! fsync = "every-batch"    # always, every-batch, interval-<N>ms or never
//! roles = "both"           # both, producers (alone) or consumers (alone, over a pre-filled topic)
//! partitioning = "round-robin"  # or pinned: producer i writes partition i only
//! ```
//!
//! Every key but the first five has the default shown (`rate` and `duration`:
//! absent). A misspelled key is an error naming it, not a silently ignored line.
//! `roles` and `partitioning` came later than the rest; their defaults are
//! what every run did before them (see [`roles`](mod@roles) for what each means).
//!
//! **`duration` wins over `messages`** wherever a run can be timed: the load
//! generator then stops producing after `duration` (its warmup excluded),
//! however many messages that is. Rungs that write a fixed set of messages in
//! process (the storage ladder) always use `messages`, so `messages` is
//! required even in a timed workload.
//!
//! Invariants a loaded [`Workload`] keeps (checked by [`Workload::validate`]
//! when it loads): at least one message, batch, producer and partition; no
//! more consumers than partitions (a consumer owns whole partitions); a rate
//! and a duration, when given, above zero; a size distribution whose bounds
//! are in order; roles that fit the counts ([`roles::check`]: producers alone
//! with `consumers = 0`, consumers alone with a consumer and a message count,
//! pinned producers leaving no partition empty).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod compress;
mod duration;
mod fsync;
mod math;
mod payload;
mod rng;
pub mod roles;
mod size;
mod text;

pub use fsync::{Fsync, UnknownFsync};
pub use payload::{PayloadKind, Payloads};
pub use roles::{Partitioning, Roles, RolesError};
pub use size::{MessageSize, SizeError};

/// One workload, as read from `datasets/<name>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The file name without `.toml`; filled in by [`Workload::load`] (a
    /// `name` key in the file is refused: the file's name is the only name).
    /// Serialized, so a results file can carry the whole workload.
    #[serde(default)]
    pub name: String,
    /// One line saying what the workload is.
    pub description: String,
    /// Messages to send in total (after any warmup a harness adds).
    pub messages: u64,
    /// Stop a timed run after this long instead of after `messages`
    /// (see the module docs for which wins where).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Payload bytes per message: fixed, or drawn per message.
    pub message_size: MessageSize,
    /// Messages per append or produce request.
    #[serde(default = "one")]
    pub batch: u32,
    /// Producer connections of networked runs.
    #[serde(default = "one")]
    pub producers: u32,
    /// Consumer connections of networked runs (0: producers only).
    #[serde(default = "one")]
    pub consumers: u32,
    /// Partitions the producers spread over (stage 3: streams).
    #[serde(default = "one")]
    pub partitions: u32,
    /// Total messages per second across producers, sent on a fixed schedule
    /// (open loop); `None` sends as fast as acknowledgements come back
    /// (closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// When every stage syncs to disk: the durability every number is
    /// measured at.
    #[serde(default)]
    pub fsync: Fsync,
    /// What the payload bytes look like.
    pub payload: PayloadKind,
    /// Seed of the size and payload generators.
    pub seed: u64,
    /// Who networked runs measure: producers and consumers at once (the
    /// default), producers alone, or consumers alone over a topic filled
    /// first. Left out when it is the default, so a workload written out
    /// before roles existed reads back unchanged.
    #[serde(default, skip_serializing_if = "Roles::is_both")]
    pub roles: Roles,
    /// How producers spread over partitions: round-robin (the default) or
    /// pinned, one partition each.
    #[serde(default, skip_serializing_if = "Partitioning::is_round_robin")]
    pub partitioning: Partitioning,
}

fn one() -> u32 {
    1
}

/// Why a workload could not be loaded.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The file (or the folder, when listing) is missing or unreadable.
    #[error("cannot read workload {}: {source}", path.display())]
    Read {
        /// The file tried.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a workload: a misspelled or missing
    /// key, a wrong type, an unknown payload kind or fsync policy.
    #[error("invalid workload {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the line.
        source: toml::de::Error,
    },
    /// The file parses, but its values cannot run.
    #[error("invalid workload {}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Invalid,
    },
}

/// A workload whose values cannot run (see [`Workload::validate`]).
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Invalid {
    /// The file has a `name` key.
    #[error("`name` comes from the file's name: remove the key")]
    NameInFile,
    /// A count that must be at least 1 is 0.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A consumer would own no partition.
    #[error(
        "{consumers} consumers for {partitions} partitions: a consumer owns whole \
         partitions, so use at most {partitions}"
    )]
    MoreConsumersThanPartitions {
        /// Consumers asked for.
        consumers: u32,
        /// Partitions available.
        partitions: u32,
    },
    /// `duration` is zero.
    #[error("`duration` must be longer than zero")]
    ZeroDuration,
    /// The size distribution is malformed.
    #[error("message_size: {0}")]
    Size(#[from] SizeError),
    /// `roles` or `partitioning` does not fit the counts.
    #[error("{0}")]
    Roles(#[from] RolesError),
}

/// A harness that measures one fixed message size was given a distribution.
#[derive(Debug, Clone, Error, PartialEq)]
#[error(
    "workload `{workload}` has {size}, but this measures one fixed message size: \
     use a workload with `message_size = <bytes>` (such as `quick`)"
)]
pub struct NotFixed {
    /// The workload's name.
    pub workload: String,
    /// Its sizes.
    pub size: MessageSize,
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
        let stem = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        Workload::parse(&text, &stem, path)
    }

    /// Parses `text` as the workload `name`; `path` is for errors only.
    fn parse(text: &str, name: &str, path: &Path) -> Result<Workload, WorkloadError> {
        let mut workload: Workload =
            toml::from_str(text).map_err(|source| WorkloadError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |source| WorkloadError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        if !workload.name.is_empty() {
            return Err(invalid(Invalid::NameInFile));
        }
        workload.name = name.to_string();
        workload.validate().map_err(invalid)?;
        Ok(workload)
    }

    /// The names of every workload in [`Workload::dir`], sorted.
    pub fn names() -> Result<Vec<String>, WorkloadError> {
        let dir = Workload::dir();
        let read = |source| WorkloadError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read)? {
            let path = entry.map_err(read)?.path();
            // Cargo.toml sits beside the workloads; it is the one that is not one.
            if path.extension().is_some_and(|ext| ext == "toml")
                && path.file_name().is_some_and(|name| name != "Cargo.toml")
                && let Some(stem) = path.file_stem()
            {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Checks the invariants listed in the module docs.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (key, value) in [
            ("messages", self.messages),
            ("batch", u64::from(self.batch)),
            ("producers", u64::from(self.producers)),
            ("partitions", u64::from(self.partitions)),
            ("rate", self.rate.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(Invalid::Zero(key));
            }
        }
        if self.consumers > self.partitions {
            return Err(Invalid::MoreConsumersThanPartitions {
                consumers: self.consumers,
                partitions: self.partitions,
            });
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(Invalid::ZeroDuration);
        }
        self.message_size.validate()?;
        roles::check(&roles::Shape {
            roles: self.roles,
            partitioning: self.partitioning,
            producers: self.producers,
            consumers: self.consumers,
            partitions: self.partitions,
            timed: self.duration.is_some(),
            paced: self.rate.is_some(),
        })?;
        Ok(())
    }

    /// The payload generator this workload specifies.
    pub fn payloads(&self) -> Payloads {
        Payloads::new(self.payload, self.seed)
    }

    /// The payload size of message `n`.
    pub fn size_of(&self, n: u64) -> u32 {
        self.message_size.size_of(n, self.seed)
    }

    /// The payload of message `n`: its size and its bytes, both from the seed.
    pub fn payload(&self, n: u64) -> Vec<u8> {
        self.payloads().payload(n, self.size_of(n) as usize)
    }

    /// The message size, for harnesses that measure one size only (the
    /// criterion suites); an error naming the workload for a distribution.
    pub fn fixed_size(&self) -> Result<u32, NotFixed> {
        self.message_size.fixed().ok_or_else(|| NotFixed {
            workload: self.name.clone(),
            size: self.message_size,
        })
    }

    /// Total payload bytes of `messages` messages: exact, so for a size
    /// distribution it draws every size (linear in `messages`).
    pub fn payload_bytes(&self) -> u64 {
        match self.message_size.fixed() {
            Some(size) => self.messages * u64::from(size),
            None => (0..self.messages).map(|n| u64::from(self.size_of(n))).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as a workload named `test`.
    fn parse(text: &str) -> Result<Workload, WorkloadError> {
        Workload::parse(text, "test", Path::new("test.toml"))
    }

    const MINIMAL: &str =
        "description = \"x\"\nmessages = 10\nmessage_size = 64\npayload = \"random\"\nseed = 1\n";

    #[test]
    fn quick_workload_loads_with_its_name_and_meaning() {
        let workload = Workload::load("quick").unwrap();
        assert_eq!(workload.name, "quick");
        assert_eq!(workload.message_size, MessageSize::Fixed(1024));
        assert_eq!(workload.messages, 20_000);
        assert_eq!(workload.payload, PayloadKind::Random);
        assert_eq!(workload.seed, 42);
        assert_eq!(
            (workload.producers, workload.partitions, workload.batch),
            (1, 1, 1)
        );
        assert_eq!(workload.payload_bytes(), 20_000 * 1024);
    }

    #[test]
    fn every_committed_workload_loads_and_is_listed() {
        let names = Workload::names().unwrap();
        for expected in [
            "quick",
            "tiny",
            "1k-batch-1000",
            "tiny-100b",
            "large-64k",
            "mixed-sizes",
            "throughput",
            "iggy-pinned-producer",
            "iggy-pinned-consumer",
            "iggy-balanced",
            "omb-1-topic-16-partitions-1kb",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        assert!(!names.iter().any(|n| n == "Cargo"));
        for name in names {
            let workload = Workload::load(&name).unwrap();
            assert_eq!(workload.name, name);
            assert!(!workload.description.is_empty(), "{name}");
        }
    }

    #[test]
    fn defaults_fill_in_the_optional_keys() {
        let workload = parse(MINIMAL).unwrap();
        assert_eq!(workload.batch, 1);
        assert_eq!((workload.producers, workload.consumers), (1, 1));
        assert_eq!(workload.partitions, 1);
        assert_eq!((workload.rate, workload.duration), (None, None));
        assert_eq!(workload.fsync, Fsync::EveryBatch);
        assert_eq!(workload.roles, Roles::Both);
        assert_eq!(workload.partitioning, Partitioning::RoundRobin);
        // Written out, the defaults are left out: a workload from before
        // roles existed is written exactly as it was.
        let text = toml::to_string(&workload).unwrap();
        assert!(
            !text.contains("roles") && !text.contains("partitioning"),
            "{text}"
        );
    }

    #[test]
    fn roles_and_pinning_are_read() {
        let producers = parse(&format!(
            "{MINIMAL}roles = \"producers\"\nconsumers = 0\npartitioning = \"pinned\"\n"
        ))
        .unwrap();
        assert_eq!(producers.roles, Roles::Producers);
        assert_eq!(producers.partitioning, Partitioning::Pinned);
        let consumers = parse(&format!("{MINIMAL}roles = \"consumers\"\n")).unwrap();
        assert_eq!(consumers.roles, Roles::Consumers);
        let text = toml::to_string(&producers).unwrap();
        assert_eq!(toml::from_str::<Workload>(&text).unwrap(), producers);
    }

    #[test]
    fn every_key_is_read() {
        let workload = parse(
            "description = \"x\"\nmessages = 10\nseed = 1\npayload = \"log-lines\"\n\
             message_size = { distribution = \"log-normal\", median = 100, sigma = 0.5, max = 1000 }\n\
             batch = 5\nproducers = 2\nconsumers = 3\npartitions = 4\nrate = 1000\n\
             duration = \"2s\"\nfsync = \"interval-50ms\"\n",
        )
        .unwrap();
        assert_eq!(
            workload.message_size,
            MessageSize::LogNormal {
                median: 100,
                sigma: 0.5,
                min: 1,
                max: 1000
            }
        );
        assert_eq!(workload.payload, PayloadKind::LogLines);
        assert_eq!((workload.batch, workload.producers), (5, 2));
        assert_eq!((workload.consumers, workload.partitions), (3, 4));
        assert_eq!(workload.rate, Some(1000));
        assert_eq!(workload.duration, Some(Duration::from_secs(2)));
        assert_eq!(workload.fsync, Fsync::Interval(Duration::from_millis(50)));
        assert!(workload.fixed_size().is_err());
    }

    #[test]
    fn a_workload_written_out_reads_back_the_same() {
        // What a results file embedding a workload relies on. TOML here (this
        // crate has no JSON dependency): the same serde impls either way.
        for name in Workload::names().unwrap() {
            let workload = Workload::load(&name).unwrap();
            let text = toml::to_string(&workload).unwrap();
            let back: Workload = toml::from_str(&text).unwrap();
            assert_eq!(back, workload, "{name}: {text}");
        }
    }

    #[test]
    fn misspelled_keys_and_unknown_names_are_errors_naming_them() {
        let cases = [
            (MINIMAL.replace("message_size", "mesage_size"), "mesage_size"),
            (format!("{MINIMAL}fsync = \"sometimes\"\n"), "sometimes"),
            (MINIMAL.replace("\"random\"", "\"xml\""), "xml"),
            (format!("{MINIMAL}batchsize = 3\n"), "batchsize"),
            (format!("{MINIMAL}duration = \"30\"\n"), "30"),
            (
                MINIMAL.replace(
                    "message_size = 64",
                    "message_size = { distribution = \"log-normal\", median = 1, sigma = 1.0, max = 9, mni = 1 }",
                ),
                "mni",
            ),
            (
                MINIMAL.replace(
                    "message_size = 64",
                    "message_size = { distribution = \"zipf\", median = 1, sigma = 1.0, max = 9 }",
                ),
                "zipf",
            ),
            (format!("{MINIMAL}name = \"other\"\n"), "name"),
            (format!("{MINIMAL}roles = \"readers\"\n"), "readers"),
            (format!("{MINIMAL}partitioning = \"sticky\"\n"), "sticky"),
        ];
        for (text, named) in cases {
            let error = parse(&text).unwrap_err().to_string();
            assert!(error.contains(named), "{named}: {error}");
        }
    }

    #[test]
    fn values_that_cannot_run_are_refused() {
        let cases = [
            (MINIMAL.replace("messages = 10", "messages = 0"), "messages"),
            (format!("{MINIMAL}batch = 0\n"), "batch"),
            (format!("{MINIMAL}consumers = 2\n"), "2 consumers"),
            (format!("{MINIMAL}rate = 0\n"), "rate"),
            (format!("{MINIMAL}duration = \"0s\"\n"), "duration"),
            (
                MINIMAL.replace(
                    "message_size = 64",
                    "message_size = { distribution = \"log-normal\", median = 100, sigma = 1.0, max = 10 }",
                ),
                "min <= median <= max",
            ),
            // The default `consumers = 1` is a consumer too: producers alone
            // must say 0, rather than have a count silently ignored.
            (
                format!("{MINIMAL}roles = \"producers\"\n"),
                "consumers must be 0 (it is 1)",
            ),
            (
                format!("{MINIMAL}roles = \"consumers\"\nduration = \"2s\"\n"),
                "not a duration",
            ),
            (
                format!("{MINIMAL}roles = \"consumers\"\nrate = 100\n"),
                "not a rate",
            ),
            (
                format!(
                    "{MINIMAL}partitioning = \"pinned\"\npartitions = 4\nproducers = 2\nconsumers = 0\n"
                ),
                "would leave 2 of them empty",
            ),
        ];
        for (text, says) in cases {
            let error = parse(&text).unwrap_err();
            assert!(
                matches!(error, WorkloadError::Invalid { .. }),
                "{says}: {error}"
            );
            assert!(error.to_string().contains(says), "{says}: {error}");
        }
    }

    #[test]
    fn a_variable_size_is_an_error_naming_the_workload_where_one_size_is_needed() {
        let error = Workload::load("mixed-sizes")
            .unwrap()
            .fixed_size()
            .unwrap_err()
            .to_string();
        assert!(error.contains("`mixed-sizes`"), "{error}");
        assert!(error.contains("log-normal"), "{error}");
        assert_eq!(Workload::load("quick").unwrap().fixed_size(), Ok(1024));
    }

    #[test]
    fn a_workload_payload_has_its_drawn_size() {
        let workload = Workload::load("mixed-sizes").unwrap();
        for n in 0..50 {
            assert_eq!(workload.payload(n).len(), workload.size_of(n) as usize);
        }
    }
}
