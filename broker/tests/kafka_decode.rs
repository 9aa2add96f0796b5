//! The Kafka listener's request decoder against hostile bytes: whatever
//! arrives, `decode` returns (a request, an unknown version, or why the
//! bytes are malformed) without a panic and without an allocation the bytes
//! could not hold. A failure here is the broker process aborting for every
//! client, so the cases include the ones known to have done so in the codec
//! (counts read from the wire handed to an allocation; see
//! `vendor/kafka-protocol/RIVULET-PATCH.md`) and the records' own counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers too: in a test, a panic is a failure report

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use rivulet_broker::kafka::connection::{Decoded, decode};
use rivulet_broker::kafka::translate::{Limits, TranslateError, records_from_batch};
use rivulet_broker::kafka::versions::SUPPORTED;

/// A request frame's fixed start: key, version, correlation id, and an
/// empty client id (request header v1); the body follows.
fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i16(key);
    frame.put_i16(version);
    frame.put_i32(7);
    frame.put_i16(-1); // client id: null
    frame.put_slice(body);
    frame.freeze()
}

#[test]
fn a_count_of_two_billion_topics_is_malformed_not_an_allocation() {
    // Metadata v0's body is one array of topic names: claim i32::MAX of them.
    let body = i32::MAX.to_be_bytes();
    match decode(frame(ApiKey::Metadata as i16, 0, &body)) {
        Decoded::Malformed(reason) => assert!(reason.contains("Metadata"), "{reason}"),
        other => panic!("expected malformed, got {other:?}"),
    }
    // A compact array (flexible versions) claiming u32::MAX - 1 elements.
    let mut flexible = BytesMut::new();
    flexible.put_i16(ApiKey::Metadata as i16);
    flexible.put_i16(12);
    flexible.put_i32(7);
    flexible.put_i16(-1); // client id
    flexible.put_u8(0); // header tagged fields
    flexible.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint u32::MAX
    assert!(matches!(decode(flexible.freeze()), Decoded::Malformed(_)));
}

#[test]
fn a_batch_claiming_two_billion_records_or_headers_is_an_error() {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, [&record], &options).unwrap();
    let limits = Limits {
        max_inflated: 1 << 20,
    };
    // The record count is the batch header's last field (byte 57): claim
    // i32::MAX records, with the batch's CRC made right again so that the
    // lie reaches the decoder's allocation.
    let mut lying = batch.to_vec();
    lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let refused = records_from_batch(&Bytes::from(reseal(lying)), limits);
    assert!(
        matches!(refused, Err(TranslateError::Decode(_))),
        "{refused:?}"
    );
    // The header count is the record's last varint: make it huge (zigzag
    // varint of i32::MAX), with the record's own length grown to match.
    let mut headers = batch.to_vec();
    let last = headers.len() - 1;
    headers.truncate(last);
    headers.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    headers[61] += 2 * 4; // the record's zigzag length: 4 bytes more
    let refused = records_from_batch(&Bytes::from(reseal(headers)), limits);
    assert!(
        matches!(refused, Err(TranslateError::Decode(_))),
        "{refused:?}"
    );
}

/// A record batch with its length (bytes 8..12) and CRC (bytes 17..21,
/// crc32c of everything from the attributes on) made to fit its bytes.
fn reseal(mut batch: Vec<u8>) -> Vec<u8> {
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn a_well_formed_request_decodes_to_what_was_encoded() {
    let mut request = MetadataRequest::default();
    let mut topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    topic.name = Some(TopicName(StrBytes::from_static_str("orders")));
    request.topics = Some(vec![topic]);
    for version in [1i16, 4, 9, 12] {
        let mut bytes = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header
            .encode(&mut bytes, ApiKey::Metadata.request_header_version(version))
            .unwrap();
        request.encode(&mut bytes, version).unwrap();
        match decode(bytes.freeze()) {
            Decoded::Request {
                api,
                correlation,
                request: decoded,
                ..
            } => {
                let kafka_protocol::messages::RequestKind::Metadata(decoded) = *decoded else {
                    panic!("v{version}: not metadata: {decoded:?}");
                };
                assert_eq!((api, correlation), (ApiKey::Metadata, 42));
                assert_eq!(decoded.topics, request.topics, "v{version}");
            }
            other => panic!("v{version}: {other:?}"),
        }
    }
}

#[test]
fn an_unknown_version_or_key_is_said_so() {
    assert!(matches!(
        decode(frame(ApiKey::ApiVersions as i16, 99, &[])),
        Decoded::UnknownVersion { version: 99, .. }
    ));
    assert!(matches!(decode(frame(999, 0, &[])), Decoded::Malformed(_)));
    assert!(matches!(
        decode(Bytes::from_static(&[0, 3])),
        Decoded::Malformed(_)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(Bytes::from(bytes));
    }

    /// A served API at a served version, then arbitrary bytes: the bodies
    /// that reach the codec's schemas.
    #[test]
    fn arbitrary_bodies_of_served_requests_never_panic(
        which in 0..SUPPORTED.len(),
        version_pick in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let api = SUPPORTED[which];
        let span = (api.max - api.min + 1) as u8;
        let version = api.min + i16::from(version_pick % span);
        let _ = decode(frame(api.key as i16, version, &body));
    }

    /// Arbitrary bytes as a produce's records.
    #[test]
    fn arbitrary_record_batches_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits { max_inflated: 1 << 16 };
        let _ = records_from_batch(&Bytes::from(bytes), limits);
    }
}
