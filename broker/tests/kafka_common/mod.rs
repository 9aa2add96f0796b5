//! Helpers for the tests that run real Kafka clients (kcat, confluent-kafka,
//! kafka-python) against `rivulet-server`'s Kafka listener. The clients are
//! installed by `scripts/install-kafka-clients` (the test command runs it
//! first): kcat on the PATH, the Python ones in `target/kafka-clients/venv`.
//!
//! `RIVULET_KAFKA_DEBUG=protocol,broker` (librdkafka's debug contexts) makes
//! kcat and confluent-kafka log their requests to the test's stderr, and
//! kafka-python log at DEBUG.

#![allow(dead_code)] // each test file uses its own share of these

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rivulet_broker::process::ServerProcess;
use serde_json::Value;

use crate::common;

/// What to run when a client is missing.
pub const INSTALL_HINT: &str = "run `scripts/install-kafka-clients` (the test command, \
     scripts/test, runs it first): it installs kcat from Debian's packages and \
     confluent-kafka and kafka-python into target/kafka-clients/venv";

/// How long one client run may take before the test kills it and fails: far
/// beyond what a working server needs, so only a hang reaches it.
pub const CLIENT_BOUND: Duration = Duration::from_secs(180);

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The virtual environment's python, which has the Python clients.
pub fn venv_python() -> PathBuf {
    workspace().join("target/kafka-clients/venv/bin/python")
}

/// A program of `broker/tests/kafka/`.
pub fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kafka")
        .join(name)
}

/// Why the clients cannot run, or `None` when they can: kcat answers
/// `-V`, and the venv's python imports both Python clients.
fn missing_clients() -> Option<String> {
    match Command::new("kcat").arg("-V").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            return Some(format!(
                "`kcat -V` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Err(error) => return Some(format!("kcat is not on the PATH ({error})")),
    }
    let python = venv_python();
    if !python.exists() {
        return Some(format!("{} does not exist", python.display()));
    }
    let imported = Command::new(&python)
        .args(["-c", "import confluent_kafka, kafka"])
        .output();
    match imported {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "{} cannot import confluent_kafka and kafka: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Some(format!("{} does not run ({error})", python.display())),
    }
}

/// Fails the test, naming the install script, unless the real clients are
/// there; checked once per test binary.
pub fn require_clients() {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    if let Some(why) = MISSING.get_or_init(missing_clients) {
        panic!("the real Kafka clients are missing: {why}; {INSTALL_HINT}");
    }
}

/// `RIVULET_KAFKA_DEBUG`, if set: librdkafka's debug contexts for the clients.
pub fn debug_contexts() -> Option<String> {
    std::env::var("RIVULET_KAFKA_DEBUG")
        .ok()
        .filter(|contexts| !contexts.is_empty())
}

/// A `rivulet-server` ([`common::rivulet_server`]) with its Kafka listener
/// on a free port, and that port.
pub fn kafka_server(dir: &Path, extra: &[&str]) -> (ServerProcess, SocketAddr) {
    require_clients();
    let server = common::rivulet_server(dir, extra);
    let kafka = server
        .kafka_addr()
        .unwrap_or_else(|| panic!("rivulet-server printed no `kafka listening on ADDR` line"));
    (server, kafka)
}

/// The same server with `segment_size`-byte segments instead of
/// [`common::rivulet_server`]'s 256 KiB: a batch is stored whole in one
/// segment, and a Kafka client's default batch (up to 1 MB, and larger in
/// Rivulet's record format when records are small) needs more than 256 KiB.
pub fn kafka_server_with_segments(
    dir: &Path,
    segment_size: &str,
    extra: &[&str],
) -> (ServerProcess, SocketAddr) {
    require_clients();
    let mut args: Vec<&OsStr> = ["--listen", "127.0.0.1:0", "--shards", "2"]
        .into_iter()
        .chain(["--segment-size", segment_size])
        .chain(["--metrics-listen", "off"])
        .chain(extra.iter().copied())
        .map(OsStr::new)
        .collect();
    args.push(OsStr::new("--data"));
    args.push(dir.as_os_str());
    let binary = Path::new(env!("CARGO_BIN_EXE_rivulet-server"));
    let server = ServerProcess::spawn(binary, &args).unwrap();
    let kafka = server
        .kafka_addr()
        .unwrap_or_else(|| panic!("rivulet-server printed no `kafka listening on ADDR` line"));
    (server, kafka)
}

/// Runs `command` with `stdin` to its end, killing it (and failing the test)
/// if it takes longer than [`CLIENT_BOUND`]; `what` names it in failures.
pub fn run_bounded(what: &str, command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{what} did not start: {error}; {INSTALL_HINT}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A client that exits early closes the pipe; its output says why.
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let Some(status) = common::exit_within(&mut child, CLIENT_BOUND) else {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
        panic!(
            "{what} still running after {CLIENT_BOUND:?}, killed; its stderr:\n{}",
            tail(&stderr)
        );
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The last lines of a client's log, enough to see why it failed.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Runs `command`; its stdout if it succeeded, else fails the test with its
/// stderr.
pub fn succeed(what: &str, command: &mut Command, stdin: &[u8]) -> String {
    let output = run_bounded(what, command, stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}); its stderr:\n{}",
        output.status,
        tail(&stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `kcat -b ADDR ARGS` (with `-d` contexts from `RIVULET_KAFKA_DEBUG`).
pub fn kcat(kafka: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new("kcat");
    command.arg("-b").arg(kafka.to_string());
    if let Some(contexts) = debug_contexts() {
        command.args(["-d", &contexts]);
    }
    command.args(args);
    command
}

/// The venv's python running `broker/tests/kafka/NAME ARGS` against `kafka`.
/// `--debug` is added from `RIVULET_KAFKA_DEBUG` when `debug` says how.
pub fn python(name: &str, kafka: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(venv_python());
    // No __pycache__ beside the programs in the source tree.
    command.arg("-B").arg(program(name));
    command.args(args).arg("--bootstrap").arg(kafka.to_string());
    if let Some(contexts) = debug_contexts() {
        if name.starts_with("confluent") {
            command.args(["--debug", &contexts]);
        } else {
            command.arg("--debug");
        }
    }
    command
}

/// Runs a Python client program to success and parses its JSON lines.
pub fn python_lines(name: &str, kafka: SocketAddr, args: &[&str]) -> Vec<Value> {
    let what = format!("{name} {}", args.join(" "));
    let stdout = succeed(&what, &mut python(name, kafka, args), b"");
    json_lines(&stdout)
}

/// One JSON value per line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line:?}")))
        .collect()
}

/// The `rivulet` CLI of this build, beside the running test's
/// `target/<profile>/` (as `server_binary` finds `rivulet-server`), built
/// with cargo first when it is not there.
pub fn rivulet_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let mut dir = exe.parent().unwrap().to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let binary = dir.join("rivulet");
        if !binary.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "rivulet-client", "--bin", "rivulet"]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().unwrap();
            assert!(
                status.success() && binary.exists(),
                "the rivulet CLI is not built ({status}): run `cargo build -p rivulet-client`"
            );
        }
        binary
    })
    .clone()
}

/// `rivulet --server ADDR ARGS`, without the caller's login.
pub fn rivulet(addr: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(rivulet_cli());
    command.arg("--server").arg(addr.to_string()).args(args);
    for name in ["RIVULET_USER", "RIVULET_PASSWORD", "RIVULET_TOKEN"] {
        command.env_remove(name);
    }
    command
}

/// Runs the `rivulet` CLI to success; its stdout.
pub fn rivulet_ok(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> String {
    let what = format!("rivulet {}", args.join(" "));
    succeed(&what, &mut rivulet(addr, args), stdin)
}

/// Headers as `(name, value)` pairs, from the shapes a JSON printer may
/// give them: `[["name", "value"], ..]`, `[{"key"|"name": .., "value": ..}, ..]`
/// or `{"name": "value", ..}`; `null` or absent is none.
pub fn header_pairs(headers: Option<&Value>) -> Vec<(String, String)> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match headers {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => (text(&pair[0]), text(&pair[1])),
                Value::Object(map) => {
                    let name = map.get("key").or_else(|| map.get("name"));
                    (
                        name.map(text).unwrap_or_default(),
                        map.get("value").map(text).unwrap_or_default(),
                    )
                }
                other => panic!("a header printed as {other}"),
            })
            .collect(),
        Some(other) => panic!("headers printed as {other}"),
    }
}
