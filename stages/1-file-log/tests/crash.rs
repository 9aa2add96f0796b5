//! A real crash: a child process appending with `sync_all` per message is
//! killed with SIGKILL, and every message it reported as appended must be there.
//!
//! `RIVULET_CRASH_ROUNDS=N` runs N rounds instead of the quick default.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use rivulet_datasets::{PayloadKind, Payloads};
use stage1_file_log::{AppendMode, Stream};

const PAYLOAD_LEN: usize = 700; // not a divisor of 4096: records straddle pages
const SEED: u64 = 1;

fn rounds() -> u64 {
    std::env::var("RIVULET_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(4)
}

#[test]
fn crash_sigkill_during_synced_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = Payloads::new(PayloadKind::Random, SEED);
    let mut acknowledged = 0;

    for round in 0..rounds() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stage1-writer"))
            .arg(dir.path())
            .args(["1000000", &PAYLOAD_LEN.to_string(), &SEED.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // ANCHOR: kill
        // Let it acknowledge a varying number of messages, then kill it while it
        // is in the middle of the next ones.
        let wait_for = 1 + (round * 7919) % 40;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..wait_for {
            let offset: u64 = lines.next().unwrap().unwrap().parse().unwrap();
            assert!(offset >= acknowledged, "offsets go forward");
            acknowledged = offset + 1;
        }
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "the writer died of SIGKILL");
        // ANCHOR_END: kill

        // ANCHOR: verify
        let stream = Stream::open(1, dir.path(), AppendMode::KeptHandle).unwrap();
        let count = stream.next_offset();
        assert!(
            count >= acknowledged,
            "round {round}: lost acknowledged messages"
        );
        // Every record present, acknowledged or not, is whole and in order.
        let messages = stream.poll(0, count).unwrap();
        assert_eq!(messages.len() as u64, count);
        for (message, n) in messages.iter().zip(0..) {
            assert_eq!((message.offset, message.id), (n, n));
            assert!(
                message.payload == payloads.payload(n, PAYLOAD_LEN),
                "payload {n}"
            );
        }
        // ANCHOR_END: verify
        // The next writer continues from what survived.
        acknowledged = count;
    }
}
