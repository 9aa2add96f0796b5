//! `rivulet`: the broker's command line. Streams and topics, send and poll,
//! consumer offsets, the server's counters, and the shared load generator
//! against the running broker.
//!
//! ```text
//! rivulet topic create orders --partitions 3
//! printf 'one\ntwo\n' | rivulet send orders
//! rivulet poll orders --first
//! rivulet poll orders --consumer billing --follow
//! rivulet poll orders --group billing --follow
//! rivulet group describe billing
//! rivulet bench --workload quick
//! ```
//!
//! Every command is one or a few requests through the blocking client
//! (`stage6_broker::client`). Output is for people by default and JSON with
//! `--json` (JSON lines for messages, so `poll --follow --json` can be piped
//! into `jq`). Exit codes: 0 done, 1 failed (the message says what and
//! often what to do), 2 a usage error (clap's). Against a server with access
//! control on, every connection logs in first (`--user` with
//! `RIVULET_PASSWORD`, or `RIVULET_TOKEN`).
//!
//! The book's "Using the CLI" chapter walks through every command.

mod bench;
mod groups;
mod messages;
mod output;
mod topics;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rivulet_client::api;

/// Rivulet's command line: streams, topics, send, poll, consumer offsets and
/// groups, statistics and a load test, against a running rivulet-server.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version)]
struct Cli {
    /// The broker's address [env: RIVULET_SERVER] [default: 127.0.0.1:7406].
    #[arg(long, global = true, value_name = "HOST:PORT")]
    server: Option<String>,
    /// Print JSON instead of text (one object per line for messages).
    #[arg(long, global = true)]
    json: bool,
    /// Log in as this user, with the password in RIVULET_PASSWORD (a server
    /// with access control on) [env: RIVULET_USER]. A token alone logs in
    /// from RIVULET_TOKEN. Secrets come from the environment only, never from
    /// flags, which other users of the machine can read in the process list.
    #[arg(long, global = true, value_name = "NAME")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list or delete streams (named groups of topics).
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Create, list, describe or delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Send messages: the arguments, or one message per line of stdin.
    Send(messages::SendArgs),
    /// Read messages, by offset, first, last, timestamp or a consumer's offset.
    Poll(messages::PollArgs),
    /// A consumer's stored offsets in a topic, and its lag.
    Offsets(OffsetsArgs),
    /// Consumer groups: list them, or describe one (members, assignment, lag).
    #[command(subcommand)]
    Group(GroupCommand),
    /// The server's counters since it started.
    Stats,
    /// Run the load generator against the broker and report throughput and latency.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Create {
        /// Its name (letters, digits, '.', '_', '-').
        name: String,
    },
    /// List every stream and its topics.
    List,
    /// Delete a stream and every topic in it.
    Delete {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(topics::CreateArgs),
    /// List topics.
    List {
        /// Only this stream's.
        #[arg(long)]
        stream: Option<String>,
    },
    /// A topic's settings and each partition's offsets, size and shard.
    Describe {
        /// The topic, by name (or by id).
        topic: String,
    },
    /// Delete a topic and its messages.
    Delete {
        /// The topic, by name (or by id).
        topic: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Every group the server knows since it started: state, members, topic.
    List,
    /// A group's members and their partitions, and its committed offset,
    /// end offset and lag in every partition it reads or committed in.
    Describe {
        /// The group's name.
        group: String,
    },
}

#[derive(Debug, Args)]
struct OffsetsArgs {
    /// The topic, by name (or by id).
    topic: String,
    /// The consumer whose offsets to show.
    #[arg(long)]
    consumer: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = cli
        .server
        .clone()
        .or_else(|| env("RIVULET_SERVER"))
        .unwrap_or_else(|| rivulet_client::DEFAULT_LISTEN.to_string());
    let out = output::Output::new(cli.json);
    let user = cli.user.clone().or_else(|| env("RIVULET_USER"));
    let login = match login(user, env("RIVULET_PASSWORD"), env("RIVULET_TOKEN")) {
        Ok(login) => login,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let session = topics::Session { server, login };
    match run(cli.command, &session, &out) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`rivulet poll ... | head`): not a failure.
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = topics::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// An environment variable, if set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The login the user and the environment ask for, if any.
fn login(
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> anyhow::Result<Option<api::Login>> {
    Ok(match (user, password, token) {
        (Some(user), Some(password), _) => Some(api::Login {
            username: Some(user),
            password: Some(password),
            token: None,
        }),
        (Some(user), None, _) => {
            anyhow::bail!("--user {user} needs its password in RIVULET_PASSWORD")
        }
        (None, _, Some(token)) => Some(api::Login {
            username: None,
            password: None,
            token: Some(token),
        }),
        (None, _, None) => None,
    })
}

fn run(command: Command, session: &topics::Session, out: &output::Output) -> anyhow::Result<()> {
    if let Command::Bench(args) = &command {
        return bench::run(args, session, out);
    }
    let mut client = session.connect()?;
    match command {
        Command::Stream(StreamCommand::Create { name }) => {
            topics::create_stream(&mut client, out, &name)
        }
        Command::Stream(StreamCommand::List) => topics::list_streams(&mut client, out),
        Command::Stream(StreamCommand::Delete { name }) => {
            topics::delete_stream(&mut client, out, &name)
        }
        Command::Topic(TopicCommand::Create(args)) => topics::create_topic(&mut client, out, args),
        Command::Topic(TopicCommand::List { stream }) => {
            topics::list_topics(&mut client, out, stream.as_deref())
        }
        Command::Topic(TopicCommand::Describe { topic }) => {
            topics::describe_topic(&mut client, out, &topic)
        }
        Command::Topic(TopicCommand::Delete { topic }) => {
            topics::delete_topic(&mut client, out, &topic)
        }
        Command::Send(args) => messages::send(&mut client, out, &args),
        Command::Poll(args) => messages::poll(client, out, &args),
        Command::Offsets(OffsetsArgs { topic, consumer }) => {
            topics::offsets(&mut client, out, &topic, &consumer)
        }
        Command::Group(GroupCommand::List) => groups::list(&mut client, out),
        Command::Group(GroupCommand::Describe { group }) => {
            groups::describe(&mut client, out, &group)
        }
        Command::Stats => topics::stats(&mut client, out),
        Command::Bench(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_arguments_are_consistent() {
        // clap's own checks: no two flags share a name, groups name real flags.
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_poll_positions_exclude_each_other() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["rivulet"], args].concat());
        assert!(parse(&["poll", "t", "--offset", "3"]).is_ok());
        assert!(parse(&["poll", "t", "--offset", "3", "--last"]).is_err());
        assert!(parse(&["poll", "t", "--no-commit"]).is_err());
        assert!(parse(&["send", "t", "--key", "k", "--partition", "1"]).is_err());
        assert!(parse(&["bench", "--messages", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["poll", "t", "--group", "g", "--follow"]).is_ok());
        assert!(parse(&["poll", "t", "--group", "g", "--session-timeout-ms", "3000"]).is_ok());
        assert!(parse(&["poll", "t", "--group", "g", "--consumer", "c"]).is_err());
        assert!(parse(&["poll", "t", "--group", "g", "--partition", "1"]).is_err());
        assert!(parse(&["poll", "t", "--group", "g", "--first"]).is_err());
        assert!(parse(&["poll", "t", "--session-timeout-ms", "3000"]).is_err());
        assert!(parse(&["group", "describe", "g"]).is_ok());
    }
}
