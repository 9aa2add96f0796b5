//! Why a run failed: one type for every way, each naming where it happened.
//!
//! Typed, so a test can tell a shortfall from a timeout; the target's own
//! errors stay `anyhow::Error` inside (see `target`). The crate has no
//! `thiserror`, so `Display` is written out.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;
use crate::histogram::HistogramError;

/// Which actor something happened to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Producer number `n`.
    Producer(u32),
    /// Consumer number `n`.
    Consumer(u32),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Producer(n) => write!(f, "producer {n}"),
            Actor::Consumer(n) => write!(f, "consumer {n}"),
        }
    }
}

/// Why a run failed. Every variant names where, so a failing stage can be
/// debugged from the message alone.
#[derive(Debug)]
pub enum LoadError {
    /// The config cannot run.
    Config(ConfigError),
    /// The target could not create the partitions.
    Prepare(anyhow::Error),
    /// An actor could not connect.
    Connect {
        /// Who.
        actor: Actor,
        /// The target's error.
        source: anyhow::Error,
    },
    /// A produce failed.
    Produce {
        /// Which producer.
        producer: u32,
        /// To which partition.
        partition: u32,
        /// The target's error.
        source: anyhow::Error,
    },
    /// A poll failed.
    Poll {
        /// Which consumer.
        consumer: u32,
        /// Of which partition.
        partition: u32,
        /// The target's error.
        source: anyhow::Error,
    },
    /// A produce or poll took longer than `op_timeout`.
    Timeout {
        /// Who was waiting.
        actor: Actor,
        /// On which partition.
        partition: u32,
        /// The timeout.
        after: Duration,
    },
    /// A poll returned a message at an offset other than the next one:
    /// a gap, a duplicate, or a reordering.
    OutOfOrder {
        /// The partition.
        partition: u32,
        /// The offset that should have come next.
        expected: u64,
        /// The offset that came.
        got: u64,
    },
    /// A message came back with a length the run never sends: not the
    /// fixed size, or outside a distribution's range.
    WrongSize {
        /// The partition.
        partition: u32,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: usize,
        /// The shortest payload the run sends.
        min: usize,
        /// The longest (equal to `min` for a fixed size).
        max: usize,
    },
    /// A message's timestamp is not one this run wrote: its bytes changed.
    BadTimestamp {
        /// The partition.
        partition: u32,
        /// Its offset.
        offset: u64,
        /// The timestamp read.
        timestamp_ns: u64,
    },
    /// The consumers did not get every acknowledged message in time.
    Shortfall {
        /// The first partition found short.
        partition: u32,
        /// Messages acknowledged to producers there.
        produced: u64,
        /// Messages read from it.
        consumed: u64,
        /// How long the consumers were given after the producers finished.
        waited: Duration,
    },
    /// A partition served more messages than the producers had acknowledged.
    Excess {
        /// The partition.
        partition: u32,
        /// Messages acknowledged to producers there.
        produced: u64,
        /// Messages read from it.
        consumed: u64,
    },
    /// An actor's task panicked.
    Panicked {
        /// Which.
        actor: Actor,
    },
    /// The actors' histograms could not be merged.
    Histogram(HistogramError),
    /// [`crate::run_blocking`] could not start its runtime.
    Runtime(std::io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Config(error) => write!(f, "invalid load config: {error}"),
            LoadError::Prepare(source) => write!(f, "preparing the target failed: {source:#}"),
            LoadError::Connect { actor, source } => {
                write!(f, "{actor} could not connect: {source:#}")
            }
            LoadError::Produce {
                producer,
                partition,
                source,
            } => write!(
                f,
                "producer {producer}: produce to partition {partition} failed: {source:#}"
            ),
            LoadError::Poll {
                consumer,
                partition,
                source,
            } => write!(
                f,
                "consumer {consumer}: poll of partition {partition} failed: {source:#}"
            ),
            LoadError::Timeout {
                actor,
                partition,
                after,
            } => write!(
                f,
                "{actor}: no answer from partition {partition} within {after:?} (op timeout)"
            ),
            LoadError::OutOfOrder {
                partition,
                expected,
                got,
            } => write!(
                f,
                "partition {partition}: expected offset {expected} next, the target returned {got}"
            ),
            LoadError::WrongSize {
                partition,
                offset,
                len,
                min,
                max,
            } if min == max => write!(
                f,
                "partition {partition} offset {offset}: {len} bytes read back, {min} sent"
            ),
            LoadError::WrongSize {
                partition,
                offset,
                len,
                min,
                max,
            } => write!(
                f,
                "partition {partition} offset {offset}: {len} bytes read back, but every \
                 message sent has {min} to {max}"
            ),
            LoadError::BadTimestamp {
                partition,
                offset,
                timestamp_ns,
            } => write!(
                f,
                "partition {partition} offset {offset}: timestamp {timestamp_ns} is not one \
                 this run sent (the payload bytes changed)"
            ),
            LoadError::Shortfall {
                partition,
                produced,
                consumed,
                waited,
            } => write!(
                f,
                "partition {partition}: {produced} messages acknowledged but only {consumed} \
                 read back within {waited:?} after the producers finished"
            ),
            LoadError::Excess {
                partition,
                produced,
                consumed,
            } => write!(
                f,
                "partition {partition}: {consumed} messages read back but only {produced} \
                 acknowledged"
            ),
            LoadError::Panicked { actor } => write!(f, "{actor} panicked"),
            LoadError::Histogram(error) => write!(f, "{error}"),
            LoadError::Runtime(error) => {
                write!(f, "starting the load generator's runtime: {error}")
            }
        }
    }
}

/// The message already includes the cause (`{source:#}`), so `source()` stays
/// `None`: returning it as well would print every cause twice in an `anyhow`
/// chain.
impl std::error::Error for LoadError {}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> LoadError {
        LoadError::Config(error)
    }
}

impl From<HistogramError> for LoadError {
    fn from(error: HistogramError) -> LoadError {
        LoadError::Histogram(error)
    }
}
