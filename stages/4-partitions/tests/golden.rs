//! The protocol reference chapter's worked example, byte for byte.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use stage1_file_log::hexdump;
use stage3_tcp_server::protocol::PutLe;
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::record::Record;
use stage4_partitions::protocol::{Request, code};

/// The listing the book shows, kept as a file so the book includes it verbatim.
const GOLDEN: &str = include_str!("golden/produce-frame.hexdump");

#[test]
fn golden_produce_frame_matches_the_reference_chapter() {
    let (code, body) = Request::Produce {
        topic: 1,
        partitioning: Partitioning::Explicit(0),
        records: vec![Record {
            offset: 0,
            timestamp: 0,
            id: 3,
            payload: b"hi".to_vec(),
        }],
    }
    .encode();
    assert_eq!(code, code::PRODUCE);
    let mut frame = Vec::new();
    frame.put_u32(6 + body.len() as u32);
    frame.put_u16(code);
    frame.put_u32(7);
    frame.extend_from_slice(&body);
    assert_eq!(frame.len(), 57);
    if std::env::var_os("RIVULET_BLESS").is_some() {
        // Regenerate after a deliberate format change, then review the diff.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/produce-frame.hexdump"
        );
        std::fs::write(path, hexdump(&frame)).unwrap();
    }
    assert_eq!(hexdump(&frame), GOLDEN);
}
