//! `rivulet-server`: stage 6's broker. Serves partitioned topics over TCP
//! with one thread per core until SIGINT or SIGTERM; then answers what is in
//! flight, writes and syncs every partition, and exits 0.
//!
//! Prints `listening on ADDR` once it accepts connections, and says on
//! stderr, once, which io driver it runs on. Every optimization is a switch,
//! so that each one's gain is measured with this one binary.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::task::Poll;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use futures_util::future::{Either, select};
use stage2_batching::FsyncPolicy;
use stage6_broker::{Config, IoDriver, ServerConfig, server};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        self == Switch::On
    }
}

#[derive(Parser)]
#[command(about = "Rivulet stage 6: thread-per-core shards, io_uring, Direct I/O")]
struct Args {
    /// Address every shard listens on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7406")]
    listen: SocketAddr,
    /// Folder for the topics' files.
    #[arg(long, default_value = "rivulet-data")]
    data: PathBuf,
    /// Shards (threads, each with its own runtime); default: one per core.
    #[arg(long)]
    shards: Option<usize>,
    /// Pin each shard's thread to its own core.
    #[arg(long, value_enum, default_value = "on")]
    pin: Switch,
    /// Open segments with O_DIRECT (off: the same calls through the page cache).
    #[arg(long, value_enum, default_value = "on")]
    direct_io: Switch,
    /// auto (io_uring if the kernel allows it, else polling), io-uring or polling.
    #[arg(long, default_value = "auto", value_parser = parse_driver)]
    io_driver: IoDriver,
    /// When to fsync: always, every-batch, interval-250ms (any milliseconds) or never.
    #[arg(long, default_value = "every-batch")]
    fsync: FsyncPolicy,
    /// Bytes per segment file (a multiple of 4096).
    #[arg(long, default_value_t = Config::default().segment_size)]
    segment_size: u64,
}

fn parse_driver(text: &str) -> Result<IoDriver, String> {
    IoDriver::parse(text).ok_or_else(|| format!("{text:?}: expected auto, io-uring or polling"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ServerConfig {
        listen: args.listen,
        data: args.data.clone(),
        shards: args.shards.unwrap_or_else(server::cores),
        pin: args.pin.on(),
        driver: args.io_driver,
        storage: Config {
            segment_size: args.segment_size,
            direct_io: args.direct_io.on(),
            fsync: args.fsync,
            ..Config::default()
        },
        ..ServerConfig::new()
    };
    let shards = config.shards;
    let server = stage6_broker::start(config).with_context(|| {
        format!(
            "starting on {} with data in {}",
            args.listen,
            args.data.display()
        )
    })?;
    // ANCHOR: driver_log
    let fell_back = args.io_driver == IoDriver::Auto && server.driver() == "polling";
    eprintln!(
        "rivulet-server: {shards} shards, io driver {}{}, direct I/O {}, pinning {}, fsync {}",
        server.driver(),
        if fell_back {
            " (io_uring is not available here: compio fell back to polling)"
        } else {
            ""
        },
        if args.direct_io.on() { "on" } else { "off" },
        if args.pin.on() { "on" } else { "off" },
        args.fsync.name(),
    );
    // ANCHOR_END: driver_log
    wait_for_signal(server.addr())?;
    server.shutdown()?;
    Ok(())
}

/// Prints `listening on ADDR`, then blocks until SIGINT or SIGTERM, on a
/// small compio runtime of its own (the shards' runtimes are on their threads).
///
/// The handlers are installed *before* the line is printed: a test that
/// sends SIGTERM as soon as it reads the line must find them there, not the
/// default action (which kills the process without a flush).
fn wait_for_signal(addr: SocketAddr) -> anyhow::Result<()> {
    let runtime = IoDriver::Auto.runtime()?;
    runtime.block_on(async {
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
                (Poll::Ready(result), _) | (_, Poll::Ready(result)) => Poll::Ready(Some(result)),
                _ => Poll::Ready(None),
            }
        })
        .await;
        println!("listening on {addr}");
        if let Some(result) = early {
            return result;
        }
        match select(interrupt, terminate).await {
            Either::Left((result, _)) | Either::Right((result, _)) => result,
        }
    })?;
    Ok(())
}

/// SIGTERM's number on Linux (every architecture Rivulet runs on).
const SIGTERM: i32 = 15;
