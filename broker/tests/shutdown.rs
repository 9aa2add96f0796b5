//! Stopping `rivulet-server` the way a service manager does: SIGTERM (what
//! `systemctl stop` and `docker stop` send) and SIGINT (Ctrl-C). Either one
//! must answer what is in flight, write and sync every partition, and exit
//! 0; after a restart, every acknowledged record is there, at its offset,
//! with its payload (checksums verified by the client). Clients that keep a
//! connection open and idle, or stop halfway through a frame, must not hold
//! the stop up.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod operator;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use operator::{Broker, command};
use stage4_partitions::protocol::record::Record;
use stage4_partitions::{Client, Partitioning};

const TOPIC: u32 = 5;
const PARTITIONS: u32 = 4;

fn start(dir: &Path, extra: &[&str]) -> Broker {
    let mut args: Vec<&OsStr> = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--shards",
        "2",
        "--segment-size",
        "262144",
        "--direct-io",
        "on",
    ]
    .iter()
    .chain(extra)
    .map(OsStr::new)
    .collect();
    args.push(OsStr::new("--data"));
    args.push(dir.as_os_str());
    Broker::start(command(&args, &[]))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Message `id`'s payload: its id, padded to a size that varies.
fn payload(id: u64) -> Vec<u8> {
    let mut payload = id.to_le_bytes().to_vec();
    payload.resize(8 + (id % 200) as usize, (id % 251) as u8);
    payload
}

/// Every record of a partition, polled until the end.
async fn poll_all(client: &mut Client, partition: u32) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    loop {
        let offset = records.len() as u64;
        let more = client.poll(TOPIC, partition, offset, 1000).await.unwrap();
        if more.is_empty() {
            return records;
        }
        records.extend(more);
    }
}

/// `connections` producers, each on its own connection, writing batches of
/// 5 round the partitions until the broker stops answering; `signal` is
/// sent once `acks_first` batches were acknowledged in all. Returns each
/// acknowledged id with its partition and offset.
fn produce_until_signalled(
    broker: &Broker,
    connections: u64,
    acks_first: u64,
    signal: &str,
) -> Vec<(u32, u64, u64)> {
    let addr = broker.addr;
    runtime().block_on(async move {
        let mut client = Client::connect(addr).await.unwrap();
        client.create_topic(TOPIC, PARTITIONS).await.unwrap();
        let acks = Arc::new(AtomicU64::new(0));
        let mut producers = Vec::new();
        for connection in 0..connections {
            let acks = Arc::clone(&acks);
            producers.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await.unwrap();
                let mut acked = Vec::new();
                for n in 0u64.. {
                    // Ids say which connection and which batch they came from.
                    let first = (connection << 40) + n * 5;
                    let batch: Vec<_> = (first..first + 5).map(|id| (id, payload(id))).collect();
                    let partition = Partitioning::Explicit(((connection + n) % 4) as u32);
                    match client.produce(TOPIC, partition, batch).await {
                        Ok(produced) => {
                            assert_eq!(produced.count, 5);
                            for (k, id) in (first..first + 5).enumerate() {
                                let offset = produced.first_offset + k as u64;
                                acked.push((produced.partition, offset, id));
                            }
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return acked, // the broker has stopped
                    }
                }
                acked
            }));
        }
        // Bounded: a producer that panicked (or a broker that died) must
        // fail the test, not leave it waiting for acks that never come.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acks.load(Ordering::Relaxed) < acks_first {
            assert!(
                Instant::now() < deadline && producers.iter().all(|p| !p.is_finished()),
                "only {} of {acks_first} batches acknowledged",
                acks.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        broker.signal(signal);
        let mut acked = Vec::new();
        for producer in producers {
            acked.extend(producer.await.unwrap());
        }
        acked
    })
}

/// Restarts on `dir` and checks every acknowledged id is stored at the
/// offset its acknowledgement gave, with its payload, and that offsets are
/// dense.
fn check_acknowledged_survived(dir: &Path, acked: &[(u32, u64, u64)]) {
    let broker = start(dir, &[]);
    let addr = broker.addr;
    let stored: HashMap<(u32, u64), Record> = runtime().block_on(async move {
        let mut client = Client::connect(addr).await.unwrap();
        let mut stored = HashMap::new();
        for partition in 0..PARTITIONS {
            for (n, record) in poll_all(&mut client, partition)
                .await
                .into_iter()
                .enumerate()
            {
                assert_eq!(record.offset, n as u64, "dense offsets");
                assert_eq!(record.payload, payload(record.id));
                stored.insert((partition, record.offset), record);
            }
        }
        stored
    });
    for &(partition, offset, id) in acked {
        let record = stored.get(&(partition, offset)).unwrap_or_else(|| {
            panic!("acknowledged id {id} lost (partition {partition}, offset {offset})")
        });
        assert_eq!(record.id, id, "partition {partition} offset {offset}");
    }
    broker.stop();
}

#[test]
fn shutdown_sigterm_during_heavy_produce_keeps_every_ack_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &["--fsync", "every-batch"]);
    let acked = produce_until_signalled(&broker, 8, 200, "TERM");
    let (status, logs) = broker.wait();
    assert!(status.success(), "{status}; logs:\n{logs}");
    assert!(logs.contains("SIGTERM: stopping"), "{logs}");
    assert!(
        logs.contains("every partition written and synced"),
        "{logs}"
    );
    assert!(acked.len() >= 200 * 5);
    check_acknowledged_survived(dir.path(), &acked);
}

#[test]
fn shutdown_sigint_flushes_what_only_memory_held_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // `never`, and watermarks far above what is sent: every record is in the
    // segments' buffers in memory, and a long saver interval keeps the
    // background writer from writing them first. Only shutdown's flush can
    // put them on disk.
    let memory_only = [
        "--fsync",
        "never",
        "--flush-count",
        "1000000",
        "--flush-bytes",
        "4194304",
        "--saver-interval-ms",
        "3600000",
    ];
    let broker = start(dir.path(), &memory_only);
    let acked = produce_until_signalled(&broker, 3, 60, "INT");
    let (status, logs) = broker.wait();
    assert!(status.success(), "{status}; logs:\n{logs}");
    assert!(logs.contains("SIGINT: stopping"), "{logs}");
    assert!(acked.len() >= 60 * 5);
    check_acknowledged_survived(dir.path(), &acked);
}

#[test]
fn shutdown_is_not_held_up_by_idle_or_half_sent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]);
    let idle = TcpStream::connect(broker.addr).unwrap();
    let mut half = TcpStream::connect(broker.addr).unwrap();
    // Three bytes of a frame's length prefix, and then nothing.
    half.write_all(&[20, 0, 0]).unwrap();
    // Both accepted by a shard before the signal, or the stop would not be
    // tested against them at all: the server counts them, and this one
    // (the only other connection, which gives the stop a topic to flush).
    let mut counter = rivulet_client::Client::connect(&broker.addr.to_string()).unwrap();
    counter.create_topic_by_id(TOPIC, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.stats().unwrap().connections < 3 {
        assert!(
            Instant::now() < deadline,
            "the two connections were never accepted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(counter);
    let logs = broker.stop(); // fails the test if it does not exit 0 within 60 s
    assert!(
        logs.contains("every partition written and synced"),
        "{logs}"
    );
    drop((idle, half));
}
