//! `rivulet-bench`: the load generator's command line.
//!
//! `cargo run --release -p bench --bin rivulet-bench` runs the built-in load
//! against the in-process target in a few seconds, prints the table and writes
//! `benches/results/<profile>/loadgen-memory.json`. Every field of the run's
//! config has a flag; `--workload quick` takes everything the workload file
//! says instead (sizes, payload kind, actors, batch, count or duration, rate,
//! seed, and the fsync policy of a server started here), through
//! `LoadConfig::from_workload`, as the ladder does; flags given explicitly
//! still win.
//!
//! `--roles producers` measures producers alone (no consumer connects: the
//! consumer count becomes 0 unless `--consumers` says otherwise, which is
//! then an error); `--roles consumers` measures consumers alone over a topic
//! the producers fill first, unmeasured, with `--messages` plus the warmup
//! (a latency sample is then one poll). `--partitioning pinned` keeps each
//! producer on a partition of its own. The named workloads in `datasets/`
//! copy iggy-bench's and OpenMessaging Benchmark's runs this way
//! (`--workload iggy-pinned-consumer`, `--workload omb-1-topic-16-partitions-1kb`...).
//!
//! `--target stage3`, `stage4`, `stage5` or `stage6` drives that stage's
//! server: one it starts on 127.0.0.1, or a running one given with `--addr`
//! (for stage 6, `--server-threads` is its shard count). Adding a target
//! is adding an adapter (`bench::adapters`) and one arm in `main`'s match.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bench::adapters::stage3::Stage3Target;
use bench::adapters::stage4::Stage4Target;
use bench::adapters::stage5::Stage5Target;
use bench::adapters::stage6::Stage6Target;
use bench::loadgen::{
    ConfigError, LoadConfig, LoadResults, MemoryTarget, Mode, Stop, Target, Warmup, parse_duration,
    progress_bar, run,
};
use bench::machine::Machine;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use rivulet_datasets::{MessageSize, Partitioning, PayloadKind, Roles, Workload};
use stage2_batching::FsyncPolicy;

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// In-process partitions: the load generator's own ceiling.
    Memory,
    /// Stage 3's server: a partition is a stream behind its own RwLock.
    Stage3,
    /// Stage 4's server: one topic, a lock per partition.
    Stage4,
    /// Stage 5's server: stage 4's protocol, records stored and served as they arrive.
    Stage5,
    /// Stage 6's broker: thread-per-core shards on compio, Direct I/O segments.
    Stage6,
}

/// Who is measured (`rivulet_datasets::Roles`, as a flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RolesArg {
    /// Producers and consumers at once; end-to-end latency measured.
    Both,
    /// Producers alone: nothing is read back (consumers default to 0).
    Producers,
    /// Consumers alone, over a topic the producers fill first (unmeasured).
    Consumers,
}

impl From<RolesArg> for Roles {
    fn from(roles: RolesArg) -> Roles {
        match roles {
            RolesArg::Both => Roles::Both,
            RolesArg::Producers => Roles::Producers,
            RolesArg::Consumers => Roles::Consumers,
        }
    }
}

/// How producers spread over partitions (`rivulet_datasets::Partitioning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PartitioningArg {
    /// Producer i sends its j-th batch to partition (i + j) % partitions.
    RoundRobin,
    /// Producer i sends every batch to partition i (producers >= partitions).
    Pinned,
}

impl From<PartitioningArg> for Partitioning {
    fn from(partitioning: PartitioningArg) -> Partitioning {
        match partitioning {
            PartitioningArg::RoundRobin => Partitioning::RoundRobin,
            PartitioningArg::Pinned => Partitioning::Pinned,
        }
    }
}

/// Drives a Rivulet target with producers and consumers and reports
/// throughput and latency percentiles (producer, consumer, end-to-end).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// What to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::Memory)]
    target: TargetKind,
    /// A running server to drive; without it, a stage target starts its own
    /// server on 127.0.0.1 (in this process, on its own runtime).
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<std::net::SocketAddr>,
    /// The fsync policy of the server started here (with --addr: the policy
    /// the running server was given, stated in the results); with
    /// --workload, the workload's unless given.
    #[arg(long, default_value = "every-batch")]
    fsync: FsyncPolicy,
    /// Worker threads of the server started here.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Take the run from `datasets/<NAME>.toml`: sizes, payload kind,
    /// producers, consumers, partitions, batch, messages or duration, rate,
    /// seed, roles, partitioning and fsync policy (flags given explicitly
    /// still win). Named copies of other tools' runs: iggy-pinned-producer,
    /// iggy-pinned-consumer, iggy-balanced, omb-1-topic-16-partitions-1kb.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Who is measured: both sides at once, producers alone, or consumers
    /// alone over a topic filled first (unmeasured) with --messages plus the
    /// warmup [default: both, or the workload's].
    #[arg(long, value_enum)]
    roles: Option<RolesArg>,
    /// How producers spread over partitions [default: round-robin, or the
    /// workload's].
    #[arg(long, value_enum)]
    partitioning: Option<PartitioningArg>,
    /// Producer tasks, one connection and one request in flight each.
    #[arg(long, default_value_t = LoadConfig::default().producers)]
    producers: u32,
    /// Consumer tasks (0 measures producers only; at most --partitions).
    #[arg(long, default_value_t = LoadConfig::default().consumers)]
    consumers: u32,
    /// Partitions; producer i sends its j-th batch to partition (i + j) % K.
    #[arg(long, default_value_t = LoadConfig::default().partitions)]
    partitions: u32,
    /// Payload bytes per message, at least 8 (the send timestamp).
    #[arg(long, value_name = "BYTES", default_value_t = default_message_size())]
    message_size: u32,
    /// Messages per produce request.
    #[arg(long, default_value_t = LoadConfig::default().batch)]
    batch: u32,
    /// Messages asked for per poll.
    #[arg(long, default_value_t = LoadConfig::default().poll_batch)]
    poll_batch: u32,
    /// Stop after this many measured messages (after the warmup).
    #[arg(long, conflicts_with = "duration", default_value_t = default_messages())]
    messages: u64,
    /// Stop this long after measuring started (250ms, 2s, 1.5).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Discard the samples of the first N acknowledged messages.
    #[arg(long, value_name = "N", conflicts_with = "warmup", default_value_t = default_warmup())]
    warmup_messages: u64,
    /// Discard the samples of the first DURATION instead (0 for no warmup).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Open loop: send this many messages per second in total, on a fixed
    /// schedule, latency measured from each send's scheduled time. Without it,
    /// closed loop: each producer sends when its previous batch is acknowledged.
    #[arg(long, value_name = "MSG_PER_S")]
    rate: Option<u64>,
    /// Payload generator seed.
    #[arg(long, default_value_t = LoadConfig::default().seed)]
    seed: u64,
    /// How long consumers may take to catch up once producers finish.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    drain_timeout: Duration,
    /// The longest a single produce or poll may take.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    op_timeout: Duration,
    /// Where to write the JSON results
    /// [default: benches/results/PROFILE/loadgen-TARGET.json].
    #[arg(long, value_name = "PATH", conflicts_with = "no_json")]
    json: Option<PathBuf>,
    /// Write no results file.
    #[arg(long)]
    no_json: bool,
    /// No progress bar and no table (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// The built-in run's message size, shown as the flag's default.
fn default_message_size() -> u32 {
    LoadConfig::default().message_size.max()
}

/// The built-in run's message count, shown as the flag's default.
fn default_messages() -> u64 {
    match LoadConfig::default().stop {
        Stop::Messages(messages) => messages,
        Stop::Duration(_) => 0,
    }
}

/// The built-in run's warmup message count, shown as the flag's default.
fn default_warmup() -> u64 {
    match LoadConfig::default().warmup {
        Warmup::Messages(messages) => messages,
        Warmup::None | Warmup::Duration(_) => 0,
    }
}

impl Cli {
    /// The run's config: flags given, then the workload file, then the
    /// defaults (`matches` tells a flag given from a default). Flags given
    /// edit the workload before `LoadConfig::from_workload` reads it, so what
    /// it derives follows them: `--messages 1000` also makes the warmup 100,
    /// `--batch 500` the poll size 500.
    fn config(
        &self,
        matches: &ArgMatches,
        workload: Option<&Workload>,
    ) -> Result<LoadConfig, ConfigError> {
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let mut flags = self.flag_config();
        let Some(workload) = workload else {
            // Producers alone read nothing: the default consumer count
            // yields to the role, an explicit one is kept (and refused).
            if flags.roles == Roles::Producers && !given("consumers") {
                flags.consumers = 0;
            }
            return Ok(flags);
        };
        let mut edited = workload.clone();
        if let Some(roles) = self.roles {
            edited.roles = roles.into();
            if edited.roles == Roles::Producers && !given("consumers") {
                edited.consumers = 0;
            }
        }
        if let Some(partitioning) = self.partitioning {
            edited.partitioning = partitioning.into();
        }
        let counts = [
            ("producers", self.producers, &mut edited.producers),
            ("consumers", self.consumers, &mut edited.consumers),
            ("partitions", self.partitions, &mut edited.partitions),
            ("batch", self.batch, &mut edited.batch),
        ];
        for (id, flag, field) in counts {
            if given(id) {
                *field = flag;
            }
        }
        if given("message_size") {
            edited.message_size = MessageSize::Fixed(self.message_size);
        }
        if given("messages") {
            edited.messages = self.messages;
            edited.duration = None;
        }
        if given("duration") {
            edited.duration = self.duration;
        }
        if given("rate") {
            edited.rate = self.rate;
        }
        if given("seed") {
            edited.seed = self.seed;
        }
        let mut config = LoadConfig::from_workload(&edited)?;
        if given("poll_batch") {
            config.poll_batch = flags.poll_batch;
        }
        if given("warmup_messages") || given("warmup") {
            config.warmup = flags.warmup;
        }
        config.drain_timeout = flags.drain_timeout;
        config.op_timeout = flags.op_timeout;
        Ok(config)
    }

    /// The config the flags alone describe (their defaults included).
    fn flag_config(&self) -> LoadConfig {
        let stop = match self.duration {
            Some(duration) => Stop::Duration(duration),
            None => Stop::Messages(self.messages),
        };
        let warmup = match self.warmup {
            Some(duration) if duration.is_zero() => Warmup::None,
            Some(duration) => Warmup::Duration(duration),
            None if self.warmup_messages == 0 => Warmup::None,
            None => Warmup::Messages(self.warmup_messages),
        };
        LoadConfig {
            producers: self.producers,
            consumers: self.consumers,
            partitions: self.partitions,
            message_size: MessageSize::Fixed(self.message_size),
            payload: PayloadKind::Random,
            batch: self.batch,
            poll_batch: self.poll_batch,
            stop,
            warmup,
            mode: self
                .rate
                .map_or(Mode::ClosedLoop, |messages_per_s| Mode::OpenLoop {
                    messages_per_s,
                }),
            seed: self.seed,
            drain_timeout: self.drain_timeout,
            op_timeout: self.op_timeout,
            roles: self.roles.map_or(Roles::Both, Roles::from),
            partitioning: self
                .partitioning
                .map_or(Partitioning::RoundRobin, Partitioning::from),
        }
    }

    /// The fsync policy of a server started here: the flag if given, else
    /// the workload's, else the flag's default.
    fn fsync(
        &self,
        matches: &ArgMatches,
        workload: Option<&Workload>,
    ) -> anyhow::Result<FsyncPolicy> {
        match workload {
            Some(workload) if matches.value_source("fsync") != Some(ValueSource::CommandLine) => {
                let name = workload.fsync.name();
                FsyncPolicy::parse(&name)
                    .with_context(|| format!("fsync policy {name} of workload {}", workload.name))
            }
            _ => Ok(self.fsync),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let workload = cli
        .workload
        .as_deref()
        .map(Workload::load)
        .transpose()
        .context("loading the workload")?;
    let config = cli
        .config(&matches, workload.as_ref())
        .context("invalid workload for the load generator")?;
    config.validate().context("invalid options")?;
    let fsync = cli.fsync(&matches, workload.as_ref())?;
    match cli.target {
        TargetKind::Memory => drive(MemoryTarget::new(), config, &cli, workload.as_ref()).await,
        TargetKind::Stage3 => {
            let target = match cli.addr {
                Some(addr) => Stage3Target::remote(addr, &fsync.name()),
                None => Stage3Target::start(fsync, cli.server_threads)?,
            };
            drive(target, config, &cli, workload.as_ref()).await
        }
        TargetKind::Stage4 => {
            let target = match cli.addr {
                Some(addr) => Stage4Target::remote("stage4", addr, &fsync.name()),
                None => Stage4Target::start(fsync, cli.server_threads)?,
            };
            drive(target, config, &cli, workload.as_ref()).await
        }
        TargetKind::Stage5 => {
            let target = match cli.addr {
                Some(addr) => Stage5Target::remote(addr, &fsync.name()),
                None => Stage5Target::start(fsync, cli.server_threads)?,
            };
            drive(target, config, &cli, workload.as_ref()).await
        }
        TargetKind::Stage6 => {
            // The engine keeps its own copy of the policies: the same name,
            // read by its own parser (a test keeps the parsers in agreement).
            let name = fsync.name();
            let engine_fsync = stage6_broker::FsyncPolicy::parse(&name)
                .with_context(|| format!("fsync policy {name}: stage 6 does not know it"))?;
            let target = match cli.addr {
                Some(addr) => Stage6Target::remote(addr, &name),
                None => Stage6Target::start(engine_fsync, cli.server_threads)?,
            };
            drive(target, config, &cli, workload.as_ref()).await
        }
    }
}

/// Runs `config` against `target`, then prints and writes the results.
async fn drive<T: Target>(
    target: T,
    config: LoadConfig,
    cli: &Cli,
    workload: Option<&Workload>,
) -> anyhow::Result<()> {
    let progress = progress_bar(&config, !cli.quiet);
    let outcome = run(&target, &config, &progress)
        .await
        .with_context(|| format!("load run against {}", target.name()))?;
    let machine = Machine::detect(&bench::bench_data_dir());
    let mut results = LoadResults::new(
        &target.name(),
        &target.durability(),
        machine,
        config,
        outcome.figures,
    );
    results.workload = workload.map(|w| w.name.clone());
    if !cli.quiet {
        print!("{}", results.table());
    }
    if cli.no_json {
        return Ok(());
    }
    let path = cli
        .json
        .clone()
        .unwrap_or_else(|| LoadResults::default_path(&results.machine.profile, &results.target));
    results.write(&path)?;
    if !cli.quiet {
        println!("results written to {}", path.display());
    }
    Ok(())
}
