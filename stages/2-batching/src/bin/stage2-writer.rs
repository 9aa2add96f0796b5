//! A process for crash tests to kill: appends batches under a given fsync
//! policy and reports, line by line, what each answer promised.
//!
//! Usage: `stage2-writer DIR POLICY COUNT BATCH PAYLOAD_LEN SEED`
//!
//! Prints `acked END DURABLE` after each append (END: one past its last offset,
//! DURABLE: 1 if the answer said it was synced) and `durable N` whenever the
//! durable watermark moves. After an error it prints `error TEXT`, tries one
//! more append, prints `error TEXT` again for that, and exits: that is how a
//! test sees that a failed stream refuses further writes.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use rivulet_datasets::{PayloadKind, Payloads};
use stage2_batching::{BatchingStream, Config, FsyncPolicy, Message};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, policy, count, batch, payload_len, seed] = args.as_slice() else {
        anyhow::bail!("usage: stage2-writer DIR POLICY COUNT BATCH PAYLOAD_LEN SEED");
    };
    let policy = FsyncPolicy::parse(policy).context("POLICY")?;
    let count: u64 = count.parse().context("COUNT")?;
    let batch: u64 = batch.parse().context("BATCH")?;
    let payload_len: usize = payload_len.parse().context("PAYLOAD_LEN")?;
    let payloads = Payloads::new(PayloadKind::Random, seed.parse().context("SEED")?);

    // Small thresholds and a fast saver, so a short run crosses every path.
    let config = Config {
        flush_count: 50,
        saver_interval: Duration::from_millis(20),
        ..Config::new(policy)
    };
    let stream = BatchingStream::open(1, dir, config).await?;
    let mut out = std::io::stdout().lock();
    let mut durable = stream.status()?.durable;
    let mut next = stream.status()?.next_offset;
    let end = next + count;
    while next < end {
        let messages: Vec<Message> = (next..end.min(next + batch))
            .map(|n| Message::new(n, payloads.payload(n, payload_len)))
            .collect();
        match stream.append(messages).await {
            Ok(appended) => {
                next = appended.offsets.end;
                writeln!(out, "acked {} {}", next, u8::from(appended.durable))?;
            }
            Err(error) => {
                writeln!(out, "error {error}")?;
                let again = stream.append(vec![Message::new(next, vec![0; 1])]).await;
                writeln!(
                    out,
                    "error {}",
                    again.err().map_or("none".into(), |e| e.to_string())
                )?;
                out.flush()?;
                return Ok(());
            }
        }
        let now_durable = stream.status()?.durable;
        if now_durable > durable {
            durable = now_durable;
            writeln!(out, "durable {durable}")?;
        }
        out.flush()?;
    }
    stream.shutdown().await?;
    Ok(())
}
