//! Bad bytes: hostile frames get stage 4's errors and a closed connection
//! while a normal client keeps being served, and views over truncated, lying
//! or arbitrary buffers return errors, never panic or read out of bounds.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
#[path = "../../4-partitions/tests/conformance/mod.rs"]
mod conformance;

use proptest::prelude::*;
use stage2_batching::FsyncPolicy;
use stage3_tcp_server::protocol::BodyReader;
use stage4_partitions::protocol::record::{Checksum, Record, decode_records, encode_records};
use stage5_zero_copy::protocol::Request;
use stage5_zero_copy::{BatchView, ReceivedBatch};

#[tokio::test]
async fn hostile_frames_get_stage4_errors_and_a_normal_client_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), FsyncPolicy::Never).await;
    conformance::hostile(server.addr()).await;
    server.shutdown().await.unwrap();
}

/// Records as stage 4 encodes them: `count u32` and the records.
fn encoded(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_records(
        &mut bytes,
        payloads
            .iter()
            .enumerate()
            .map(|(n, p)| (n as u64, 7, 100 + n as u64, p.as_slice())),
    );
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_arbitrary_bytes_never_panic_a_view_or_decoder(
        code in 8u16..16,
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        if let Ok(view) = BatchView::parse(&bytes) {
            // Whatever parses can be walked to the end, every byte accounted for.
            let walked: usize = view.iter().map(|r| r.as_bytes().len()).sum();
            prop_assert_eq!(walked + 4, bytes.len());
            prop_assert_eq!(view.iter().count(), view.count() as usize);
            let _ = view.verify();
        }
        let _ = ReceivedBatch::validate(bytes.clone(), 0);
        let _ = Request::decode(code, bytes);
    }

    #[test]
    fn hostile_every_truncation_and_any_lying_count_is_an_error(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
        lie in 1u32..1000,
    ) {
        let bytes = encoded(&payloads);
        prop_assert!(BatchView::parse(&bytes).is_ok());
        for cut in 0..bytes.len() {
            prop_assert!(BatchView::parse(&bytes[..cut]).is_err(), "cut at {}", cut);
        }
        // A count that is not the number of records there, higher or lower.
        let count = payloads.len() as u32;
        for wrong in [count + lie, count - 1] {
            let mut lying = bytes.clone();
            lying[..4].copy_from_slice(&wrong.to_le_bytes());
            prop_assert!(BatchView::parse(&lying).is_err(), "count {}", wrong);
        }
    }

    #[test]
    fn views_read_what_stage4_decodes(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let bytes = encoded(&payloads);
        let owned = decode_records(&mut BodyReader::new(&bytes), Checksum::Verify).unwrap();
        let view = BatchView::parse(&bytes).unwrap();
        view.verify().unwrap();
        let viewed: Vec<Record> = view.iter().map(|r| r.to_record()).collect();
        prop_assert_eq!(viewed, owned);
    }
}
