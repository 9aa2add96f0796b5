//! What a load-generator run does: how many actors, what they send, for how
//! long, and how the sends are paced.
//!
//! A [`LoadConfig`] is plain data, written whole into every results file, so a
//! number can always be traced back to the run that made it. [`LoadConfig::validate`]
//! is the only gate: a config that passes it cannot make the run divide by zero,
//! spin forever on nothing, or write payloads too short for their timestamp.
//! [`LoadConfig::from_workload`] reads one off a workload file, which is how
//! the ladder and `rivulet-bench --workload` drive a run.

use std::fmt;
use std::time::Duration;

use rivulet_datasets::roles::{self, Shape};
use rivulet_datasets::{
    MessageSize, Partitioning, PayloadKind, Roles, RolesError, SizeError, Workload,
};
use serde::{Deserialize, Serialize};

/// Bytes at the start of every payload that carry its send timestamp.
pub const TIMESTAMP_LEN: usize = 8;

/// One load-generator run, as configured.
///
/// Partitioning (the invariant consumers and the results rely on):
/// - round-robin (the default): producer `i` sends its `j`-th batch to
///   partition `(i + j) % partitions`, started at a different partition per
///   producer, so every partition gets traffic even with fewer producers than
///   partitions, and no two producers start on the same partition;
/// - pinned: producer `i` sends every batch to partition `i % partitions`
///   (iggy-bench's pinned producers), with no partition left empty;
/// - consumer `c` owns the partitions `p` with `p % consumers == c`, and reads
///   each from offset 0 until it has every message the producers had
///   acknowledged there when they finished.
///
/// Roles ([`Roles`]): producers and consumers at once (the default),
/// producers alone (`consumers` is 0), or consumers alone, over a topic the
/// producers fill first with every message of their quotas, unmeasured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadConfig {
    /// Producer tasks, each with its own connection and one request in flight.
    pub producers: u32,
    /// Consumer tasks, each with its own connection; 0 measures producers only.
    /// At most `partitions`, so none sits idle.
    pub consumers: u32,
    /// Partitions the target prepares and the producers spread over.
    pub partitions: u32,
    /// Payload bytes per message, including the 8-byte timestamp: fixed, or
    /// drawn per message from a distribution (see [`LoadConfig::size_of`]).
    /// A results file written before distributions existed has a plain
    /// number here, which reads back as a fixed size.
    pub message_size: MessageSize,
    /// What the payload bytes after the timestamp look like. Absent from
    /// results files written before payload kinds existed: those were random.
    #[serde(default = "random")]
    pub payload: PayloadKind,
    /// Messages per produce request.
    pub batch: u32,
    /// Messages asked for per poll.
    pub poll_batch: u32,
    /// When the producers stop (after the warmup).
    pub stop: Stop,
    /// What is sent before measuring starts, and discarded.
    pub warmup: Warmup,
    /// How sends are paced.
    pub mode: Mode,
    /// Seed of the size and payload generators (`rivulet_datasets`).
    pub seed: u64,
    /// How long consumers may take to catch up after the producers finish,
    /// before the missing messages are reported as a shortfall.
    #[serde(with = "seconds")]
    pub drain_timeout: Duration,
    /// The longest one produce or poll may take before the run fails: a target
    /// that stops answering ends the run with an error, not a hang.
    #[serde(with = "seconds")]
    pub op_timeout: Duration,
    /// Who is measured: both sides at once, producers alone, or consumers
    /// alone over a topic filled first. Absent from results files written
    /// before roles existed: those ran both.
    #[serde(default)]
    pub roles: Roles,
    /// How producers spread over partitions. Absent from results files
    /// written before pinning existed: those were round-robin.
    #[serde(default)]
    pub partitioning: Partitioning,
}

/// When the producers stop.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// After this many measured messages in total (split evenly across
    /// producers, the first ones taking the remainder), sent after the warmup.
    Messages(u64),
    /// When this long has passed since measuring started.
    Duration(#[serde(with = "seconds")] Duration),
}

/// What is sent before measuring starts. Every sample (latency, throughput)
/// whose send started before the end of the warmup is discarded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Warmup {
    /// Measure from the first send.
    None,
    /// Measuring starts when this many messages have been acknowledged, in
    /// total across producers.
    Messages(u64),
    /// Measuring starts this long after the first send.
    Duration(#[serde(with = "seconds")] Duration),
}

/// How sends are paced.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each producer sends its next batch as soon as the previous one is
    /// acknowledged: measures the most the target takes, but a stall pauses
    /// the sender too, so the stall shows in one sample only.
    ClosedLoop,
    /// The producers together send `messages_per_s` on a fixed schedule, and
    /// latency is measured from each batch's scheduled time (see `run`).
    OpenLoop {
        /// Total rate across all producers.
        messages_per_s: u64,
    },
}

impl Default for LoadConfig {
    /// The built-in run: a few seconds at most against the in-process target,
    /// with enough messages that a percentile above p99.9 has samples behind it.
    fn default() -> LoadConfig {
        LoadConfig {
            producers: 2,
            consumers: 2,
            partitions: 2,
            message_size: MessageSize::Fixed(1024),
            payload: PayloadKind::Random,
            batch: 100,
            poll_batch: 100,
            stop: Stop::Messages(200_000),
            warmup: Warmup::Messages(20_000),
            mode: Mode::ClosedLoop,
            seed: 42,
            drain_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            roles: Roles::Both,
            partitioning: Partitioning::RoundRobin,
        }
    }
}

fn random() -> PayloadKind {
    PayloadKind::Random
}

/// Why a config cannot run.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// A message cannot hold its 8-byte send timestamp: a fixed size, or the
    /// largest size of a distribution, below [`TIMESTAMP_LEN`].
    MessageTooSmall {
        /// The size asked for (a distribution's maximum).
        size: u32,
    },
    /// A size distribution is malformed.
    BadSizes(SizeError),
    /// Nothing would be sent.
    NoProducers,
    /// There is nowhere to send.
    NoPartitions,
    /// A consumer would own no partition.
    MoreConsumersThanPartitions {
        /// Consumers asked for.
        consumers: u32,
        /// Partitions available.
        partitions: u32,
    },
    /// A produce would carry no message.
    ZeroBatch,
    /// A poll would ask for no message.
    ZeroPollBatch,
    /// The run would measure nothing (zero messages or zero duration).
    NothingToMeasure,
    /// An open-loop rate of zero would schedule no send.
    ZeroRate,
    /// A timeout of zero fails every operation.
    ZeroTimeout,
    /// The roles or the partitioning do not fit the counts or the pacing.
    Roles(RolesError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MessageTooSmall { size } => write!(
                f,
                "message size {size} is too small: every payload starts with an \
                 {TIMESTAMP_LEN}-byte send timestamp, so the minimum is {TIMESTAMP_LEN}"
            ),
            ConfigError::BadSizes(error) => write!(f, "message sizes: {error}"),
            ConfigError::NoProducers => write!(f, "producers must be at least 1"),
            ConfigError::NoPartitions => write!(f, "partitions must be at least 1"),
            ConfigError::MoreConsumersThanPartitions {
                consumers,
                partitions,
            } => write!(
                f,
                "{consumers} consumers for {partitions} partitions: a consumer owns whole \
                 partitions, so some would have nothing to read (use at most {partitions})"
            ),
            ConfigError::ZeroBatch => write!(f, "batch must be at least 1 message"),
            ConfigError::ZeroPollBatch => write!(f, "poll batch must be at least 1 message"),
            ConfigError::NothingToMeasure => {
                write!(
                    f,
                    "the run must measure at least 1 message or a nonzero duration"
                )
            }
            ConfigError::ZeroRate => write!(f, "an open-loop rate must be at least 1 message/s"),
            ConfigError::ZeroTimeout => write!(f, "timeouts must be longer than zero"),
            ConfigError::Roles(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl LoadConfig {
    /// Checks everything the run relies on; the first problem found, in field order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.message_size
            .validate()
            .map_err(ConfigError::BadSizes)?;
        if (self.message_size.max() as usize) < TIMESTAMP_LEN {
            return Err(ConfigError::MessageTooSmall {
                size: self.message_size.max(),
            });
        }
        if self.producers == 0 {
            return Err(ConfigError::NoProducers);
        }
        if self.partitions == 0 {
            return Err(ConfigError::NoPartitions);
        }
        if self.consumers > self.partitions {
            return Err(ConfigError::MoreConsumersThanPartitions {
                consumers: self.consumers,
                partitions: self.partitions,
            });
        }
        if self.batch == 0 {
            return Err(ConfigError::ZeroBatch);
        }
        if self.poll_batch == 0 {
            return Err(ConfigError::ZeroPollBatch);
        }
        match self.stop {
            Stop::Messages(0) => return Err(ConfigError::NothingToMeasure),
            Stop::Duration(d) if d.is_zero() => return Err(ConfigError::NothingToMeasure),
            _ => {}
        }
        if self.mode == (Mode::OpenLoop { messages_per_s: 0 }) {
            return Err(ConfigError::ZeroRate);
        }
        if self.drain_timeout.is_zero() || self.op_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        roles::check(&Shape {
            roles: self.roles,
            partitioning: self.partitioning,
            producers: self.producers,
            consumers: self.consumers,
            partitions: self.partitions,
            timed: matches!(self.stop, Stop::Duration(_)),
            paced: matches!(self.mode, Mode::OpenLoop { .. }),
        })
        .map_err(ConfigError::Roles)
    }

    /// The partition of producer `producer`'s `batch`-th batch (see the
    /// partitioning rules on [`LoadConfig`]).
    pub fn partition_of(&self, producer: u32, batch: u64) -> u32 {
        self.partitioning
            .partition(producer, batch, self.partitions)
    }

    /// The config that runs `workload`: its actors, partitions, sizes,
    /// payload kind, seed, batch, rate and stop condition. What a workload
    /// does not say is chosen here, the same way for every workload:
    /// - the warmup is a tenth of the run (of `messages`, or of `duration`
    ///   for a timed workload, which wins over `messages` as the workload
    ///   docs say), discarded so connection setup and first-touch page
    ///   faults are not measured;
    /// - a poll asks for `batch` messages, and at least the default 100, so
    ///   consumers can keep up with producers of small batches;
    /// - timeouts are the defaults;
    /// - roles and partitioning are the workload's: for consumers alone, the
    ///   producers fill the topic with `messages` plus the warmup, and the
    ///   consumers' first tenth read is the warmup.
    ///
    /// The fsync policy is not here: it is the target's (start the target
    /// with `workload.fsync`), not the load's.
    pub fn from_workload(workload: &Workload) -> Result<LoadConfig, ConfigError> {
        let (stop, warmup) = match workload.duration {
            Some(duration) => (Stop::Duration(duration), Warmup::Duration(duration / 10)),
            None => (
                Stop::Messages(workload.messages),
                Warmup::Messages(workload.messages / 10),
            ),
        };
        let defaults = LoadConfig::default();
        let config = LoadConfig {
            producers: workload.producers,
            consumers: workload.consumers,
            partitions: workload.partitions,
            message_size: workload.message_size,
            payload: workload.payload,
            batch: workload.batch,
            poll_batch: workload.batch.max(defaults.poll_batch),
            stop,
            warmup,
            mode: workload
                .rate
                .map_or(Mode::ClosedLoop, |messages_per_s| Mode::OpenLoop {
                    messages_per_s,
                }),
            seed: workload.seed,
            roles: workload.roles,
            partitioning: workload.partitioning,
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }

    /// The payload length of message `index` of the seeded generator: the
    /// workload's size for it, raised to [`TIMESTAMP_LEN`] if a distribution
    /// drew less, because the timestamp must fit. ([`LoadConfig::validate`]
    /// refuses a fixed size or a maximum below it, so only draws from a
    /// distribution are ever raised, and a results file's sizes say so.)
    pub fn size_of(&self, index: u64) -> usize {
        (self.message_size.size_of(index, self.seed) as usize).max(TIMESTAMP_LEN)
    }

    /// The shortest payload a run sends (after raising to [`TIMESTAMP_LEN`]).
    pub fn min_size(&self) -> usize {
        (self.message_size.min() as usize).max(TIMESTAMP_LEN)
    }

    /// The longest payload a run sends.
    pub fn max_size(&self) -> usize {
        (self.message_size.max() as usize).max(TIMESTAMP_LEN)
    }

    /// Messages producer `producer` must send in a [`Stop::Messages`] run,
    /// warmup included; `None` when the run is timed instead.
    pub fn producer_quota(&self, producer: u32) -> Option<u64> {
        let Stop::Messages(measured) = self.stop else {
            return None;
        };
        let warmup = match self.warmup {
            Warmup::Messages(n) => n,
            Warmup::None | Warmup::Duration(_) => 0,
        };
        let total = measured + warmup;
        let producers = u64::from(self.producers.max(1));
        let extra = u64::from(u64::from(producer) < total % producers);
        Some(total / producers + extra)
    }

    /// What the run's figures are, in words, for the foot of a table: which
    /// actors were measured and what one latency sample is.
    pub fn roles_reading(&self) -> String {
        match self.roles {
            Roles::Both => format!(
                "producer latency per batch of {}, send to acknowledgement; consumer latency \
                 per poll; end-to-end per message, send to read",
                self.batch
            ),
            Roles::Producers => format!(
                "producers alone: latency per batch of {}, send to acknowledgement; nothing \
                 is read back",
                self.batch
            ),
            Roles::Consumers => format!(
                "consumers alone over a pre-filled topic (the fill is not measured): a \
                 latency sample is one poll of up to {} messages, request to answer; no \
                 end-to-end latency, since every message was sent before the consumers started",
                self.poll_batch
            ),
        }
    }

    /// One line for a table caption: "2 producers, 2 consumers, 2 partitions,
    /// 1024-byte random messages, 100 per batch, closed loop, 200000 messages
    /// after 20000 warmup messages".
    pub fn summary(&self) -> String {
        let mode = match self.mode {
            Mode::ClosedLoop => "closed loop".to_string(),
            Mode::OpenLoop { messages_per_s } => format!("open loop at {messages_per_s} msg/s"),
        };
        let stop = match self.stop {
            Stop::Messages(n) => format!("{n} messages"),
            Stop::Duration(d) => format!("{:?}", d),
        };
        let warmup = match self.warmup {
            Warmup::None => "no warmup".to_string(),
            Warmup::Messages(n) => format!("{n} warmup messages"),
            Warmup::Duration(d) => format!("{d:?} warmup"),
        };
        let sizes = match self.message_size.fixed() {
            Some(size) => format!("{size}-byte"),
            None => self.message_size.to_string(),
        };
        let roles = match self.roles {
            Roles::Both => String::new(),
            Roles::Producers => "producers alone: ".to_string(),
            Roles::Consumers => format!(
                "consumers alone over a topic pre-filled by {} producers (unmeasured): ",
                self.producers
            ),
        };
        let (producers, pinned) = match (self.roles, self.partitioning) {
            (Roles::Consumers, _) => (String::new(), ""),
            (_, Partitioning::Pinned) => (
                format!("{} producers, ", self.producers),
                " (each producer pinned to one)",
            ),
            (_, Partitioning::RoundRobin) => (format!("{} producers, ", self.producers), ""),
        };
        format!(
            "{roles}{producers}{} consumers, {} partitions{pinned}, {sizes} {} messages, \
             {} per batch, {mode}, {stop} after {warmup}",
            self.consumers,
            self.partitions,
            self.payload.name(),
            self.batch
        )
    }
}

/// Parses a duration as people type it: `250ms`, `2s`, `1.5s`, `500us`, or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 250ms, 2s or 1.5)"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("`{text}` is not a duration of zero or more"))
}

/// Durations in results files as seconds (a float), which a reader or a plot
/// takes as is; serde's default `{secs, nanos}` pair was rejected as unreadable.
/// Written as nanoseconds over 10^9, one correctly rounded division, so the
/// decimal printed has at most 9 places and reads back to the same duration.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_nanos() as f64 / 1e9)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        assert_eq!(LoadConfig::default().validate(), Ok(()));
    }

    #[test]
    fn quotas_add_up_to_messages_plus_warmup() {
        let config = LoadConfig {
            producers: 3,
            stop: Stop::Messages(1000),
            warmup: Warmup::Messages(1),
            ..LoadConfig::default()
        };
        let quotas: Vec<u64> = (0..3).filter_map(|p| config.producer_quota(p)).collect();
        assert_eq!(quotas, vec![334, 334, 333]);
    }

    #[test]
    fn every_committed_workload_makes_a_valid_config() {
        for name in Workload::names().unwrap() {
            let workload = Workload::load(&name).unwrap();
            let config = LoadConfig::from_workload(&workload).unwrap();
            assert_eq!(config.message_size, workload.message_size, "{name}");
            assert_eq!(config.payload, workload.payload, "{name}");
            assert_eq!(
                (config.producers, config.consumers, config.partitions),
                (workload.producers, workload.consumers, workload.partitions),
                "{name}"
            );
            assert_eq!(config.batch, workload.batch, "{name}");
            assert!(config.poll_batch >= config.batch, "{name}");
            assert_eq!(
                (config.roles, config.partitioning),
                (workload.roles, workload.partitioning),
                "{name}"
            );
        }
    }

    #[test]
    fn pinned_producers_keep_to_their_partition_round_robin_ones_move_on() {
        let pinned = LoadConfig {
            producers: 3,
            partitions: 3,
            partitioning: Partitioning::Pinned,
            ..LoadConfig::default()
        };
        let batches = |config: &LoadConfig, producer| -> Vec<u32> {
            (0..4).map(|j| config.partition_of(producer, j)).collect()
        };
        assert_eq!(batches(&pinned, 2), vec![2, 2, 2, 2]);
        let spread = LoadConfig {
            partitioning: Partitioning::RoundRobin,
            ..pinned.clone()
        };
        assert_eq!(batches(&spread, 2), vec![2, 0, 1, 2]);
        assert!(pinned.summary().contains("each producer pinned"));
    }

    #[test]
    fn roles_that_do_not_fit_the_run_are_refused_by_name() {
        let producers_alone = LoadConfig {
            roles: Roles::Producers,
            ..LoadConfig::default()
        };
        let error = producers_alone.validate().unwrap_err();
        assert_eq!(
            error,
            ConfigError::Roles(RolesError::ConsumersInProducersRun(2))
        );
        assert!(error.to_string().contains("consumers must be 0"), "{error}");
        let fixed = LoadConfig {
            consumers: 0,
            ..producers_alone
        };
        assert_eq!(fixed.validate(), Ok(()));
        assert!(
            fixed.summary().starts_with("producers alone"),
            "{}",
            fixed.summary()
        );
        let consumers_timed = LoadConfig {
            roles: Roles::Consumers,
            stop: Stop::Duration(Duration::from_secs(1)),
            ..LoadConfig::default()
        };
        assert_eq!(
            consumers_timed.validate(),
            Err(ConfigError::Roles(RolesError::ConsumersAloneNeedCount(
                "duration"
            )))
        );
        let consumers_paced = LoadConfig {
            roles: Roles::Consumers,
            mode: Mode::OpenLoop { messages_per_s: 10 },
            ..LoadConfig::default()
        };
        assert_eq!(
            consumers_paced.validate(),
            Err(ConfigError::Roles(RolesError::ConsumersAloneNeedCount(
                "rate"
            )))
        );
    }

    #[test]
    fn results_written_before_roles_still_read_as_both_round_robin() {
        let mut json = serde_json::to_value(LoadConfig::default()).unwrap();
        assert_eq!(json["roles"], "both");
        assert_eq!(json["partitioning"], "round-robin");
        let object = json.as_object_mut().unwrap();
        object.remove("roles");
        object.remove("partitioning");
        let read: LoadConfig = serde_json::from_value(json).unwrap();
        assert_eq!(read, LoadConfig::default());
    }

    #[test]
    fn a_workload_maps_onto_the_run_it_describes() {
        let mut workload = Workload::load("quick").unwrap();
        let config = LoadConfig::from_workload(&workload).unwrap();
        assert_eq!(config.stop, Stop::Messages(20_000));
        assert_eq!(config.warmup, Warmup::Messages(2_000));
        assert_eq!(config.mode, Mode::ClosedLoop);
        assert_eq!(config.seed, 42);
        // A duration wins over the message count; a rate opens the loop.
        workload.duration = Some(Duration::from_secs(30));
        workload.rate = Some(5_000);
        let timed = LoadConfig::from_workload(&workload).unwrap();
        assert_eq!(timed.stop, Stop::Duration(Duration::from_secs(30)));
        assert_eq!(timed.warmup, Warmup::Duration(Duration::from_secs(3)));
        assert_eq!(
            timed.mode,
            Mode::OpenLoop {
                messages_per_s: 5_000
            }
        );
        // A workload too small for the timestamp is refused, by size.
        workload.message_size = MessageSize::Fixed(4);
        assert_eq!(
            LoadConfig::from_workload(&workload),
            Err(ConfigError::MessageTooSmall { size: 4 })
        );
    }

    #[test]
    fn drawn_sizes_below_the_timestamp_are_raised_to_it() {
        let config = LoadConfig {
            message_size: MessageSize::LogNormal {
                median: 8,
                sigma: 1.0,
                min: 1,
                max: 64,
            },
            ..LoadConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        let sizes: Vec<usize> = (0..1000).map(|n| config.size_of(n)).collect();
        assert!(sizes.iter().all(|&s| (TIMESTAMP_LEN..=64).contains(&s)));
        assert!(sizes.contains(&TIMESTAMP_LEN) && sizes.iter().any(|&s| s > 20));
        assert_eq!((config.min_size(), config.max_size()), (TIMESTAMP_LEN, 64));
    }

    #[test]
    fn results_written_before_distributions_still_read() {
        let mut json = serde_json::to_value(LoadConfig::default()).unwrap();
        assert_eq!(json["message_size"], 1024);
        json.as_object_mut().unwrap().remove("payload");
        let read: LoadConfig = serde_json::from_value(json).unwrap();
        assert_eq!(read, LoadConfig::default());
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
