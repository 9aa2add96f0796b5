//! One run: producers and consumers driving a [`Target`], each recording into
//! its own histograms, merged into [`Figures`] at the end.
//!
//! The phases, in order:
//! 1. `prepare` the partitions, `connect` every actor, build every payload:
//!    nothing of this is measured;
//! 2. the clock starts and every actor is spawned (a Tokio task each);
//! 3. warmup: samples whose send started before the warmup ended are dropped,
//!    from every histogram and every throughput figure alike;
//! 4. the producers stop (message count or duration reached);
//! 5. the consumers drain: each reads its partitions until it has every
//!    message the producers had acknowledged there, or `drain_timeout` passes
//!    and the run fails with a [`LoadError::Shortfall`]. A run never hangs:
//!    every produce and poll is also bounded by `op_timeout`.
//!
//! ## Roles
//!
//! Producers alone ([`Roles::Producers`]) is the run above with no consumer.
//! Consumers alone ([`Roles::Consumers`]) runs in two parts instead:
//! 1. the fill: every producer sends its whole quota (the measured count plus
//!    the warmup), closed loop, recording nothing;
//! 2. the consumers start on the full topic and are measured alone: the
//!    warmup is the first messages *read* (or the first span of time after
//!    they start), and a latency sample is one poll's round trip. Send to read
//!    would measure how long a message sat in the topic, so end-to-end latency
//!    is not recorded. The drain bound becomes a bound on silence: the run
//!    fails once a consumer has read nothing for `drain_timeout`, however long
//!    reading everything takes.
//!
//! Rejected: a separate "consumer run" over a topic some earlier run left
//! behind (iggy-bench's way). It needs the target to keep its data between
//! runs, which the started servers do not, and it could not check that every
//! message was read back exactly once.
//!
//! ## Closed loop, open loop, and coordinated omission
//!
//! In the closed loop a producer sends its next batch when the previous one is
//! acknowledged. If the target stalls for 20 ms, the producer waits with it:
//! one sample says 20 ms, and the sends that *would* have happened during the
//! stall never happen, so they never record the wait they would have seen.
//! The load generator has coordinated with the target to omit exactly the
//! samples that show the stall ("coordinated omission", Gil Tene's term). A
//! closed-loop p99 can look fine for a target that stops for 20 ms every second.
//!
//! In the open loop each batch has an *intended* send time on a fixed schedule
//! (the producers together send `messages_per_s`), and its latency is measured
//! from that intended time, not from when it was actually sent. After a 20 ms
//! stall, the batches scheduled during it go out late, and each records the
//! part of the stall it waited through: 15 ms, 10 ms, 5 ms... as real clients
//! arriving at that rate would have seen. The payload timestamp is the intended
//! time too, so end-to-end latency is corrected the same way. (HdrHistogram's
//! `record_correct` was rejected: it invents the missing samples from an
//! assumed interval after the fact, where this records real ones.)
//!
//! A producer still has one request in flight, so a batch waits for the
//! previous ack; the wait is what the intended time charges to the target. The
//! producer's own lateness (timer granularity, a busy core) is charged too, so
//! it is reported separately as the send lag: when the lag's percentiles are
//! near the latency's, the figures describe the load generator, not the target.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rivulet_datasets::Roles;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::clock::Clock;
use crate::config::{LoadConfig, Mode, Stop, Warmup};
use crate::error::{Actor, LoadError};
use crate::histogram::{self, Percentiles, record};
use crate::payload::{self, BatchPool};
use crate::report::{Figures, Side};
use crate::target::{Connection, Target};

/// Empty poll rounds a consumer retries at once (yielding to other tasks)
/// before it starts sleeping between polls. Spinning forever was rejected: on
/// a small machine the idle consumers would take the cores the producers need.
/// Sleeping at once was rejected too: Tokio's timer ticks in milliseconds, and
/// every message arriving while consumers are caught up would carry that
/// millisecond in its end-to-end latency.
const SPIN_ROUNDS: u32 = 64;

/// How long an idle consumer sleeps between poll rounds after [`SPIN_ROUNDS`].
/// A message that arrives while its consumer sleeps waits for it, so at low
/// rates end-to-end latency includes up to this much (and the timer's
/// lateness): the same wait a real consumer polling this often would have.
/// The empty-poll count in the figures says how often consumers were idle.
const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// How close to its intended time an open-loop send stops sleeping and spins.
/// Tokio's timer ticks in milliseconds and a parked runtime wakes on a
/// millisecond `epoll` timeout, so a send that slept until its due time went
/// out up to 2 ms late (measured on the dev machines), and that lateness
/// would be charged to the target as latency. So: sleep until this long
/// before, then yield until due. The price is CPU: up to this much spinning
/// per send, a whole core per producer whose sends are less than this apart,
/// taken from a server sharing the machine. Sleeping all the way was
/// rejected: at sub-millisecond latencies the timer would be the figure
/// measured. The send-lag row shows what precision this bought.
const SPIN_BEFORE_DUE: Duration = Duration::from_millis(2);

/// Marks "warmup not over yet" in [`Shared::measure_from`].
const UNSET: u64 = u64::MAX;

/// What a run measured: the figures for tables and results files, and the
/// merged histograms behind them, for anyone who wants more than the figures.
#[derive(Debug)]
pub struct RunOutcome {
    /// The figures.
    pub figures: Figures,
    /// The merged histograms, in nanoseconds, warmup excluded.
    pub histograms: Histograms,
}

/// The merged histograms of a run, nanoseconds.
#[derive(Debug)]
pub struct Histograms {
    /// Send (intended send, in the open loop) to acknowledgement, one sample per batch.
    pub producer: Histogram<u64>,
    /// Poll round trip, one sample per poll that returned messages.
    pub consumer: Histogram<u64>,
    /// Payload timestamp to the end of the poll that read it, one sample per
    /// message; empty when consumers run alone (see the module docs).
    pub end_to_end: Histogram<u64>,
    /// Open loop only: actual send minus intended send, one sample per batch.
    pub send_lag: Histogram<u64>,
}

/// What every actor of a run shares. Counters are atomics written by one
/// actor each time and read by others; the phase flags are set once.
#[derive(Debug)]
struct Shared {
    config: LoadConfig,
    clock: Clock,
    /// When the run started (the first scheduled send), clock nanoseconds.
    start_ns: u64,
    /// When the warmup ended, clock nanoseconds, or [`UNSET`]. A sample counts
    /// if and only if its send started at or after this. For a warmup by
    /// message count it is set by the producer whose ack crosses the count, to
    /// the time of that ack: every sample started earlier is warmup.
    measure_from: AtomicU64,
    /// Messages acknowledged so far, all producers.
    acked: AtomicU64,
    /// Messages read so far, all consumers: the warmup's count when
    /// consumers run alone.
    read: AtomicU64,
    /// Messages acknowledged per partition. Consumers read these only after
    /// the producers have been joined (`producers_done` set), which orders
    /// every increment before the read, so `Relaxed` is enough.
    produced: Vec<AtomicU64>,
    /// When the last producer finished.
    producers_done: OnceLock<Instant>,
    /// Set when any actor fails: the others stop at their next step.
    abort: AtomicBool,
    progress: ProgressBar,
}

impl Shared {
    fn measure_from(&self) -> Option<u64> {
        let ns = self.measure_from.load(Ordering::Acquire);
        (ns != UNSET).then_some(ns)
    }

    /// Whether a sample whose send started at `started_ns` is measured.
    /// Before the warmup ends nothing is: the end will be later than now.
    fn is_measured(&self, started_ns: u64) -> bool {
        self.measure_from().is_some_and(|from| started_ns >= from)
    }

    /// Ends a warmup by message count once `acked_total` reaches it.
    fn note_acked(&self, acked_total: u64, now_ns: u64) {
        self.note_count(acked_total, now_ns);
    }

    /// Consumers alone: ends a warmup by message count once `read_total`
    /// messages have been read, as `note_acked` does for producers.
    fn note_read(&self, read_total: u64, now_ns: u64) {
        if self.config.roles == Roles::Consumers {
            self.note_count(read_total, now_ns);
        }
    }

    fn note_count(&self, total: u64, now_ns: u64) {
        if let Warmup::Messages(warmup) = self.config.warmup
            && total >= warmup
        {
            // Only the first crossing sets it; later ones find it set.
            let _ = self.measure_from.compare_exchange(
                UNSET,
                now_ns,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// Whether a send due at `due_ns` falls after a timed run's end.
    fn past_deadline(&self, due_ns: u64) -> bool {
        match self.config.stop {
            Stop::Messages(_) => false,
            Stop::Duration(duration) => self
                .measure_from()
                .is_some_and(|from| due_ns >= from.saturating_add(nanos(duration))),
        }
    }

    /// Open loop: the intended send time of producer `producer`'s batch
    /// `batch`. The producers' batches interleave on one schedule (global batch
    /// number `batch * producers + producer`), so together they send at the
    /// configured rate with their sends evenly spread, not all at once.
    fn scheduled_ns(&self, producer: u32, batch: u64, messages_per_s: u64) -> u64 {
        let global = u128::from(batch) * u128::from(self.config.producers) + u128::from(producer);
        let offset = global * u128::from(self.config.batch) * 1_000_000_000
            / u128::from(messages_per_s.max(1));
        self.start_ns
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// [`run`] for a caller without a Tokio runtime (stage 6's `rivulet bench`,
/// whose broker runs on compio, not Tokio): starts a multi-threaded runtime
/// with `threads` workers, runs, and stops it. Rejected: making the CLI
/// depend on Tokio itself, one more runtime choice for a binary that needs
/// it only here.
pub fn run_blocking<T: Target>(
    target: &T,
    config: &LoadConfig,
    progress: &ProgressBar,
    threads: usize,
) -> Result<RunOutcome, LoadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("rivulet-loadgen")
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    runtime.block_on(run(target, config, progress))
}

/// Runs `config` against `target` and returns what it measured.
///
/// Call it inside a multi-threaded Tokio runtime: each actor is a task, and a
/// single-threaded runtime would measure the actors taking turns. `progress`
/// is advanced by messages acknowledged; pass `ProgressBar::hidden()` for none.
pub async fn run<T: Target>(
    target: &T,
    config: &LoadConfig,
    progress: &ProgressBar,
) -> Result<RunOutcome, LoadError> {
    config.validate()?;
    target
        .prepare(config.partitions)
        .await
        .map_err(LoadError::Prepare)?;
    let mut producers = Vec::new();
    for id in 0..config.producers {
        let connection = target
            .connect()
            .await
            .map_err(|source| LoadError::Connect {
                actor: Actor::Producer(id),
                source,
            })?;
        let pool = BatchPool::new(config, id);
        producers.push((connection, pool));
    }
    let mut consumers = Vec::new();
    for id in 0..config.consumers {
        consumers.push(
            target
                .connect()
                .await
                .map_err(|source| LoadError::Connect {
                    actor: Actor::Consumer(id),
                    source,
                })?,
        );
    }

    let clock = Clock::start();
    let start_ns = clock.now_ns();
    let shared = Arc::new(Shared {
        config: config.clone(),
        clock,
        start_ns,
        measure_from: AtomicU64::new(UNSET),
        acked: AtomicU64::new(0),
        read: AtomicU64::new(0),
        produced: (0..config.partitions).map(|_| AtomicU64::new(0)).collect(),
        producers_done: OnceLock::new(),
        abort: AtomicBool::new(false),
        progress: progress.clone(),
    });
    // The first error is the cause; the actors that stopped because of it
    // return what they had, which is then discarded.
    let mut first_error = None;
    let (producer_reports, consumer_reports) = if config.roles == Roles::Consumers {
        // Every message is written before any consumer starts; measuring
        // (and its warmup) starts with the consumers.
        let fill = spawn_each(
            producers,
            &shared,
            |(connection, pool), id, shared| async move { fill(connection, id, pool, &shared).await },
        );
        join_each(fill, Actor::Producer, &shared, &mut first_error).await;
        if let Some(error) = first_error {
            progress.finish_and_clear();
            return Err(error);
        }
        let _ = shared.producers_done.set(Instant::now());
        start_measuring(&shared);
        let consumers = spawn_each(consumers, &shared, consume_task);
        let consumer_reports =
            join_each(consumers, Actor::Consumer, &shared, &mut first_error).await;
        (Vec::new(), consumer_reports)
    } else {
        start_measuring(&shared);
        let producers = spawn_each(
            producers,
            &shared,
            |(connection, pool), id, shared| async move { produce(connection, id, pool, &shared).await },
        );
        let consumers = spawn_each(consumers, &shared, consume_task);
        let producer_reports =
            join_each(producers, Actor::Producer, &shared, &mut first_error).await;
        let _ = shared.producers_done.set(Instant::now());
        let consumer_reports =
            join_each(consumers, Actor::Consumer, &shared, &mut first_error).await;
        (producer_reports, consumer_reports)
    };
    progress.finish_and_clear();
    if let Some(error) = first_error {
        return Err(error);
    }
    summarize(&shared, &producer_reports, &consumer_reports)
}

async fn consume_task<C: Connection>(
    connection: C,
    id: u32,
    shared: Arc<Shared>,
) -> Result<ConsumerReport, LoadError> {
    consume(connection, id, &shared).await
}

/// Spawns `body` for each actor (a Tokio task each, numbered from 0); an
/// actor that fails tells the others to stop.
fn spawn_each<A, R, F, Fut>(
    actors: Vec<A>,
    shared: &Arc<Shared>,
    body: F,
) -> Vec<JoinHandle<Result<R, LoadError>>>
where
    F: Fn(A, u32, Arc<Shared>) -> Fut,
    Fut: Future<Output = Result<R, LoadError>> + Send + 'static,
    R: Send + 'static,
{
    (0..)
        .zip(actors)
        .map(|(id, actor)| {
            let task = body(actor, id, Arc::clone(shared));
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let result = task.await;
                if result.is_err() {
                    shared.abort();
                }
                result
            })
        })
        .collect()
}

/// Waits for every task of [`spawn_each`]; the first error found goes to
/// `first_error` unless one is there already, and a panic is reported as
/// the actor's (`actor` names it from its number).
async fn join_each<R>(
    tasks: Vec<JoinHandle<Result<R, LoadError>>>,
    actor: fn(u32) -> Actor,
    shared: &Shared,
    first_error: &mut Option<LoadError>,
) -> Vec<R> {
    let mut reports = Vec::new();
    for (id, task) in (0..).zip(tasks) {
        match task.await {
            Ok(Ok(report)) => reports.push(report),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(_) => {
                shared.abort();
                first_error.get_or_insert(LoadError::Panicked { actor: actor(id) });
            }
        }
    }
    reports
}

/// Sets when measuring starts, by the warmup: now, at a count (set later,
/// by the actor whose count crosses it), or after a span from now. Called
/// when the measured actors start: with the producers, or after the fill
/// when consumers run alone.
fn start_measuring(shared: &Shared) {
    let now_ns = shared.clock.now_ns();
    let from = match shared.config.warmup {
        Warmup::None | Warmup::Messages(0) => now_ns,
        Warmup::Messages(_) => return,
        Warmup::Duration(duration) => now_ns.saturating_add(nanos(duration)),
    };
    shared.measure_from.store(from, Ordering::Release);
}

/// One producer's share of the fill: its quota, in its batches, to its
/// partitions, each batch stamped with its send time (so the consumers can
/// still check every timestamp is one this run wrote).
async fn fill<C: Connection>(
    mut connection: C,
    id: u32,
    mut pool: BatchPool,
    shared: &Shared,
) -> Result<(), LoadError> {
    let config = &shared.config;
    // `validate` refuses a timed consumers-alone run, so there is a quota.
    let quota = config.producer_quota(id).unwrap_or(0);
    let batch = u64::from(config.batch);
    let mut sent = 0;
    let mut j = 0;
    while sent < quota && !shared.aborted() {
        let len = (quota - sent).min(batch);
        let partition = config.partition_of(id, j);
        let payloads = pool.next_batch(len as usize, shared.clock.now_ns());
        send(&mut connection, id, partition, payloads, config).await?;
        shared.produced[partition as usize].fetch_add(len, Ordering::Relaxed);
        sent += len;
        j += 1;
    }
    Ok(())
}

/// One produce, bounded by `op_timeout`, its failure named.
async fn send<C: Connection>(
    connection: &mut C,
    producer: u32,
    partition: u32,
    payloads: &[Vec<u8>],
    config: &LoadConfig,
) -> Result<(), LoadError> {
    match timeout(config.op_timeout, connection.produce(partition, payloads)).await {
        Err(_) => Err(LoadError::Timeout {
            actor: Actor::Producer(producer),
            partition,
            after: config.op_timeout,
        }),
        Ok(Err(source)) => Err(LoadError::Produce {
            producer,
            partition,
            source,
        }),
        // The first offset is not checked here: with several producers on
        // a partition, only a reader can tell whether offsets are dense.
        Ok(Ok(_first_offset)) => Ok(()),
    }
}

/// What one producer measured.
#[derive(Debug)]
struct ProducerReport {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    /// Messages in measured batches.
    measured: u64,
    /// Their payload bytes (with a size distribution, not messages times a size).
    measured_bytes: u64,
    /// The last measured acknowledgement, clock nanoseconds.
    last_ack_ns: u64,
}

// ANCHOR: produce
/// One producer: sends batches until its quota or the deadline, one in flight.
async fn produce<C: Connection>(
    mut connection: C,
    id: u32,
    mut pool: BatchPool,
    shared: &Shared,
) -> Result<ProducerReport, LoadError> {
    let config = &shared.config;
    let quota = config.producer_quota(id);
    let batch = u64::from(config.batch);
    let mut report = ProducerReport {
        latency: histogram::new_histogram(),
        send_lag: histogram::new_histogram(),
        measured: 0,
        measured_bytes: 0,
        last_ack_ns: 0,
    };
    let mut sent = 0;
    for j in 0.. {
        let len = match quota {
            Some(quota) => (quota - sent).min(batch),
            None => batch,
        };
        if len == 0 || shared.aborted() {
            break;
        }
        let intended_ns = match config.mode {
            Mode::ClosedLoop => None,
            Mode::OpenLoop { messages_per_s } => Some(shared.scheduled_ns(id, j, messages_per_s)),
        };
        // A timed run ends by the schedule in the open loop (so it sends what
        // the schedule says however late it runs), by the clock in the closed one.
        if shared.past_deadline(intended_ns.unwrap_or_else(|| shared.clock.now_ns())) {
            break;
        }
        if let Some(intended_ns) = intended_ns {
            wait_until(shared, intended_ns).await;
        }
        let sent_ns = shared.clock.now_ns();
        // Latency is measured from here: the intended time in the open loop.
        let started_ns = intended_ns.unwrap_or(sent_ns);
        let partition = config.partition_of(id, j);
        let payloads = pool.next_batch(len as usize, started_ns);
        let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
        send(&mut connection, id, partition, payloads, config).await?;
        let acked_ns = shared.clock.now_ns();
        sent += len;
        shared.produced[partition as usize].fetch_add(len, Ordering::Relaxed);
        shared.progress.inc(len);
        let acked_total = shared.acked.fetch_add(len, Ordering::AcqRel) + len;
        shared.note_acked(acked_total, acked_ns);
        if shared.is_measured(started_ns) {
            record(&mut report.latency, acked_ns - started_ns);
            if intended_ns.is_some() {
                record(&mut report.send_lag, sent_ns - started_ns);
            }
            report.measured += len;
            report.measured_bytes += bytes;
            report.last_ack_ns = acked_ns;
        }
    }
    Ok(report)
}
// ANCHOR_END: produce

/// Waits for the clock to reach `due_ns`: the timer for most of the wait, a
/// yield loop for the last [`SPIN_BEFORE_DUE`].
async fn wait_until(shared: &Shared, due_ns: u64) {
    let due = shared.clock.instant(due_ns);
    if let Some(wake) = due.checked_sub(SPIN_BEFORE_DUE)
        && wake > Instant::now()
    {
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// What one consumer measured.
#[derive(Debug)]
struct ConsumerReport {
    poll: Histogram<u64>,
    end_to_end: Histogram<u64>,
    /// Messages returned by measured polls.
    measured: u64,
    /// Their payload bytes.
    measured_bytes: u64,
    /// The end of the last measured poll, clock nanoseconds.
    last_poll_ns: u64,
    /// Messages read, per owned partition.
    consumed: Vec<(u32, u64)>,
    /// Polls that returned nothing.
    empty_polls: u64,
}

/// One consumer: reads its partitions from offset 0 until it has everything
/// the producers had acknowledged, checking every message on the way.
async fn consume<C: Connection>(
    mut connection: C,
    id: u32,
    shared: &Shared,
) -> Result<ConsumerReport, LoadError> {
    let config = &shared.config;
    let owned: Vec<u32> = (id..config.partitions)
        .step_by(config.consumers as usize)
        .collect();
    let mut next = vec![0u64; owned.len()];
    let mut report = ConsumerReport {
        poll: histogram::new_histogram(),
        end_to_end: histogram::new_histogram(),
        measured: 0,
        measured_bytes: 0,
        last_poll_ns: 0,
        consumed: Vec::new(),
        empty_polls: 0,
    };
    let mut idle_rounds = 0u32;
    let alone = config.roles == Roles::Consumers;
    // Consumers alone: when this consumer last read something (the drain
    // bound is on silence then, see the module docs).
    let mut last_read = Instant::now();
    while !shared.aborted() {
        if let Some(&done) = shared.producers_done.get() {
            let mut short = None;
            for (&partition, &consumed) in owned.iter().zip(&next) {
                let produced = shared.produced[partition as usize].load(Ordering::Relaxed);
                if consumed > produced {
                    return Err(LoadError::Excess {
                        partition,
                        produced,
                        consumed,
                    });
                }
                if consumed < produced && short.is_none() {
                    short = Some((partition, produced, consumed));
                }
            }
            let Some((partition, produced, consumed)) = short else {
                break;
            };
            let waiting_since = if alone { done.max(last_read) } else { done };
            if waiting_since.elapsed() > config.drain_timeout {
                return Err(LoadError::Shortfall {
                    partition,
                    produced,
                    consumed,
                    waited: config.drain_timeout,
                });
            }
        }
        let mut got_any = false;
        for (&partition, next) in owned.iter().zip(next.iter_mut()) {
            let started_ns = shared.clock.now_ns();
            let polled = timeout(
                config.op_timeout,
                connection.poll(partition, *next, config.poll_batch),
            )
            .await;
            let polled_ns = shared.clock.now_ns();
            let messages = match polled {
                Err(_) => {
                    return Err(LoadError::Timeout {
                        actor: Actor::Consumer(id),
                        partition,
                        after: config.op_timeout,
                    });
                }
                Ok(Err(source)) => {
                    return Err(LoadError::Poll {
                        consumer: id,
                        partition,
                        source,
                    });
                }
                Ok(Ok(messages)) => messages,
            };
            if messages.is_empty() {
                report.empty_polls += 1;
                continue;
            }
            got_any = true;
            for message in &messages {
                if message.offset != *next {
                    return Err(LoadError::OutOfOrder {
                        partition,
                        expected: *next,
                        got: message.offset,
                    });
                }
                // A size the run could not have sent. With a distribution the
                // exact size is not checked: the consumer cannot tell which
                // producer's pool (and so which draw) a message came from.
                let len = message.payload.len();
                if len < config.min_size() || len > config.max_size() {
                    return Err(LoadError::WrongSize {
                        partition,
                        offset: message.offset,
                        len,
                        min: config.min_size(),
                        max: config.max_size(),
                    });
                }
                let sent_ns = payload::timestamp(&message.payload)
                    .filter(|&sent| sent >= shared.start_ns && sent <= polled_ns)
                    .ok_or_else(|| LoadError::BadTimestamp {
                        partition,
                        offset: message.offset,
                        timestamp_ns: payload::timestamp(&message.payload).unwrap_or(0),
                    })?;
                if !alone && shared.is_measured(sent_ns) {
                    record(&mut report.end_to_end, polled_ns - sent_ns);
                }
                *next += 1;
            }
            if alone {
                let count = messages.len() as u64;
                let read_total = shared.read.fetch_add(count, Ordering::AcqRel) + count;
                shared.note_read(read_total, polled_ns);
                shared.progress.inc(count);
                last_read = Instant::now();
            }
            if shared.is_measured(started_ns) {
                record(&mut report.poll, polled_ns - started_ns);
                report.measured += messages.len() as u64;
                report.measured_bytes +=
                    messages.iter().map(|m| m.payload.len() as u64).sum::<u64>();
                report.last_poll_ns = polled_ns;
            }
        }
        if got_any {
            idle_rounds = 0;
        } else {
            idle_rounds = idle_rounds.saturating_add(1);
            if idle_rounds <= SPIN_ROUNDS {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(IDLE_SLEEP).await;
            }
        }
    }
    report.consumed = owned.into_iter().zip(next).collect();
    Ok(report)
}

/// Merges the actors' reports into the run's figures.
fn summarize(
    shared: &Shared,
    producers: &[ProducerReport],
    consumers: &[ConsumerReport],
) -> Result<RunOutcome, LoadError> {
    let config = &shared.config;
    let from = shared.measure_from().unwrap_or(shared.start_ns);
    let histograms = Histograms {
        producer: histogram::merge(producers.iter().map(|p| &p.latency))?,
        consumer: histogram::merge(consumers.iter().map(|c| &c.poll))?,
        end_to_end: histogram::merge(consumers.iter().map(|c| &c.end_to_end))?,
        send_lag: histogram::merge(producers.iter().map(|p| &p.send_lag))?,
    };
    let side = |(messages, bytes): (u64, u64), last_ns: u64, latency: &Histogram<u64>| {
        Side::with_bytes(
            messages,
            bytes,
            Duration::from_nanos(last_ns.saturating_sub(from)),
            Percentiles::of(latency),
        )
    };
    let producer = side(
        (
            producers.iter().map(|p| p.measured).sum(),
            producers.iter().map(|p| p.measured_bytes).sum(),
        ),
        producers
            .iter()
            .map(|p| p.last_ack_ns)
            .max()
            .unwrap_or(from),
        &histograms.producer,
    );
    let consumer = side(
        (
            consumers.iter().map(|c| c.measured).sum(),
            consumers.iter().map(|c| c.measured_bytes).sum(),
        ),
        consumers
            .iter()
            .map(|c| c.last_poll_ns)
            .max()
            .unwrap_or(from),
        &histograms.consumer,
    );
    let produced_per_partition: Vec<u64> = shared
        .produced
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    let mut consumed_per_partition = vec![0; produced_per_partition.len()];
    for (partition, count) in consumers.iter().flat_map(|c| &c.consumed) {
        consumed_per_partition[*partition as usize] += count;
    }
    let figures = Figures {
        producer,
        consumer,
        end_to_end: Percentiles::of(&histograms.end_to_end),
        send_lag: match config.mode {
            Mode::ClosedLoop => None,
            Mode::OpenLoop { .. } => Some(Percentiles::of(&histograms.send_lag)),
        },
        produced: produced_per_partition.iter().sum(),
        consumed: consumed_per_partition.iter().sum(),
        produced_per_partition,
        consumed_per_partition,
        empty_polls: consumers.iter().map(|c| c.empty_polls).sum(),
    };
    Ok(RunOutcome {
        figures,
        histograms,
    })
}
