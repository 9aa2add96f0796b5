//! The Kafka listener's own behaviour, on a real `rivulet-server` over
//! loopback: a taken port is a start-up error naming `kafka.listen`; bad
//! input closes only its own connection while everyone else is served; a
//! fetch with nothing to return waits, and an append wakes it.
//!
//! These speak Kafka through the `kafka-protocol` codec's client side: they
//! test what the broker *does*. That real clients understand it is proven
//! by `kafka_clients.rs`, with kcat, confluent-kafka and kafka-python.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tempfile::TempDir;

/// One Kafka connection, one request at a time.
struct Kafka {
    stream: TcpStream,
    correlation: i32,
}

impl Kafka {
    fn connect(addr: SocketAddr) -> Kafka {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Kafka {
            stream,
            correlation: 0,
        }
    }

    /// Sends `request` at `version` and reads its response.
    fn ask<Q, A>(&mut self, request: &Q, version: i16) -> A
    where
        Q: Encodable + HeaderVersion + Message + kafka_protocol::protocol::Request,
        A: Decodable + HeaderVersion,
    {
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(Q::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("rivulet-test")))
            .encode(&mut frame, Q::header_version(version))
            .unwrap();
        request.encode(&mut frame, version).unwrap();
        let length = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        self.stream.write_all(&frame).unwrap();
        let mut body = self.read_frame().expect("a response");
        let header = ResponseHeader::decode(&mut body, A::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        A::decode(&mut body, version).unwrap()
    }

    /// The next response frame, or `None` once the broker closed the connection.
    fn read_frame(&mut self) -> Option<Bytes> {
        let mut length = [0; 4];
        if self.stream.read_exact(&mut length).is_err() {
            return None;
        }
        let mut body = vec![0; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Writes raw bytes, as a hostile client would.
    fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Whether the broker closed the connection (EOF or reset).
    fn closed_by_broker(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

fn server(dir: &TempDir) -> rivulet_broker::process::ServerProcess {
    common::rivulet_server(dir.path(), &[])
}

fn create(kafka: &mut Kafka, name: &'static str, partitions: i32) {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_static_str(name));
    topic.num_partitions = partitions;
    topic.replication_factor = 1;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 10_000;
    let response: CreateTopicsResponse = kafka.ask(&request, 5);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

fn produce(kafka: &mut Kafka, name: &'static str, values: &[&'static str]) -> i64 {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(n, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: n as i64,
            sequence: n as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(value.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, &records, &options).unwrap();
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(batch.freeze());
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str(name));
    topic.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = 1;
    request.timeout_ms = 10_000;
    request.topic_data = vec![topic];
    let response: ProduceResponse = kafka.ask(&request, 9);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer.base_offset
}

fn fetch(kafka: &mut Kafka, name: &'static str, offset: i64, max_wait_ms: i32) -> Vec<Record> {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = 1 << 20;
    let mut topic = FetchTopic::default();
    topic.topic = TopicName(StrBytes::from_static_str(name));
    topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = 1 << 20;
    request.topics = vec![topic];
    let response: FetchResponse = kafka.ask(&request, 11);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0, "{data:?}");
    let mut records = data.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while records.has_remaining() {
        out.extend(RecordBatchDecoder::decode(&mut records).unwrap().records);
    }
    out
}

#[test]
fn kafka_a_taken_port_is_a_start_up_error_that_names_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rivulet-server"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(["--kafka-listen", &port])
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("kafka.listen") && stderr.contains(&port),
        "{stderr}"
    );
}

#[test]
fn kafka_bad_input_closes_only_its_own_connection() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.kafka_addr().unwrap();
    let mut good = Kafka::connect(addr);
    create(&mut good, "steady", 1);
    assert_eq!(produce(&mut good, "steady", &["before"]), 0);

    // A length far over the frame limit: closed before anything is read.
    let mut huge = Kafka::connect(addr);
    huge.send_raw(&i32::MAX.to_be_bytes());
    assert!(huge.closed_by_broker());
    // A negative length.
    let mut negative = Kafka::connect(addr);
    negative.send_raw(&(-5i32).to_be_bytes());
    assert!(negative.closed_by_broker());
    // Metadata v0 claiming two billion topics (an abort before the codec's
    // counts were bounded; see vendor/kafka-protocol/RIVULET-PATCH.md).
    let mut lying = Kafka::connect(addr);
    let mut frame = BytesMut::new();
    frame.put_i32(14);
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    lying.send_raw(&frame);
    assert!(lying.closed_by_broker());
    // An unknown API key.
    let mut unknown = Kafka::connect(addr);
    unknown.send_raw(&[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
    assert!(unknown.closed_by_broker());

    // Everyone else is still served: the open connection, a new one, and
    // Rivulet's own port.
    assert_eq!(produce(&mut good, "steady", &["after"]), 1);
    let values: Vec<Bytes> = fetch(&mut Kafka::connect(addr), "steady", 0, 0)
        .into_iter()
        .filter_map(|record| record.value)
        .collect();
    assert_eq!(values, [Bytes::from("before"), Bytes::from("after")]);
    let mut rivulet = rivulet_client::Client::connect(&server.addr().to_string()).unwrap();
    assert!(rivulet.list_streams().is_ok());
    let versions: ApiVersionsResponse = good.ask(&ApiVersionsRequest::default(), 3);
    assert_eq!(versions.error_code, 0);
}

#[test]
fn kafka_a_fetch_with_nothing_to_return_waits_and_an_append_wakes_it() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.kafka_addr().unwrap();
    let mut consumer = Kafka::connect(addr);
    create(&mut consumer, "quiet", 1);
    // The fetch may wait a minute; the producer appends while it waits, and
    // the fetch answers with that record, long before its deadline (a
    // deadline answer would be empty).
    let producer = std::thread::spawn(move || {
        let mut producer = Kafka::connect(addr);
        std::thread::sleep(Duration::from_millis(200));
        produce(&mut producer, "quiet", &["wake up"])
    });
    let records = fetch(&mut consumer, "quiet", 0, 60_000);
    assert_eq!(producer.join().unwrap(), 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"wake up"[..]));
}

#[test]
fn kafka_topics_are_created_on_first_use_unless_the_setting_says_not() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let metadata = |kafka: &mut Kafka, name: &'static str| -> MetadataResponse {
        let mut topic = MetadataRequestTopic::default();
        topic.name = Some(TopicName(StrBytes::from_static_str(name)));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![topic]);
        request.allow_auto_topic_creation = true;
        kafka.ask(&request, 9)
    };
    let dir = TempDir::new().unwrap();
    let on = common::rivulet_server(dir.path(), &["--kafka-default-partitions", "3"]);
    let answer = metadata(&mut Kafka::connect(on.kafka_addr().unwrap()), "fresh");
    assert_eq!(answer.topics[0].error_code, 0);
    assert_eq!(answer.topics[0].partitions.len(), 3);
    // The same topic to Rivulet's own protocol.
    let mut rivulet = rivulet_client::Client::connect(&on.addr().to_string()).unwrap();
    let listed = rivulet.list_topics(None).unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.name == "fresh" && t.partitions == 3),
        "{listed:?}"
    );

    let dir = TempDir::new().unwrap();
    let off = common::rivulet_server(dir.path(), &["--kafka-auto-create-topics", "off"]);
    let answer = metadata(&mut Kafka::connect(off.kafka_addr().unwrap()), "fresh");
    let unknown = kafka_protocol::ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(answer.topics[0].error_code, unknown);
}

#[test]
fn kafka_metadata_names_the_advertised_address_when_one_is_set() {
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let dir = TempDir::new().unwrap();
    let advertised = common::rivulet_server(
        dir.path(),
        &["--kafka-advertised-address", "kafka.example.com:19092"],
    );
    let mut kafka = Kafka::connect(advertised.kafka_addr().unwrap());
    let answer: MetadataResponse = kafka.ask(&MetadataRequest::default(), 9);
    assert_eq!(answer.brokers.len(), 1);
    assert_eq!(answer.brokers[0].host.as_str(), "kafka.example.com");
    assert_eq!(answer.brokers[0].port, 19092);
    // Without the setting: the address the client reached.
    let dir = TempDir::new().unwrap();
    let plain = server(&dir);
    let reached = plain.kafka_addr().unwrap();
    let answer: MetadataResponse = Kafka::connect(reached).ask(&MetadataRequest::default(), 9);
    assert_eq!(answer.brokers[0].host.as_str(), reached.ip().to_string());
    assert_eq!(answer.brokers[0].port, i32::from(reached.port()));
}
