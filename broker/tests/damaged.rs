//! Damaged partitions at start-up, on the real `rivulet-server`: one
//! partition whose log is corrupt in the middle (its indexes gone, so
//! recovery walks into the damage) must not keep the broker down: it starts,
//! serves every other partition, and shows that one as failed, with why and
//! how to repair it, in `describe`, the metrics and the log. And a repair
//! recovery makes (a torn last record erased) is logged and counted, never
//! silent.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod operator;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use operator::{Broker, command, http_get};
use rivulet_broker::api::{CreateTopic, TopicRef, status};
use rivulet_client::{Client, Partitioning};

fn start(dir: &Path) -> Broker {
    let args: Vec<&OsStr> = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--fsync",
        "always",
        "--segment-size",
        "262144",
        "--data",
    ]
    .into_iter()
    .map(OsStr::new)
    .chain([dir.as_os_str()])
    .collect();
    Broker::start(command(&args, &[]))
}

/// A topic of `partitions` partitions, each holding `count` records with
/// ids `0..count` and 100-byte payloads; returns the topic's id.
fn fill(broker: &Broker, partitions: u32, count: u64) -> u32 {
    let mut client = Client::connect(&broker.addr.to_string()).unwrap();
    let topic = client
        .create_topic(&CreateTopic {
            stream: None,
            name: "orders".into(),
            id: None,
            partitions,
            settings: Default::default(),
        })
        .unwrap();
    for partition in 0..partitions {
        let records = (0..count).map(|id| (id, vec![b'a' + (id % 26) as u8; 100]));
        client
            .produce_with_ids(topic.id, Partitioning::Explicit(partition), records)
            .unwrap();
    }
    topic.id
}

fn partition_dir(data: &Path, topic: u32, partition: u32) -> PathBuf {
    data.join(topic.to_string()).join(partition.to_string())
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("00000000000000000000.log")
}

fn flip_byte(file: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], at).unwrap();
    file.sync_all().unwrap();
}

/// A metric's value from the endpoint's text, for a sample whose line starts with `prefix`.
fn metric(broker: &Broker, prefix: &str) -> f64 {
    let (_, body) = http_get(broker.metrics_addr(), "/metrics");
    body.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
}

#[test]
fn damaged_partition_at_start_is_served_as_failed_while_the_others_serve_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = start(&data);
    let topic = fill(&broker, 2, 300);
    broker.stop();

    // Partition 0: indexes gone (so recovery walks the whole log) and a byte
    // flipped in the middle of record 100's payload, with good records after.
    let damaged = partition_dir(&data, topic, 0);
    for entry in std::fs::read_dir(&damaged).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|ext| ext == "index" || ext == "timeindex")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    flip_byte(&log_file(&damaged), 100 * 132 + 80);

    // Before the fix this start refused (or hung): it must come up.
    let broker = start(&data);
    let logged = broker.wait_for_log("could not be opened at start");
    assert!(logged.contains("To repair it"), "{logged}");

    let mut client = Client::connect(&broker.addr.to_string()).unwrap();
    // The healthy partition: its records, and new ones.
    let records = client.poll(topic, 1, 0, 1000).unwrap();
    assert_eq!(records.len(), 300);
    let produced = client
        .produce_with_ids(topic, Partitioning::Explicit(1), [(300, b"more".to_vec())])
        .unwrap();
    assert_eq!(produced.first_offset, 300);
    // The damaged one: refused, with the reason and the repair.
    for error in [
        client
            .produce_with_ids(topic, Partitioning::Explicit(0), [(1, b"x".to_vec())])
            .unwrap_err(),
        client.poll(topic, 0, 0, 10).unwrap_err(),
    ] {
        assert_eq!(error.status(), Some(status::PARTITION_FAILED), "{error}");
        assert!(error.to_string().contains("corrupt"), "{error}");
    }
    let described = client
        .describe_topic(&TopicRef::Name("orders".into()))
        .unwrap();
    let failed = described.partition_info[0]
        .failed
        .clone()
        .unwrap_or_default();
    assert!(failed.contains("could not be opened at start"), "{failed}");
    assert_eq!(described.partition_info[1].failed, None);
    assert_eq!(described.partition_info[1].next_offset, 301);
    assert_eq!(metric(&broker, "rivulet_partition_failures_total "), 1.0);

    // The damage is left for an operator to look at: the files are as they were.
    assert!(log_file(&damaged).exists());
    broker.stop();
}

#[test]
fn damaged_last_record_erased_by_recovery_is_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = start(&data);
    let topic = fill(&broker, 1, 10);
    broker.stop();

    // A byte of the last record's payload: with nothing valid after it,
    // recovery takes it for a torn write and erases it.
    flip_byte(&log_file(&partition_dir(&data, topic, 0)), 9 * 132 + 100);

    let broker = start(&data);
    let line = broker.wait_for_log("recovered:");
    assert!(line.contains("bytes of a torn write erased"), "{line}");
    assert!(line.contains("WARN"), "a repair is a warning: {line}");
    let erased = metric(
        &broker,
        "rivulet_recovery_repairs_total{kind=\"torn_bytes_erased\"}",
    );
    assert!(erased > 0.0, "{erased}");
    let mut client = Client::connect(&broker.addr.to_string()).unwrap();
    assert_eq!(client.poll(topic, 0, 0, 100).unwrap().len(), 9);
    broker.stop();
}

#[test]
fn damaged_record_found_by_a_poll_is_logged_once_and_the_records_before_it_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = start(&data);
    let topic = fill(&broker, 1, 300);
    // A later batch, with a later timestamp: recovery's walk starts at the
    // last entry of the time index, past the damage below.
    let mut client = Client::connect(&broker.addr.to_string()).unwrap();
    let later = (300..310).map(|id| (id, vec![b'z'; 100]));
    client
        .produce_with_ids(topic, Partitioning::Explicit(0), later)
        .unwrap();
    drop(client);
    broker.stop();
    // The index is intact, so the damage in record 100 is not walked at
    // start: the poll that reaches it finds it.
    flip_byte(&log_file(&partition_dir(&data, topic, 0)), 100 * 132 + 80);

    let broker = start(&data);
    let mut client = Client::connect(&broker.addr.to_string()).unwrap();
    let before = client.poll(topic, 0, 0, 1000).unwrap();
    assert_eq!(before.len(), 100, "records 0 to 99, not none");
    for _ in 0..3 {
        let error = client.poll(topic, 0, 100, 1000).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
    }
    let after = client.poll(topic, 0, 101, 1000).unwrap();
    assert_eq!(after.first().map(|record| record.offset), Some(101));
    broker.wait_for_log("fails its checksum");
    let said = broker
        .logs()
        .lines()
        .filter(|line| line.contains("fails its checksum"))
        .count();
    assert_eq!(said, 1, "said once, not at every poll:\n{}", broker.logs());
    broker.stop();
}
