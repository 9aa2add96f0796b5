//! `rivulet bench`: the project's load generator (`rivulet-loadgen`, the one
//! the ladder and `rivulet-bench` use) against the running broker.
//!
//! Each run gets a fresh topic (`bench-<seconds>-<pid>`): the load
//! generator checks that every acknowledged message is read back exactly
//! once from offset 0, so it cannot share a topic with earlier runs. The
//! topic takes the workload's fsync policy unless `--fsync` says otherwise,
//! and is deleted afterwards unless `--keep-topic`.

use std::net::ToSocketAddrs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::Args;
use rivulet_client::api::{self, TopicRef};
use rivulet_datasets::{MessageSize, Workload};
use rivulet_loadgen::machine::Machine;
use rivulet_loadgen::{
    Handshake, LoadConfig, LoadResults, RemoteTarget, Target, parse_duration, progress_bar,
    run_blocking,
};

use crate::output::Output;
use crate::topics::Session;

/// `rivulet bench`'s arguments: a workload, then overrides.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload: a name from the repository's `datasets/` (quick, tiny,
    /// tiny-100b, 1k-batch-1000, large-64k, mixed-sizes...) or a path to a
    /// workload file.
    #[arg(long, value_name = "NAME", default_value = "quick")]
    workload: String,
    /// Producers, one connection and one request in flight each.
    #[arg(long)]
    producers: Option<u32>,
    /// Consumers (0 measures producers only; at most --partitions).
    #[arg(long)]
    consumers: Option<u32>,
    /// Partitions of the bench topic.
    #[arg(long)]
    partitions: Option<u32>,
    /// Messages per produce request.
    #[arg(long)]
    batch: Option<u32>,
    /// Payload bytes per message, at least 8 (the send timestamp).
    #[arg(long, value_name = "BYTES")]
    message_size: Option<u32>,
    /// Stop after this many measured messages.
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Stop this long after measuring started (250ms, 2s, 1.5).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Open loop at this many messages per second in total.
    #[arg(long, value_name = "MSG_PER_S")]
    rate: Option<u64>,
    /// The bench topic's fsync policy [default: the workload's].
    #[arg(long, value_name = "POLICY")]
    fsync: Option<String>,
    /// Keep the bench topic afterwards (its name is printed).
    #[arg(long)]
    keep_topic: bool,
}

impl BenchArgs {
    /// The workload edited by the flags given, read as the load generator's
    /// config (so derived values follow: a smaller `--messages` shrinks the
    /// warmup too).
    fn config(&self, workload: &Workload) -> anyhow::Result<LoadConfig> {
        let mut edited = workload.clone();
        let counts = [
            (self.producers, &mut edited.producers),
            (self.consumers, &mut edited.consumers),
            (self.partitions, &mut edited.partitions),
            (self.batch, &mut edited.batch),
        ];
        for (flag, field) in counts {
            if let Some(value) = flag {
                *field = value;
            }
        }
        if let Some(size) = self.message_size {
            edited.message_size = MessageSize::Fixed(size);
        }
        if let Some(messages) = self.messages {
            edited.messages = messages;
            edited.duration = None;
        }
        if let Some(duration) = self.duration {
            edited.duration = Some(duration);
        }
        if self.rate.is_some() {
            edited.rate = self.rate;
        }
        let config = LoadConfig::from_workload(&edited)
            .with_context(|| format!("workload {} with these options", workload.name))?;
        config.validate().context("invalid options")?;
        Ok(config)
    }
}

/// The workload `--workload` names. A path is a workload file anywhere (an
/// installed binary may be far from the clone it was built in); a plain name
/// is one of `datasets/`.
fn load_workload(workload: &str) -> anyhow::Result<Workload> {
    if workload.ends_with(".toml") || workload.contains('/') {
        let path = std::path::Path::new(workload);
        Workload::load_path(path)
            .with_context(|| format!("loading workload file {}", path.display()))
    } else {
        Workload::load(workload).with_context(|| {
            let known = Workload::names()
                .map(|names| names.join(", "))
                .unwrap_or_default();
            format!("loading workload {workload} (known: {known})")
        })
    }
}

/// `rivulet bench`.
pub fn run(args: &BenchArgs, session: &Session, out: &Output) -> anyhow::Result<()> {
    let server = session.server.as_str();
    let workload = load_workload(&args.workload)?;
    let config = args.config(&workload)?;
    let fsync = args.fsync.clone().unwrap_or_else(|| workload.fsync.name());
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .next()
        .ok_or_else(|| anyhow!("{server} resolves to no address"))?;
    let mut client = session.connect()?;
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("bench-{seconds}-{}", std::process::id());
    let topic = client
        .create_topic(&api::CreateTopic {
            stream: None,
            name: name.clone(),
            id: None,
            partitions: config.partitions,
            settings: api::TopicSettings {
                fsync: Some(fsync),
                ..api::TopicSettings::default()
            },
        })
        .with_context(|| format!("creating the bench topic {name}"))?;
    let target = RemoteTarget::new(
        "rivulet-server",
        addr,
        topic.id,
        &format!("rivulet-server, topic fsync policy {}", topic.fsync),
    )
    .with_existing_topic();
    // Every connection of the run logs in as this command did.
    let target = match &session.login {
        Some(login) => target.with_handshake(Handshake {
            code: api::code::LOGIN,
            body: serde_json::to_vec(login).context("encoding the login")?,
        }),
        None => target,
    };
    let progress = progress_bar(&config, !out.json());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let outcome = run_blocking(&target, &config, &progress, threads);
    progress.finish_and_clear();
    drop(client);
    // The topic goes whatever the outcome, so a failed run leaves nothing.
    // On a new connection: the one that created it sat idle through the
    // run, and the server closes a connection idle longer than its
    // `idle_timeout_seconds` (300 by default), shorter than a long run.
    if !args.keep_topic
        && let Err(error) = session
            .connect()
            .and_then(|mut client| Ok(client.delete_topic(&TopicRef::Id(topic.id))?))
    {
        eprintln!("warning: could not delete the bench topic {name}: {error:#}");
    }
    let outcome = outcome.with_context(|| format!("load run against {server}"))?;
    let machine = Machine::detect(&std::env::temp_dir());
    let mut results = LoadResults::new(
        &target.name(),
        &target.durability(),
        machine,
        config,
        outcome.figures,
    );
    results.workload = Some(workload.name.clone());
    if out.json() {
        return out.json_line(&results);
    }
    let mut text = results.table();
    if args.keep_topic {
        text.push_str(&format!("the messages are in topic {name}\n"));
    }
    out.text(&text)
}
