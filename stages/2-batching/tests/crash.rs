//! Real crashes, policy by policy: a child process appending batches is killed
//! with SIGKILL at a varying moment, and what survived is checked against what
//! each answer had promised. `RIVULET_CRASH_ROUNDS=N` runs N rounds per policy.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rivulet_datasets::{PayloadKind, Payloads};
use stage2_batching::{Batcher, Config, FsyncPolicy};

const PAYLOAD_LEN: usize = 300;
const SEED: u64 = 2;
const BATCH: u64 = 7; // not a divisor of the writer's flush count (50)

fn rounds() -> u64 {
    std::env::var("RIVULET_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(2)
}

/// What the writer had been told before it died.
#[derive(Default)]
struct Promises {
    /// One past the last offset of any answer at all.
    acked: u64,
    /// One past the last offset known to be synced.
    durable: u64,
}

fn run_and_kill(dir: &Path, policy: &str, lines_before_kill: u64) -> Promises {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stage2-writer"))
        .arg(dir)
        .args([policy, "10000000", &BATCH.to_string()])
        .args([PAYLOAD_LEN.to_string(), SEED.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut promises = Promises::default();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..lines_before_kill {
        let line = lines.next().unwrap().unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["acked", end, durable] => {
                promises.acked = end.parse().unwrap();
                if durable == "1" {
                    promises.durable = promises.acked;
                }
            }
            ["durable", end] => promises.durable = promises.durable.max(end.parse().unwrap()),
            _ => panic!("unexpected line from the writer: {line}"),
        }
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9), "died of SIGKILL");
    promises
}

/// Opens what survived and checks every record is whole, in order, and right.
fn survivors(dir: &Path) -> u64 {
    let config = Config::new(FsyncPolicy::Never);
    let batcher = Batcher::open(1, dir, config, std::time::Instant::now()).unwrap();
    let count = batcher.status().next_offset;
    let payloads = Payloads::new(PayloadKind::Random, SEED);
    let messages = batcher.poll(0, count).unwrap();
    assert_eq!(messages.len() as u64, count);
    for (message, n) in messages.iter().zip(0..) {
        assert_eq!((message.offset, message.id), (n, n));
        assert!(
            message.payload == payloads.payload(n, PAYLOAD_LEN),
            "payload {n}"
        );
    }
    count
}

/// Kills the writer `rounds()` times under `policy`, each time checking that
/// nothing it promised as durable was lost.
fn crash_rounds(policy: &str, check: impl Fn(&Promises, u64)) {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds() {
        let lines = 3 + (round * 7919) % 60;
        let promises = run_and_kill(dir.path(), policy, lines);
        let survived = survivors(dir.path());
        assert!(
            survived >= promises.durable,
            "{policy} round {round}: lost durable messages"
        );
        check(&promises, survived);
    }
}

#[test]
fn crash_fsync_always_keeps_every_acknowledged_message() {
    crash_rounds("always", |promises, survived| {
        assert_eq!(
            promises.durable, promises.acked,
            "always: every answer was durable"
        );
        assert!(survived >= promises.acked);
    });
}

#[test]
fn crash_fsync_every_batch_keeps_every_synced_batch() {
    crash_rounds("every-batch", |promises, survived| {
        assert!(survived >= promises.durable);
    });
}

#[test]
fn crash_fsync_interval_loses_only_what_was_not_synced() {
    crash_rounds("interval-10ms", |promises, survived| {
        // The loss is bounded: at most what was accepted after the last sync.
        assert!(survived >= promises.durable);
    });
}

#[test]
fn crash_fsync_never_still_never_serves_a_broken_record() {
    // No durability promise at all; `survivors` still checks every record.
    crash_rounds("never", |promises, _| assert_eq!(promises.durable, 0));
}

#[test]
fn failed_write_is_not_retried_and_later_writes_are_refused() {
    // A real I/O error from the kernel: the file size limit (RLIMIT_FSIZE) makes
    // a write fail with EFBIG. SIGXFSZ, which would kill the writer, is ignored
    // by the shell and stays ignored across exec.
    let dir = tempfile::tempdir().unwrap();
    let writer = env!("CARGO_BIN_EXE_stage2-writer");
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; exec prlimit --fsize=200000 -- "$@""#)
        .args(["sh", writer])
        .arg(dir.path())
        .args(["always", "100000", "1", "1000", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error ")).collect();
    assert_eq!(errors.len(), 2, "{stdout}");
    assert!(errors[0].contains("File too large"), "{}", errors[0]);
    assert!(errors[1].contains("refuses writes"), "{}", errors[1]);
    // What was acknowledged before the failure is all there, intact.
    let acked = stdout.lines().filter(|l| l.starts_with("acked ")).count() as u64;
    let config = Config::new(FsyncPolicy::Never);
    let batcher = Batcher::open(1, dir.path(), config, std::time::Instant::now()).unwrap();
    assert!(batcher.status().next_offset >= acked);
    assert_eq!(batcher.poll(0, acked).unwrap().len() as u64, acked);
}
