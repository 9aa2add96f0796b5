//! A consumer's committed offset after a crash, on the real `rivulet-server`:
//! under the default policy a produce is acknowledged before its records are
//! synced, a consumer may read and commit them, and a SIGKILL then loses the
//! records. The commit must not survive them: a stored offset past the log's
//! end makes the consumer skip as many new messages as it is ahead.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use common::rivulet_server;
use rivulet_broker::api::{PollBy, PollKind, TopicRef};
use rivulet_client::{Client, Partitioning};

fn next_as(client: &mut Client, topic: u32) -> Vec<u64> {
    let poll = PollBy {
        topic,
        partition: 0,
        kind: PollKind::Next,
        count: 1000,
        consumer: "billing".into(),
        auto_commit: true,
    };
    client
        .poll_by(&poll)
        .unwrap()
        .iter()
        .map(|record| record.id)
        .collect()
}

#[test]
fn crash_never_leaves_a_consumer_offset_past_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // The saver syncs only every minute: the records are certainly still
    // unsynced (in the partition's buffer) when the kill comes.
    let slow_saver = ["--saver-interval-ms", "60000"];
    let server = rivulet_server(dir.path(), &slow_saver);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    client.create_topic_by_id(1, 1).unwrap();
    let produced = client
        .produce_with_ids(
            1,
            Partitioning::Explicit(0),
            (0..300).map(|id| (id, b"m".to_vec())),
        )
        .unwrap();
    assert!(
        !produced.durable,
        "every-batch acknowledges before the sync"
    );
    assert_eq!(next_as(&mut client, 1).len(), 300, "read, and committed");
    server.kill().unwrap();

    let server = rivulet_server(dir.path(), &slow_saver);
    let mut client = Client::connect(&server.addr().to_string()).unwrap();
    let offsets = client.get_offsets("billing", &TopicRef::Id(1)).unwrap();
    let partition = &offsets.partitions[0];
    assert!(
        partition.offset.unwrap_or(0) <= partition.next_offset,
        "stored {:?}, the log ends at {}",
        partition.offset,
        partition.next_offset
    );
    // What the consumer sees: every message produced after the restart.
    let start = partition.next_offset;
    client
        .produce_with_ids(
            1,
            Partitioning::Explicit(0),
            (1000..1010).map(|id| (id, b"n".to_vec())),
        )
        .unwrap();
    let read = next_as(&mut client, 1);
    assert!(
        read.ends_with(&(1000..1010).collect::<Vec<_>>()),
        "the log had {start} records; the consumer read {read:?}"
    );
    drop(server);
}
