//! Restarting the real `rivulet-server` on the same fixed port right after
//! it was killed: what a service manager does after a crash (systemd's
//! `Restart=on-failure`), and what an operator does by hand. The killed
//! process's accepted connections outlive it in the kernel (in FIN_WAIT or
//! TIME_WAIT, or still ESTABLISHED from the client's side), and the new
//! process must be able to listen on the port anyway, every time.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use rivulet_broker::api;
use rivulet_broker::process::ServerProcess;
use rivulet_client::{Client, Partitioning, request_frame};

/// A loopback port nobody listens on now: the kernel picks one, we let it go.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

fn start(dir: &Path, addr: SocketAddr) -> std::io::Result<ServerProcess> {
    let listen = addr.to_string();
    let args: Vec<&OsStr> = [
        "--listen",
        &listen,
        "--shards",
        "2",
        "--metrics-listen",
        "off",
        "--segment-size",
        "262144",
        "--log-level",
        "warn",
        // Every acknowledged produce synced, so the restarted server must
        // serve every one of them (under `every-batch`, a small batch is
        // synced by the saver within its interval, and a kill may beat it).
        "--fsync",
        "always",
    ]
    .into_iter()
    .map(OsStr::new)
    .chain([OsStr::new("--data"), dir.as_os_str()])
    .collect();
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_rivulet-server")), &args)
}

/// Connections of every kind a crash leaves behind: ones that were served
/// and stay open, an idle one, one halfway through a request's header and
/// one halfway through a body (unread bytes in the server's socket), and
/// one the client already closed.
fn leave_connections(addr: SocketAddr, topic: u32) -> Vec<TcpStream> {
    let timeout = Duration::from_secs(10);
    let mut open = Vec::new();
    for n in 0..4u64 {
        let mut client = Client::connect_with_timeout(addr, timeout).unwrap();
        client
            .produce(topic, Partitioning::Explicit(0), [n.to_le_bytes()])
            .unwrap();
        open.push(client);
    }
    open.push(Client::connect_with_timeout(addr, timeout).unwrap());
    let mut header = Client::connect_with_timeout(addr, timeout).unwrap();
    header.send_raw(&[200, 0, 0]).unwrap();
    open.push(header);
    let mut body = Client::connect_with_timeout(addr, timeout).unwrap();
    let frame = request_frame(api::code::STATS, 1, &[b'x'; 4000]).unwrap();
    body.send_raw(&frame[..frame.len() - 100]).unwrap();
    open.push(body);
    let mut closed = Client::connect_with_timeout(addr, timeout).unwrap();
    closed.stats().unwrap();
    drop(closed);
    open.into_iter()
        .map(|mut client| client.stream().try_clone().unwrap())
        .collect()
}

// ANCHOR: restart_test
#[test]
fn restart_right_after_sigkill_takes_the_same_port_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr).unwrap();
    Client::connect(&addr.to_string())
        .unwrap()
        .create_topic_by_id(1, 1)
        .unwrap();
    let rounds = 10;
    for round in 0..rounds {
        // Held open by the clients across the kill and the restart.
        let _left = leave_connections(addr, 1);
        server.kill().unwrap(); // SIGKILL, and the process reaped
        server = match start(dir.path(), addr) {
            Ok(server) => server,
            Err(error) => panic!("restart {round} of {rounds} on {addr} failed: {error}"),
        };
        assert_eq!(server.addr(), addr);
        // The new process serves, and everything acknowledged is there.
        let mut client = Client::connect(&addr.to_string()).unwrap();
        let records = client.poll(1, 0, 0, 1000).unwrap();
        assert_eq!(records.len(), 4 * (round + 1), "after restart {round}");
    }
    assert!(server.terminate().unwrap().success());
}
// ANCHOR_END: restart_test
