//! `rivulet-server`: stage 6's broker. Serves partitioned topics over TCP,
//! in Rivulet's protocol and Kafka's, with one thread per core until SIGINT
//! or SIGTERM; then answers what is in
//! flight, writes and syncs every partition, and exits 0.
//!
//! Settings come from defaults, a TOML file (`--config PATH` or
//! `RIVULET_CONFIG`), `RIVULET_<SECTION>_<KEY>` environment variables and
//! flags, in that order of precedence (see `rivulet_broker::settings`); a bad
//! one is named with where it came from, and the exit code is 2.
//!
//! Prints `listening on ADDR` and then `kafka listening on ADDR` (or `kafka
//! off`) on stdout once it accepts connections (and nothing else there:
//! tests and scripts read those lines); logs go to stderr,
//! and say once which io driver it runs on. Every optimization is a switch,
//! so that each one's gain is measured with this one binary.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use futures_util::future::{Either, select};
use rivulet_broker::http::MetricsEndpoint;
use rivulet_broker::settings::{self, KEYS, Loader, Resolved, SettingsError};
use stage6_broker::IoDriver;

/// The exit code for settings that cannot be used (clap uses it for bad
/// flags too), so a service manager can tell "fix the config" from a crash.
const BAD_CONFIG: u8 = 2;

// ANCHOR: flags
/// The command line: `--config`, `--print-config`, and one flag per key of
/// the settings table, made from it (so a new key is a new flag for free).
fn command() -> Command {
    let mut command = Command::new("rivulet-server")
        .about("Rivulet's broker: thread-per-core shards, io_uring, Direct I/O")
        .after_help(
            "Precedence, lowest first: defaults, the config file, RIVULET_<SECTION>_<KEY> \
             environment variables, flags. `--print-config` shows every key.",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("PATH")
                .help("TOML settings file [env: RIVULET_CONFIG]"),
        )
        .arg(
            Arg::new("print-config")
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the settings it would run with, as a commented TOML file, and exit"),
        );
    let defaults = settings::Settings::default();
    for key in KEYS {
        command = command.arg(
            Arg::new(key.path())
                .long(key.flag())
                .value_name(key.name.to_uppercase())
                // So that `--shards -3` is refused as a bad number, by key,
                // rather than as an unknown flag `-3`.
                .allow_negative_numbers(true)
                .help(format!(
                    "{} [default: {}] [env: {}]",
                    key.summary(),
                    key.text_value(&defaults),
                    key.env_var()
                )),
        );
    }
    command
}
// ANCHOR_END: flags

// ANCHOR: load
/// Defaults, then the file, then the environment, then the flags.
fn load(matches: &ArgMatches) -> Result<Resolved, SettingsError> {
    let mut loader = Loader::new();
    let path = matches
        .get_one::<String>("config")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("RIVULET_CONFIG").map(PathBuf::from));
    if let Some(path) = path {
        let text = read_config(&path)?;
        loader.file(&path, &text)?;
    }
    // Only variables that are valid Unicode can be settings; the others are
    // someone else's and are left alone.
    loader.env(
        std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }),
    )?;
    for key in KEYS {
        if let Some(text) = matches.get_one::<String>(&key.path()) {
            loader.flag(key, text)?;
        }
    }
    loader.finish()
}
// ANCHOR_END: load

/// The largest config file read: a real one is a few KiB, and a wrong path
/// (`/dev/zero`, a log file) must be refused, not read into all of memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The config file's text, at most [`MAX_CONFIG_BYTES`] of UTF-8.
fn read_config(path: &Path) -> Result<String, SettingsError> {
    use std::io::Read;
    let refused = |reason: String| SettingsError::File {
        origin: settings::Origin::File(path.to_path_buf()),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|error| refused(format!("cannot read it: {error}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(refused(format!(
            "larger than {MAX_CONFIG_BYTES} bytes: not a config file"
        )));
    }
    String::from_utf8(bytes).map_err(|_| refused("cannot read it: not UTF-8 text".to_string()))
}

fn main() -> ExitCode {
    let matches = command().get_matches(); // a bad flag exits 2 with clap's message
    let resolved = match load(&matches) {
        Ok(resolved) => resolved,
        Err(error) => {
            eprintln!("rivulet-server: {error}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    if matches.get_flag("print-config") {
        print!(
            "{}",
            settings::commented_toml(&resolved.settings, settings::PRINT_TITLE)
        );
        if let Some(auth) = &resolved.auth {
            let users = auth.users.len();
            println!("# In effect: [auth] from the config file, {users} users (not shown).");
        }
        return ExitCode::SUCCESS;
    }
    // ANCHOR: logs
    // Logs to stderr (stdout carries only the two `listening` lines), colored
    // only on a terminal: under systemd they go to the journal as plain text.
    // The filter was checked when the settings were, so this cannot fail.
    let filter = tracing_subscriber::EnvFilter::builder().parse_lossy(&resolved.log_filter);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // ANCHOR_END: logs
    match run(resolved) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Plain stderr, not a log event: it must show whatever the level.
            eprintln!("rivulet-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(resolved: Resolved) -> anyhow::Result<()> {
    let Resolved {
        server: config,
        metrics,
        auth,
        kafka,
        settings,
        ..
    } = resolved;
    let kafka_wanted = settings.kafka.listen != "off";
    let (listen, data) = (config.listen, config.data.clone());
    let (shards, asked, pin) = (config.shards, config.driver, config.pin);
    let (direct_io, fsync) = (config.storage.direct_io, config.storage.fsync);
    if let Some(auth) = &auth {
        tracing::info!("access control on: {} users", auth.users.len());
    }
    let options = rivulet_broker::Options { auth, kafka };
    let server = rivulet_broker::start_with(config, options)
        .with_context(|| format!("starting on {listen} with data in {}", data.display()))?;
    match server.kafka_addr() {
        Some(addr) => tracing::info!("Kafka clients: {addr}"),
        None if kafka_wanted => tracing::warn!(
            "Kafka listener off: access control ([auth]) is on and Kafka clients cannot \
             log in here (no SASL)"
        ),
        None => tracing::info!("Kafka listener off"),
    }
    // ANCHOR: driver_log
    let fell_back = asked == IoDriver::Auto && server.driver() == "polling";
    tracing::info!(
        "rivulet-server: {shards} shards, io driver {}{}, direct I/O {}, pinning {}, fsync {}",
        server.driver(),
        if fell_back {
            " (io_uring is not available here: compio fell back to polling)"
        } else {
            ""
        },
        if direct_io { "on" } else { "off" },
        if pin { "on" } else { "off" },
        fsync.name(),
    );
    // ANCHOR_END: driver_log
    tracing::info!("data in {}", data.display());
    // ANCHOR: metrics_start
    let endpoint = match metrics {
        Some(addr) => {
            let counters = server.metrics();
            let depths = server.queue_depths();
            let render = move || counters.render(&depths.now());
            // The endpoint is an observer: if its port is taken, the broker
            // still serves its clients and says loudly that it has no
            // metrics. Rejected: refusing to start, which would turn a
            // monitoring mistake into an outage.
            match MetricsEndpoint::start(addr, render) {
                Ok(endpoint) => {
                    tracing::info!("metrics on http://{}/metrics", endpoint.addr());
                    Some(endpoint)
                }
                Err(error) => {
                    tracing::error!("no metrics: cannot listen on {addr}: {error}");
                    None
                }
            }
        }
        None => {
            tracing::info!("metrics off");
            None
        }
    };
    // ANCHOR_END: metrics_start
    let signal = wait_for_signal(server.addr(), server.kafka_addr())?;
    tracing::info!("{signal}: stopping (answering what is in flight, then flushing)");
    if let Some(endpoint) = endpoint {
        endpoint.stop();
    }
    server.shutdown()?;
    tracing::info!("stopped: every partition written and synced");
    Ok(())
}

/// Prints `listening on ADDR`, then blocks until SIGINT or SIGTERM, on a
/// small compio runtime of its own (the shards' runtimes are on their
/// threads); returns which signal came.
///
/// The handlers are installed *before* the line is printed: a test that
/// sends SIGTERM as soon as it reads the line must find them there, not the
/// default action (which kills the process without a flush).
fn wait_for_signal(addr: SocketAddr, kafka: Option<SocketAddr>) -> anyhow::Result<&'static str> {
    let runtime = IoDriver::Auto.runtime()?;
    let signal = runtime.block_on(async {
        let mut interrupt = pin!(compio::signal::ctrl_c());
        let mut terminate = pin!(compio::signal::unix::signal(SIGTERM));
        // One poll of each registers its handler (a signal cannot have come yet).
        let early = std::future::poll_fn(|cx| {
            let first = interrupt.as_mut().poll(cx);
            let second = match first {
                Poll::Ready(_) => Poll::Pending,
                Poll::Pending => terminate.as_mut().poll(cx),
            };
            match (first, second) {
                (Poll::Ready(result), _) => Poll::Ready(Some(result.map(|()| "SIGINT"))),
                (_, Poll::Ready(result)) => Poll::Ready(Some(result.map(|()| "SIGTERM"))),
                _ => Poll::Ready(None),
            }
        })
        .await;
        // Always a second line, so a reader of the first can read it too;
        // both in one write, and a reader that closed the pipe after the
        // first is no reason to stop (println! would panic on it).
        let kafka = match kafka {
            Some(kafka) => format!("kafka listening on {kafka}"),
            None => "kafka off".to_string(),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}\n{kafka}").and_then(|()| stdout.flush());
        if let Some(result) = early {
            return result;
        }
        match select(interrupt, terminate).await {
            Either::Left((result, _)) => result.map(|()| "SIGINT"),
            Either::Right((result, _)) => result.map(|()| "SIGTERM"),
        }
    })?;
    Ok(signal)
}

/// SIGTERM's number on Linux (every architecture Rivulet runs on).
const SIGTERM: i32 = 15;
