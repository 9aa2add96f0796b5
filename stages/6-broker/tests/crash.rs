//! Real crashes: a child process appending with fsync `always` is killed with
//! SIGKILL at a varying moment, and the partition it left is reopened: every
//! acknowledged record must be there, every checksum valid, offsets dense.
//! Also with the writer truncating its partition back every few appends, so
//! kills land inside truncations.
//! Rounds alternate Direct I/O on and off and the two compio drivers.
//! `RIVULET_CRASH_ROUNDS=N` runs N rounds.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{payload, read_all};
use stage6_broker::{Config, FsyncPolicy, IoDriver, Partition};

const PAYLOAD_LEN: usize = 300;
const SEED: u64 = 6;
const BATCH: u64 = 7;

fn rounds() -> u64 {
    std::env::var("RIVULET_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(8)
}

fn writer(dir: &Path, policy: &str, count: u64, direct: &str, driver: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stage6-storage-writer"));
    command
        .arg(dir)
        .args([policy, &count.to_string(), &BATCH.to_string()])
        .args([PAYLOAD_LEN.to_string(), SEED.to_string()])
        .args([direct, driver]);
    command
}

/// Runs the writer until it has printed `acks` acknowledgements, kills it,
/// and returns one past the last acknowledged offset (or the offset of the
/// last truncation, if none came after it). `truncate_every`: the writer's
/// last argument, 0 for none.
fn run_and_kill(
    dir: &Path,
    policy: &str,
    direct: &str,
    driver: &str,
    acks: u64,
    truncate_every: u64,
) -> u64 {
    let mut command = writer(dir, policy, 10_000_000, direct, driver);
    if truncate_every > 0 {
        command.arg(truncate_every.to_string());
    }
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("driver "), "{first}");
    let (mut acked, mut appends): (u64, u64) = (0, 0);
    for _ in 0..acks {
        let line = lines.next().unwrap().unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["acked", end, durable] => {
                acked = end.parse().unwrap();
                appends += 1;
                assert_eq!(durable, "1", "under `always` every answer is durable");
            }
            // Not an acknowledgement: what was cut is no longer promised.
            ["truncated", to] => acked = to.parse().unwrap(),
            _ => panic!("unexpected line from the writer: {line}"),
        }
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9), "died of SIGKILL");
    // The kill may land in the truncation that comes before the next
    // append: what it cuts is no longer promised either.
    if truncate_every > 0 && (appends + 1).is_multiple_of(truncate_every) {
        acked = acked.saturating_sub(2 * BATCH);
    }
    acked
}

/// Reopens what the writer left and checks every record; returns how many.
fn survivors(dir: &Path, direct_io: bool) -> u64 {
    let runtime = IoDriver::Auto.runtime().unwrap();
    runtime.block_on(async {
        let config = Config {
            segment_size: 256 << 10,
            direct_io,
            fsync: FsyncPolicy::Never,
            ..Config::default()
        };
        let partition = Partition::open(dir, config).await.unwrap();
        let count = partition.status().next_offset;
        // `poll` verifies each record's checksum before it serves it.
        let (records, _) = read_all(&partition, 0, 333).await;
        assert_eq!(records.len() as u64, count);
        for (record, n) in records.iter().zip(0..) {
            assert_eq!((record.offset, record.id), (n, n), "dense offsets");
            assert!(
                record.payload == payload(n.wrapping_add(SEED), PAYLOAD_LEN),
                "payload {n}"
            );
        }
        count
    })
}

#[test]
fn crash_fsync_always_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds() {
        let direct = if round % 2 == 0 { "on" } else { "off" };
        let driver = if round % 4 < 2 { "io-uring" } else { "polling" };
        let acks = 5 + (round * 7919) % 150;
        let acked = run_and_kill(dir.path(), "always", direct, driver, acks, 0);
        let survived = survivors(dir.path(), direct == "on");
        eprintln!("round {round} ({direct}, {driver}): {acked} acknowledged, {survived} survived");
        assert!(
            survived >= acked,
            "round {round} ({direct}, {driver}): {acked} acknowledged, {survived} survived"
        );
    }
}

#[test]
fn crash_during_truncations_keeps_every_acknowledged_record() {
    // The writer cuts two batches back every third append and appends them
    // again; a kill inside a cut must leave a valid, dense log holding every
    // record acknowledged since the last cut, and no record of another.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds() {
        let direct = if round % 2 == 0 { "on" } else { "off" };
        let driver = if round % 4 < 2 { "io-uring" } else { "polling" };
        let acks = 5 + (round * 7919) % 150;
        let acked = run_and_kill(dir.path(), "always", direct, driver, acks, 3);
        let survived = survivors(dir.path(), direct == "on");
        eprintln!("round {round} ({direct}, {driver}): {acked} promised, {survived} survived");
        assert!(
            survived >= acked,
            "round {round} ({direct}, {driver}): {acked} promised, {survived} survived"
        );
    }
}

#[test]
fn crash_fsync_never_still_never_serves_a_broken_record() {
    // No durability promise at all; `survivors` still checks every record.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds() {
        let acks = 3 + (round * 104_729) % 400;
        let mut child = writer(dir.path(), "never", 10_000_000, "on", "auto")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..acks {
            lines.next().unwrap().unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        survivors(dir.path(), true);
    }
}

#[test]
fn failed_write_is_not_retried_and_later_writes_are_refused() {
    // A real I/O error from the kernel: a file size limit (RLIMIT_FSIZE) of
    // 4 KiB makes any write at a position past 4 KiB fail with EFBIG, even
    // inside a file that is already larger (the check is on the position).
    // A first run without the limit creates the preallocated segment; in the
    // second, the segment write that passes 4 KiB fails. SIGXFSZ, which would
    // kill the writer, is ignored by the shell and stays ignored across exec.
    for driver in ["io-uring", "polling"] {
        let dir = tempfile::tempdir().unwrap();
        let first = writer(dir.path(), "always", 1, "on", driver)
            .output()
            .unwrap();
        assert!(first.status.success(), "{first:?}");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"trap '' XFSZ; exec prlimit --fsize=4096 -- "$@""#)
            .arg("sh");
        let writer = writer(dir.path(), "always", 3000, "on", driver);
        command.arg(writer.get_program()).args(writer.get_args());
        let output = command.output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error ")).collect();
        assert_eq!(errors.len(), 2, "{driver}: {stdout}");
        assert!(
            errors[0].contains("File too large"),
            "{driver}: {}",
            errors[0]
        );
        assert!(
            errors[1].contains("refuses writes"),
            "{driver}: {}",
            errors[1]
        );
        // What was acknowledged before the failure is all there, intact.
        let acked = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("acked "))
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .max()
            .unwrap();
        assert!(acked > 1, "{driver}: some appends succeeded first");
        assert!(survivors(dir.path(), true) >= acked, "{driver}");
    }
}
