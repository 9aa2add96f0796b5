//! Starting servers for tests: in-process on a loopback port, or the real
//! binary as a child process.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part of this

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use stage2_batching::FsyncPolicy;
use stage3_tcp_server::{Server, StreamsConfig};

/// A server in this process, on 127.0.0.1 and a free port.
pub async fn start(dir: &Path, fsync: FsyncPolicy) -> Server {
    Server::start(
        "127.0.0.1:0".parse().unwrap(),
        StreamsConfig::new(dir, fsync),
    )
    .await
    .unwrap()
}

/// The real `stage3-server` binary, and the address it printed.
pub fn spawn_binary(dir: &Path, fsync: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stage3-server"))
        .args(["--listen", "127.0.0.1:0", "--fsync", fsync, "--data"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    (child, addr)
}
