//! A process for crash tests to kill: appends with `sync_all` per message and
//! prints each offset once `append` has returned, so the test knows exactly what
//! was acknowledged when it sends SIGKILL.
//!
//! Usage: `stage1-writer DIR COUNT PAYLOAD_LEN SEED`. It continues an existing
//! stream; the payload of offset `n` is `Payloads::new(Random, SEED).payload(n, PAYLOAD_LEN)`.

use std::io::Write;

use anyhow::Context;
use rivulet_datasets::{PayloadKind, Payloads};
use stage1_file_log::{AppendMode, Message, Stream};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, payload_len, seed] = args.as_slice() else {
        anyhow::bail!("usage: stage1-writer DIR COUNT PAYLOAD_LEN SEED");
    };
    let count: u64 = count.parse().context("COUNT")?;
    let payload_len: usize = payload_len.parse().context("PAYLOAD_LEN")?;
    let payloads = Payloads::new(PayloadKind::Random, seed.parse().context("SEED")?);

    let mut stream = Stream::open(1, dir, AppendMode::SyncEveryAppend)?;
    let mut stdout = std::io::stdout().lock();
    let first = stream.next_offset();
    for n in first..first + count {
        let offset = stream.append(Message::new(n, payloads.payload(n, payload_len)))?;
        writeln!(stdout, "{offset}")?;
        stdout.flush()?;
    }
    Ok(())
}
