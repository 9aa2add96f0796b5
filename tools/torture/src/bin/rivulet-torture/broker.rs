//! Rounds of crashes of the real `rivulet-server`.
//!
//! Each round starts the server on the data folder the last one left,
//! checks everything promised so far ([`Ledger::verify`]) and the named
//! consumer's stored offsets, then runs producers and a consumer against it
//! and kills it at one of four moments:
//!
//! - **produce**: SIGKILL at a random time under load;
//! - **rollover**: SIGKILL as soon as a new segment file appears (the
//!   driver watches the data folder), while the server is between creating
//!   the file and writing its first records;
//! - **retention**: SIGKILL as soon as a segment file disappears, in the
//!   middle of retention's deletions;
//! - **shutdown**: SIGTERM, then SIGKILL a few milliseconds later, in the
//!   middle of the graceful shutdown's flush (or after it, if it was fast).
//!
//! Every server runs with fsync `always`, so every acknowledgement is a
//! promise of durability; each round alternates Direct I/O and the io
//! driver, so recovery reads what another configuration wrote.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rivulet_broker::process::ServerProcess;
use rivulet_client::api::{self, ConsumerOffsets, GetOffsets, PollBy, PollKind, TopicRef};
use rivulet_client::{Client, ClientError, Partitioning};
use rivulet_torture::{BrokerSummary, ConsumerCheck, Kills};

use crate::ledger::Ledger;
use crate::payload::{id, payload};
use crate::rng::Rng;

/// The topic every round writes.
const TOPIC: u32 = 1;
/// The named consumer whose stored offsets must never go back.
const CONSUMER: &str = "torture";
/// How long a request may take before the server counts as hung.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a round waits for a rollover or a deletion before it kills
/// anyway (and counts the kill as a plain `produce` one).
const MOMENT_WAIT: Duration = Duration::from_secs(60);

/// What the driver was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `rivulet-server` binary.
    pub server: PathBuf,
    /// The data folder (emptied first).
    pub data: PathBuf,
    /// Rounds: one kill and one restart each.
    pub rounds: u64,
    /// Stop starting rounds after this long.
    pub duration: Option<Duration>,
    /// Producer connections.
    pub producers: u64,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Shards of the server.
    pub shards: u32,
    /// Segment size: small, so rollover is frequent.
    pub segment_size: u64,
    /// Retention by size per partition, if the server has it.
    pub retention_bytes: Option<u64>,
    /// Largest batch a producer sends.
    pub max_batch: u64,
    /// The fsync policy: `always`, except for the negative control (a run
    /// under `never` must find losses, or the checks could not fail).
    pub fsync: String,
}

/// The moments a round kills at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Produce,
    Rollover,
    Retention,
    Shutdown,
}

/// Which of the server's optional features this binary has.
#[derive(Debug, Clone, Default)]
struct Features {
    retention_flag: bool,
    /// The metrics endpoint listens on a fixed port by default: turned off,
    /// so torture servers never collide with another test's.
    metrics_flag: bool,
    /// The server logs each start and stop at `info`: hundreds of rounds
    /// of that would bury the driver's own report.
    log_level_flag: bool,
    /// The Kafka listener, on by default at a fixed port: turned off, like
    /// the metrics endpoint (the torture speaks Rivulet's protocol).
    kafka_flag: bool,
}

fn features(server: &Path) -> anyhow::Result<Features> {
    let help = Command::new(server)
        .arg("--help")
        .output()
        .with_context(|| format!("running {} --help", server.display()))?;
    let text = String::from_utf8_lossy(&help.stdout);
    Ok(Features {
        retention_flag: text.contains("--retention-bytes"),
        metrics_flag: text.contains("--metrics-listen"),
        log_level_flag: text.contains("--log-level"),
        kafka_flag: text.contains("--kafka-listen"),
    })
}

/// The server's flags for round `round`.
fn server_args(options: &Options, features: &Features, round: u64) -> Vec<OsString> {
    // Alternate the storage paths, so recovery reads what another
    // configuration wrote: Direct I/O on and off, io_uring and polling.
    let direct = if round.is_multiple_of(2) { "on" } else { "off" };
    let driver = if round % 4 < 2 { "auto" } else { "polling" };
    let mut args: Vec<OsString> = [
        "--listen",
        "127.0.0.1:0",
        "--pin",
        "off",
        "--direct-io",
        direct,
        "--io-driver",
        driver,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("--fsync".into());
    args.push(options.fsync.clone().into());
    if features.metrics_flag {
        args.push("--metrics-listen".into());
        args.push("off".into());
    }
    if features.kafka_flag {
        args.push("--kafka-listen".into());
        args.push("off".into());
    }
    if features.log_level_flag {
        args.push("--log-level".into());
        args.push("warn".into());
    }
    args.push("--shards".into());
    args.push(options.shards.to_string().into());
    args.push("--segment-size".into());
    args.push(options.segment_size.to_string().into());
    if let (Some(bytes), true) = (options.retention_bytes, features.retention_flag) {
        args.push("--retention-bytes".into());
        args.push(bytes.to_string().into());
    }
    args.push("--data".into());
    args.push(options.data.clone().into());
    args
}

fn start(options: &Options, features: &Features, round: u64) -> anyhow::Result<ServerProcess> {
    let args = server_args(options, features, round);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(OsString::as_os_str).collect();
    ServerProcess::spawn(&options.server, &refs)
        .with_context(|| format!("starting {} (round {round})", options.server.display()))
}

/// Starts the server on what the last round left, connects, and makes sure
/// the topic is there (it is, after the first round: recovery must find it).
fn restart(
    options: &Options,
    features: &Features,
    round: u64,
) -> anyhow::Result<(ServerProcess, Client)> {
    let server = start(options, features, round)?;
    let mut conn = Client::connect_with_timeout(server.addr(), TIMEOUT).context("connecting")?;
    conn.create_topic_by_id(TOPIC, options.partitions)
        .map_err(|error| anyhow::anyhow!("create topic: {error}"))?;
    Ok((server, conn))
}

/// Every segment log file under the data folder.
fn segment_files(data: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "log") {
                files.insert(path);
            }
        }
    }
    files
}

/// What the round's threads share.
struct Shared {
    stop: AtomicBool,
    acks: Mutex<Vec<(u32, u64, Vec<u64>)>>,
    /// Acks that break a promise by themselves: not durable under
    /// `always`, or not for the whole batch where it was sent.
    bad_acks: Mutex<Vec<String>>,
    /// Per partition: the highest offset an acknowledged auto-commit stored.
    committed: Mutex<Vec<u64>>,
    commits: Mutex<u64>,
    consumer_problems: Mutex<Vec<String>>,
}

/// What one producer thread is given.
struct ProducerPlan {
    /// Its number (the high bits of its message ids).
    producer: u64,
    /// Its next sequence number: ids are never reused across rounds.
    sequence: u64,
    /// Its own random choices.
    rng: Rng,
    /// Partitions of the topic.
    partitions: u32,
    /// Largest batch.
    max_batch: u64,
    /// Whether every ack must say durable (fsync `always`).
    always: bool,
}

/// One producer until the server dies or `stop`: random partitions,
/// random batch sizes, every acknowledgement recorded. Returns its next
/// sequence number.
fn produce(addr: std::net::SocketAddr, shared: Arc<Shared>, plan: ProducerPlan) -> u64 {
    let ProducerPlan {
        producer,
        mut sequence,
        mut rng,
        partitions,
        max_batch,
        always,
    } = plan;
    let Ok(mut conn) = Client::connect_with_timeout(addr, TIMEOUT) else {
        return sequence;
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let partition = rng.range(0, u64::from(partitions) - 1) as u32;
        let n = rng.range(1, max_batch);
        let messages: Vec<(u64, Vec<u8>)> = (sequence..sequence + n)
            .map(|s| (id(producer, s), payload(id(producer, s))))
            .collect();
        // The ids are used up whatever happens: an unacknowledged batch may
        // still be stored, and no id may ever mean two messages.
        sequence += n;
        let records = messages.iter().map(|(id, payload)| (*id, payload));
        match conn.produce_with_ids(TOPIC, Partitioning::Explicit(partition), records) {
            Ok(produced) => {
                // The ack must be for the whole batch, where it was sent,
                // and (under `always`) durable.
                let wrong = u64::from(produced.count) != n || produced.partition != partition;
                if (wrong || (always && !produced.durable))
                    && let Ok(mut list) = shared.bad_acks.lock()
                {
                    list.push(format!(
                        "producer {producer}: ack {produced:?} for {n} messages to partition \
                         {partition} (fsync always: {always})"
                    ));
                }
                let ids = messages.iter().map(|(id, _)| *id).collect();
                if let Ok(mut acks) = shared.acks.lock() {
                    acks.push((produced.partition, produced.first_offset, ids));
                }
            }
            Err(_) => break, // killed: what was in flight is unknown, and allowed either way
        }
    }
    sequence
}

/// The named consumer: polls `next` with auto-commit, partition by
/// partition, and remembers every commit the server acknowledged.
fn consume(addr: std::net::SocketAddr, shared: Arc<Shared>, partitions: u32) {
    let Ok(mut conn) = Client::connect_with_timeout(addr, TIMEOUT) else {
        return;
    };
    while !shared.stop.load(Ordering::Relaxed) {
        for partition in 0..partitions {
            let poll = PollBy {
                topic: TOPIC,
                partition,
                kind: PollKind::Next,
                count: 50,
                consumer: CONSUMER.to_string(),
                auto_commit: true,
            };
            let records = match conn.poll_by(&poll) {
                Ok(records) => records,
                Err(ClientError::Decode(message)) => {
                    if let Ok(mut problems) = shared.consumer_problems.lock() {
                        problems.push(format!("consumer poll reply: {message}"));
                    }
                    return;
                }
                Err(_) => return,
            };
            let Some(last) = records.last() else {
                continue;
            };
            let stored = last.offset + 1;
            if let (Ok(mut committed), Ok(mut commits)) =
                (shared.committed.lock(), shared.commits.lock())
            {
                let slot = &mut committed[partition as usize];
                if records[0].offset < *slot
                    && let Ok(mut problems) = shared.consumer_problems.lock()
                {
                    problems.push(format!(
                        "consumer: partition {partition} redelivered offset {} below its \
                         acknowledged commit {}",
                        records[0].offset, *slot
                    ));
                }
                *slot = (*slot).max(stored);
                *commits += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One round's load on a live server: a thread per producer, and the
/// named consumer's if consumer offsets are checked.
struct Load {
    shared: Arc<Shared>,
    producers: Vec<JoinHandle<u64>>,
    consumer: Option<JoinHandle<()>>,
}

impl Load {
    /// Starts the producers where their sequences left off (ids are never
    /// reused), and the consumer if `consume_too`, against `addr`.
    fn start(
        options: &Options,
        addr: SocketAddr,
        round: u64,
        sequences: &[u64],
        committed: &[u64],
        consume_too: bool,
        rng: &mut Rng,
    ) -> Load {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            acks: Mutex::new(Vec::new()),
            bad_acks: Mutex::new(Vec::new()),
            committed: Mutex::new(committed.to_vec()),
            commits: Mutex::new(0),
            consumer_problems: Mutex::new(Vec::new()),
        });
        let producers = (0..options.producers)
            .map(|producer| {
                let shared = shared.clone();
                let plan = ProducerPlan {
                    producer,
                    sequence: sequences[producer as usize],
                    rng: rng.fork(round << 16 | producer),
                    partitions: options.partitions,
                    max_batch: options.max_batch,
                    always: options.fsync == "always",
                };
                std::thread::spawn(move || produce(addr, shared, plan))
            })
            .collect();
        let consumer = consume_too.then(|| {
            let shared = shared.clone();
            let partitions = options.partitions;
            std::thread::spawn(move || consume(addr, shared, partitions))
        });
        Load {
            shared,
            producers,
            consumer,
        }
    }

    /// Waits (at most [`TIMEOUT`]) until `acks` batches were acknowledged.
    fn wait_for_acks(&self, acks: usize) {
        let started = Instant::now();
        while self.shared.acks.lock().map_or(0, |a| a.len()) < acks && started.elapsed() < TIMEOUT {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Once the server is dead: stops the threads and hands what they saw
    /// to the ledger (every acknowledgement, every problem), the producers'
    /// next sequences to `sequences` and the consumer's commits to
    /// `committed` and `consumer`.
    fn finish(
        self,
        ledger: &mut Ledger,
        sequences: &mut [u64],
        committed: &mut Vec<u64>,
        consumer: &mut ConsumerCheck,
    ) -> anyhow::Result<()> {
        let shared = self.shared;
        shared.stop.store(true, Ordering::Relaxed);
        for (producer, thread) in self.producers.into_iter().enumerate() {
            sequences[producer] = thread
                .join()
                .map_err(|_| anyhow::anyhow!("producer {producer} panicked"))?;
        }
        if let Some(thread) = self.consumer {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("the consumer panicked"))?;
        }
        let acks = std::mem::take(&mut *lock(&shared.acks)?);
        for (partition, first_offset, ids) in acks {
            ledger.acknowledged(partition, first_offset, &ids);
        }
        for message in std::mem::take(&mut *lock(&shared.bad_acks)?) {
            ledger.other_failure(message);
        }
        for message in std::mem::take(&mut *lock(&shared.consumer_problems)?) {
            ledger.other_failure(message);
        }
        committed.clone_from(&*lock(&shared.committed)?);
        consumer.commits += *lock(&shared.commits)?;
        Ok(())
    }
}

/// Whether the server has consumer offsets: one `GET_OFFSETS`, on its own
/// connection (an unknown code closes it).
fn has_consumer_offsets(addr: std::net::SocketAddr) -> Result<bool, ClientError> {
    let mut conn = Client::connect_with_timeout(addr, TIMEOUT)?;
    let request = GetOffsets {
        consumer: CONSUMER.to_string(),
        topic: TopicRef::Id(TOPIC),
    };
    match conn.call_json::<_, ConsumerOffsets>(api::code::GET_OFFSETS, &request) {
        Ok(_) => Ok(true),
        Err(ClientError::Server { status: 3, .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Sends `signal` to `pid` with `kill(1)`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

/// Segment files the watcher saw come and go.
#[derive(Debug, Default)]
struct Watched {
    created: u64,
    deleted: u64,
}

// ANCHOR: moments
/// Kills `server` at `moment`. Returns the moment the kill landed in (a
/// rollover or deletion that did not come in time makes it a kill under
/// load) and how the server ended.
fn kill_at(
    moment: Moment,
    server: ServerProcess,
    data: &Path,
    before: BTreeSet<PathBuf>,
    rng: &mut Rng,
    watched: &mut Watched,
) -> anyhow::Result<(Moment, ExitStatus)> {
    match moment {
        Moment::Produce => {
            std::thread::sleep(Duration::from_millis(rng.range(20, 400)));
            Ok((Moment::Produce, server.kill()?))
        }
        Moment::Rollover | Moment::Retention => {
            let deadline = Instant::now() + MOMENT_WAIT;
            let mut reached = false;
            let mut known = before;
            while Instant::now() < deadline {
                let now = segment_files(data);
                let created = now.difference(&known).count() as u64;
                let deleted = known.difference(&now).count() as u64;
                watched.created += created;
                watched.deleted += deleted;
                if (moment == Moment::Rollover && created > 0)
                    || (moment == Moment::Retention && deleted > 0)
                {
                    reached = true;
                    break;
                }
                known = now;
                std::thread::sleep(Duration::from_micros(200));
            }
            // Sometimes at once, sometimes a moment later, so the kill
            // lands at different steps of the rollover or deletion.
            if rng.range(0, 1) == 1 {
                std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
            }
            let status = server.kill()?;
            Ok((if reached { moment } else { Moment::Produce }, status))
        }
        Moment::Shutdown => {
            std::thread::sleep(Duration::from_millis(rng.range(20, 300)));
            signal(server.id(), "-TERM");
            // Within a few milliseconds: most shutdowns under `always` have
            // little to flush, and one that finishes first tests nothing.
            std::thread::sleep(Duration::from_micros(rng.range(0, 3_000)));
            Ok((Moment::Shutdown, server.kill()?))
        }
    }
}
// ANCHOR_END: moments

/// Runs the rounds; returns the summary (failures inside it).
pub fn run(options: &Options, rng: &mut Rng) -> anyhow::Result<BrokerSummary> {
    let began = Instant::now();
    if options.data.exists() {
        std::fs::remove_dir_all(&options.data)
            .with_context(|| format!("emptying {}", options.data.display()))?;
    }
    std::fs::create_dir_all(&options.data)?;
    let features = features(&options.server)?;
    let mut notes = Vec::new();
    if options.retention_bytes.is_some() && !features.retention_flag {
        notes.push(
            "retention: this rivulet-server has no --retention-bytes flag, so no round \
             ran with retention and no kill landed during deletion"
                .to_string(),
        );
    }
    let retention = options.retention_bytes.is_some() && features.retention_flag;
    let mut ledger = Ledger::new(TOPIC, options.partitions, retention);
    let mut kills = Kills::default();
    let mut consumer = ConsumerCheck::default();
    let mut committed = vec![0u64; options.partitions as usize];
    let mut sequences = vec![0u64; options.producers as usize];
    let mut watched = Watched::default();
    let mut moments = vec![Moment::Produce, Moment::Rollover, Moment::Shutdown];
    if retention {
        moments.insert(2, Moment::Retention);
    }
    // Moments in turn, from a random first one: a short run still meets
    // each of them.
    let first_moment = rng.range(0, moments.len() as u64 - 1) as usize;
    let mut rounds = 0;
    let mut gave_up = false;
    for round in 0..options.rounds {
        if options
            .duration
            .is_some_and(|limit| began.elapsed() >= limit)
        {
            break;
        }
        rounds += 1;
        let (server, mut conn) = match restart(options, &features, round) {
            Ok(started) => started,
            Err(error) => {
                // Recovery that cannot start is the worst failure of all:
                // say so in the summary, and stop.
                ledger.other_failure(format!(
                    "round {round}: the server did not come back: {error:#}"
                ));
                gave_up = true;
                break;
            }
        };
        let addr = server.addr();
        if round > 0 {
            check(&mut ledger, &mut conn, round);
            if consumer.checked {
                check_consumer(
                    addr,
                    options.partitions,
                    &committed,
                    &mut consumer,
                    &mut ledger,
                );
            }
        } else {
            match has_consumer_offsets(addr) {
                Ok(true) => consumer.checked = true,
                Ok(false) => {
                    consumer.note = Some(
                        "this rivulet-server has no consumer offsets (GET_OFFSETS is an \
                         unknown command): consumer offsets were not checked"
                            .to_string(),
                    );
                }
                Err(error) => {
                    consumer.note = Some(format!("consumer offsets not checked: {error}"));
                }
            }
        }
        drop(conn);

        let moment = moments[(round as usize + first_moment) % moments.len()];
        let before = segment_files(&options.data);
        let load = Load::start(
            options,
            addr,
            round,
            &sequences,
            &committed,
            consumer.checked,
            rng,
        );
        // Let some acknowledgements in first: a kill before any is no test.
        load.wait_for_acks(3);
        let (landed, status) = kill_at(moment, server, &options.data, before, rng, &mut watched)?;
        if landed != moment {
            kills.moment_not_reached += 1;
        }
        if landed == Moment::Shutdown && status.signal().is_none() {
            kills.shutdown_finished_first += 1;
            if !status.success() {
                ledger.other_failure(format!(
                    "round {round}: graceful shutdown exited with {status}"
                ));
            }
        }
        match landed {
            Moment::Produce => kills.produce += 1,
            Moment::Rollover => kills.rollover += 1,
            Moment::Retention => kills.retention += 1,
            Moment::Shutdown => kills.shutdown += 1,
        }
        load.finish(&mut ledger, &mut sequences, &mut committed, &mut consumer)?;
        eprintln!(
            "round {round}: killed at {landed:?}{}; {} acknowledged so far, {} records stored",
            if landed == moment {
                String::new()
            } else {
                format!(" (wanted {moment:?})")
            },
            ledger.counts.acknowledged,
            ledger.stored(),
        );
    }

    // The last check, and a clean stop that must succeed.
    if !gave_up {
        match restart(options, &features, rounds) {
            Ok((server, mut conn)) => {
                check(&mut ledger, &mut conn, rounds);
                if consumer.checked {
                    check_consumer(
                        server.addr(),
                        options.partitions,
                        &committed,
                        &mut consumer,
                        &mut ledger,
                    );
                }
                drop(conn);
                let status = server.terminate()?;
                if !status.success() {
                    ledger
                        .other_failure(format!("the final graceful shutdown exited with {status}"));
                }
            }
            Err(error) => ledger.other_failure(format!(
                "the server did not come back for the last check: {error:#}"
            )),
        }
    }
    Ok(BrokerSummary {
        rounds,
        seconds: began.elapsed().as_secs_f64(),
        fsync: options.fsync.clone(),
        segment_size: options.segment_size,
        retention_bytes: options.retention_bytes.filter(|_| retention),
        producers: options.producers,
        partitions: options.partitions,
        shards: options.shards,
        kills,
        segments_created_seen: watched.created,
        segments_deleted_seen: watched.deleted,
        counts: ledger.counts.clone(),
        consumer,
        notes,
        failures: ledger.failures.clone(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> anyhow::Result<std::sync::MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| anyhow::anyhow!("a torture thread panicked"))
}

/// Verifies the ledger against the restarted server; an error reading
/// (a reply that fails its checksum, a hang) is a failure too.
fn check(ledger: &mut Ledger, conn: &mut Client, round: u64) {
    match ledger.verify(conn) {
        Ok(()) => {}
        Err(ClientError::Decode(message)) => {
            ledger.counts.corrupt += 1;
            ledger.other_failure(format!(
                "round {round}: a poll reply failed to decode: {message}"
            ));
        }
        Err(error) => ledger.other_failure(format!("round {round}: reading back failed: {error}")),
    }
}

/// After a restart, every partition's stored offset must be at least the
/// last one acknowledged before the kill.
fn check_consumer(
    addr: std::net::SocketAddr,
    partitions: u32,
    committed: &[u64],
    consumer: &mut ConsumerCheck,
    ledger: &mut Ledger,
) {
    let result = Client::connect_with_timeout(addr, TIMEOUT).and_then(|mut conn| {
        conn.call_json::<_, ConsumerOffsets>(
            api::code::GET_OFFSETS,
            &GetOffsets {
                consumer: CONSUMER.to_string(),
                topic: TopicRef::Id(TOPIC),
            },
        )
    });
    let offsets = match result {
        Ok(offsets) => offsets,
        Err(error) => {
            ledger.other_failure(format!("GET_OFFSETS after restart: {error}"));
            return;
        }
    };
    for partition in 0..partitions {
        let stored = offsets
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .and_then(|p| p.offset)
            .unwrap_or(0);
        let acknowledged = committed[partition as usize];
        if stored < acknowledged {
            consumer.went_back += 1;
            ledger.other_failure(format!(
                "consumer {CONSUMER}: partition {partition}'s stored offset is {stored} after \
                 the restart, but {acknowledged} was acknowledged before the kill"
            ));
        }
    }
}
