//! The real `rivulet-server`'s limits on connections: one over
//! `--max-connections` is told so and closed while the connections already
//! open keep working, and so is one over `--max-connections-per-peer` from
//! an address that has that many open, while other addresses are let in; a
//! connection that sends no complete frame for
//! `--idle-timeout-seconds` is closed, a silent one and one that stopped
//! halfway through a frame alike, while one that keeps asking stays. And a
//! second server cannot take a data folder or a port that one already holds.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{rivulet_server, room_after_a_client_left};
use rivulet_broker::api::{self, status};
use rivulet_client::Client;
use rivulet_client::Partitioning;

/// Reads one reply frame: `(status, correlation, body)`.
fn read_reply(stream: &mut TcpStream) -> (u16, u32, Vec<u8>) {
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap());
    let status = u16::from_le_bytes(header[4..6].try_into().unwrap());
    let correlation = u32::from_le_bytes(header[6..10].try_into().unwrap());
    assert!((6..1 << 16).contains(&len), "a reply of {len} bytes");
    let mut body = vec![0u8; len as usize - 6];
    stream.read_exact(&mut body).unwrap();
    (status, correlation, body)
}

/// Whether the server closed `stream`: a read returns end of file (or a
/// reset) before `patience` is over.
fn closed_by_server(stream: &mut TcpStream, patience: Duration) -> bool {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_connection_over_the_limit_is_refused_while_the_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &["--max-connections", "2"]);
    let addr = server.addr().to_string();
    let mut first = Client::connect(&addr).unwrap();
    first.create_stream("s").unwrap();
    let mut second = Client::connect(&addr).unwrap();
    second.list_streams().unwrap();

    // The third gets one frame saying why, unasked, then end of file.
    let mut third = TcpStream::connect(server.addr()).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (code, correlation, body) = read_reply(&mut third);
    let message = String::from_utf8(body).unwrap();
    assert_eq!((code, correlation), (status::TOO_MANY_CONNECTIONS, 0));
    assert!(message.contains("limit of 2 connections"), "{message}");
    assert!(closed_by_server(&mut third, Duration::from_secs(10)));
    // So does a client that asks something anyway.
    let mut refused = Client::connect(&addr).unwrap();
    let error = refused.stats().unwrap_err();
    assert_eq!(
        error.status(),
        Some(status::TOO_MANY_CONNECTIONS),
        "{error}"
    );

    // The connections already open are served as before.
    let topic = first
        .create_topic(&api::CreateTopic {
            stream: None,
            name: "t".into(),
            id: None,
            partitions: 1,
            settings: api::TopicSettings::default(),
        })
        .unwrap()
        .id;
    second
        .produce(topic, Partitioning::Explicit(0), [b"still here"])
        .unwrap();
    assert_eq!(first.poll(topic, 0, 0, 10).unwrap().len(), 1);
    assert_eq!(first.stats().unwrap().connections, 2);

    // One leaves: a new one is let in (once the server has seen it leave).
    drop(second);
    room_after_a_client_left(&addr);
    assert!(server.terminate().unwrap().success());
}

/// A connection to `addr` from the local address `from` (any 127.x.y.z is
/// this machine's loopback): a second peer address without a second host.
fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends a STATS request on a raw stream and reads its reply's status.
fn stats_status(stream: &mut TcpStream) -> u16 {
    let frame = rivulet_client::request_frame(api::code::STATS, 7, b"{}").unwrap();
    stream.write_all(&frame).unwrap();
    read_reply(stream).0
}

// ANCHOR: per_peer_test
#[test]
fn limits_one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &["--max-connections-per-peer", "3"]);
    let addr = server.addr().to_string();
    let mut mine: Vec<Client> = (0..3).map(|_| Client::connect(&addr).unwrap()).collect();
    for client in &mut mine {
        client.list_streams().unwrap();
    }

    // A fourth from the same address gets one frame saying why, unasked,
    // then end of file, as at the server's own limit.
    let mut fourth = TcpStream::connect(server.addr()).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (code, correlation, body) = read_reply(&mut fourth);
    let message = String::from_utf8(body).unwrap();
    assert_eq!((code, correlation), (status::TOO_MANY_CONNECTIONS, 0));
    assert!(
        message.contains("127.0.0.1 has 3 connections open, the limit per peer"),
        "{message}"
    );
    assert!(closed_by_server(&mut fourth, Duration::from_secs(10)));

    // Another address is let in meanwhile, and the first three still work.
    let mut other = connect_from("127.0.0.2".parse().unwrap(), server.addr());
    assert_eq!(stats_status(&mut other), 0);
    assert_eq!(mine[0].stats().unwrap().connections, 4);

    // One of the three leaves: the address may open one more (once the
    // server has seen it leave).
    mine.pop();
    room_after_a_client_left(&addr);
    assert!(server.terminate().unwrap().success());
}
// ANCHOR_END: per_peer_test

#[test]
fn idle_connections_are_closed_and_busy_ones_are_not() {
    // On io_uring and on the polling fallback: their cancellations differ.
    for driver in ["auto", "polling"] {
        idle_connections_are_closed_and_busy_ones_are_not_on(driver);
    }
}

fn idle_connections_are_closed_and_busy_ones_are_not_on(driver: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(
        dir.path(),
        &["--idle-timeout-seconds", "1", "--io-driver", driver],
    );
    // Silent from the start.
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    // Half a frame's header, then nothing: a peer that stopped mid-request.
    let mut halfway = TcpStream::connect(server.addr()).unwrap();
    halfway.write_all(&[20, 0, 0]).unwrap();
    // A client that asks every 300 ms for longer than the timeout.
    let mut busy = Client::connect(&server.addr().to_string()).unwrap();
    for _ in 0..8 {
        busy.list_streams().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(closed_by_server(&mut silent, Duration::from_secs(10)));
    assert!(closed_by_server(&mut halfway, Duration::from_secs(10)));
    busy.list_streams().unwrap();
    assert!(server.terminate().unwrap().success());
}

#[test]
fn no_idle_timeout_keeps_a_silent_connection_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &["--idle-timeout-seconds", "0"]);
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    // Not closed within a while (a read times out instead of ending)...
    assert!(!closed_by_server(&mut silent, Duration::from_millis(1500)));
    // ...and still served.
    let body = b"{}";
    let mut frame = ((body.len() + 6) as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&api::code::STATS.to_le_bytes());
    frame.extend_from_slice(&9u32.to_le_bytes());
    frame.extend_from_slice(body);
    silent.write_all(&frame).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (code, correlation, _) = read_reply(&mut silent);
    assert_eq!((code, correlation), (0, 9));
    assert!(server.terminate().unwrap().success());
}

/// Runs `rivulet-server` expecting it to refuse to start: its exit status
/// and what it said on stderr.
fn refused_start(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rivulet-server"))
        .args(args)
        .args(["--metrics-listen", "off", "--kafka-listen", "off"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn limits_a_second_server_cannot_share_the_data_folder_or_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let first = rivulet_server(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let (exit, said) = refused_start(&["--listen", "127.0.0.1:0", "--data", data]);
    assert!(!exit.success(), "a second server on the same data started");
    assert!(
        said.contains("in use by another rivulet-server") && said.contains(&first.id().to_string()),
        "{said}"
    );
    let other = tempfile::tempdir().unwrap();
    let port = first.addr().to_string();
    let (exit, said) =
        refused_start(&["--listen", &port, "--data", other.path().to_str().unwrap()]);
    assert!(!exit.success(), "a second server on the same port started");
    assert!(said.contains("another server running"), "{said}");
    // The first one serves on, and a SIGKILL leaves no lock behind.
    let mut client = Client::connect(&first.addr().to_string()).unwrap();
    client.stats().unwrap();
    first.kill().unwrap();
    let again = rivulet_server(dir.path(), &[]);
    Client::connect(&again.addr().to_string())
        .unwrap()
        .stats()
        .unwrap();
}
