//! Guessing passwords on the real `rivulet-server` with access control on:
//! a connection is closed after `--max-login-failures` wrong secrets, an
//! address that failed `--max-login-failures-per-peer` times in the last
//! minute has every login refused (the right password too) while other
//! addresses log in, every failure is counted in the metrics, and the log
//! says so in a line a second at most, not a line per guess.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod operator;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use operator::{Broker, command, http_get};
use rivulet_broker::api::{self, Login, status};
use rivulet_client::{Client, ClientError, request_frame};

const USERS: &str = r#"
[[auth.users]]
name = "root"
password = "correct horse"
admin = true
"#;

fn password(password: &str) -> Login {
    Login {
        username: Some("root".into()),
        password: Some(password.into()),
        token: None,
    }
}

/// A connection to `addr` from the local address `from` (any 127.x.y.z is
/// this machine's loopback): a second peer address without a second host.
fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Logs in on a raw stream; the reply's status.
fn login_status(stream: &mut TcpStream, login: &Login) -> u16 {
    let body = serde_json::to_vec(login).unwrap();
    stream
        .write_all(&request_frame(api::code::LOGIN, 1, &body).unwrap())
        .unwrap();
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let mut reply = vec![0u8; len - 6];
    stream.read_exact(&mut reply).unwrap();
    u16::from_le_bytes([header[4], header[5]])
}

/// Tries wrong passwords on one connection until it is closed (at most
/// `tries`); how many were answered `UNAUTHENTICATED` before that.
fn guess_until_closed(client: &mut Client, tries: usize) -> usize {
    let mut answered = 0;
    for guess in 0..tries {
        match client.login(&password(&format!("guess {guess}"))) {
            Err(error) if error.status() == Some(status::UNAUTHENTICATED) => answered += 1,
            Err(ClientError::Io(_)) => return answered, // closed by the server
            other => panic!("guess {guess}: {other:?}"),
        }
    }
    answered
}

/// The value of an unlabelled counter in the metrics text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse()
        .unwrap()
}

// ANCHOR: login_test
#[test]
fn login_guessing_is_cut_off_per_connection_and_per_address_and_logged_sparingly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rivulet.toml");
    std::fs::write(&file, USERS).unwrap();
    let data = dir.path().join("data");
    let per_peer = 500;
    let per_peer_text = per_peer.to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--max-login-failures",
        "5",
        "--max-login-failures-per-peer",
        &per_peer_text,
    ]
    .map(OsStr::new);
    let mut args = args.to_vec();
    args.extend([OsStr::new("--config"), file.as_os_str()]);
    args.extend([OsStr::new("--data"), data.as_os_str()]);
    // With [auth] the Kafka listener (no logins there) must be off.
    args.extend([OsStr::new("--kafka-listen"), OsStr::new("off")]);
    let broker = Broker::start(command(&args, &[]));
    let addr = broker.addr.to_string();

    // One connection trying 3,000 passwords gets five answers, then is closed.
    let mut guesser = Client::connect(&addr).unwrap();
    assert_eq!(guess_until_closed(&mut guesser, 3000), 5);
    assert!(guesser.is_closed_by_server(Duration::from_secs(10)));

    // New connections from the same address spend the address's budget,
    // five guesses each...
    let mut failures = 5;
    while failures < per_peer {
        let mut guesser = Client::connect(&addr).unwrap();
        failures += guess_until_closed(&mut guesser, 3000);
    }
    assert_eq!(failures, per_peer);
    // ...after which even the right password is refused from there, and
    // the connection closed,
    let mut late = Client::connect(&addr).unwrap();
    let error = late.login(&password("correct horse")).unwrap_err();
    assert_eq!(error.status(), Some(status::UNAUTHENTICATED), "{error}");
    assert!(
        error
            .to_string()
            .contains("too many failed logins from 127.0.0.1"),
        "{error}"
    );
    assert!(late.is_closed_by_server(Duration::from_secs(10)));
    // while another address logs in.
    let mut other = connect_from("127.0.0.2".parse().unwrap(), broker.addr);
    assert_eq!(login_status(&mut other, &password("correct horse")), 0);

    // Every refusal is counted...
    let (_, metrics) = http_get(broker.metrics_addr(), "/metrics");
    let counted = counter(&metrics, "rivulet_login_failures_total");
    assert_eq!(
        counted,
        per_peer as u64 + 1,
        "every refused login is counted"
    );
    // ...and the log has a line a second about them, not one per guess.
    let logs = broker.stop();
    let warned = logs
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("a login"))
        .count();
    eprintln!("{counted} refused logins, {warned} WARN lines about them");
    assert!(warned >= 1, "the failures are logged at all:\n{logs}");
    assert!(
        warned * 10 <= counted as usize,
        "{warned} WARN lines for {counted} refused logins:\n{logs}"
    );
    assert!(!logs.contains("guess "), "no secret reaches the log");
}
// ANCHOR_END: login_test
