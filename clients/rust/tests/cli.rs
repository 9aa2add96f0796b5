//! The `rivulet` command line against the real `rivulet-server` binary on
//! loopback: topics, `send` from stdin, `poll` back, `--follow`, a named
//! consumer across a server restart, `--json`, keys and headers, clear
//! errors with the right exit codes, and `bench` on a tiny workload.
//!
//! Waits below bound how long a test may hang on a broken build; no
//! assertion is about speed.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rivulet_broker::process::{ServerProcess, server_binary};
use serde_json::Value;

/// `rivulet-server` on a free loopback port over `dir`, 2 shards, Direct I/O.
fn server(dir: &Path) -> ServerProcess {
    server_with(dir, &[])
}

/// The same with `extra` flags.
fn server_with(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&OsStr> = [
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--direct-io",
        "on",
        "--segment-size",
        "262144",
        // Tests run at once: no two may want the default metrics port.
        "--metrics-listen",
        "off",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .chain(["--data"])
    .map(OsStr::new)
    .collect();
    args.push(dir.as_os_str());
    ServerProcess::spawn(&server_binary().unwrap(), &args).unwrap()
}

fn cli(addr: SocketAddr, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    command.arg("--server").arg(addr.to_string()).args(args);
    // The caller's own login, if any, is not the test's.
    for name in ["RIVULET_USER", "RIVULET_PASSWORD", "RIVULET_TOKEN"] {
        command.env_remove(name);
    }
    command
}

/// Runs `rivulet --server ADDR ARGS` with `stdin`, to the end.
fn run(addr: SocketAddr, args: &[&str], stdin: &str) -> Output {
    let mut child = cli(addr, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs it and returns its stdout, failing the test (with stderr) if it failed.
fn ok(addr: SocketAddr, args: &[&str]) -> String {
    ok_with_stdin(addr, args, "")
}

fn ok_with_stdin(addr: SocketAddr, args: &[&str], stdin: &str) -> String {
    let output = run(addr, args, stdin);
    assert!(
        output.status.success(),
        "rivulet {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs it expecting failure with `code`; returns stderr.
fn fails(addr: SocketAddr, args: &[&str], code: i32) -> String {
    let output = run(addr, args, "");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "rivulet {args:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "rivulet {args:?} panicked: {stderr}"
    );
    stderr
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn cli_sends_stdin_lines_and_polls_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    let created = ok(addr, &["topic", "create", "orders", "--partitions", "1"]);
    assert!(created.contains("created topic orders"), "{created}");

    let sent = ok_with_stdin(addr, &["send", "orders"], "first\nsecond\nthird café\n");
    assert!(sent.starts_with("sent 3 messages to orders"), "{sent}");
    assert_eq!(
        ok(addr, &["poll", "orders"]),
        "0\tfirst\n1\tsecond\n2\tthird café\n"
    );
    assert_eq!(
        ok(addr, &["poll", "orders", "--offset", "1", "--count", "1"]),
        "1\tsecond\n"
    );
    assert_eq!(
        ok(addr, &["poll", "orders", "--last", "--count", "1"]),
        "2\tthird café\n"
    );
    assert_eq!(
        ok(addr, &["poll", "orders", "--since", "1h", "--count", "1"]),
        "0\tfirst\n"
    );
    // A time after every message: nothing yet.
    let future = "99999999999999999";
    assert_eq!(ok(addr, &["poll", "orders", "--timestamp", future]), "");

    // Messages as arguments, and the topic by id.
    let id = json_lines(&ok(addr, &["--json", "topic", "describe", "orders"]))[0]["id"]
        .as_u64()
        .unwrap()
        .to_string();
    ok(addr, &["send", &id, "fourth", "fifth"]);

    // --json: one object per message, payloads and offsets intact.
    let polled = json_lines(&ok(addr, &["--json", "poll", "orders", "--offset", "3"]));
    let got: Vec<(u64, &str)> = polled
        .iter()
        .map(|m| {
            (
                m["offset"].as_u64().unwrap(),
                m["payload"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(3, "fourth"), (4, "fifth")]);
    assert!(polled.iter().all(|m| m["timestamp"].as_u64().unwrap() > 0));

    // Every --json output parses, and says what the text says.
    let described = json_lines(&ok(addr, &["--json", "topic", "describe", "orders"]));
    assert_eq!(described[0]["partition_info"][0]["next_offset"], 5);
    let listed = json_lines(&ok(addr, &["--json", "topic", "list"]));
    assert_eq!(listed[0]["topics"][0]["name"], "orders");
    let streams = json_lines(&ok(addr, &["--json", "stream", "list"]));
    assert_eq!(streams[0]["streams"][0]["name"], "default");
    let stats = json_lines(&ok(addr, &["--json", "stats"]));
    assert_eq!(stats[0]["shards"], 2);
    // With --key, the key is stored too, and poll shows it.
    let sent = json_lines(&ok(addr, &["--json", "send", "orders", "x", "--key", "k"]));
    assert_eq!(sent[0]["count"], 1);
    assert_eq!(sent[0]["first_offset"], 5);

    // The server's address from the environment.
    let output = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["poll", "orders", "--offset", "5"])
        .env("RIVULET_SERVER", addr.to_string())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "5\tkey=k\tx\n");

    ok(addr, &["topic", "delete", "orders"]);
    fails(addr, &["poll", "orders"], 1);
    server.terminate().unwrap();
}

#[test]
fn cli_send_stores_key_and_headers_and_poll_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    ok(addr, &["topic", "create", "orders", "--partitions", "3"]);

    // A plain message first, then two with a key and headers: the key is
    // stored and still chooses the partition (both land together).
    ok(addr, &["send", "orders", "--partition", "0", "plain"]);
    let sent = json_lines(&ok(
        addr,
        &[
            "--json",
            "send",
            "orders",
            "--key",
            "k1",
            "--header",
            "h1=v1",
            "--header",
            "trace=a=b",
            "--header",
            "h1=",
            "first",
            "second",
        ],
    ));
    let partition = sent[0]["partition"].as_u64().unwrap().to_string();
    assert_eq!(sent[0]["count"], 2);
    // Same key, same partition.
    let again = json_lines(&ok(
        addr,
        &["--json", "send", "orders", "--key", "k1", "third"],
    ));
    assert_eq!(again[0]["partition"].to_string(), partition);

    let polled = json_lines(&ok(
        addr,
        &["--json", "poll", "orders", "--partition", &partition],
    ));
    let keyed: Vec<&Value> = polled.iter().filter(|m| !m["key"].is_null()).collect();
    assert_eq!(keyed.len(), 3, "{polled:?}");
    let first = keyed[0];
    assert_eq!(first["key"], "k1");
    assert_eq!(first["payload"], "first");
    assert_eq!(
        first["headers"],
        serde_json::json!([["h1", "v1"], ["trace", "a=b"], ["h1", ""]])
    );
    assert!(first["create_time"].is_null());
    assert_eq!(keyed[1]["payload"], "second");
    assert_eq!(keyed[2]["headers"], serde_json::json!([]));
    assert_eq!(keyed[2]["payload"], "third");

    // The plain one reads as it always did: no key, no headers.
    let plain = json_lines(&ok(
        addr,
        &[
            "--json",
            "poll",
            "orders",
            "--partition",
            "0",
            "--count",
            "1",
        ],
    ));
    assert_eq!(plain[0]["payload"], "plain");
    assert!(plain[0]["key"].is_null());
    assert_eq!(plain[0]["headers"], serde_json::json!([]));

    // The text form: key and headers as columns before the payload.
    let first_offset = first["offset"].as_u64().unwrap().to_string();
    let text = ok(
        addr,
        &[
            "poll",
            "orders",
            "--partition",
            &partition,
            "--offset",
            &first_offset,
            "--count",
            "1",
        ],
    );
    assert_eq!(
        text,
        format!("{first_offset}\tkey=k1\th1=v1\ttrace=a=b\th1=\tfirst\n")
    );

    // A header without `=` is a usage error.
    fails(addr, &["send", "orders", "--header", "novalue", "x"], 2);
    server.terminate().unwrap();
}

/// Reads a child's stdout lines on a thread, so a test can wait for each.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    match lines.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(error) => panic!("no line from `poll --follow`: {error}"),
    }
}

#[test]
fn cli_follow_prints_messages_sent_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    ok(addr, &["topic", "create", "events", "--partitions", "2"]);
    ok(addr, &["send", "events", "--partition", "0", "before"]);

    let mut follow = cli(addr, &["poll", "events", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(&mut follow);
    // Several partitions in view: the partition is the first column.
    assert_eq!(next_line(&lines), "0\t0\tbefore");

    // Sent after the first line came out: the follow is polling by now.
    ok(addr, &["send", "events", "--partition", "1", "after-1"]);
    assert_eq!(next_line(&lines), "1\t0\tafter-1");
    ok(
        addr,
        &["send", "events", "--partition", "0", "after-2", "after-3"],
    );
    assert_eq!(next_line(&lines), "0\t1\tafter-2");
    assert_eq!(next_line(&lines), "0\t2\tafter-3");

    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow ended by itself"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();
    server.terminate().unwrap();
}

#[test]
fn cli_consumer_resumes_where_it_stopped_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    ok(addr, &["topic", "create", "jobs"]);
    ok_with_stdin(addr, &["send", "jobs"], "j0\nj1\nj2\nj3\nj4\n");

    assert_eq!(
        ok(
            addr,
            &["poll", "jobs", "--consumer", "worker", "--count", "2"]
        ),
        "0\tj0\n1\tj1\n"
    );
    // --no-commit reads without moving the consumer.
    assert_eq!(
        ok(
            addr,
            &[
                "poll",
                "jobs",
                "--consumer",
                "worker",
                "--count",
                "1",
                "--no-commit"
            ]
        ),
        "2\tj2\n"
    );
    let offsets = json_lines(&ok(
        addr,
        &["--json", "offsets", "jobs", "--consumer", "worker"],
    ));
    assert_eq!(offsets[0]["partitions"][0]["offset"], 2);
    assert_eq!(offsets[0]["partitions"][0]["next_offset"], 5);

    // A clean stop and a start on the same folder: the offset was stored.
    server.terminate().unwrap();
    let server = self::server(dir.path());
    let addr = server.addr();
    let text = ok(addr, &["offsets", "jobs", "--consumer", "worker"]);
    assert!(text.contains("PARTITION"), "{text}");
    assert_eq!(
        ok(addr, &["poll", "jobs", "--consumer", "worker"]),
        "2\tj2\n3\tj3\n4\tj4\n"
    );
    // Caught up: nothing more for this consumer, while another starts at 0.
    assert_eq!(ok(addr, &["poll", "jobs", "--consumer", "worker"]), "");
    assert_eq!(
        ok(
            addr,
            &["poll", "jobs", "--consumer", "other", "--count", "1"]
        ),
        "0\tj0\n"
    );
    server.terminate().unwrap();
}

#[test]
fn cli_errors_say_what_went_wrong_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    ok(addr, &["topic", "create", "orders", "--partitions", "2"]);

    // Usage errors: clap's, exit 2.
    fails(addr, &["poll"], 2);
    fails(addr, &["poll", "orders", "--first", "--last"], 2);
    fails(addr, &["poll", "orders", "--no-commit"], 2);
    fails(
        addr,
        &["send", "orders", "--key", "k", "--partition", "0", "x"],
        2,
    );
    fails(addr, &["topic", "create", "x", "--partitions", "many"], 2);
    fails(addr, &["frobnicate"], 2);

    // Everything else: exit 1 and a message naming the problem.
    let stderr = fails(addr, &["poll", "missing"], 1);
    assert!(
        stderr.contains("topic missing does not exist")
            && stderr.contains("rivulet topic create missing"),
        "{stderr}"
    );
    let stderr = fails(addr, &["send", "orders", "--partition", "7", "x"], 1);
    assert!(stderr.contains("partitions 0 to 1"), "{stderr}");
    let stderr = fails(addr, &["topic", "create", "orders"], 1);
    assert!(stderr.contains("orders"), "{stderr}");
    let stderr = fails(addr, &["topic", "create", "bad name"], 1);
    assert!(stderr.contains("bad name"), "{stderr}");
    let stderr = fails(addr, &["bench", "--workload", "no-such-workload"], 1);
    assert!(stderr.contains("no-such-workload"), "{stderr}");

    server.terminate().unwrap();
    // Nothing listens there any more.
    let stderr = fails(addr, &["stats"], 1);
    assert!(
        stderr.contains(&format!("cannot connect to {addr}"))
            && stderr.contains("is rivulet-server running?"),
        "{stderr}"
    );
}

#[test]
fn cli_bench_runs_a_tiny_workload_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let addr = server.addr();
    let args = [
        "--json",
        "bench",
        "--workload",
        "tiny",
        "--messages",
        "200",
        "--partitions",
        "2",
        "--producers",
        "2",
        "--consumers",
        "2",
    ];
    let results = json_lines(&ok(addr, &args));
    let figures = &results[0]["figures"];
    assert_eq!(results[0]["workload"], "tiny");
    assert!(figures["produced"].as_u64().unwrap() >= 200, "{figures}");
    assert_eq!(figures["produced"], figures["consumed"]);
    assert!(results[0]["durability"].as_str().unwrap().contains("fsync"));
    // Its topic is gone afterwards.
    let topics = json_lines(&ok(addr, &["--json", "topic", "list"]));
    assert_eq!(topics[0]["topics"].as_array().unwrap().len(), 0);

    // The text report: a table with a row per side.
    let table = ok(addr, &["bench", "--workload", "tiny", "--messages", "100"]);
    assert!(
        table.contains("producer") && table.contains("consumer") && table.contains("p99"),
        "{table}"
    );
    server.terminate().unwrap();
}

#[test]
fn cli_logs_in_when_the_server_has_access_control() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rivulet.toml");
    std::fs::write(
        &config,
        r#"
[[auth.users]]
name = "root"
password = "correct horse"
admin = true

[[auth.users]]
name = "shop"
token = "shop-token"
produce = ["orders"]
consume = ["orders"]
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    // The Kafka listener has no login, so a server with access control
    // refuses to start with one.
    let server = server_with(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--kafka-listen",
            "off",
        ],
    );
    let addr = server.addr();
    let as_root = |args: &[&str]| {
        let output = cli(addr, &[&["--user", "root"], args].concat())
            .env("RIVULET_PASSWORD", "correct horse")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let with_token = |args: &[&str]| {
        cli(addr, args)
            .env("RIVULET_TOKEN", "shop-token")
            .output()
            .unwrap()
    };

    // No login: refused, and the error says how to log in.
    let stderr = fails(addr, &["topic", "create", "orders"], 1);
    assert!(stderr.contains("RIVULET_PASSWORD"), "{stderr}");
    // A user without its password is a clear error before connecting.
    let stderr = fails(addr, &["--user", "root", "stats"], 1);
    assert!(stderr.contains("RIVULET_PASSWORD"), "{stderr}");

    as_root(&["topic", "create", "orders"]);
    let sent = with_token(&["send", "orders", "paid"]);
    assert!(sent.status.success());
    let polled = with_token(&["poll", "orders"]);
    assert_eq!(String::from_utf8(polled.stdout).unwrap(), "0\tpaid\n");
    // The token's user may not create topics: forbidden, said so.
    let refused = with_token(&["topic", "create", "other"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("may not"), "{stderr}");

    // `bench` logs in on every connection of the run.
    let results = json_lines(&as_root(&[
        "--json",
        "bench",
        "--workload",
        "tiny",
        "--messages",
        "100",
    ]));
    assert_eq!(
        results[0]["figures"]["produced"],
        results[0]["figures"]["consumed"]
    );
    server.terminate().unwrap();
}
