//! The crash torture, short: `rivulet-torture` kills the real
//! `rivulet-server` (fsync `always`, 64 KiB segments, retention by size)
//! under load, at rollovers, during retention's deletions and during
//! shutdown, restarts it and checks every acknowledged message; then kills
//! a child appending to stage 2's log under `always` and `every-batch`.
//! And the negative control: the same driver against `--fsync never` must
//! find losses, or its checks could not fail.
//!
//! `RIVULET_TORTURE_ROUNDS=N` runs N broker rounds; `scripts/torture` runs
//! the long version and files its summary for the book. The server is the
//! broker package's `rivulet-server` of this build (cargo gives a test only
//! its own package's binaries): `server_binary` finds it, or builds it.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::process::Command;

use rivulet_broker::process::server_binary;
use serde_json::Value;

fn rounds() -> u64 {
    std::env::var("RIVULET_TORTURE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(8)
}

/// Runs the driver with `args`; returns its exit success and JSON summary.
fn torture(args: &[&str]) -> (bool, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("torture.json");
    let server = server_binary().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rivulet-torture"))
        .arg("--server")
        .arg(&server)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    // The driver's log says which moment each kill landed in: show it.
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (output.status.success(), summary)
}

fn count(summary: &Value, path: &str) -> u64 {
    summary
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing from {summary:#}"))
}

#[test]
fn torture_sigkill_at_every_moment_loses_nothing_acknowledged() {
    let rounds = rounds().to_string();
    let (passed, summary) = torture(&[
        "--rounds",
        &rounds,
        "--stage2-rounds",
        "3",
        // Small enough that a short run deletes segments.
        "--retention-bytes",
        "262144",
    ]);
    assert!(passed, "{summary:#}");
    assert_eq!(summary["passed"], Value::Bool(true));
    assert_eq!(summary["broker"]["failures"], Value::Array(Vec::new()));
    for must_be_zero in [
        "/broker/counts/losses",
        "/broker/counts/corrupt",
        "/broker/counts/duplicates",
        "/broker/counts/order_violations",
    ] {
        assert_eq!(count(&summary, must_be_zero), 0, "{must_be_zero}");
    }
    // It tested something: acknowledgements, each checked after a crash
    // (or deleted by retention first).
    let acknowledged = count(&summary, "/broker/counts/acknowledged");
    assert!(acknowledged > 0);
    assert_eq!(
        count(&summary, "/broker/counts/verified")
            + count(&summary, "/broker/counts/removed_by_retention_unverified"),
        acknowledged
    );
    // Every moment was reached at least once (the rounds take them in turn).
    let kills = &summary["broker"]["kills"];
    assert!(count(&summary, "/broker/kills/rollover") > 0, "{kills}");
    assert!(count(&summary, "/broker/kills/shutdown") > 0, "{kills}");
    assert!(count(&summary, "/broker/kills/produce") > 0, "{kills}");
    if summary["broker"]["retention_bytes"].is_null() {
        eprintln!("note: this server has no retention, so no kill landed during deletion");
    } else {
        assert!(count(&summary, "/broker/kills/retention") > 0, "{kills}");
        assert!(count(&summary, "/broker/segments_deleted_seen") > 0);
    }
    if summary["broker"]["consumer"]["checked"] == Value::Bool(true) {
        assert!(count(&summary, "/broker/consumer/commits") > 0);
        assert_eq!(count(&summary, "/broker/consumer/went_back"), 0);
    } else {
        eprintln!(
            "note: consumer offsets not checked: {}",
            summary["broker"]["consumer"]["note"]
        );
    }
    // Stage 2: both policies, with something promised durable each.
    let stage2 = summary["stage2"].as_array().unwrap();
    assert_eq!(stage2.len(), 2);
    for policy in stage2 {
        assert_eq!(policy["losses"], 0, "{policy}");
        assert_eq!(policy["corrupt"], 0, "{policy}");
        assert!(policy["durable_promised"].as_u64().unwrap() > 0, "{policy}");
    }
}

#[test]
fn torture_negative_control_fsync_never_is_caught_losing_acknowledged_messages() {
    // Under `never`, an acknowledgement comes before the write: records
    // still in the server's buffers die with it. Kills under load (and at
    // rollovers) lose some, and the driver must say so and fail.
    let (passed, summary) = torture(&[
        "--rounds",
        "6",
        "--stage2-rounds",
        "0",
        "--fsync",
        "never",
        "--retention-bytes",
        "0",
        "--seed",
        "7",
    ]);
    assert!(!passed, "{summary:#}");
    assert_eq!(summary["passed"], Value::Bool(false));
    assert!(count(&summary, "/broker/counts/losses") > 0, "{summary:#}");
}
