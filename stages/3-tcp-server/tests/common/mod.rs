//! Starting servers for tests: in-process on a loopback port, or the real
//! binary as a child process.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part of this

use std::path::Path;

use stage2_batching::FsyncPolicy;
use stage3_tcp_server::process::ServerProcess;
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

/// The real `stage3-server` binary on a free loopback port.
pub fn spawn_binary(dir: &Path, fsync: &str) -> ServerProcess {
    let args = ["--listen", "127.0.0.1:0", "--fsync", fsync, "--data"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(dir.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_stage3-server")), &args).unwrap()
}
