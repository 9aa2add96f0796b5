//! Helpers shared by the broker's tests.

#![allow(dead_code)] // each test file uses its own share of these

use std::ffi::OsStr;
use std::path::Path;

use rivulet_broker::process::ServerProcess;

/// The real `rivulet-server` on a free loopback port, with 2 shards, small
/// segments, no metrics endpoint, and `extra` flags (Direct I/O is on unless
/// they say otherwise: the test folders are on ext4).
pub fn rivulet_server(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&OsStr> = ["--listen", "127.0.0.1:0", "--shards", "2"]
        .into_iter()
        .chain(["--segment-size", "262144"])
        // Tests run at once: no two may want the default metrics port.
        .chain(["--metrics-listen", "off"])
        .chain(extra.iter().copied())
        .map(OsStr::new)
        .collect();
    args.push(OsStr::new("--data"));
    args.push(dir.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_rivulet-server")), &args).unwrap()
}
