//! A client in another language, written from the book's protocol reference
//! alone (`broker/tests/python/rivulet_min.py`, Python's standard library
//! only), against the real `rivulet-server`: if the reference leaves out
//! something a client needs, this fails.
//!
//! It runs with the Python of `target/kafka-clients/venv`, which
//! `scripts/install-kafka-clients` makes (the test command runs it first).

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn python() -> PathBuf {
    let python =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka-clients/venv/bin/python");
    assert!(
        python.exists(),
        "{} does not exist: run `scripts/install-kafka-clients` (the test command, \
         scripts/test, runs it first)",
        python.display()
    );
    python
}

/// Runs one of the client's walks against `addr`; its report.
fn walk(name: &str, addr: &str) -> Value {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/rivulet_min.py");
    let output = Command::new(python())
        .arg(&program)
        .args([name, addr])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{name}: no report ({}):\n{stdout}\n{stderr}", output.status));
    assert_eq!(
        report["failed"],
        json!([]),
        "{name}: checks failed: {report:#}"
    );
    assert!(
        output.status.success(),
        "{name}: {}\n{stderr}",
        output.status
    );
    report
}

#[test]
fn python_client_from_the_reference_produces_polls_and_stores_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::rivulet_server(dir.path(), &[]);
    let report = walk("check", &server.addr().to_string());

    // Streams: re-creating one is "exists"; a topic's missing stream is made.
    assert_eq!(report["stream"], json!({"name": "shop", "topics": []}));
    assert_eq!(
        report["stream_again"],
        json!({"status": 9, "message": "stream \"shop\" exists already"})
    );
    assert_eq!(report["streams"]["made-on-demand"], json!(["audit"]));

    // Produced plain and keyed batches, and one by key, read back as sent.
    assert_eq!(
        report["produced_plain"]["first_offset"], 0,
        "{}",
        report["produced_plain"]
    );
    assert_eq!(report["produced_keyed"]["first_offset"], 3);
    assert_eq!(report["produced_by_key"]["partition"], 1);
    let polled = report["polled"].as_array().unwrap();
    let values: Vec<&str> = polled
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["v0", "v1", "v2", "paid", "shipped"]);
    assert_eq!(polled[3]["key"], "order-7");
    assert_eq!(
        polled[3]["headers"],
        json!([["trace", "abc"], ["retry", null]])
    );
    assert_eq!(polled[3]["create_time"], 1_767_225_600_000u64);
    assert_eq!(polled[4]["key"], "order-8");
    assert_eq!(polled[0]["key"], Value::Null);
    assert_eq!(
        polled[0]["timestamp"], polled[2]["timestamp"],
        "one per batch"
    );
    assert_eq!(report["poll_count_0"], json!([]));
    assert_eq!(report["poll_past_end"], json!([]));

    // The consumer offset stored, read back, and moved by an auto-commit.
    assert_eq!(report["stored"], json!({}));
    assert_eq!(
        report["offsets"]["partitions"],
        json!([
            {"partition": 0, "offset": 3, "next_offset": 5},
            {"partition": 1, "offset": null, "next_offset": 1},
        ])
    );
    assert_eq!(report["offset_past_end"]["status"], 5);

    // Errors, with messages as the reference shows them.
    assert_eq!(
        report["describe_missing"],
        json!({"status": 4, "message": "topic \"nope\" does not exist"})
    );
    assert_eq!(
        report["delete_missing"],
        json!({"status": 4, "message": "topic \"nope\" does not exist"})
    );
    assert_eq!(report["delete_missing_stream"]["status"], 8);
    assert_eq!(report["bad_partition"]["status"], 7);
    assert_eq!(report["empty_batch"]["status"], 2);
    assert_eq!(report["empty_batch_closed"], true);
    assert_eq!(report["unknown_field"]["status"], 2);
    assert_eq!(report["unknown_field_closed"], true);
    assert_eq!(report["described"]["partition_info"][0]["next_offset"], 5);
    assert_eq!(report["stats"]["messages_in"], 6);
    assert_eq!(report["after_delete"], json!([]));
}

#[test]
fn python_client_from_the_reference_meets_the_connection_limit_and_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let limited = ["--max-connections", "1", "--idle-timeout-seconds", "2"];
    let server = common::rivulet_server(dir.path(), &limited);
    let report = walk("limits", &server.addr().to_string());
    assert_eq!(report["refusal"]["status"], 13, "{report}");
    assert_eq!(report["refusal"]["correlation"], 0);
    assert_eq!(report["refused_closed"], true);
    assert_eq!(report["idle_closed"], true);
    assert_eq!(report["after_idle"], 1);
}
