//! Bad bytes against stage 4: each gets an error and a closed connection, a
//! well-behaved client is served throughout, and no byte string panics a decoder.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod conformance;

use proptest::prelude::*;
use stage2_batching::FsyncPolicy;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::{Request, Response};

#[tokio::test]
async fn hostile_requests_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::hostile(server.addr()).await;
    server.shutdown().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_arbitrary_bytes_never_panic_a_decoder(code in 0u16..16, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::decode(code, &body);
        let _ = Response::decode(code, &body);
    }

    #[test]
    fn hostile_valid_requests_survive_any_truncation(cut in 0usize..200, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let request = Request::Produce {
            topic: 1,
            partitioning: Partitioning::Key(b"k".to_vec()),
            records: vec![stage4_partitions::protocol::record::Record { offset: 0, timestamp: 0, id: 2, payload }],
        };
        let (code, body) = request.encode();
        prop_assert_eq!(Request::decode(code, &body), Some(Ok(request)));
        if cut < body.len() {
            prop_assert!(matches!(Request::decode(code, &body[..cut]), Some(Err(_))));
        }
    }
}
