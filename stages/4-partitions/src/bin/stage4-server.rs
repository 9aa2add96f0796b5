//! `stage4-server`: serves partitioned topics over TCP until SIGINT or SIGTERM,
//! then writes and syncs everything and exits.
//!
//! Prints `listening on ADDR` once it accepts connections.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::StopSignals;
use stage4_partitions::TopicsConfig;

#[derive(Parser)]
#[command(about = "Rivulet stage 4: partitioned topics over TCP, a lock per partition")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7404")]
    listen: SocketAddr,
    /// Folder for the topics' files.
    #[arg(long, default_value = "rivulet-stage4-data")]
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
    let server = stage4_partitions::start(args.listen, TopicsConfig::new(&args.data, args.fsync))
        .await
        .with_context(|| {
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
