//! Who a networked run measures, and where its producers write.
//!
//! The benchmarks people compare brokers with come in three shapes, and a
//! workload names which one it copies:
//! - **both** (the default): producers and consumers at once, the consumers
//!   reading what the producers write as they write it (iggy-bench's
//!   `balanced-producer-and-consumer-group`, OpenMessaging Benchmark's runs);
//! - **producers** alone: nothing reads (iggy-bench's `pinned-producer`);
//! - **consumers** alone: the topic is filled first, unmeasured, and only
//!   the consumers reading it are measured (iggy-bench's `pinned-consumer`,
//!   which reads what an earlier `pinned-producer` run wrote).
//!
//! And two ways to spread producers over partitions: **round-robin** (the
//! default: producer `i` sends its `j`-th batch to partition `(i + j) % P`)
//! or **pinned** (producer `i` writes partition `i` only, as iggy-bench's
//! pinned producers each own a stream). Consumers always own whole
//! partitions (consumer `c` the partitions `p % consumers == c`), so with as
//! many consumers as partitions each consumer is pinned to one already.
//!
//! [`check`] holds the rules every combination must keep; the workload file
//! and the load generator's config both call it, so a bad combination gets
//! the same words from either.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

// ANCHOR: roles
/// Which actors a run measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Roles {
    /// Producers and consumers at once; a consumer reads each message as it
    /// arrives, so end-to-end latency (send to read) is measured.
    #[default]
    Both,
    /// Producers only: no consumer connects, nothing is read back.
    Producers,
    /// Consumers only, over a topic the producers fill first. The fill is not
    /// measured; a latency sample is one poll's round trip. End-to-end
    /// latency is not measured: every message was sent before any consumer
    /// started, so send-to-read would be time spent waiting in the topic.
    Consumers,
}

/// How producers spread their batches over partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Producer `i` sends its `j`-th batch to partition `(i + j) % partitions`.
    #[default]
    RoundRobin,
    /// Producer `i` sends every batch to partition `i % partitions`.
    Pinned,
}
// ANCHOR_END: roles

impl Roles {
    /// The name used in workload files and flags.
    pub fn name(self) -> &'static str {
        match self {
            Roles::Both => "both",
            Roles::Producers => "producers",
            Roles::Consumers => "consumers",
        }
    }

    /// Whether this is the default (written out only when it is not).
    pub fn is_both(&self) -> bool {
        *self == Roles::Both
    }
}

impl Partitioning {
    /// The name used in workload files and flags.
    pub fn name(self) -> &'static str {
        match self {
            Partitioning::RoundRobin => "round-robin",
            Partitioning::Pinned => "pinned",
        }
    }

    /// Whether this is the default (written out only when it is not).
    pub fn is_round_robin(&self) -> bool {
        *self == Partitioning::RoundRobin
    }

    /// The partition of producer `producer`'s `batch`-th batch, of
    /// `partitions` (at least 1).
    pub fn partition(self, producer: u32, batch: u64, partitions: u32) -> u32 {
        let partitions = u64::from(partitions.max(1));
        let slot = match self {
            Partitioning::RoundRobin => u64::from(producer) + batch,
            Partitioning::Pinned => u64::from(producer),
        };
        // Below `partitions`, which is a u32.
        (slot % partitions) as u32
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A combination of roles, actors and pacing that cannot run as asked.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RolesError {
    /// Producers alone, with consumers asked for.
    #[error(
        "roles `producers` measures producers alone, so consumers must be 0 (it is {0}); \
         use roles `both` to read back as well"
    )]
    ConsumersInProducersRun(u32),
    /// Consumers alone, without a consumer.
    #[error("roles `consumers` measures consumers, so consumers must be at least 1")]
    NoConsumers,
    /// Consumers alone, paced by time or rate: the fill needs a count.
    #[error(
        "roles `consumers` reads a topic filled first with a known number of messages: \
         give a message count, not a {0}"
    )]
    ConsumersAloneNeedCount(&'static str),
    /// Pinned producers that would leave partitions empty.
    #[error(
        "partitioning `pinned` gives producer i partition i alone: {producers} producers \
         for {partitions} partitions would leave {} of them empty (use at most {producers} \
         partitions, or round-robin)",
        partitions - producers
    )]
    PinnedLeavesPartitionsEmpty {
        /// Producers asked for.
        producers: u32,
        /// Partitions asked for (more than `producers`).
        partitions: u32,
    },
}

/// What [`check`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Who is measured.
    pub roles: Roles,
    /// How producers spread over partitions.
    pub partitioning: Partitioning,
    /// Producer connections (for consumers alone: the ones that fill).
    pub producers: u32,
    /// Consumer connections.
    pub consumers: u32,
    /// Partitions.
    pub partitions: u32,
    /// Whether the run stops after a duration instead of a message count.
    pub timed: bool,
    /// Whether the producers are paced at a fixed rate (open loop).
    pub paced: bool,
}

/// The rules every run keeps, whatever asked for it (the counts themselves,
/// at least one producer and partition, are checked by the caller):
/// - producers alone have no consumer (rather than ignoring the count given,
///   which would publish a run with fewer actors than its file says);
/// - consumers alone have a consumer, and a message count to fill the topic
///   with: a duration or a rate paces producers, and none is measured;
/// - pinned producers leave no partition empty.
pub fn check(shape: &Shape) -> Result<(), RolesError> {
    match shape.roles {
        Roles::Both => {}
        Roles::Producers if shape.consumers > 0 => {
            return Err(RolesError::ConsumersInProducersRun(shape.consumers));
        }
        Roles::Producers => {}
        Roles::Consumers => {
            if shape.consumers == 0 {
                return Err(RolesError::NoConsumers);
            }
            if shape.timed {
                return Err(RolesError::ConsumersAloneNeedCount("duration"));
            }
            if shape.paced {
                return Err(RolesError::ConsumersAloneNeedCount("rate"));
            }
        }
    }
    if shape.partitioning == Partitioning::Pinned && shape.producers < shape.partitions {
        return Err(RolesError::PinnedLeavesPartitionsEmpty {
            producers: shape.producers,
            partitions: shape.partitions,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(roles: Roles) -> Shape {
        Shape {
            roles,
            partitioning: Partitioning::RoundRobin,
            producers: 2,
            consumers: 2,
            partitions: 2,
            timed: false,
            paced: false,
        }
    }

    #[test]
    fn round_robin_spreads_batches_and_pinned_keeps_each_producer_on_its_partition() {
        let spread: Vec<u32> = (0..4)
            .map(|batch| Partitioning::RoundRobin.partition(1, batch, 3))
            .collect();
        assert_eq!(spread, vec![1, 2, 0, 1]);
        let pinned: Vec<u32> = (0..4)
            .map(|batch| Partitioning::Pinned.partition(1, batch, 3))
            .collect();
        assert_eq!(pinned, vec![1, 1, 1, 1]);
        // More producers than partitions: they share, none is lost.
        assert_eq!(Partitioning::Pinned.partition(4, 0, 3), 1);
    }

    #[test]
    fn every_role_runs_in_its_own_shape() {
        assert_eq!(check(&shape(Roles::Both)), Ok(()));
        let alone = Shape {
            consumers: 0,
            timed: true,
            paced: true,
            ..shape(Roles::Producers)
        };
        assert_eq!(check(&alone), Ok(()));
        assert_eq!(check(&shape(Roles::Consumers)), Ok(()));
        let pinned = Shape {
            partitioning: Partitioning::Pinned,
            producers: 3,
            ..shape(Roles::Both)
        };
        assert_eq!(check(&pinned), Ok(()));
    }

    #[test]
    fn shapes_that_cannot_run_are_refused_with_the_fix() {
        let cases = [
            (shape(Roles::Producers), "consumers must be 0 (it is 2)"),
            (
                Shape {
                    consumers: 0,
                    ..shape(Roles::Consumers)
                },
                "at least 1",
            ),
            (
                Shape {
                    timed: true,
                    ..shape(Roles::Consumers)
                },
                "not a duration",
            ),
            (
                Shape {
                    paced: true,
                    ..shape(Roles::Consumers)
                },
                "not a rate",
            ),
            (
                Shape {
                    partitioning: Partitioning::Pinned,
                    partitions: 5,
                    ..shape(Roles::Both)
                },
                "would leave 3 of them empty",
            ),
        ];
        for (shape, says) in cases {
            let error = check(&shape).unwrap_err().to_string();
            assert!(error.contains(says), "{says}: {error}");
        }
    }
}
