//! Many clients at once on one stream: the write lock keeps offsets dense.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::collections::BTreeSet;

use stage1_file_log::Message;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::Client;
use stage3_tcp_server::protocol::Response;

const CLIENTS: u64 = 8;
const APPENDS: u64 = 40;
const BATCH: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_unique_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    let addr = server.addr();
    Client::connect(addr)
        .await
        .unwrap()
        .create_stream(1)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for client_id in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await.unwrap();
            let mut firsts = Vec::new();
            for n in 0..APPENDS {
                let id = client_id * 1_000_000 + n * BATCH;
                let batch = (id..id + BATCH).map(|id| Message::new(id, id.to_le_bytes().to_vec()));
                match client.append(1, batch.collect()).await.unwrap() {
                    Response::Appended { first_offset, .. } => firsts.push((first_offset, id)),
                    other => panic!("{other:?}"),
                }
            }
            firsts
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }

    // Every batch got its own run of offsets, and together they leave no gap.
    let offsets: BTreeSet<u64> = all
        .iter()
        .flat_map(|&(first, _)| first..first + BATCH)
        .collect();
    let total = CLIENTS * APPENDS * BATCH;
    assert_eq!(offsets.len() as u64, total);
    assert_eq!(offsets.last(), Some(&(total - 1)));

    // And each offset holds exactly the message its batch said it would.
    let mut client = Client::connect(addr).await.unwrap();
    let mut stored = Vec::new();
    while (stored.len() as u64) < total {
        stored.extend(client.poll(1, stored.len() as u64, 1000).await.unwrap());
    }
    for (first, id) in all {
        for k in 0..BATCH {
            let message = &stored[(first + k) as usize];
            assert_eq!((message.offset, message.id), (first + k, id + k));
            assert_eq!(message.payload, (id + k).to_le_bytes());
        }
    }
    server.shutdown().await.unwrap();
}
