//! `rivulet-server` as a child process, for the benches that measure the
//! product: this source's build (built first, so the binary measured is this
//! source's, not one left over), or a baseline built from an earlier commit
//! (`bench::baseline`), started the same way so a "today's code" comparison
//! runs both in one run.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use rivulet_broker::process::ServerProcess;

/// `cargo build --release -p rivulet-broker --bin rivulet-server`.
pub fn build_release_server() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "rivulet-broker",
            "--bin",
            "rivulet-server",
        ])
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(
        status.success(),
        "building rivulet-server failed ({status})"
    );
    Ok(())
}

/// A running `rivulet-server`, its data in a temporary folder that goes once
/// it has stopped (gracefully: it syncs first).
pub struct Server {
    process: Option<ServerProcess>,
    data: tempfile::TempDir,
}

impl Server {
    /// Starts `binary` on a free loopback port, its data in a new folder under
    /// `bench::bench_data_dir`, metrics off, logging warnings, then `args`
    /// (which say everything else, the Kafka port included: `--kafka-listen
    /// off` or `127.0.0.1:0`).
    pub fn start(binary: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let data = tempfile::tempdir_in(bench::bench_data_dir()).context("server data folder")?;
        let mut all: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--metrics-listen".into(),
            "off".into(),
            "--log-level".into(),
            "warn".into(),
            "--data".into(),
            data.path().into(),
        ];
        all.extend(args.iter().map(OsString::from));
        let all: Vec<&std::ffi::OsStr> = all.iter().map(OsString::as_os_str).collect();
        let process = ServerProcess::spawn(binary, &all)
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Server {
            process: Some(process),
            data,
        })
    }

    fn process(&self) -> anyhow::Result<&ServerProcess> {
        self.process.as_ref().context("the server has stopped")
    }

    /// Its native protocol's address.
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.process()?.addr())
    }

    /// Its Kafka listener's address, if it was started with one.
    pub fn kafka_addr(&self) -> anyhow::Result<SocketAddr> {
        self.process()?
            .kafka_addr()
            .context("the server printed no Kafka address")
    }

    /// Its process id (for its CPU time in `/proc`).
    pub fn pid(&self) -> anyhow::Result<u32> {
        Ok(self.process()?.id())
    }

    /// Its data folder.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(process) = self.process.take()
            && let Err(error) = process.terminate()
        {
            eprintln!("stopping rivulet-server: {error}");
        }
    }
}
