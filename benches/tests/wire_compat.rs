//! Stage 6's engine still speaks stage 4's bytes: the same request bodies,
//! the same records, the same produce answer. The engine keeps its own
//! encoders and decoders (a lesson's change must never change what the
//! broker accepts), so it cannot depend on stage 4 to check them; this crate
//! depends on both, and the checks live here.
//!
//! Each test puts the two side by side on the same values: stage 4's
//! `Request::encode`, `encode_record` and `Response::produced` on one side,
//! the engine's `shards::protocol` and `storage::record` on the other.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use stage4_partitions::protocol::Request as Stage4Request;
use stage4_partitions::protocol::record::{Record, encode_record};
use stage4_partitions::protocol::{Response, code as stage4_code};
use stage6_broker::shards::protocol::{
    Produced, Request, code, encode_create_topic, encode_poll, encode_produce_head,
};
use stage6_broker::shards::wire::Partitioning;
use stage6_broker::storage::record;

/// Payloads of every shape a batch may hold: empty, one byte, text, and
/// one larger than a record header.
const PAYLOADS: [&[u8]; 5] = [b"", b"x", b"hello", &[0xff; 40], b"\0\0\0\0"];

/// The ways a produce names its partition, in both crates' types.
fn partitionings() -> Vec<(stage4_partitions::Partitioning, Partitioning)> {
    vec![
        (
            stage4_partitions::Partitioning::Explicit(3),
            Partitioning::Explicit(3),
        ),
        (
            stage4_partitions::Partitioning::RoundRobin,
            Partitioning::RoundRobin,
        ),
        (
            stage4_partitions::Partitioning::Key(b"user-42".to_vec()),
            Partitioning::Key(b"user-42".to_vec()),
        ),
        (
            stage4_partitions::Partitioning::Key(Vec::new()),
            Partitioning::Key(Vec::new()),
        ),
    ]
}

/// What a producer sends: offset and timestamp 0, for the server to stamp.
fn producer_records(id: u64) -> Vec<Record> {
    PAYLOADS
        .iter()
        .map(|payload| Record {
            offset: 0,
            timestamp: 0,
            id,
            payload: payload.to_vec(),
        })
        .collect()
}

#[test]
fn wire_compat_the_engine_decodes_stage4_requests() {
    let records = producer_records(7);
    for (stage4, engine) in partitionings() {
        let (request_code, body) = Stage4Request::Produce {
            topic: 9,
            partitioning: stage4,
            records: records.clone(),
        }
        .encode();
        assert_eq!(request_code, code::PRODUCE);
        let Some(Ok(Request::Produce {
            topic,
            partitioning,
            body,
            records_at,
        })) = Request::decode(request_code, body)
        else {
            panic!("a stage 4 produce decodes ({engine:?})")
        };
        assert_eq!((topic, &partitioning), (9, &engine));
        let batch = &body[records_at..];
        assert_eq!(record::count(batch).unwrap(), records.len());
        // Each record, where the engine found it, is the one stage 4 sent.
        for (&(at, len), sent) in record::walk(batch).unwrap().iter().zip(&records) {
            let header = record::header_at(&batch[at..]).unwrap();
            assert_eq!((header.offset, header.timestamp), (0, 0));
            assert_eq!(header.id, sent.id);
            assert_eq!(
                &batch[at + record::RECORD_HEADER_LEN..at + len],
                sent.payload
            );
            assert!(record::checksum_matches(&batch[at..at + len]));
        }
    }

    let (request_code, body) = Stage4Request::Poll {
        topic: 1,
        partition: 2,
        offset: u64::MAX - 3,
        count: 500,
    }
    .encode();
    assert_eq!(request_code, code::POLL);
    assert_eq!(
        Request::decode(request_code, body).unwrap().unwrap(),
        Request::Poll {
            topic: 1,
            partition: 2,
            offset: u64::MAX - 3,
            count: 500,
        }
    );

    let (request_code, body) = Stage4Request::CreateTopic {
        topic: 12,
        partitions: 8,
    }
    .encode();
    assert_eq!(request_code, code::CREATE_TOPIC);
    assert_eq!(
        Request::decode(request_code, body).unwrap().unwrap(),
        Request::CreateTopic {
            topic: 12,
            partitions: 8,
        }
    );
}

#[test]
fn wire_compat_the_engines_encoders_write_stage4_bytes() {
    assert_eq!(
        (code::CREATE_TOPIC, code::PRODUCE, code::POLL),
        (
            stage4_code::CREATE_TOPIC,
            stage4_code::PRODUCE,
            stage4_code::POLL
        )
    );
    let records = producer_records(0x0102_0304_0506_0708);
    for (stage4, engine) in partitionings() {
        let (_, expected) = Stage4Request::Produce {
            topic: 5,
            partitioning: stage4,
            records: records.clone(),
        }
        .encode();
        let mut body = encode_produce_head(5, &engine, records.len() as u32);
        for r in &records {
            record::encode(&mut body, r.offset, r.timestamp, r.id, &r.payload);
        }
        assert_eq!(body, expected, "{engine:?}");
    }

    let (_, expected) = Stage4Request::Poll {
        topic: 4,
        partition: 1,
        offset: 1 << 40,
        count: 1000,
    }
    .encode();
    assert_eq!(encode_poll(4, 1, 1 << 40, 1000), expected);

    let (_, expected) = Stage4Request::CreateTopic {
        topic: u32::MAX,
        partitions: 3,
    }
    .encode();
    assert_eq!(encode_create_topic(u32::MAX, 3), expected);
}

#[test]
fn wire_compat_records_and_stamping_match_stage4() {
    for (n, payload) in PAYLOADS.iter().enumerate() {
        let (offset, timestamp, id) = (n as u64 * 1000 + 1, 1_700_000_000_000_000, 42 + n as u64);
        let mut stage4 = Vec::new();
        encode_record(&mut stage4, offset, timestamp, id, payload);
        let mut engine = Vec::new();
        record::encode(&mut engine, offset, timestamp, id, payload);
        assert_eq!(engine, stage4, "payload {payload:?}");
        assert_eq!(engine.len(), record::RECORD_HEADER_LEN + payload.len());
    }

    // A producer's batch, stamped by the engine as a partition does on
    // append, is what stage 4 encodes with those offsets and that timestamp.
    let mut batch = Vec::new();
    for payload in PAYLOADS {
        record::encode(&mut batch, 0, 0, 9, payload);
    }
    let extents = record::walk(&batch).unwrap();
    assert_eq!(extents.len(), PAYLOADS.len());
    record::stamp(&mut batch, &extents, 100, 777);
    let mut expected = Vec::new();
    for (offset, payload) in (100..).zip(PAYLOADS) {
        encode_record(&mut expected, offset, 777, 9, payload);
    }
    assert_eq!(batch, expected);
}

#[test]
fn wire_compat_the_produce_answer_is_stage4s() {
    for (partition, first_offset, count, durable) in [
        (0, 0, 1, false),
        (2, 7, 3, true),
        (u32::MAX, u64::MAX - 1, u32::MAX, true),
    ] {
        let produced = Produced {
            partition,
            first_offset,
            count,
            durable,
        };
        let expected = Response::produced(partition, first_offset, count, durable);
        assert_eq!(produced.encode(), expected);
        // And stage 4's client reads it back as the same answer.
        assert_eq!(
            Response::decode(stage4_code::PRODUCE, &produced.encode()).unwrap(),
            Response::Produced {
                partition,
                first_offset,
                count,
                durable,
            }
        );
    }
}

#[test]
fn wire_compat_record_field_offsets_are_stage4s() {
    use stage4_partitions::protocol::record::{RECORD_HEADER_LEN as LESSON_LEN, field as lesson};
    use stage6_broker::storage::record::{RECORD_HEADER_LEN, field};
    assert_eq!(RECORD_HEADER_LEN, LESSON_LEN);
    assert_eq!(
        [
            field::CHECKSUM,
            field::PAYLOAD_LEN,
            field::OFFSET,
            field::TIMESTAMP,
            field::ID
        ],
        [
            lesson::CHECKSUM,
            lesson::PAYLOAD_LEN,
            lesson::OFFSET,
            lesson::TIMESTAMP,
            lesson::ID
        ],
    );
}
