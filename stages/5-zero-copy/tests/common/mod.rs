//! Starting stage 5 servers for tests, in process or as the real binary, and
//! the messages the tests send.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part of this

use std::path::Path;

use stage2_batching::FsyncPolicy;
use stage3_tcp_server::Server;
use stage3_tcp_server::process::ServerProcess;
use stage4_partitions::TopicsConfig;

/// A server in this process, on 127.0.0.1 and a free port.
pub async fn start(dir: &Path, fsync: FsyncPolicy) -> Server {
    start_with(TopicsConfig::new(dir, fsync)).await
}

/// A server in this process with its own configuration.
pub async fn start_with(config: TopicsConfig) -> Server {
    stage5_zero_copy::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// The real `stage5-server` binary on a free loopback port.
pub fn spawn_binary(dir: &Path, fsync: &str) -> ServerProcess {
    ServerProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_stage5-server")),
        &args(dir, fsync),
    )
    .unwrap()
}

/// The binary's arguments for a loopback server on `dir`.
pub fn args<'a>(dir: &'a Path, fsync: &'a str) -> Vec<&'a std::ffi::OsStr> {
    let mut args: Vec<&std::ffi::OsStr> = ["--listen", "127.0.0.1:0", "--fsync", fsync, "--data"]
        .into_iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(dir.as_os_str());
    args
}

/// `n` messages with ids from `first`, payloads naming their id.
pub fn messages(first: u64, n: u64) -> Vec<(u64, Vec<u8>)> {
    (first..first + n).map(|id| (id, payload(id))).collect()
}

/// The payload of message `id`: its name, padded to a length that varies.
pub fn payload(id: u64) -> Vec<u8> {
    let mut payload = format!("message {id}").into_bytes();
    payload.resize(payload.len() + (id % 37) as usize, b'.');
    payload
}
