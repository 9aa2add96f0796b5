//! The real `stage5-server`: killed with SIGKILL in the middle of produces
//! under `--fsync always`, stopped with SIGTERM, and made to fail a write.
//! `RIVULET_CRASH_ROUNDS=N` runs N SIGKILL rounds instead of the quick default.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use stage3_tcp_server::process::ServerProcess;
use stage4_partitions::{Client, Partitioning, Produced};
use tokio::sync::watch;

const TOPIC: u32 = 1;
const PARTITIONS: u32 = 2;

fn rounds() -> u64 {
    std::env::var("RIVULET_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(3)
}

/// How long a test waits for something that should take milliseconds. Only a
/// failure waits this long; a busy machine is slow, not this slow.
const GENEROUS: Duration = Duration::from_secs(60);

/// Produces batches to `partition` until the server goes away; returns every
/// acknowledgement, with the id of the batch's first message, and counts them
/// in `acks` as they come.
async fn produce_until_gone(
    addr: SocketAddr,
    partition: u32,
    first_id: u64,
    acks: watch::Sender<usize>,
) -> Vec<(Produced, u64)> {
    let mut acked = Vec::new();
    let Ok(mut client) = Client::connect(addr).await else {
        return acked;
    };
    let mut id = first_id;
    loop {
        let size = 1 + id % 7;
        let produced = client
            .produce(
                TOPIC,
                Partitioning::Explicit(partition),
                common::messages(id, size),
            )
            .await;
        match produced {
            Ok(produced) => {
                acked.push((produced, id));
                acks.send_replace(acked.len());
            }
            Err(_) => return acked, // killed
        }
        id += size;
    }
}

/// Checks every acknowledged message is stored where its answer said, and
/// every stored record is whole with a valid checksum (the client checks).
async fn verify(addr: SocketAddr, acked: &[(Produced, u64)]) {
    let mut client = Client::connect(addr).await.unwrap();
    for partition in 0..PARTITIONS {
        let mut stored = Vec::new();
        loop {
            let polled = client
                .poll(TOPIC, partition, stored.len() as u64, 1000)
                .await
                .unwrap();
            if polled.is_empty() {
                break;
            }
            stored.extend(polled);
        }
        for (offset, record) in stored.iter().enumerate() {
            assert_eq!(record.offset, offset as u64, "dense offsets");
            assert_eq!(record.payload, common::payload(record.id));
        }
        for (produced, first_id) in acked.iter().filter(|(p, _)| p.partition == partition) {
            assert!(produced.durable, "--fsync always acknowledges durably");
            for n in 0..u64::from(produced.count) {
                let offset = (produced.first_offset + n) as usize;
                let record = stored.get(offset).unwrap_or_else(|| {
                    panic!("partition {partition}: acknowledged offset {offset} lost")
                });
                assert_eq!(record.id, first_id + n);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_sigkill_during_produce_under_fsync_always_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for round in 0..rounds() {
        let server = common::spawn_binary(dir.path(), "always");
        let addr = server.addr();
        Client::connect(addr)
            .await
            .unwrap()
            .create_topic(TOPIC, PARTITIONS)
            .await
            .unwrap();
        let (producers, acks): (Vec<_>, Vec<_>) = (0..PARTITIONS)
            .map(|partition| {
                let first_id = (round * 10 + u64::from(partition)) * 1_000_000;
                let (acks, counted) = watch::channel(0);
                let producer = tokio::spawn(produce_until_gone(addr, partition, first_id, acks));
                (producer, counted)
            })
            .unzip();
        // Let each get a varying number of acknowledgements, then kill the
        // server in the middle of the next produces. Counted, not timed: a
        // busy machine (or a slow fsync) changes how long this takes, not
        // what the test sees.
        let wanted = 1 + (round * 7919) as usize % 20;
        for (partition, mut counted) in (0..).zip(acks) {
            tokio::time::timeout(GENEROUS, counted.wait_for(|&n| n >= wanted))
                .await
                .unwrap_or_else(|_| {
                    panic!("partition {partition}: {wanted} acks within {GENEROUS:?}")
                })
                .unwrap_or_else(|_| {
                    panic!("partition {partition}: producer stopped before {wanted} acks")
                });
        }
        assert_eq!(server.kill().unwrap().signal(), Some(9));
        for producer in producers {
            let got = producer.await.unwrap();
            assert!(
                !got.is_empty(),
                "round {round}: some produce was acknowledged"
            );
            acked.extend(got);
        }
        let server = common::spawn_binary(dir.path(), "always");
        verify(server.addr(), &acked).await;
        assert!(server.terminate().unwrap().success());
    }
}

#[tokio::test]
async fn crash_sigterm_syncs_and_exits_cleanly_under_fsync_never() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::spawn_binary(dir.path(), "never");
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(TOPIC, PARTITIONS).await.unwrap();
    let mut acked = Vec::new();
    for n in 0..20 {
        let produced = client
            .produce(TOPIC, Partitioning::RoundRobin, common::messages(n * 3, 3))
            .await
            .unwrap();
        assert!(
            !produced.durable,
            "never: nothing is synced before the answer"
        );
        acked.push((produced, n * 3));
    }
    drop(client);
    // SIGTERM: the server stops accepting, syncs every partition, exits 0.
    assert!(server.terminate().unwrap().success());
    let server = common::spawn_binary(dir.path(), "never");
    let mut client = Client::connect(server.addr()).await.unwrap();
    let mut total = 0;
    for partition in 0..PARTITIONS {
        total += client.poll(TOPIC, partition, 0, 1000).await.unwrap().len();
    }
    assert_eq!(total, 60);
    let acked: Vec<(Produced, u64)> = acked
        .into_iter()
        .map(|(p, id)| (Produced { durable: true, ..p }, id))
        .collect();
    verify(server.addr(), &acked).await;
    assert!(server.terminate().unwrap().success());
}

/// `stage5-server` under a file size limit: past it, a write fails with EFBIG
/// (SIGXFSZ, which would kill it, is ignored by the shell and stays ignored
/// across exec), as a real I/O error from the kernel.
fn spawn_limited(dir: &Path, fsize: u64) -> ServerProcess {
    let script = format!(r#"trap '' XFSZ; exec prlimit --fsize={fsize} -- "$@""#);
    let mut args: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), script.as_ref(), "sh".as_ref()];
    args.push(env!("CARGO_BIN_EXE_stage5-server").as_ref());
    args.extend(common::args(dir, "always"));
    ServerProcess::spawn(Path::new("sh"), &args).unwrap()
}

#[tokio::test]
async fn crash_failed_write_is_not_retried_and_later_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_limited(dir.path(), 100_000);
    let mut client = Client::connect(server.addr()).await.unwrap();
    client.create_topic(TOPIC, 1).await.unwrap();
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for n in 0..200 {
        let batch = (0..5).map(|i| (n * 5 + i, vec![n as u8; 900]));
        match client
            .produce(TOPIC, Partitioning::Explicit(0), batch)
            .await
        {
            Ok(produced) => acked.push(produced),
            Err(error) => errors.push(error.to_string()),
        }
        if errors.len() == 2 {
            break;
        }
    }
    assert_eq!(errors.len(), 2, "the limit was reached");
    assert!(errors[0].contains("File too large"), "{}", errors[0]);
    assert!(errors[1].contains("refuses writes"), "{}", errors[1]);
    // Polls still work; what was acknowledged is all there after a restart.
    let stored = client.poll(TOPIC, 0, 0, 1000).await.unwrap();
    let acked_count: u64 = acked.iter().map(|p| u64::from(p.count)).sum();
    assert_eq!(stored.len() as u64, acked_count);
    // It cannot sync on the way out either (the partition refuses): kill it.
    server.kill().unwrap();
    let server = common::spawn_binary(dir.path(), "always");
    let mut client = Client::connect(server.addr()).await.unwrap();
    let recovered = client.poll(TOPIC, 0, 0, 1000).await.unwrap();
    // The failed write may have left whole records of its batch (unacknowledged,
    // checksums valid, so kept); it cannot have lost or damaged earlier ones.
    assert!(recovered.len() as u64 >= acked_count);
    assert_eq!(recovered[..stored.len()], stored[..]);
    assert!(server.terminate().unwrap().success());
}
