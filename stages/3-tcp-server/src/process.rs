//! Running a server binary as a child process, for tests and the load
//! generator: start it on a free loopback port, learn the port from the
//! `listening on ADDR` line it prints, stop it gently or kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A server running as a child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `binary` with `args` and waits for its `listening on ADDR` line.
    pub fn spawn(binary: &Path, args: &[&std::ffi::OsStr]) -> std::io::Result<ServerProcess> {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Ok(ServerProcess { child, addr }),
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
