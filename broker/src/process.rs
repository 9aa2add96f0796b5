//! Running `rivulet-server` as a child process, for tests and tools (the
//! torture driver, the CLI's tests): start it on a free loopback port, learn
//! the port from the `listening on ADDR` line it prints (and the Kafka
//! listener's from the next, `kafka listening on ADDR` or `kafka off`), stop
//! it gently or kill it. Unless the arguments name `--kafka-listen`, the
//! Kafka listener gets a free port too: its default, 9092, would be shared
//! by every server a test run starts at once. Stage 3 keeps its own copy for the lessons; this one is the
//! broker's, so a lesson's change cannot change how the broker is tested.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A server running as a child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    kafka: Option<SocketAddr>,
}

impl ServerProcess {
    /// Starts `binary` with `args` and waits for its `listening on ADDR`
    /// line and the Kafka line after it.
    pub fn spawn(binary: &Path, args: &[&std::ffi::OsStr]) -> std::io::Result<ServerProcess> {
        let mut command = Command::new(binary);
        command.args(args).stdout(Stdio::piped());
        if !args.iter().any(|arg| *arg == "--kafka-listen") {
            command.args(["--kafka-listen", "127.0.0.1:0"]);
        }
        let mut child = command.spawn()?;
        let (mut line, mut second) = (String::new(), String::new());
        if let Some(stdout) = child.stdout.take() {
            let mut stdout = BufReader::new(stdout);
            stdout.read_line(&mut line)?;
            stdout.read_line(&mut second)?;
        }
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok());
        let kafka = second
            .trim()
            .strip_prefix("kafka listening on ")
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Ok(ServerProcess { child, addr, kafka }),
            None => {
                let _ = child.kill();
                let status = child.wait()?;
                Err(std::io::Error::other(format!(
                    "{} did not start ({status}); it printed {line:?}",
                    binary.display()
                )))
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address its Kafka listener listens on, unless it is off.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the crash a test wants, with no chance to flush.
    pub fn kill(mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then waits: a graceful stop.
    pub fn terminate(mut self) -> std::io::Result<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        self.child.wait()
    }
}

impl Drop for ServerProcess {
    /// A server left running outlives the test that started it: kill it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `rivulet-server` binary of this build, for a test in another package
/// (a package's tests only get its own binaries from cargo): the one beside
/// the running test's folder (`target/<profile>/`), built first with cargo
/// when it is not there. `cargo test --workspace` builds it before any test
/// runs, so the build step only runs when one package is tested alone.
pub fn server_binary() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // A test runs from `target/<profile>/deps/`; a tool from `target/<profile>/`.
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("rivulet-server");
    if !binary.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "rivulet-broker", "--bin", "rivulet-server"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status()?;
        if !status.success() || !binary.exists() {
            return Err(std::io::Error::other(format!(
                "rivulet-server is not built ({status}): run `cargo build -p rivulet-broker`"
            )));
        }
    }
    Ok(binary)
}
