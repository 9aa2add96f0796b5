//! The load generator against the in-process target, and against a target
//! with one fault each (a stall, lost messages, no answer, a skipped offset),
//! so every check the run makes is seen failing as well as passing.
//!
//! No assertion here is about speed; the durations below only shape the
//! load (a stall, a schedule), and the assertions count samples and messages.
//! Where a count depends on the clock (a warmup, a stall), the durations are
//! long beside what a busy machine can add: a thread waiting its turn on a
//! loaded core loses milliseconds, and the stalls and windows here are
//! hundreds of them. Timeouts that a passing run never reaches are a minute.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use bench::loadgen::histogram::{merge, new_histogram, record};
use bench::loadgen::memory::MemoryConnection;
use bench::loadgen::{
    Actor, ConfigError, Connection, LoadConfig, LoadError, LoadResults, MemoryTarget, Mode,
    Percentiles, Polled, RunOutcome, Stop, Target, Warmup, run,
};
use bench::machine::Machine;
use indicatif::ProgressBar;
use rivulet_datasets::{MessageSize, Partitioning, PayloadKind, Payloads, Roles, RolesError};

/// A small closed-loop config; tests change what they are about.
fn small() -> LoadConfig {
    LoadConfig {
        producers: 1,
        consumers: 1,
        partitions: 1,
        message_size: MessageSize::Fixed(64),
        payload: PayloadKind::Random,
        batch: 10,
        poll_batch: 50,
        stop: Stop::Messages(500),
        warmup: Warmup::None,
        mode: Mode::ClosedLoop,
        seed: 7,
        // Never reached by a passing run: they only turn a hang into a failure.
        drain_timeout: GENEROUS,
        op_timeout: GENEROUS,
        roles: Roles::Both,
        partitioning: Partitioning::RoundRobin,
    }
}

/// A bound that only a failing run reaches.
const GENEROUS: Duration = Duration::from_secs(60);

async fn run_on<T: Target>(target: &T, config: &LoadConfig) -> Result<RunOutcome, LoadError> {
    // Bounded here too: a run that hung would fail the test instead of stalling it.
    tokio::time::timeout(2 * GENEROUS, run(target, config, &ProgressBar::hidden()))
        .await
        .expect("the run hung")
}

/// What a [`Faulty`] target does wrong.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Nothing: the target only records (see [`Counts`]).
    Nothing,
    /// Every second produce is acknowledged at once but not stored.
    DropEveryOther,
    /// Produce calls number `from..to` (counted across connections from 0)
    /// each sleep `each` before storing.
    Stall { from: u64, to: u64, each: Duration },
    /// Every second produce is acknowledged but not stored, and answered only
    /// once the consumers have read everything stored so far (one partition).
    LoseEveryOther,
    /// Produce never answers.
    Hang,
    /// Polls report every offset one too high.
    SkipOffset,
    /// Stores every payload cut to 7 bytes: shorter than anything sent.
    Truncate,
}

/// The in-process target with one fault.
struct Faulty {
    inner: MemoryTarget,
    fault: Fault,
    produces: Arc<AtomicU64>,
    counts: Arc<Counts>,
}

/// Messages stored, and how far polls have read (one partition); and what
/// the run did to the target: connections opened, polls made, and the
/// fewest messages stored when any poll was made.
struct Counts {
    stored: AtomicU64,
    read_to: watch::Sender<u64>,
    connections: AtomicU64,
    polls: AtomicU64,
    stored_at_first_poll: AtomicU64,
}

impl Faulty {
    fn new(fault: Fault) -> Faulty {
        Faulty {
            inner: MemoryTarget::new(),
            fault,
            produces: Arc::new(AtomicU64::new(0)),
            counts: Arc::new(Counts {
                stored: AtomicU64::new(0),
                read_to: watch::Sender::new(0),
                connections: AtomicU64::new(0),
                polls: AtomicU64::new(0),
                stored_at_first_poll: AtomicU64::new(u64::MAX),
            }),
        }
    }
}

struct FaultyConnection {
    inner: MemoryConnection,
    fault: Fault,
    produces: Arc<AtomicU64>,
    counts: Arc<Counts>,
}

impl Target for Faulty {
    type Connection = FaultyConnection;

    fn name(&self) -> String {
        "faulty".to_string()
    }

    fn durability(&self) -> String {
        "none: test target".to_string()
    }

    async fn prepare(&self, partitions: u32) -> anyhow::Result<()> {
        self.inner.prepare(partitions).await
    }

    async fn connect(&self) -> anyhow::Result<FaultyConnection> {
        self.counts.connections.fetch_add(1, Ordering::SeqCst);
        Ok(FaultyConnection {
            inner: self.inner.connect().await?,
            fault: self.fault,
            produces: Arc::clone(&self.produces),
            counts: Arc::clone(&self.counts),
        })
    }
}

impl Connection for FaultyConnection {
    async fn produce(&mut self, partition: u32, payloads: &[Vec<u8>]) -> anyhow::Result<u64> {
        let call = self.produces.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::Stall { from, to, each } if (from..to).contains(&call) => {
                tokio::time::sleep(each).await;
            }
            Fault::LoseEveryOther if call % 2 == 1 => {
                // Answered once the consumer has caught up: when the last
                // answer lets the producers finish, every stored message has
                // been read, however the tasks were scheduled.
                let stored = self.counts.stored.load(Ordering::SeqCst);
                let mut read_to = self.counts.read_to.subscribe();
                read_to.wait_for(|&read| read >= stored).await?;
                return Ok(0);
            }
            Fault::DropEveryOther if call % 2 == 1 => return Ok(0),
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Truncate => {
                let cut: Vec<Vec<u8>> = payloads.iter().map(|p| p[..7].to_vec()).collect();
                return self.inner.produce(partition, &cut).await;
            }
            _ => {}
        }
        let first = self.inner.produce(partition, payloads).await?;
        let stored = payloads.len() as u64;
        self.counts.stored.fetch_add(stored, Ordering::SeqCst);
        Ok(first)
    }

    async fn poll(
        &mut self,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> anyhow::Result<Vec<Polled>> {
        self.counts.polls.fetch_add(1, Ordering::SeqCst);
        let stored = self.counts.stored.load(Ordering::SeqCst);
        self.counts
            .stored_at_first_poll
            .fetch_min(stored, Ordering::SeqCst);
        let mut polled = self.inner.poll(partition, offset, count).await?;
        let end = offset + polled.len() as u64;
        self.counts.read_to.send_if_modified(|read| {
            let further = end > *read;
            *read = (*read).max(end);
            further
        });
        if let Fault::SkipOffset = self.fault {
            polled.iter_mut().for_each(|message| message.offset += 1);
        }
        Ok(polled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_consumes_every_message_exactly_once_in_dense_offsets() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        producers: 3,
        consumers: 2,
        partitions: 4,
        batch: 7, // 3100 / 3 producers leaves partial last batches
        stop: Stop::Messages(3000),
        warmup: Warmup::Messages(100),
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;

    assert_eq!(figures.produced, 3100);
    assert_eq!(figures.consumed, 3100);
    let lens = target.partition_lens().unwrap();
    assert_eq!(figures.produced_per_partition, lens);
    assert_eq!(figures.consumed_per_partition, lens);
    assert!(
        lens.iter().all(|&len| len > 0),
        "round robin reaches every partition: {lens:?}"
    );
    // Every measured message was seen end to end exactly once.
    assert_eq!(figures.end_to_end.count, figures.producer.messages);

    // Read everything back: offsets 0..len in order, each payload intact.
    let mut connection = target.connect().await.unwrap();
    for (partition, &len) in (0..).zip(&lens) {
        let polled = connection.poll(partition, 0, u32::MAX).await.unwrap();
        let offsets: Vec<u64> = polled.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (0..len).collect::<Vec<_>>());
        assert!(polled.iter().all(|m| m.payload.len() == 64));
    }
}

/// Log-normal sizes from 1 byte (so some draws are raised to the 8-byte
/// timestamp) to 3000, around a median of 64.
const SPREAD: MessageSize = MessageSize::LogNormal {
    median: 64,
    sigma: 1.5,
    min: 1,
    max: 3000,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_sizes_and_text_payloads_are_sent_counted_and_read_back_intact() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        message_size: SPREAD,
        payload: PayloadKind::JsonEvents,
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    assert_eq!(figures.consumed, 500);

    // One producer, no warmup: it sent pool messages 0..500, in order, and
    // the byte counts are their drawn sizes, not 500 times one size.
    let expected: u64 = (0..500).map(|m| config.size_of(m) as u64).sum();
    assert_eq!(figures.producer.bytes, expected);
    assert_eq!(figures.consumer.bytes, expected);
    let polled = target
        .connect()
        .await
        .unwrap()
        .poll(0, 0, u32::MAX)
        .await
        .unwrap();
    let events = Payloads::new(PayloadKind::JsonEvents, config.seed);
    for (m, message) in (0..).zip(&polled) {
        assert_eq!(message.payload.len(), config.size_of(m), "message {m}");
        let expected = events.payload(m, message.payload.len());
        assert_eq!(message.payload[8..], expected[8..], "message {m}");
    }
    let lens: Vec<usize> = polled.iter().map(|m| m.payload.len()).collect();
    assert!(lens.contains(&8) && lens.iter().any(|&len| len > 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_changes_sizes_is_a_wrong_size() {
    let target = Faulty::new(Fault::Truncate);
    let config = LoadConfig {
        message_size: SPREAD,
        ..small()
    };
    let error = run_on(&target, &config).await.unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::WrongSize {
                len: 7,
                min: 8,
                max: 3000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("8 to 3000"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_run_stops_and_drains_everything_it_sent() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        producers: 2,
        consumers: 2,
        partitions: 2,
        // Each window is hundreds of milliseconds: the producers send within
        // each of them even when they wait their turn on a loaded core.
        stop: Stop::Duration(Duration::from_millis(300)),
        warmup: Warmup::Duration(Duration::from_millis(300)),
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    assert!(figures.producer.messages > 0);
    assert!(
        figures.producer.messages < figures.produced,
        "warmup excluded"
    );
    assert_eq!(figures.consumed, figures.produced);
    assert!(
        figures.send_lag.is_none(),
        "send lag is an open-loop figure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_the_scheduled_number_of_messages() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        producers: 2,
        partitions: 2,
        consumers: 2,
        stop: Stop::Duration(Duration::from_millis(250)),
        mode: Mode::OpenLoop {
            messages_per_s: 2000,
        },
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    // 2000 msg/s for 0.25 s is 500 messages, give or take one batch.
    assert!(
        figures.produced.abs_diff(500) <= 10,
        "{} messages sent",
        figures.produced
    );
    assert_eq!(figures.consumed, figures.produced);
    assert_eq!(
        figures.send_lag.unwrap().count,
        figures.producer.latency.count
    );
}

/// Samples of at least `ns` in the merged producer histogram.
fn slow_batches(outcome: &RunOutcome, ns: u64) -> u64 {
    let histogram = &outcome.histograms.producer;
    histogram.count_between(ns, histogram.max().max(ns))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_a_stall_to_every_send_it_delayed_closed_loop_hides_it() {
    // The 6th produce, scheduled at 25 ms, stalls 200 ms; sends are scheduled
    // every 5 ms (10 messages per batch at 2000 msg/s), so the stall delays
    // the next forty.
    let stall = Fault::Stall {
        from: 5,
        to: 6,
        each: Duration::from_millis(200),
    };
    let open = LoadConfig {
        consumers: 0,
        stop: Stop::Duration(Duration::from_millis(250)),
        mode: Mode::OpenLoop {
            messages_per_s: 2000,
        },
        ..small()
    };
    let closed = LoadConfig {
        stop: Stop::Messages(500),
        mode: Mode::ClosedLoop,
        ..open.clone()
    };
    let open = run_on(&Faulty::new(stall), &open).await.unwrap();
    let closed = run_on(&Faulty::new(stall), &closed).await.unwrap();

    // Both saw the stall itself...
    let stalled = Duration::from_millis(200).as_nanos() as u64;
    assert!(closed.figures.producer.latency.max >= stalled);
    assert!(open.figures.producer.latency.max >= stalled);
    // ...but only the open loop counts the sends that waited behind it,
    // measured from their intended time: the ones scheduled at 30 to 125 ms
    // went out at 225 ms at the earliest, 100 ms or more late. A busy machine
    // only makes sends later, so those 20 and the stall itself are always
    // there; the closed loop has the stall, and a loaded core would have to
    // hold a call to memory for 100 ms many times over to come close.
    let threshold = Duration::from_millis(100).as_nanos() as u64;
    let (open_slow, closed_slow) = (
        slow_batches(&open, threshold),
        slow_batches(&closed, threshold),
    );
    assert!(
        open_slow >= 21 && open_slow >= closed_slow + 10,
        "open loop: {open_slow} batches over 100 ms, closed loop: {closed_slow}"
    );
    // And it still sent what the schedule said, catching up after the stall.
    assert!(
        open.figures.produced.abs_diff(500) <= 10,
        "{}",
        open.figures.produced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_samples_are_excluded_from_every_histogram() {
    // The first three produces (the whole warmup) stall 300 ms each: far
    // longer than any call to memory takes, however loaded the machine.
    let stall = Duration::from_millis(300);
    let target = Faulty::new(Fault::Stall {
        from: 0,
        to: 3,
        each: stall,
    });
    let config = LoadConfig {
        stop: Stop::Messages(200),
        warmup: Warmup::Messages(30),
        ..small()
    };
    let outcome = run_on(&target, &config).await.unwrap();
    let figures = &outcome.figures;
    assert_eq!(figures.produced, 230);
    assert_eq!(figures.consumed, 230);
    // One producer, one batch in flight: exactly the 20 batches after the warmup.
    assert_eq!(figures.producer.latency.count, 20);
    assert_eq!(figures.producer.messages, 200);
    assert_eq!(figures.end_to_end.count, 200);
    assert!(
        figures.producer.latency.max < stall.as_nanos() as u64,
        "a warmup stall leaked in: {}",
        figures.producer.latency.max
    );
    // The histograms behind the figures agree.
    assert_eq!(outcome.histograms.producer.len(), 20);
    assert_eq!(outcome.histograms.end_to_end.len(), 200);
}

#[tokio::test]
async fn bad_configs_are_clear_errors_not_panics() {
    let cases = [
        (
            LoadConfig {
                message_size: MessageSize::Fixed(7),
                ..small()
            },
            ConfigError::MessageTooSmall { size: 7 },
            "minimum is 8",
        ),
        (
            LoadConfig {
                producers: 0,
                ..small()
            },
            ConfigError::NoProducers,
            "producers",
        ),
        (
            LoadConfig {
                partitions: 0,
                consumers: 0,
                ..small()
            },
            ConfigError::NoPartitions,
            "partitions",
        ),
        (
            LoadConfig {
                batch: 0,
                ..small()
            },
            ConfigError::ZeroBatch,
            "batch",
        ),
        (
            LoadConfig {
                poll_batch: 0,
                ..small()
            },
            ConfigError::ZeroPollBatch,
            "poll batch",
        ),
        (
            LoadConfig {
                consumers: 3,
                partitions: 2,
                ..small()
            },
            ConfigError::MoreConsumersThanPartitions {
                consumers: 3,
                partitions: 2,
            },
            "3 consumers for 2 partitions",
        ),
        (
            LoadConfig {
                stop: Stop::Messages(0),
                ..small()
            },
            ConfigError::NothingToMeasure,
            "at least 1 message",
        ),
        (
            LoadConfig {
                mode: Mode::OpenLoop { messages_per_s: 0 },
                ..small()
            },
            ConfigError::ZeroRate,
            "rate",
        ),
        (
            LoadConfig {
                roles: Roles::Producers,
                ..small()
            },
            ConfigError::Roles(RolesError::ConsumersInProducersRun(1)),
            "consumers must be 0",
        ),
        (
            LoadConfig {
                roles: Roles::Consumers,
                consumers: 0,
                ..small()
            },
            ConfigError::Roles(RolesError::NoConsumers),
            "at least 1",
        ),
        (
            LoadConfig {
                roles: Roles::Consumers,
                stop: Stop::Duration(Duration::from_secs(1)),
                ..small()
            },
            ConfigError::Roles(RolesError::ConsumersAloneNeedCount("duration")),
            "message count",
        ),
        (
            LoadConfig {
                partitioning: Partitioning::Pinned,
                partitions: 3,
                consumers: 1,
                ..small()
            },
            ConfigError::Roles(RolesError::PinnedLeavesPartitionsEmpty {
                producers: 1,
                partitions: 3,
            }),
            "leave 2 of them empty",
        ),
    ];
    for (config, expected, words) in cases {
        let error = run_on(&MemoryTarget::new(), &config).await.unwrap_err();
        let message = error.to_string();
        match error {
            LoadError::Config(found) => assert_eq!(found, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        assert!(message.contains(words), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_loses_messages_is_a_shortfall_not_a_hang() {
    let config = LoadConfig {
        drain_timeout: Duration::from_millis(200),
        ..small()
    };
    let error = run_on(&Faulty::new(Fault::LoseEveryOther), &config)
        .await
        .unwrap_err();
    match error {
        LoadError::Shortfall {
            partition: 0,
            produced: 500,
            consumed,
            ..
        } => assert_eq!(consumed, 250),
        other => panic!("expected a shortfall, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_answering_is_a_timeout() {
    let config = LoadConfig {
        op_timeout: Duration::from_millis(100),
        ..small()
    };
    let error = run_on(&Faulty::new(Fault::Hang), &config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::Timeout {
                actor: Actor::Producer(0),
                partition: 0,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_skips_an_offset_is_out_of_order() {
    let error = run_on(&Faulty::new(Fault::SkipOffset), &small())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::OutOfOrder {
                partition: 0,
                expected: 0,
                got: 1
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_alone_run_with_no_consumer_and_read_nothing() {
    let target = Faulty::new(Fault::Nothing);
    let config = LoadConfig {
        producers: 2,
        consumers: 0,
        partitions: 3,
        roles: Roles::Producers,
        stop: Stop::Messages(600),
        warmup: Warmup::Messages(60),
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    // Two connections, both producers'; not one poll.
    assert_eq!(target.counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(target.counts.polls.load(Ordering::SeqCst), 0);
    assert_eq!(figures.produced, 660);
    assert_eq!(figures.consumed, 0);
    assert_eq!(figures.consumed_per_partition, vec![0, 0, 0]);
    // The other producer's batch in flight when the warmup ended is warmup too.
    assert!(
        (590..=600).contains(&figures.producer.messages),
        "{}",
        figures.producer.messages
    );
    assert_eq!(figures.consumer.latency.count, 0);
    assert_eq!(figures.end_to_end.count, 0);
    assert_eq!(
        target.inner.partition_lens().unwrap(),
        figures.produced_per_partition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_alone_read_exactly_the_prefilled_messages_after_the_fill() {
    // One consumer on two partitions, polls of 50: the warmup (100 messages)
    // ends exactly at the end of its second poll, so exactly the 1000
    // messages after it are measured.
    let target = Faulty::new(Fault::Nothing);
    let config = LoadConfig {
        producers: 1,
        consumers: 1,
        partitions: 2,
        roles: Roles::Consumers,
        stop: Stop::Messages(1000),
        warmup: Warmup::Messages(100),
        ..small()
    };
    let outcome = run_on(&target, &config).await.unwrap();
    let figures = &outcome.figures;

    // The topic was whole before the first poll: every message was written
    // first, and only then read.
    assert_eq!(figures.produced, 1100);
    assert_eq!(
        target.counts.stored_at_first_poll.load(Ordering::SeqCst),
        1100
    );
    // Exactly the pre-filled messages were read, partition by partition.
    let lens = target.inner.partition_lens().unwrap();
    assert_eq!(lens, vec![550, 550]);
    assert_eq!(figures.produced_per_partition, lens);
    assert_eq!(figures.consumed_per_partition, lens);
    // Only the consumer is measured: the fill left no sample, and a sample
    // is a poll, never send-to-read.
    assert_eq!(figures.producer.messages, 0);
    assert_eq!(figures.producer.latency.count, 0);
    assert_eq!(figures.end_to_end.count, 0);
    assert_eq!(figures.consumer.messages, 1000);
    assert_eq!(figures.consumer.bytes, 1000 * 64);
    assert_eq!(figures.consumer.latency.count, 20);
    assert_eq!(outcome.histograms.consumer.len(), 20);

    // Several consumers: everything is still read exactly once, and the
    // measured reads are the count after a warmup of at least 100 (a poll
    // another consumer started before the warmup ended is left out too).
    let target = Faulty::new(Fault::Nothing);
    let config = LoadConfig {
        producers: 3,
        consumers: 2,
        partitions: 4,
        ..config
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    assert_eq!(figures.produced, 1100);
    assert_eq!(figures.consumed, 1100);
    assert_eq!(
        target.counts.stored_at_first_poll.load(Ordering::SeqCst),
        1100
    );
    assert!(
        (900..=1000).contains(&figures.consumer.messages),
        "{}",
        figures.consumer.messages
    );
    assert_eq!(figures.end_to_end.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_alone_over_a_target_that_lost_messages_is_a_shortfall() {
    // Every second batch of the fill is acknowledged and dropped: the
    // consumers read half and then nothing more, and the silence ends the run.
    let config = LoadConfig {
        roles: Roles::Consumers,
        drain_timeout: Duration::from_millis(200),
        ..small()
    };
    let error = run_on(&Faulty::new(Fault::DropEveryOther), &config)
        .await
        .unwrap_err();
    match error {
        LoadError::Shortfall {
            partition: 0,
            produced: 500,
            consumed: 250,
            ..
        } => {}
        other => panic!("expected a shortfall, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_producers_each_write_only_their_own_partition() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        producers: 3,
        consumers: 3,
        partitions: 3,
        partitioning: Partitioning::Pinned,
        stop: Stop::Messages(300),
        ..small()
    };
    let figures = run_on(&target, &config).await.unwrap().figures;
    assert_eq!(figures.produced_per_partition, vec![100, 100, 100]);
    // Partition p holds producer p's pool, in order: message m of producer
    // p is index p << 32 | m of the seeded generator.
    let payloads = Payloads::new(config.payload, config.seed);
    let mut connection = target.connect().await.unwrap();
    for producer in 0..3u32 {
        let polled = connection.poll(producer, 0, u32::MAX).await.unwrap();
        for (m, message) in (0..).zip(&polled) {
            let index = (u64::from(producer) << 32) | m;
            let expected = payloads.payload(index, 64);
            assert_eq!(message.payload[8..], expected[8..], "{producer}/{m}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_round_trip_through_json() {
    let target = MemoryTarget::new();
    let config = LoadConfig {
        mode: Mode::OpenLoop {
            messages_per_s: 20_000,
        },
        warmup: Warmup::Duration(Duration::from_millis(5)),
        ..small()
    };
    let outcome = run_on(&target, &config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let results = LoadResults::new(
        &target.name(),
        &target.durability(),
        Machine::detect(dir.path()),
        config,
        outcome.figures,
    );
    let path = dir.path().join("nested").join("loadgen-memory.json");
    results.write(&path).unwrap();
    let read = LoadResults::read(&path).unwrap();
    assert_eq!(read, results);
    assert!(read.figures.send_lag.is_some());
    let table = read.table();
    for row in ["producer", "consumer", "end-to-end", "send lag", "p99.99"] {
        assert!(table.contains(row), "{table}");
    }

    // Consumers alone: the file says so, and the table says what a sample is.
    let config = LoadConfig {
        roles: Roles::Consumers,
        ..small()
    };
    let outcome = run_on(&MemoryTarget::new(), &config).await.unwrap();
    let results = LoadResults::new(
        "memory",
        "none",
        Machine::detect(dir.path()),
        config,
        outcome.figures,
    );
    results.write(&path).unwrap();
    let read = LoadResults::read(&path).unwrap();
    assert_eq!(read.config.roles, Roles::Consumers);
    let table = read.table();
    assert!(table.contains("consumers alone"), "{table}");
    assert!(table.contains("one poll"), "{table}");
}

#[test]
fn histograms_merge_by_adding_counts_never_by_averaging_percentiles() {
    // Two actors: one fast and busy (9000 samples, 1 ns to 9 µs), one that saw
    // a stall on every call (1000 samples, 10 to 11 ms).
    let fast: Vec<u64> = (1..=9000).collect();
    let slow: Vec<u64> = (1..=1000).map(|i| 10_000_000 + i * 1_000).collect();
    let (mut a, mut b, mut all) = (new_histogram(), new_histogram(), new_histogram());
    fast.iter().for_each(|&v| record(&mut a, v));
    slow.iter().for_each(|&v| record(&mut b, v));
    fast.iter().chain(&slow).for_each(|&v| record(&mut all, v));

    let merged = Percentiles::of(&merge([&a, &b]).unwrap());
    assert_eq!(merged, Percentiles::of(&all));
    assert_eq!(merged.count, 10_000);
    // Those are the true percentiles of the samples, to 0.1% (3 significant figures).
    let mut sorted: Vec<u64> = fast.iter().chain(&slow).copied().collect();
    sorted.sort_unstable();
    let exact = |q: f64| sorted[(q * sorted.len() as f64) as usize - 1];
    for (got, want) in [
        (merged.p50, exact(0.5)),
        (merged.p99, exact(0.99)),
        (merged.max, *sorted.last().unwrap()),
    ] {
        assert!(
            got.abs_diff(want) as f64 <= want as f64 * 0.001,
            "{got} vs exact {want}"
        );
    }

    // Averaging the actors' percentiles gives latencies no call had: a median
    // of about 5 ms (the true one is 5 µs), and half the true p99.
    let (pa, pb) = (Percentiles::of(&a), Percentiles::of(&b));
    let averaged_p50 = (pa.p50 + pb.p50) / 2;
    let averaged_p99 = (pa.p99 + pb.p99) / 2;
    assert!(
        merged.p50 < 10_000 && averaged_p50 > 5_000_000,
        "{merged:?} {averaged_p50}"
    );
    assert!(
        merged.p99 > 10_000_000 && averaged_p99 < 6_000_000,
        "{merged:?} {averaged_p99}"
    );
}
