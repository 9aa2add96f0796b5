//! The engine alone, started in-process (`stage6_broker::start`, as the
//! ladder does) and talked to over loopback with stage 4's bytes: topics
//! created on shard 0's catalog writer, batches produced to partitions that
//! other shards own, polled back whole, kept across a restart; and a frame
//! the engine does not know closes the connection with an error.
//! (The broker's own suite runs stage 4's conformance tests against the
//! real `rivulet-server` binary.)

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use stage6_broker::shards::frame::HEADER_LEN;
use stage6_broker::shards::protocol::{
    Produced, code, encode_create_topic, encode_poll, encode_produce_head,
};
use stage6_broker::shards::router::owner;
use stage6_broker::shards::wire::{Partitioning, status};
use stage6_broker::storage::record::{self, RECORD_HEADER_LEN, checksum_matches, header_at};
use stage6_broker::{Config, FsyncPolicy, IoDriver, Server, ServerConfig};

const SHARDS: usize = 2;

fn start(data: &Path, driver: IoDriver) -> Server {
    stage6_broker::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.to_path_buf(),
        shards: SHARDS,
        // Tests share the machine's cores with each other.
        pin: false,
        driver,
        storage: Config {
            segment_size: 256 << 10,
            fsync: FsyncPolicy::Always,
            ..Config::default()
        },
        ..ServerConfig::new()
    })
    .unwrap()
}

/// One request and its reply: `(status, body)`.
fn call(stream: &mut TcpStream, code: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let mut frame = ((body.len() + 6) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(&7u32.to_le_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let status = u16::from_le_bytes(header[4..6].try_into().unwrap());
    assert_eq!(u32::from_le_bytes(header[6..10].try_into().unwrap()), 7);
    let mut reply = vec![0; len - 6];
    stream.read_exact(&mut reply).unwrap();
    (status, reply)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn produce(stream: &mut TcpStream, topic: u32, partition: u32, ids: &[u64]) -> Produced {
    let mut body = encode_produce_head(topic, &Partitioning::Explicit(partition), ids.len() as u32);
    for id in ids {
        record::encode(&mut body, 0, 0, *id, format!("message {id}").as_bytes());
    }
    let (status, reply) = call(stream, code::PRODUCE, &body);
    assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
    Produced::decode(&reply).unwrap()
}

/// The ids of the records a poll returns, every checksum checked.
fn poll_ids(stream: &mut TcpStream, topic: u32, partition: u32) -> Vec<u64> {
    let (status, reply) = call(stream, code::POLL, &encode_poll(topic, partition, 0, 1000));
    assert_eq!(status, status::OK, "{}", String::from_utf8_lossy(&reply));
    let count = u32::from_le_bytes(reply[0..4].try_into().unwrap()) as usize;
    let records = &reply[4..];
    if count == 0 {
        return Vec::new();
    }
    let extents = record::walk(records).unwrap();
    assert_eq!(extents.len(), count);
    extents
        .into_iter()
        .map(|(at, len)| {
            let bytes = &records[at..at + len];
            assert!(checksum_matches(bytes));
            let header = header_at(bytes).unwrap();
            assert_eq!(
                &bytes[RECORD_HEADER_LEN..],
                format!("message {}", header.id).as_bytes()
            );
            header.id
        })
        .collect()
}

#[test]
fn shards_serve_stage4_requests_across_shards_and_keep_them_across_a_restart() {
    for driver in [IoDriver::Auto, IoDriver::Polling] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), driver);
        let mut stream = connect(server.addr());
        // Four partitions over two shards: both own some.
        let owners: Vec<usize> = (0..4).map(|p| owner(5, p, SHARDS)).collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        assert_eq!(
            call(&mut stream, code::CREATE_TOPIC, &encode_create_topic(5, 4)).0,
            status::OK
        );
        // Again with the same count: fine; with another: refused.
        assert_eq!(
            call(&mut stream, code::CREATE_TOPIC, &encode_create_topic(5, 4)).0,
            status::OK
        );
        assert_eq!(
            call(&mut stream, code::CREATE_TOPIC, &encode_create_topic(5, 3)).0,
            status::INVALID
        );
        for partition in 0..4 {
            let ids: Vec<u64> = (0..10).map(|n| u64::from(partition) * 100 + n).collect();
            let produced = produce(&mut stream, 5, partition, &ids);
            assert_eq!(
                (produced.partition, produced.first_offset, produced.count),
                (partition, 0, 10)
            );
            assert!(produced.durable, "fsync always: durable when answered");
        }
        let (status, _) = call(&mut stream, code::POLL, &encode_poll(6, 0, 0, 1));
        assert_eq!(status, status::TOPIC_NOT_FOUND);
        let (status, _) = call(&mut stream, code::POLL, &encode_poll(5, 4, 0, 1));
        assert_eq!(status, status::PARTITION_NOT_FOUND);
        drop(stream);
        server.shutdown().unwrap();

        let server = start(dir.path(), driver);
        let mut stream = connect(server.addr());
        for partition in 0..4 {
            let expected: Vec<u64> = (0..10).map(|n| u64::from(partition) * 100 + n).collect();
            assert_eq!(
                poll_ids(&mut stream, 5, partition),
                expected,
                "{}",
                driver.name()
            );
        }
        // A code the engine does not serve: an error, then the connection closes.
        let (status, reply) = call(&mut stream, 27, &[]);
        assert_eq!(
            status,
            status::UNKNOWN_COMMAND,
            "{}",
            String::from_utf8_lossy(&reply)
        );
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            0,
            "closed after an unknown code"
        );
        server.shutdown().unwrap();
    }
}
