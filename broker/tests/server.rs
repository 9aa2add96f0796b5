//! The real `rivulet-server` binary on loopback, driven by stage 4's client:
//! requests crossing between shards, the three partitionings, hostile frames,
//! restarts, a SIGKILL under load, Direct I/O on and off, and SIGTERM. The
//! suite runs on compio's default driver and again on `--io-driver polling`.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
#[path = "../../stages/4-partitions/tests/conformance/mod.rs"]
mod conformance;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rivulet_broker::process::ServerProcess;
use stage4_partitions::protocol::record::Record;
use stage4_partitions::{Client, Partitioning};
use stage6_broker::shards::router::owner;

/// The drivers every networked test runs on: compio's choice (io_uring where
/// the kernel allows it) and the polling fallback.
const DRIVERS: [&str; 2] = ["auto", "polling"];

/// `rivulet-server` on `driver` ([`common::rivulet_server`]), with these flags.
fn spawn(dir: &Path, driver: &str, extra: &[&str]) -> ServerProcess {
    common::rivulet_server(dir, &[&["--io-driver", driver], extra].concat())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The payload of message `id`: its name, padded to a length that varies.
fn payload(id: u64) -> Vec<u8> {
    let mut payload = format!("message {id}").into_bytes();
    payload.resize(payload.len() + (id % 97) as usize, b'.');
    payload
}

fn messages(first: u64, n: u64) -> Vec<(u64, Vec<u8>)> {
    (first..first + n).map(|id| (id, payload(id))).collect()
}

/// Every record of a partition, polled until the end (checksums verified by
/// the client).
async fn poll_all(client: &mut Client, topic: u32, partition: u32) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    loop {
        let offset = records.len() as u64;
        let more = client.poll(topic, partition, offset, 1000).await.unwrap();
        if more.is_empty() {
            return records;
        }
        records.extend(more);
    }
}

fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|record| record.id).collect()
}

#[test]
fn shards_answer_requests_for_partitions_on_other_shards() {
    const PARTITIONS: u32 = 4;
    // Two shards and four partitions: each shard owns two.
    let owners: Vec<usize> = (0..PARTITIONS).map(|p| owner(7, p, 2)).collect();
    assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), driver, &[]);
        runtime().block_on(async {
            let addr = server.addr();
            Client::connect(addr)
                .await
                .unwrap()
                .create_topic(7, PARTITIONS)
                .await
                .unwrap();
            // Several connections, so the kernel puts some on each shard;
            // every connection writes to every partition, so whichever shard
            // it is on, half its requests cross to the other one.
            let mut tasks = Vec::new();
            for connection in 0..4u64 {
                tasks.push(tokio::spawn(async move {
                    let mut client = Client::connect(addr).await.unwrap();
                    for round in 0..10u64 {
                        for partition in 0..PARTITIONS {
                            let first = ((connection * 100 + round) * 4 + u64::from(partition)) * 3;
                            let produced = client
                                .produce(7, Partitioning::Explicit(partition), messages(first, 3))
                                .await
                                .unwrap();
                            assert_eq!((produced.partition, produced.count), (partition, 3));
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let mut client = Client::connect(addr).await.unwrap();
            for partition in 0..PARTITIONS {
                let records = poll_all(&mut client, 7, partition).await;
                assert_eq!(records.len(), 4 * 10 * 3, "driver {driver}");
                for (n, record) in records.iter().enumerate() {
                    assert_eq!(record.offset, n as u64);
                    assert_eq!(u64::from(partition), record.id / 3 % 4);
                    assert_eq!(record.payload, payload(record.id));
                }
            }
        });
        assert!(server.terminate().unwrap().success());
    }
}

#[test]
fn partitionings_and_errors_behave_as_in_stage4() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), driver, &[]);
        runtime().block_on(async {
            conformance::partitioning(server.addr()).await;
            conformance::errors(server.addr()).await;
        });
        assert!(server.terminate().unwrap().success());
    }
}

#[test]
fn hostile_frames_get_errors_and_closed_connections_while_a_client_keeps_working() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), driver, &[]);
        runtime().block_on(conformance::hostile(server.addr()));
        assert!(server.terminate().unwrap().success());
    }
}

#[test]
fn sigterm_flushes_what_only_memory_held_and_a_restart_recovers_it() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        // `never` and Direct I/O: a few small batches stay in the segments'
        // write buffers (and tail blocks), in memory only, until the flush
        // that shutdown does.
        let server = spawn(dir.path(), driver, &["--fsync", "never"]);
        runtime().block_on(async {
            let mut client = Client::connect(server.addr()).await.unwrap();
            client.create_topic(3, 4).await.unwrap();
            for n in 0..20 {
                client
                    .produce(3, Partitioning::RoundRobin, messages(n * 5, 5))
                    .await
                    .unwrap();
            }
        });
        let status = server.terminate().unwrap();
        assert!(status.success(), "{status}");
        let server = spawn(dir.path(), driver, &["--fsync", "never"]);
        runtime().block_on(async {
            let mut client = Client::connect(server.addr()).await.unwrap();
            let mut all = Vec::new();
            for partition in 0..4 {
                all.extend(ids(&poll_all(&mut client, 3, partition).await));
            }
            all.sort_unstable();
            assert_eq!(all, (0..100).collect::<Vec<_>>(), "driver {driver}");
        });
        assert!(server.terminate().unwrap().success());
    }
}

/// How a test stops a server under load.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Terminate,
}

/// Four producers, one per partition of topic 5, until `stop` ends the
/// server; returns each producer's acknowledged ids, in order.
fn produce_until_stopped(server: ServerProcess, stop: Stop, durable: bool) -> Vec<Vec<u64>> {
    let addr = server.addr();
    runtime().block_on(async {
        Client::connect(addr)
            .await
            .unwrap()
            .create_topic(5, 4)
            .await
            .unwrap();
        let mut producers = Vec::new();
        let counts: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
        for partition in 0..4u32 {
            let count = Arc::clone(&counts[partition as usize]);
            producers.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await.unwrap();
                let mut acked = Vec::new();
                for n in 0.. {
                    let first = (u64::from(partition) << 32) + n * 8;
                    let explicit = Partitioning::Explicit(partition);
                    match client.produce(5, explicit, messages(first, 8)).await {
                        Ok(produced) => {
                            assert!(!durable || produced.durable, "an ack not durable");
                            acked.extend(first..first + 8);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return acked, // the server is gone
                    }
                }
                acked
            }));
        }
        // Stopped once every producer has had a few answers, however slowly
        // a busy machine runs them (rather than after a fixed sleep).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while counts.iter().any(|count| count.load(Ordering::Relaxed) < 3) {
            assert!(
                std::time::Instant::now() < deadline,
                "producers got no answers"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match stop {
            Stop::Kill => {
                server.kill().unwrap();
            }
            Stop::Terminate => {
                // Blocking, on its own thread: the producers keep running
                // while the server answers what is in flight and flushes.
                let status = tokio::task::spawn_blocking(move || server.terminate().unwrap())
                    .await
                    .unwrap();
                assert!(status.success(), "{status}");
            }
        }
        let mut acked = Vec::new();
        for producer in producers {
            acked.push(producer.await.unwrap());
        }
        acked
    })
}

/// Restarts on `dir` and checks that every acknowledged id is stored, in
/// order, at dense offsets, with valid checksums and payloads.
fn check_acknowledged_survived(dir: &Path, driver: &str, acked: &[Vec<u64>]) {
    assert!(acked.iter().all(|ids| !ids.is_empty()), "driver {driver}");
    let server = spawn(dir, driver, &[]);
    runtime().block_on(async {
        let mut client = Client::connect(server.addr()).await.unwrap();
        for (partition, acked) in (0..4).zip(acked) {
            // Checksums are verified by the client as it decodes.
            let records = poll_all(&mut client, 5, partition).await;
            let stored = ids(&records);
            assert!(
                stored.len() >= acked.len(),
                "driver {driver}: lost acked records"
            );
            assert_eq!(&stored[..acked.len()], &acked[..]);
            for (n, record) in records.iter().enumerate() {
                assert_eq!(record.offset, n as u64);
                assert_eq!(record.payload, payload(record.id));
            }
        }
    });
    assert!(server.terminate().unwrap().success());
}

#[test]
fn sigterm_under_load_answers_in_flight_requests_and_keeps_every_ack_even_under_never() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), driver, &["--fsync", "never"]);
        let acked = produce_until_stopped(server, Stop::Terminate, false);
        check_acknowledged_survived(dir.path(), driver, &acked);
    }
}

#[test]
fn sigkill_during_heavy_produce_with_fsync_always_loses_nothing_acknowledged() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), driver, &["--fsync", "always"]);
        let acked = produce_until_stopped(server, Stop::Kill, true);
        check_acknowledged_survived(dir.path(), driver, &acked);
    }
}

#[test]
fn direct_io_on_and_off_serve_the_same_records() {
    let mut served = Vec::new();
    for direct in ["on", "off"] {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(dir.path(), "auto", &["--direct-io", direct]);
        let records = runtime().block_on(async {
            let mut client = Client::connect(server.addr()).await.unwrap();
            client.create_topic(2, 2).await.unwrap();
            // Enough to roll over the 256 KiB segments.
            for n in 0..200 {
                let partition = Partitioning::Explicit(n as u32 % 2);
                client
                    .produce(2, partition, messages(n * 10, 10))
                    .await
                    .unwrap();
            }
            let mut records = poll_all(&mut client, 2, 0).await;
            records.extend(poll_all(&mut client, 2, 1).await);
            records
        });
        assert!(server.terminate().unwrap().success());
        // Everything but the server's clock: offsets, ids and payloads.
        let records: Vec<(u64, u64, Vec<u8>)> = records
            .into_iter()
            .map(|r| (r.offset, r.id, r.payload))
            .collect();
        assert_eq!(records.len(), 2000);
        served.push(records);
    }
    assert_eq!(served[0], served[1]);
}
