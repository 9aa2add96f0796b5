//! Producer partitioning and error statuses, through the checks every server
//! of stages 4 to 6 must pass (`conformance/mod.rs`).

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod conformance;

use stage2_batching::FsyncPolicy;

#[tokio::test]
async fn partitioning_explicit_round_robin_and_key_place_batches_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::partitioning(server.addr()).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitioning_errors_name_what_is_wrong_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::errors(server.addr()).await;
    server.shutdown().await.unwrap();
}
