//! `stage5-server`: serves partitioned topics over TCP, records stored as they
//! arrive, until SIGINT or SIGTERM; then syncs everything and exits.
//!
//! Prints `listening on ADDR` once it accepts connections. The same flags as
//! `stage4-server`, and the same protocol.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::StopSignals;
use stage4_partitions::TopicsConfig;

#[derive(Parser)]
#[command(about = "Rivulet stage 5: stage 4's protocol, records stored and served as they arrive")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7405")]
    listen: SocketAddr,
    /// Folder for the topics' files.
    #[arg(long, default_value = "rivulet-stage5-data")]
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
    let server = stage5_zero_copy::start(args.listen, TopicsConfig::new(&args.data, args.fsync))
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
