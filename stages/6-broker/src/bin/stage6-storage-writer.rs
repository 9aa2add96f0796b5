//! A process for crash tests to kill: appends batches to a stage 6 partition
//! and reports, line by line, what each answer promised.
//!
//! Usage: `stage6-storage-writer DIR POLICY COUNT BATCH PAYLOAD_LEN SEED DIRECT DRIVER
//! [TRUNCATE_EVERY]` (`DIRECT`: `on` or `off`; `DRIVER`: `auto`, `io-uring` or
//! `polling`; `TRUNCATE_EVERY` N: after every N appends, truncate the
//! partition back by two batches, printing `truncated OFFSET`, and append
//! from there again, so a kill can land in the middle of a truncation).
//!
//! Record `n` has id `n` and the payload `payload(n + SEED, PAYLOAD_LEN)`
//! (the tests' own `payload`, included below), so a checker can tell every
//! byte that should be there. Prints `driver NAME` first, then
//! `acked END DURABLE` after each append (END: one past its last offset,
//! DURABLE: 1 if the answer said it was synced). After an error it prints
//! `error TEXT`, tries one more append, prints `error TEXT` again for that, and
//! exits: that is how a test sees that a failed partition refuses writes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use stage6_broker::shards::driver::driver_name;
use stage6_broker::storage::record::encode as encode_record;
use stage6_broker::{Config, FsyncPolicy, IoDriver, Partition};

/// Small segments, so that a run of a second crosses several rollovers.
const SEGMENT_SIZE: u64 = 256 << 10;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, truncate_every) = match args.as_slice() {
        [rest @ .., every] if rest.len() == 8 => (rest, every.parse().context("TRUNCATE_EVERY")?),
        rest => (rest, 0),
    };
    let [dir, policy, count, batch, payload_len, seed, direct, driver] = args else {
        anyhow::bail!(
            "usage: stage6-storage-writer DIR POLICY COUNT BATCH PAYLOAD_LEN SEED DIRECT DRIVER \
             [TRUNCATE_EVERY]"
        );
    };
    let config = Config {
        segment_size: SEGMENT_SIZE,
        direct_io: direct == "on",
        fsync: FsyncPolicy::parse(policy).context("POLICY")?,
        flush_count: 50,
        ..Config::default()
    };
    let driver = IoDriver::parse(driver).context("DRIVER")?;
    let job = Job {
        dir: PathBuf::from(dir),
        count: count.parse().context("COUNT")?,
        batch: batch.parse().context("BATCH")?,
        payload_len: payload_len.parse().context("PAYLOAD_LEN")?,
        seed: seed.parse().context("SEED")?,
        truncate_every,
    };
    let runtime = driver.runtime()?;
    println!("driver {}", driver_name(&runtime));
    runtime.block_on(job.run(config))
}

struct Job {
    dir: PathBuf,
    count: u64,
    batch: u64,
    payload_len: usize,
    seed: u64,
    truncate_every: u64,
}

#[path = "../../tests/common/payload.rs"]
mod payload;

impl Job {
    async fn run(&self, config: Config) -> anyhow::Result<()> {
        let mut partition = Partition::open(&self.dir, config).await?;
        let mut out = std::io::stdout().lock();
        let mut next = partition.status().next_offset;
        let end = next + self.count;
        let mut appends = 0u64;
        while next < end {
            appends += 1;
            if self.truncate_every > 0 && appends.is_multiple_of(self.truncate_every) {
                // Record `n` is always id `n` with the same payload, so what
                // is appended again after the cut is what was cut.
                let to = next
                    .saturating_sub(2 * self.batch)
                    .max(partition.first_offset());
                partition.truncate_to(to).await?;
                next = to;
                writeln!(out, "truncated {next}")?;
            }
            let mut records = Vec::new();
            for n in next..end.min(next + self.batch) {
                encode_record(
                    &mut records,
                    0,
                    0,
                    n,
                    &payload::payload(n.wrapping_add(self.seed), self.payload_len),
                );
            }
            match partition.append(&mut records).await {
                Ok(appended) => {
                    next = appended.offsets.end;
                    writeln!(out, "acked {} {}", next, u8::from(appended.durable))?;
                }
                Err(error) => {
                    writeln!(out, "error {error}")?;
                    let again = partition.append(&mut records).await;
                    let again = again.err().map_or("none".into(), |e| e.to_string());
                    writeln!(out, "error {again}")?;
                    out.flush()?;
                    return Ok(());
                }
            }
            out.flush()?;
        }
        partition.flush().await?;
        Ok(())
    }
}
