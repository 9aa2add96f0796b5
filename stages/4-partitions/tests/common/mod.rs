//! Starting stage 4 servers for tests, in process or as the real binary.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part of this

use std::path::Path;

use stage2_batching::FsyncPolicy;
use stage3_tcp_server::Server;
use stage3_tcp_server::process::ServerProcess;
use stage4_partitions::TopicsConfig;

/// A server in this process, on 127.0.0.1 and a free port.
pub async fn start(dir: &Path, fsync: FsyncPolicy) -> Server {
    stage4_partitions::start(
        "127.0.0.1:0".parse().unwrap(),
        TopicsConfig::new(dir, fsync),
    )
    .await
    .unwrap()
}

/// The real `stage4-server` binary on a free loopback port.
pub fn spawn_binary(dir: &Path, fsync: &str) -> ServerProcess {
    let args = ["--listen", "127.0.0.1:0", "--fsync", fsync, "--data"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(dir.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_stage4-server")), &args).unwrap()
}

/// `n` messages with ids from `first`, payloads naming their id.
pub fn messages(first: u64, n: u64) -> Vec<(u64, Vec<u8>)> {
    (first..first + n)
        .map(|id| (id, format!("message {id}").into_bytes()))
        .collect()
}
