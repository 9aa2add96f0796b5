//! The operator's view of `rivulet-server` for the config, metrics and
//! shutdown tests: the real binary run as a child process, with its stderr
//! (the logs) collected, the environment cleared of `RIVULET_` variables
//! unless a test sets them, and signals sent by number, as systemd would.

#![allow(dead_code)] // each test file uses its own share of these

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rivulet-server"))
}

/// `rivulet-server` with `args` and `env`, and no other `RIVULET_` variable
/// (a developer's own settings must not change a test's outcome).
pub fn command(args: &[&OsStr], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary());
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RIVULET_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// Runs it to the end (for bad settings and `--print-config`).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    command(&args, env).output().unwrap()
}

/// A running broker.
pub struct Broker {
    child: Child,
    /// Its client address, from its `listening on` line.
    pub addr: SocketAddr,
    // Kept open: the broker must never write to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    logs: Arc<Mutex<String>>,
    /// Reads stderr into `logs` until the broker closes it (at exit): joined
    /// before the logs are returned after an exit, so none are missing.
    /// Rejected: a short sleep, which a loaded machine outlasts.
    log_reader: Option<JoinHandle<()>>,
}

impl Broker {
    /// Starts `command` (from [`command`]) and waits for `listening on ADDR`;
    /// panics with its logs if it does not get there.
    pub fn start(mut command: Command) -> Broker {
        // The Kafka listener's default port would be shared by every broker
        // a test run starts at once: a free one, unless the test chose.
        let chosen = command.get_args().any(|arg| arg == "--kafka-listen")
            || command
                .get_envs()
                .any(|(name, _)| name == "RIVULET_KAFKA_LISTEN");
        if !chosen {
            command.args(["--kafka-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        let log_reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
        else {
            let status = child.wait().unwrap();
            let _ = log_reader.join(); // the last logs
            panic!(
                "rivulet-server did not start ({status}); stdout {line:?}, logs:\n{}",
                logs.lock().unwrap()
            );
        };
        Broker {
            child,
            addr,
            _stdout: stdout,
            logs,
            log_reader: Some(log_reader),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits (up to 60 s) for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.logs().lines().find(|line| line.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metrics endpoint's address, from its log line.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self.wait_for_log("metrics on http://");
        let (_, rest) = line.split_once("metrics on http://").unwrap();
        rest.trim().trim_end_matches("/metrics").parse().unwrap()
    }

    /// Sends `signal` (`TERM`, `INT`) as `kill -SIG pid` does.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for it to exit (at most 60 s, then it is killed and the test
    /// fails); the status and its logs.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join(); // the last logs
                }
                return (status, self.logs());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rivulet-server did not stop; logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then [`Broker::wait`], asserting exit code 0.
    pub fn stop(self) -> String {
        self.signal("TERM");
        let (status, logs) = self.wait();
        assert!(status.success(), "{status}; logs:\n{logs}");
        logs
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.1 GET of `path`: the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    (status, body.to_string())
}
