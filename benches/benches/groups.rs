//! Consumer groups: how long a rebalance takes, on a real `rivulet-server`,
//! with Rivulet's own client (`rivulet_client::GroupConsumer`, one thread and
//! one connection per member) on a topic of 8 partitions.
//!
//! Three events, each on a fresh group made stable first:
//!
//! - **join**: a member joins a stable group of 1, 2 or 4; the time from the
//!   new member's join request until every member, old and new, holds its
//!   partitions of the new generation;
//! - **leave**: one of 4 members leaves (LeaveGroup, as `GroupConsumer::leave`
//!   and `rivulet poll --group` on its way out do); the time from its leave
//!   request until the 3 others hold the new generation;
//! - **kill**: one of 4 members stops without a word: its thread drops its
//!   consumer, so its connection closes as a SIGKILLed process's would, and
//!   nothing leaves the group; the time from then until the 3 others hold
//!   the new generation, its partitions among theirs.
//!
//! The members meanwhile do one of two things, a row each:
//!
//! - **polling**: what `rivulet poll --group --follow` does on a topic with
//!   nothing new: a poll of each of its partitions, then [`IDLE`] of sleep.
//!   A poll during a rebalance is refused (REBALANCING), so a member learns
//!   of one from its next poll;
//! - **busy**: a member working on a long batch, which only keeps its
//!   session alive: `GroupConsumer::heartbeat_if_due` every [`BUSY_CHECK`],
//!   which sends a heartbeat once a third of the session timeout has passed
//!   since the last one. It learns of a rebalance from that heartbeat.
//!
//! The old members' heartbeats all fall at the same moments (they got their
//! generation together), so where the event falls between two of them sets
//! how long it waits: each round starts its event a different fraction of
//! the heartbeat interval after the group became stable, spread evenly over
//! the interval across the rounds. The times are the clock's, not the CPU's:
//! a poll interval, a heartbeat interval, a session timeout, the broker's
//! group timer (`TICK`, 100 ms).
//!
//! A member counts as holding its assignment once `GroupConsumer` has its
//! join answer: at once for a busy member (the answer ends its heartbeat
//! call), and after the rest of that poll call for a polling one (a poll of
//! each of its partitions, well under a millisecond each here).
//!
//! `cargo bench -p bench --bench groups` writes
//! `benches/results/<profile>/groups.json` with the client's default session
//! timeout (`GroupOptions::default()`, that of `rivulet poll --group` too)
//! and [`ROUNDS`] rounds; `cargo run -p bench --bin publish` turns it into
//! `book/src/generated/groups.md`. Under `cargo test` it runs every row once
//! with the shortest session the broker allows (1 s), as a smoke test, and
//! writes nothing. When measuring, the server is built (release) first, so
//! it is never stale.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::latency::{Percentiles, histogram};
use bench::machine::{self, Machine};
use bench::results::{Group, ResultsFile, Row, RowKind, WorkloadSummary, results_dir};
use common::servers::{Server, build_release_server};
use rivulet_broker::groups::coordinator::SESSION_TIMEOUTS;
use rivulet_broker::process::server_binary;
use rivulet_client::api::{self, TopicRef};
use rivulet_client::{Client, GroupConsumer, GroupOptions};

/// The topic every group reads.
const TOPIC: &str = "orders";
/// Its partitions.
const PARTITIONS: u32 = 8;
/// Shards of the server: one per core of the development machine.
const SHARDS: u32 = 2;
/// A polling member's sleep after a poll that found nothing: that of
/// `rivulet poll --follow`.
const IDLE: Duration = Duration::from_millis(100);
/// How often a busy member calls `heartbeat_if_due`.
const BUSY_CHECK: Duration = Duration::from_millis(10);
/// How often a sleeping member looks whether it was told to do something else.
const WAKE: Duration = Duration::from_millis(5);
/// The stable groups a member joins.
const JOIN_SIZES: [usize; 3] = [1, 2, 4];
/// The stable group a member leaves, or is killed in.
const DEPART_SIZE: usize = 4;
/// Rounds when measuring; each row keeps every round's time.
const ROUNDS: usize = 9;

/// What a member's thread does next, set by the bench.
const POLLING: u8 = 0;
const BUSY: u8 = 1;
const LEAVE: u8 = 2;
const KILL: u8 = 3;
const STOP: u8 = 4;

/// What the members do while the event happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Polling,
    Busy,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Polling => "polling",
            Behaviour::Busy => "busy",
        }
    }

    fn mode(self) -> u8 {
        match self {
            Behaviour::Polling => POLLING,
            Behaviour::Busy => BUSY,
        }
    }
}

/// The event measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// A member joins a stable group of this many.
    Join(usize),
    /// One of this many leaves.
    Leave(usize),
    /// One of this many is killed.
    Kill(usize),
}

impl Event {
    fn group(self) -> &'static str {
        match self {
            Event::Join(_) => "join",
            Event::Leave(_) => "leave",
            Event::Kill(_) => "kill",
        }
    }

    fn size(self) -> usize {
        match self {
            Event::Join(n) | Event::Leave(n) | Event::Kill(n) => n,
        }
    }
}

/// One row of the results: an event, with the members doing one thing.
#[derive(Debug, Clone, Copy)]
struct Case {
    event: Event,
    behaviour: Behaviour,
}

impl Case {
    fn id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.event.group(),
            self.event.size(),
            self.behaviour.name()
        )
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for behaviour in [Behaviour::Polling, Behaviour::Busy] {
        for size in JOIN_SIZES {
            cases.push(Case {
                event: Event::Join(size),
                behaviour,
            });
        }
    }
    for event in [Event::Leave(DEPART_SIZE), Event::Kill(DEPART_SIZE)] {
        for behaviour in [Behaviour::Polling, Behaviour::Busy] {
            cases.push(Case { event, behaviour });
        }
    }
    cases
}

/// What a member's thread reports.
#[derive(Debug)]
enum Report {
    /// It is about to send its first join.
    Asked { member: usize, at: Instant },
    /// It holds `partitions` in `generation` since `at`.
    Holds {
        member: usize,
        generation: i32,
        partitions: Vec<u32>,
        at: Instant,
    },
    /// It left (or was killed) at `at`.
    Gone { member: usize, at: Instant },
    /// Its thread failed.
    Failed { member: usize, error: String },
}

/// A member: a thread with its own connection, told what to do by `mode`.
struct Member {
    mode: Arc<AtomicU8>,
    thread: JoinHandle<()>,
}

impl Member {
    fn spawn(
        addr: SocketAddr,
        group: &str,
        index: usize,
        session: Duration,
        reports: &Sender<Report>,
    ) -> Member {
        let (group, mode) = (group.to_string(), Arc::new(AtomicU8::new(POLLING)));
        let (told, reports) = (Arc::clone(&mode), reports.clone());
        let thread = std::thread::spawn(move || {
            if let Err(error) = member_life(addr, &group, index, session, &told, &reports) {
                let _ = reports.send(Report::Failed {
                    member: index,
                    error: format!("{error:#}"),
                });
            }
        });
        Member { mode, thread }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Release);
    }
}

/// A member's life: join, then poll or stay busy as told, until told to
/// leave, to die, or to stop; a report each time its generation changes.
fn member_life(
    addr: SocketAddr,
    group: &str,
    index: usize,
    session: Duration,
    mode: &AtomicU8,
    reports: &Sender<Report>,
) -> anyhow::Result<()> {
    let client = Client::connect(&addr.to_string()).context("connecting")?;
    let options = GroupOptions {
        session_timeout: session,
        count: 100,
        client_id: Some(format!("member{index}")),
    };
    let _ = reports.send(Report::Asked {
        member: index,
        at: Instant::now(),
    });
    let mut consumer = GroupConsumer::join(client, group, TopicRef::Name(TOPIC.into()), options)
        .context("joining")?;
    let mut generation = 0;
    loop {
        // Reported before any sleep: the moment it holds them.
        if consumer.generation() != generation {
            generation = consumer.generation();
            let _ = reports.send(Report::Holds {
                member: index,
                generation,
                partitions: consumer.partitions().to_vec(),
                at: Instant::now(),
            });
        }
        let pause = match mode.load(Ordering::Acquire) {
            POLLING => match consumer.poll().context("polling")? {
                Some(_) => {
                    consumer.commit().context("committing")?;
                    Duration::ZERO
                }
                None => IDLE,
            },
            BUSY => {
                consumer.heartbeat_if_due().context("heartbeat")?;
                BUSY_CHECK
            }
            LEAVE => {
                let at = Instant::now();
                consumer.leave().context("leaving")?;
                let _ = reports.send(Report::Gone { member: index, at });
                return Ok(());
            }
            KILL => {
                // The connection closes; the group is told nothing.
                let at = Instant::now();
                drop(consumer);
                let _ = reports.send(Report::Gone { member: index, at });
                return Ok(());
            }
            _ => {
                consumer.leave().context("leaving at the end")?;
                return Ok(());
            }
        };
        if consumer.generation() == generation {
            wait(mode, pause);
        }
    }
}

/// Sleeps for `pause`, or less if the bench changes `mode` meanwhile: a
/// member leaves (or dies) when told, not when its sleep ends. (The
/// members' sleeps are in step, since they got their generation together;
/// a leave at the end of a sleep would meet the others' polls at once.)
fn wait(mode: &AtomicU8, pause: Duration) {
    let (was, until) = (mode.load(Ordering::Acquire), Instant::now() + pause);
    while mode.load(Ordering::Acquire) == was {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(WAKE));
    }
}

/// What the members of one round have reported.
struct Watch {
    reports: Receiver<Report>,
    holds: BTreeMap<usize, (i32, Vec<u32>, Instant)>,
    asked: BTreeMap<usize, Instant>,
    gone: BTreeMap<usize, Instant>,
}

impl Watch {
    fn new(reports: Receiver<Report>) -> Watch {
        Watch {
            reports,
            holds: BTreeMap::new(),
            asked: BTreeMap::new(),
            gone: BTreeMap::new(),
        }
    }

    /// Takes the next report, waiting until `deadline`.
    fn take(&mut self, deadline: Instant, what: &str) -> anyhow::Result<()> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let report = match self.reports.recv_timeout(wait) {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => bail!("timed out waiting for {what}"),
            Err(RecvTimeoutError::Disconnected) => bail!("no member is left to report {what}"),
        };
        match report {
            Report::Asked { member, at } => {
                self.asked.insert(member, at);
            }
            Report::Holds {
                member,
                generation,
                partitions,
                at,
            } => {
                self.holds.insert(member, (generation, partitions, at));
            }
            Report::Gone { member, at } => {
                self.gone.insert(member, at);
            }
            Report::Failed { member, error } => bail!("member {member} failed: {error}"),
        }
        Ok(())
    }

    /// Waits until every one of `members` holds partitions of one generation
    /// newer than `after`, between them every partition exactly once; the
    /// generation, and when the last of them got it.
    fn until_settled(
        &mut self,
        members: &[usize],
        after: i32,
        timeout: Duration,
    ) -> anyhow::Result<(i32, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            let held: Vec<&(i32, Vec<u32>, Instant)> =
                members.iter().filter_map(|m| self.holds.get(m)).collect();
            if held.len() == members.len()
                && let Some(generation) = held.first().map(|h| h.0)
                && generation > after
                && held.iter().all(|h| h.0 == generation)
            {
                let mut all: Vec<u32> = held.iter().flat_map(|h| h.1.clone()).collect();
                all.sort_unstable();
                if all == (0..PARTITIONS).collect::<Vec<_>>() {
                    let last = held.iter().map(|h| h.2).max().unwrap_or_else(Instant::now);
                    return Ok((generation, last));
                }
            }
            self.take(deadline, &format!("members {members:?} to settle"))?;
        }
    }

    /// Waits for `member`'s report of type `of`.
    fn until_reported(
        &mut self,
        of: fn(&Watch) -> &BTreeMap<usize, Instant>,
        member: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = of(self).get(&member) {
                return Ok(*at);
            }
            self.take(deadline, &format!("member {member}'s report"))?;
        }
    }
}

/// One measurement: a fresh group, made stable, then the event; the time
/// from the event until the members that remain hold the new generation.
fn measure_once(
    addr: SocketAddr,
    case: Case,
    name: &str,
    session: Duration,
    phase: f64,
) -> anyhow::Result<Duration> {
    let (sender, reports) = channel();
    let mut watch = Watch::new(reports);
    let timeout = 3 * session + Duration::from_secs(10);
    // The stable group: members join one at a time, all polling.
    let size = case.event.size();
    let mut members: Vec<Member> = Vec::new();
    let mut settled = (0, Instant::now());
    for index in 0..size {
        members.push(Member::spawn(addr, name, index, session, &sender));
        let everyone: Vec<usize> = (0..=index).collect();
        settled = watch.until_settled(&everyone, settled.0, timeout)?;
    }
    let (before, stable_at) = settled;
    for member in &members {
        member.set(case.behaviour.mode());
    }
    // Where the event falls between two of the group's heartbeats.
    let heartbeat = session / 3;
    let at = stable_at + heartbeat.mul_f64(phase);
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    let (started, remaining): (Instant, Vec<usize>) = match case.event {
        Event::Join(_) => {
            members.push(Member::spawn(addr, name, size, session, &sender));
            let asked = watch.until_reported(|w| &w.asked, size, timeout)?;
            (asked, (0..=size).collect())
        }
        Event::Leave(_) | Event::Kill(_) => {
            let mode = if let Event::Leave(_) = case.event {
                LEAVE
            } else {
                KILL
            };
            members[0].set(mode);
            let gone = watch.until_reported(|w| &w.gone, 0, timeout)?;
            (gone, (1..size).collect())
        }
    };
    let (_, settled_at) = watch.until_settled(&remaining, before, timeout)?;
    let took = settled_at.saturating_duration_since(started);
    // The group is done with: every member that is left leaves.
    for member in &members {
        member.set(STOP);
    }
    for member in members {
        if member.thread.join().is_err() {
            bail!("a member's thread panicked");
        }
    }
    while let Ok(report) = watch.reports.try_recv() {
        if let Report::Failed { member, error } = report {
            bail!("member {member} failed: {error}");
        }
    }
    Ok(took)
}

/// `rivulet-server` with this bench's shards and no Kafka port.
fn start_server(binary: &std::path::Path) -> anyhow::Result<Server> {
    let shards = SHARDS.to_string();
    Server::start(
        binary,
        &["--kafka-listen", "off", "--shards", shards.as_str()],
    )
}

/// The 1-minute load average, as `uptime` prints it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (session, rounds) = if measuring {
        (GroupOptions::default().session_timeout, ROUNDS)
    } else {
        (*SESSION_TIMEOUTS.start(), 1)
    };
    let load_before = load_average();
    if load_before.parse::<f64>().is_ok_and(|load| load > 1.5) {
        eprintln!(
            "warning: load average {load_before}: these times are the clock's, but a busy \
             machine delays every member's thread"
        );
    }
    if measuring {
        build_release_server()?;
    }
    let server = start_server(&server_binary()?)?;
    let addr = server.addr()?;
    let mut admin = Client::connect(&addr.to_string())?;
    admin.create_topic(&api::CreateTopic {
        stream: None,
        name: TOPIC.into(),
        id: None,
        partitions: PARTITIONS,
        settings: api::TopicSettings::default(),
    })?;
    eprintln!(
        "rivulet-server on {addr}: topic {TOPIC}, {PARTITIONS} partitions; session timeout {} ms, \
         {rounds} round(s)",
        session.as_millis()
    );
    // Rounds interleave the cases; round r starts its event (r + 1/2)/rounds
    // of a heartbeat interval after the group became stable.
    let cases = cases();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        let phase = (round as f64 + 0.5) / rounds as f64;
        for (case, times) in cases.iter().zip(&mut times) {
            let name = format!("{}-r{round}", case.id());
            let took = measure_once(addr, *case, &name, session, phase)
                .with_context(|| format!("{} round {round}", case.id()))?;
            eprintln!(
                "round {round} {}: {:.1} ms ({:.3} of the session timeout)",
                case.id(),
                took.as_secs_f64() * 1e3,
                took.as_secs_f64() / session.as_secs_f64()
            );
            times.push(took);
        }
    }
    drop(server);
    let load_after = load_average();
    if measuring {
        let path = write_results(&cases, &times, session, rounds, &load_before, &load_after)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Each group's description: what its rows time, and how.
fn iteration(event: &str, session: Duration, rounds: usize) -> String {
    let what = match event {
        "join" => format!(
            "from the new member's join request until every member, old and new, holds its \
             partitions of the new generation, {PARTITIONS} partitions spread by the \
             coordinator"
        ),
        "leave" => format!(
            "from one of {DEPART_SIZE} members' leave request until the other {} hold their \
             partitions of the new generation",
            DEPART_SIZE - 1
        ),
        _ => format!(
            "from the moment one of {DEPART_SIZE} members stops (its connection closed, \
             no leave, no more heartbeats: as a SIGKILLed process) until the other {} hold \
             the new generation, its partitions among theirs",
            DEPART_SIZE - 1
        ),
    };
    format!(
        "{what}; Rivulet's client (`GroupConsumer`), a thread and a connection per member, \
         session timeout {} ms, a heartbeat once a third of it has passed ({} ms); members \
         polling: an empty poll of each partition then {} ms of sleep (`rivulet poll --group \
         --follow` with nothing new), busy: heartbeats only; {rounds} rounds, each its event \
         at another point between two heartbeats",
        session.as_millis(),
        (session / 3).as_millis(),
        IDLE.as_millis(),
    )
}

fn write_results(
    cases: &[Case],
    times: &[Vec<Duration>],
    session: Duration,
    rounds: usize,
    load_before: &str,
    load_after: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let session_ms = u64::try_from(session.as_millis())?;
    let mut groups: Vec<Group> = Vec::new();
    for (case, times) in cases.iter().zip(times) {
        let mut samples = histogram();
        for took in times {
            samples.record(u64::try_from(took.as_nanos())?.max(1))?;
        }
        let total: Duration = times.iter().sum();
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        let row = Row {
            id: case.id(),
            kind: RowKind::Stage,
            durability: "none: membership is soft state, no records".to_string(),
            limit: None,
            bytes_per_iter: 0,
            ns_per_iter: total.as_nanos() as f64 / times.len().max(1) as f64,
            ns_low: Some(min.as_nanos() as f64),
            ns_high: Some(max.as_nanos() as f64),
            latency: Some(Percentiles::of(&samples)),
            series: Some(case.behaviour.name().to_string()),
            x: Some(session_ms),
        };
        let name = case.event.group();
        match groups.iter_mut().find(|group| group.name == name) {
            Some(group) => group.rows.push(row),
            None => groups.push(Group {
                name: name.to_string(),
                iteration: iteration(name, session, rounds),
                x_label: Some("session timeout, ms".to_string()),
                rows: vec![row],
            }),
        }
    }
    let data = bench::bench_data_dir();
    let results = ResultsFile {
        suite: bench::groups::SUITE.to_string(),
        date: machine::utc_now(),
        commit: machine::commit(),
        machine: Machine::detect(&data),
        workload: WorkloadSummary {
            name: "groups".to_string(),
            description: format!(
                "one topic of {PARTITIONS} partitions and no records: group membership only; \
                 1-minute load average {load_before} at the start, {load_after} at the end"
            ),
            message_size: 0,
        },
        groups,
    };
    let path = results_dir()
        .join(&results.machine.profile)
        .join(format!("{}.json", bench::groups::SUITE));
    results.write(&path)?;
    Ok(path)
}
