//! Rounds of crashes of stage 2's batching log, under the policies that
//! promise durability (`always`, `every-batch`).
//!
//! The process that is killed is this binary itself, run as
//! `rivulet-torture stage2-child DIR POLICY`: it appends batches to stage 2's
//! `Batcher` and prints, after each append, what the answer promised
//! (`acked END DURABLE`) and whenever the durable watermark moves
//! (`durable N`). Rejected: running stage 2's own `stage2-writer` binary,
//! which `cargo test -p rivulet-torture` does not build; the child here calls
//! the same library code. The parent reads a random number of those lines,
//! SIGKILLs the child, reopens the log and checks that every record promised
//! durable is there, intact (stage 1's checksums, and the payload is the
//! one its id was sent with), at dense offsets.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rivulet_torture::PolicySummary;
use stage2_batching::{Batcher, Config, FsyncPolicy, Message};

use crate::payload::{is_payload_of, payload};
use crate::rng::Rng;

/// The policies whose answers promise durability, each tortured.
pub const POLICIES: [&str; 2] = ["always", "every-batch"];

/// The child: appends until killed. Small thresholds, so short runs
/// cross every path (batches flushed by count, and by the saver's tick).
pub fn child(dir: &Path, policy: &str) -> anyhow::Result<()> {
    let policy = FsyncPolicy::parse(policy).context("POLICY")?;
    let config = Config {
        flush_count: 50,
        saver_interval: Duration::from_millis(20),
        ..Config::new(policy)
    };
    let mut batcher = Batcher::open(1, dir, config, Instant::now())?;
    let mut out = std::io::stdout().lock();
    let mut durable = batcher.status().durable;
    // The batch sizes vary with the offset: not a divisor of the flush count.
    loop {
        let next = batcher.status().next_offset;
        let size = 1 + next % 13;
        let messages: Vec<Message> = (next..next + size)
            .map(|n| Message::new(n, payload(n)))
            .collect();
        let now = Instant::now();
        match batcher.append(messages, now).and_then(|appended| {
            batcher.tick(now)?;
            Ok(appended)
        }) {
            Ok(appended) => {
                writeln!(
                    out,
                    "acked {} {}",
                    appended.offsets.end,
                    u8::from(appended.durable)
                )?;
            }
            Err(error) => {
                writeln!(out, "error {error}")?;
                return Ok(());
            }
        }
        let now_durable = batcher.status().durable;
        if now_durable > durable {
            durable = now_durable;
            writeln!(out, "durable {durable}")?;
        }
        out.flush()?;
    }
}

/// Runs `rounds` kills for each policy, each in its own folder under `dir`.
pub fn run(
    exe: &Path,
    dir: &Path,
    rounds: u64,
    rng: &mut Rng,
) -> anyhow::Result<Vec<PolicySummary>> {
    let mut summaries = Vec::new();
    for policy in POLICIES {
        let folder: PathBuf = dir.join(policy);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)?;
        }
        std::fs::create_dir_all(&folder)?;
        let mut summary = PolicySummary {
            policy: policy.to_string(),
            ..PolicySummary::default()
        };
        let mut acked_before = 0;
        for round in 0..rounds {
            let lines = rng.range(2, 120);
            let (acked, durable) = run_and_kill(exe, &folder, policy, lines)?;
            summary.rounds += 1;
            summary.acknowledged += acked.saturating_sub(acked_before);
            summary.durable_promised += durable.saturating_sub(acked_before.min(durable));
            let survived = survivors(&folder, &mut summary)?;
            if survived < durable {
                summary.losses += durable - survived;
                summary.failures.push(format!(
                    "{policy} round {round}: {durable} promised durable, {survived} survived"
                ));
            }
            if policy == "always" && durable < acked {
                summary.failures.push(format!(
                    "always round {round}: acknowledged {acked} but only {durable} durable"
                ));
            }
            summary.survived = survived;
            // The next round appends after whatever survived.
            acked_before = survived;
            eprintln!(
                "stage 2 {policy} round {round}: {acked} acknowledged, {durable} durable, {survived} survived"
            );
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Runs the child until it has printed `lines` lines, SIGKILLs it; returns
/// one past the last acknowledged offset and the durable watermark promised.
fn run_and_kill(exe: &Path, dir: &Path, policy: &str, lines: u64) -> anyhow::Result<(u64, u64)> {
    let mut child = Command::new(exe)
        .arg("stage2-child")
        .arg(dir)
        .arg(policy)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} stage2-child", exe.display()))?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut reader = BufReader::new(stdout).lines();
    let (mut acked, mut durable) = (0, 0);
    for _ in 0..lines {
        let Some(line) = reader.next() else { break };
        let line = line?;
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["acked", end, synced] => {
                acked = end.parse()?;
                if synced == "1" {
                    durable = acked;
                }
            }
            ["durable", end] => durable = durable.max(end.parse()?),
            _ => anyhow::bail!("stage2-child said {line:?}"),
        }
    }
    child.kill()?;
    let status = child.wait()?;
    if status.signal() != Some(9) {
        anyhow::bail!("stage2-child ended with {status} before it was killed");
    }
    Ok((acked, durable))
}

/// Reopens the log and checks every record; returns how many there are.
fn survivors(dir: &Path, summary: &mut PolicySummary) -> anyhow::Result<u64> {
    let batcher = Batcher::open(1, dir, Config::new(FsyncPolicy::Never), Instant::now())?;
    let count = batcher.status().next_offset;
    // Stage 1 checks each record's checksum as it reads it.
    let messages = batcher.poll(0, count)?;
    if messages.len() as u64 != count {
        summary.corrupt += 1;
        summary
            .failures
            .push(format!("{} records readable of {count}", messages.len()));
    }
    for (message, n) in messages.iter().zip(0..) {
        if message.offset != n || message.id != n || !is_payload_of(n, &message.payload) {
            summary.corrupt += 1;
            summary.failures.push(format!(
                "record {n}: offset {}, id {}, payload intact: {}",
                message.offset,
                message.id,
                is_payload_of(n, &message.payload)
            ));
            break;
        }
    }
    Ok(count)
}
