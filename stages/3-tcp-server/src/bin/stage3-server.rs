//! `stage3-server`: serves streams over TCP until SIGINT or SIGTERM, then
//! writes and syncs everything and exits.
//!
//! Prints `listening on ADDR` once it accepts connections (tests and the load
//! generator read that line to find a port chosen with `:0`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::{Server, StopSignals, StreamsConfig};

#[derive(Parser)]
#[command(about = "Rivulet stage 3: streams over TCP behind Arc<RwLock<_>>")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7403")]
    listen: SocketAddr,
    /// Folder for the streams' files.
    #[arg(long, default_value = "rivulet-stage3-data")]
    data: PathBuf,
    /// When to fsync: always, every-batch, interval-250ms (any milliseconds) or never.
    #[arg(long, default_value = "every-batch")]
    fsync: FsyncPolicy,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Caught before `listening on` is printed: whoever reads that line may
    // send SIGTERM at once, and it must find the handler (see StopSignals).
    let signals = StopSignals::catch()?;
    let config = StreamsConfig::new(&args.data, args.fsync);
    let server = Server::start(args.listen, config).await.with_context(|| {
        format!(
            "starting on {} with data in {}",
            args.listen,
            args.data.display()
        )
    })?;
    println!("listening on {}", server.addr());
    server.run_until_signal(signals).await?;
    Ok(())
}
