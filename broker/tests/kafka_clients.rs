//! Real Kafka clients against `rivulet-server`'s Kafka listener: kcat
//! (librdkafka 2.0 from Debian), confluent-kafka (a current librdkafka) and
//! kafka-python (pure Python, negotiating its versions), installed by
//! `scripts/install-kafka-clients`. Each test starts its own server on free
//! ports over its own folder and checks what comes back, message by message:
//! keys, values, headers, CreateTime timestamps and offsets, across every
//! compression codec, the Rivulet CLI on the other side, and a SIGKILL.
//!
//! `RIVULET_KAFKA_DEBUG=protocol,broker cargo test -p rivulet-broker --test
//! kafka_clients -- --nocapture` shows the clients' requests.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod kafka_common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_common::{
    header_pairs, json_lines, kafka_server, kafka_server_with_segments, kcat, python_lines,
    require_clients, rivulet_ok, succeed, venv_python, workspace,
};
use serde_json::Value;

/// CreateTime of message 0 in the Python programs (ms; message i is this + i).
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;

/// librdkafka's RD_KAFKA_TIMESTAMP_CREATE_TIME.
const CONFLUENT_CREATE_TIME: i64 = 1;

fn now_ms() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_millis()).unwrap()
}

fn str_of<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn int_of(value: &Value, field: &str) -> i64 {
    value
        .get(field)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer {field} in {value}"))
}

/// The `{"delivered": {...}}` lines of a producer program, as
/// `message number -> (partition, offset)`.
fn deliveries(lines: &[Value]) -> BTreeMap<i64, (i64, i64)> {
    let mut delivered = BTreeMap::new();
    for line in lines {
        if let Some(report) = line.get("delivered") {
            let i = int_of(report, "i");
            let at = (int_of(report, "partition"), int_of(report, "offset"));
            assert!(
                delivered.insert(i, at).is_none(),
                "message {i} delivered twice"
            );
        }
    }
    delivered
}

/// How a Python program made its messages: message `i` is key `k<i>`
/// (none for every tenth when `keyless_tenth`), value `v<i>` and `pad`
/// bytes of `x`, headers `trace=abc` and `i=<i>`, CreateTime
/// TIMESTAMP_BASE + i, which the client calls timestamp type `create_time`.
struct Made {
    pad: usize,
    keyless_tenth: bool,
    create_time: i64,
}

/// Checks consumed messages (a consumer program's lines) against `count`
/// produced ones with the `delivered` positions: every message once, at the
/// partition and offset its producer was told, with its key, value,
/// headers and CreateTime, and in order within each partition.
fn check_consumed(
    what: &str,
    consumed: &[Value],
    delivered: &BTreeMap<i64, (i64, i64)>,
    count: i64,
    made: &Made,
) {
    assert_eq!(consumed.len() as i64, count, "{what}: messages consumed");
    let mut seen = BTreeMap::new();
    let mut last_in_partition: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for message in consumed {
        let value = str_of(message, "value").unwrap_or_else(|| panic!("{what}: {message}"));
        // The message's number, from its value ("v<i>" then padding).
        let i: i64 = value
            .strip_prefix('v')
            .map(|rest| rest.trim_end_matches('x'))
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a value not produced: {message}"));
        assert_eq!(
            value,
            format!("v{i}{}", "x".repeat(made.pad)),
            "{what}: value of message {i}"
        );
        let key = (!(made.keyless_tenth && i % 10 == 9)).then(|| format!("k{i}"));
        assert_eq!(
            str_of(message, "key").map(str::to_string),
            key,
            "{what}: key of message {i}: {message}"
        );
        let headers = [("trace", "abc".to_string()), ("i", i.to_string())]
            .map(|(name, value)| (name.to_string(), value));
        assert_eq!(
            header_pairs(message.get("headers")),
            headers,
            "{what}: headers of message {i}"
        );
        assert_eq!(
            int_of(message, "timestamp_type"),
            made.create_time,
            "{what}: timestamp type of message {i} (CreateTime expected): {message}"
        );
        assert_eq!(
            int_of(message, "timestamp"),
            TIMESTAMP_BASE + i,
            "{what}: CreateTime of message {i}"
        );
        let at = (int_of(message, "partition"), int_of(message, "offset"));
        assert_eq!(
            delivered.get(&i).copied(),
            Some(at),
            "{what}: message {i} is not where its producer was told it was"
        );
        assert!(seen.insert(i, at).is_none(), "{what}: message {i} twice");
        if let Some((offset, previous)) = last_in_partition.insert(at.0, (at.1, i)) {
            assert!(
                at.1 > offset && i > previous,
                "{what}: partition {} out of order: message {i} at {} after {previous} at {offset}",
                at.0,
                at.1
            );
        }
    }
    let numbers: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(numbers, (0..count).collect::<Vec<_>>(), "{what}: messages");
}

/// The real clients are there (or the failure names the script that
/// installs them), at the versions pinned in `broker/tests/kafka/requirements.txt`.
#[test]
fn kafka_clients_are_installed() {
    require_clients();
    let version = succeed("kcat -V", std::process::Command::new("kcat").arg("-V"), b"");
    assert!(version.contains("librdkafka"), "kcat -V: {version}");
    let installed = succeed(
        "pip freeze",
        std::process::Command::new(venv_python()).args([
            "-m",
            "pip",
            "freeze",
            "--disable-pip-version-check",
        ]),
        b"",
    )
    .to_lowercase();
    let requirements =
        std::fs::read_to_string(workspace().join("broker/tests/kafka/requirements.txt")).unwrap();
    for pin in requirements
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        assert!(
            installed.lines().any(|line| line == pin.to_lowercase()),
            "{pin} is not what target/kafka-clients/venv has ({installed}); {}",
            kafka_common::INSTALL_HINT
        );
    }
}

/// `kcat -L` sees the broker at the address it dialled and a topic created
/// beforehand with the Rivulet CLI, with its three partitions led by that
/// broker.
#[test]
fn kcat_lists_the_broker_and_its_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka) = kafka_server(dir.path(), &[]);
    rivulet_ok(
        server.addr(),
        &["topic", "create", "orders", "--partitions", "3"],
        b"",
    );

    let listing = succeed(
        "kcat -L -J",
        &mut kcat(kafka, &["-L", "-J", "-m", "30"]),
        b"",
    );
    let metadata: Value = serde_json::from_str(listing.trim()).unwrap();
    let brokers = metadata["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "brokers: {metadata}");
    assert_eq!(
        str_of(&brokers[0], "name"),
        Some(kafka.to_string().as_str()),
        "the broker's advertised address: {metadata}"
    );
    let broker_id = int_of(&brokers[0], "id");
    let topics = metadata["topics"].as_array().unwrap();
    let orders = topics
        .iter()
        .find(|topic| str_of(topic, "topic") == Some("orders"))
        .unwrap_or_else(|| panic!("no topic orders: {metadata}"));
    assert!(
        orders.get("error").is_none(),
        "topic orders has an error: {orders}"
    );
    let partitions = orders["partitions"].as_array().unwrap();
    let numbers: Vec<i64> = partitions.iter().map(|p| int_of(p, "partition")).collect();
    assert_eq!(numbers, [0, 1, 2], "partitions of orders: {orders}");
    for partition in partitions {
        assert_eq!(int_of(partition, "leader"), broker_id, "{partition}");
    }
    // The listing made nothing: no topic but the one created.
    let names: Vec<&str> = topics.iter().filter_map(|t| str_of(t, "topic")).collect();
    assert_eq!(names, ["orders"], "{metadata}");
}

/// The number: kcat produces 100,000 keyed messages with a header
/// to a topic it auto-creates, and consumes all of them back in order with
/// keys, header and a CreateTime between the start and the end of the
/// produce; the Rivulet CLI polls the same messages at the same offsets.
#[test]
fn kcat_round_trips_100k_keyed_messages_with_headers() {
    const COUNT: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    // kcat batches up to 10,000 of these messages (librdkafka's defaults):
    // 4 MiB segments hold such a batch whole.
    let (server, kafka) = kafka_server_with_segments(dir.path(), "4194304", &[]);
    let input: String = (0..COUNT).map(|i| format!("k{i}:v{i}\n")).collect();
    let before = now_ms();
    succeed(
        "kcat -P",
        &mut kcat(
            kafka,
            &[
                "-P",
                "-t",
                "demo",
                "-K:",
                "-H",
                "trace=abc",
                "-X",
                "acks=all",
            ],
        ),
        input.as_bytes(),
    );
    let after = now_ms();

    let consumed = succeed(
        "kcat -C",
        &mut kcat(
            kafka,
            &[
                "-C",
                "-t",
                "demo",
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%p\\t%o\\t%k\\t%s\\t%h\\t%T\\n",
            ],
        ),
        b"",
    );
    let lines: Vec<&str> = consumed.lines().collect();
    assert_eq!(lines.len(), COUNT, "messages kcat consumed");
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            fields[..5],
            [
                "0",
                &i.to_string(),
                &format!("k{i}"),
                &format!("v{i}"),
                "trace=abc"
            ],
            "message {i} (partition, offset, key, value, headers)"
        );
        let stamp: i64 = fields[5].parse().unwrap();
        assert!(
            (before..=after).contains(&stamp),
            "message {i}: CreateTime {stamp} is not within the produce ({before} to {after})"
        );
    }

    // The Rivulet CLI reads the same topic: Kafka's `demo` is Rivulet's
    // `demo` in stream `default`, keys and headers included.
    let mut next = 0;
    while next < COUNT {
        let polled = rivulet_ok(
            server.addr(),
            &[
                "--json",
                "poll",
                "demo",
                "--offset",
                &next.to_string(),
                "--count",
                "1000",
            ],
            b"",
        );
        let messages = json_lines(&polled);
        assert!(
            !messages.is_empty(),
            "rivulet poll from offset {next}: none"
        );
        for message in messages {
            let i = next;
            assert_eq!(int_of(&message, "offset"), i as i64, "{message}");
            assert_eq!(
                str_of(&message, "payload"),
                Some(format!("v{i}").as_str()),
                "{message}"
            );
            assert_eq!(
                str_of(&message, "key"),
                Some(format!("k{i}").as_str()),
                "rivulet poll: the key of offset {i}: {message}"
            );
            assert_eq!(
                header_pairs(message.get("headers")),
                [("trace".to_string(), "abc".to_string())],
                "rivulet poll: the headers of offset {i}: {message}"
            );
            next += 1;
        }
    }
}

/// confluent-kafka with acks=all and each compression codec: every message
/// comes back with its key, value, headers and the CreateTime it set, at
/// the offset its delivery report gave, over two auto-created partitions.
#[test]
fn confluent_kafka_round_trips_every_codec() {
    const COUNT: i64 = 400;
    const PAD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &["--kafka-default-partitions", "2"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let count = COUNT.to_string();
        let pad = PAD.to_string();
        let produced = python_lines(
            "confluent_client.py",
            kafka,
            &[
                "produce",
                "--topic",
                &topic,
                "--count",
                &count,
                "--pad",
                &pad,
                "--compression",
                codec,
                "--acks",
                "all",
            ],
        );
        let delivered = deliveries(&produced);
        assert_eq!(delivered.len() as i64, COUNT, "{codec}: delivery reports");
        let partitions: std::collections::BTreeSet<i64> =
            delivered.values().map(|(p, _)| *p).collect();
        assert_eq!(
            partitions.len(),
            2,
            "{codec}: keys spread over both partitions"
        );
        let consumed = python_lines(
            "confluent_client.py",
            kafka,
            &["consume", "--topic", &topic, "--count", &count],
        );
        let made = Made {
            pad: PAD,
            keyless_tenth: false,
            create_time: CONFLUENT_CREATE_TIME,
        };
        let what = format!("confluent-kafka {codec}");
        check_consumed(&what, &consumed, &delivered, COUNT, &made);
    }
}

/// kafka-python with no api_version hint works out the broker's versions
/// from ApiVersions, writes record batch v2 (headers need it), and reads
/// back every message, keyless ones included.
#[test]
fn kafka_python_negotiates_and_round_trips() {
    const COUNT: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let (_server, kafka) = kafka_server(dir.path(), &[]);
    let count = COUNT.to_string();
    let produced = python_lines(
        "kafka_python_client.py",
        kafka,
        &["produce", "--topic", "kp", "--count", &count],
    );
    let negotiated = &produced[0];
    let version: Vec<i64> = negotiated["api_version"]
        .as_array()
        .unwrap_or_else(|| panic!("first line: {negotiated}"))
        .iter()
        .map(|part| part.as_i64().unwrap())
        .collect();
    assert!(
        version.as_slice() >= [0, 11].as_slice(),
        "kafka-python took the broker for {version:?}, older than 0.11 (no record batch v2)"
    );
    assert_eq!(
        int_of(negotiated, "magic"),
        2,
        "record format: {negotiated}"
    );
    let delivered = deliveries(&produced);
    assert_eq!(delivered.len() as i64, COUNT, "acknowledged");

    let consumed = python_lines(
        "kafka_python_client.py",
        kafka,
        &["consume", "--topic", "kp", "--count", &count],
    );
    assert!(
        consumed[0].get("api_version").is_some(),
        "first line: {}",
        consumed[0]
    );
    let made = Made {
        pad: 0,
        keyless_tenth: true,
        // kafka-python's CreateTime is timestamp type 0.
        create_time: 0,
    };
    check_consumed("kafka-python", &consumed[1..], &delivered, COUNT, &made);
}

/// Messages sent with `rivulet send` (batches of 1000, round robin over two
/// partitions) are read by kcat at the partitions and offsets the CLI
/// reported.
#[test]
fn rivulet_send_is_read_by_kcat_at_the_same_offsets() {
    const COUNT: usize = 2500;
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka) = kafka_server(dir.path(), &[]);
    rivulet_ok(
        server.addr(),
        &["topic", "create", "sent", "--partitions", "2"],
        b"",
    );
    let input: String = (0..COUNT).map(|i| format!("m{i}\n")).collect();
    let sent = rivulet_ok(server.addr(), &["--json", "send", "sent"], input.as_bytes());
    // Each batch holds the next `count` lines, from `first_offset` on.
    let mut expected = BTreeMap::new();
    let mut line = 0;
    for batch in json_lines(&sent) {
        let partition = int_of(&batch, "partition");
        let first = int_of(&batch, "first_offset");
        for j in 0..int_of(&batch, "count") {
            expected.insert((partition, first + j), format!("m{line}"));
            line += 1;
        }
    }
    assert_eq!(line, COUNT, "rivulet send --json: {sent}");
    assert_eq!(
        expected
            .keys()
            .map(|(p, _)| *p)
            .collect::<std::collections::BTreeSet<_>>(),
        [0, 1].into(),
        "round robin over both partitions"
    );

    let consumed = succeed(
        "kcat -C",
        &mut kcat(
            kafka,
            &[
                "-C",
                "-t",
                "sent",
                "-o",
                "beginning",
                "-e",
                "-q",
                "-Z",
                "-f",
                "%p\\t%o\\t%K\\t%s\\n",
            ],
        ),
        b"",
    );
    let mut read = BTreeMap::new();
    for line in consumed.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "kcat line {line:?}");
        assert_eq!(
            fields[2], "-1",
            "a message sent with no key has a NULL key: {line}"
        );
        let at = (fields[0].parse().unwrap(), fields[1].parse().unwrap());
        assert!(
            read.insert(at, fields[3].to_string()).is_none(),
            "{at:?} twice"
        );
    }
    assert_eq!(read.len(), COUNT, "messages kcat consumed");
    assert_eq!(read, expected, "(partition, offset) -> message");
}

/// Writes one request: size, then `header` and `body`.
fn send_request(stream: &mut TcpStream, header: &[u8], body: &[u8]) {
    let size = i32::try_from(header.len() + body.len()).unwrap();
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(header);
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
}

/// A request header: v1 (key, version, correlation id, client id), or v2
/// (the same and empty tagged fields) when `flexible`.
fn request_header(key: i16, version: i16, correlation: i32, flexible: bool) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&key.to_be_bytes());
    header.extend_from_slice(&version.to_be_bytes());
    header.extend_from_slice(&correlation.to_be_bytes());
    let client = b"raw-test";
    header.extend_from_slice(&(client.len() as i16).to_be_bytes());
    header.extend_from_slice(client);
    if flexible {
        header.push(0);
    }
    header
}

/// Reads one response: its correlation id and the rest of it. A close or a
/// 30-second silence fails the test with `what`.
fn read_response(stream: &mut TcpStream, what: &str) -> (i32, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut size = [0; 4];
    stream.read_exact(&mut size).unwrap_or_else(|error| {
        panic!("{what}: no response ({error}): the connection was closed or went silent")
    });
    let size = usize::try_from(i32::from_be_bytes(size)).unwrap();
    assert!(size >= 4, "{what}: a response of {size} bytes");
    let mut frame = vec![0; size];
    stream.read_exact(&mut frame).unwrap();
    let correlation = i32::from_be_bytes(frame[..4].try_into().unwrap());
    (correlation, frame[4..].to_vec())
}

/// An ApiVersions response body in the v0 layout: its error code and the
/// advertised `key -> (min, max)`.
/// `what` names the request in failures.
fn api_versions_v0(body: &[u8], what: &str) -> (i16, BTreeMap<i16, (i16, i16)>) {
    let i16_at = |at: usize| i16::from_be_bytes(body[at..at + 2].try_into().unwrap());
    let error = i16_at(0);
    let count = body
        .get(2..6)
        .map(|count| i32::from_be_bytes(count.try_into().unwrap()));
    // v0 is the error code and the array, nothing after it: any other
    // length is another layout (a flexible one has a compact array length
    // and tagged fields), which clients decoding an error as v0 cannot read.
    let count = count
        .and_then(|count| usize::try_from(count).ok())
        .filter(|count| body.len() == 6 + 6 * count)
        .unwrap_or_else(|| {
            panic!("{what}: the response body is not the ApiVersions v0 layout: {body:02x?}")
        });
    let mut versions = BTreeMap::new();
    for n in 0..count {
        let at = 6 + 6 * n;
        versions.insert(i16_at(at), (i16_at(at + 2), i16_at(at + 4)));
    }
    (error, versions)
}

/// Asks ApiVersions v0 on `stream` and checks it is answered: the
/// connection is still usable.
fn still_usable(stream: &mut TcpStream, correlation: i32, after: &str) {
    send_request(stream, &request_header(18, 0, correlation, false), &[]);
    let (answered, body) = read_response(stream, &format!("ApiVersions v0 after {after}"));
    assert_eq!(answered, correlation, "ApiVersions v0 after {after}");
    let (error, versions) = api_versions_v0(&body, &format!("ApiVersions v0 after {after}"));
    assert_eq!(error, 0, "ApiVersions v0 after {after}");
    assert!(versions.contains_key(&18), "{versions:?}");
}

const UNSUPPORTED_VERSION: i16 = 35;

/// Versions outside those advertised are answered with UNSUPPORTED_VERSION
/// (35), never by closing the connection: ApiVersions one past its maximum
/// and v99 get error 35 with the supported list in the v0 layout (as Kafka
/// answers it, so a client can pick a version and ask again), a Metadata one past the advertised
/// maximum gets a response carrying error 35, and each time the same
/// connection answers an ApiVersions v0 afterwards.
#[test]
fn unsupported_versions_are_answered_with_error_35() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::rivulet_server(dir.path(), &[]);
    let mut stream = TcpStream::connect(server.kafka_addr().unwrap()).unwrap();

    // What the broker supports, asked at v0.
    send_request(&mut stream, &request_header(18, 0, 1, false), &[]);
    let (_, body) = read_response(&mut stream, "ApiVersions v0");
    let (error, versions) = api_versions_v0(&body, "ApiVersions v0");
    assert_eq!(error, 0, "ApiVersions v0: error code");
    for (key, name) in [
        (0, "Produce"),
        (1, "Fetch"),
        (2, "ListOffsets"),
        (3, "Metadata"),
        (8, "OffsetCommit"),
        (9, "OffsetFetch"),
        (10, "FindCoordinator"),
        (18, "ApiVersions"),
        (19, "CreateTopics"),
        (20, "DeleteTopics"),
    ] {
        assert!(
            versions.contains_key(&key),
            "{name} ({key}) is not in the supported list: {versions:?}"
        );
    }
    assert!(
        versions[&18].1 >= 3,
        "ApiVersions up to v3 at least: {versions:?}"
    );

    // ApiVersions one past the advertised maximum (what a client newer than
    // the broker sends first: kafka-python 3 asks v4) and v99, header v2 and
    // a v3-style body: error 35 and the same list, in the v0 layout.
    let body = [&[9u8][..], b"raw-test", &[2], b"1", &[0]].concat();
    for (version, correlation) in [(versions[&18].1 + 1, 7), (99, 17)] {
        let what = format!("ApiVersions v{version}");
        send_request(
            &mut stream,
            &request_header(18, version, correlation, true),
            &body,
        );
        let (answered, body) = read_response(&mut stream, &what);
        assert_eq!(answered, correlation, "{what}: correlation id");
        let (error, listed) = api_versions_v0(&body, &what);
        assert_eq!(error, UNSUPPORTED_VERSION, "{what}: error code");
        assert_eq!(listed, versions, "{what}: the supported list");
        still_usable(&mut stream, correlation + 1, &what);
    }

    // Metadata one past its advertised maximum; the body is what that
    // version would carry (all topics, no auto-creation).
    let version = versions[&3].1 + 1;
    let flexible = version >= 9;
    let mut body = Vec::new();
    if flexible {
        body.push(0); // topics: null (compact)
    } else {
        body.extend_from_slice(&(-1i32).to_be_bytes()); // topics: null
    }
    body.push(0); // allow_auto_topic_creation
    if version <= 10 {
        body.push(0); // include_cluster_authorized_operations
    }
    body.push(0); // include_topic_authorized_operations
    if flexible {
        body.push(0); // tagged fields
    }
    send_request(&mut stream, &request_header(3, version, 9, flexible), &body);
    let what = format!("Metadata v{version}");
    let (correlation, body) = read_response(&mut stream, &what);
    assert_eq!(correlation, 9, "{what}: correlation id");
    assert!(
        body.windows(2)
            .any(|pair| pair == UNSUPPORTED_VERSION.to_be_bytes()),
        "{what}: no error 35 in the response {body:?}"
    );
    still_usable(&mut stream, 10, &what);
}

/// A request of a key the broker does not advertise at all (DeleteGroups:
/// a group's offsets are its consumer's, kept with their partitions) is
/// answered the same way, not by a close.
#[test]
fn unadvertised_request_keys_are_answered_not_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::rivulet_server(dir.path(), &[]);
    let mut stream = TcpStream::connect(server.kafka_addr().unwrap()).unwrap();
    // DeleteGroups v0: an array of one group name.
    let string = |text: &str| [&(text.len() as i16).to_be_bytes()[..], text.as_bytes()].concat();
    let body = [1i32.to_be_bytes().to_vec(), string("g")].concat();
    send_request(&mut stream, &request_header(42, 0, 21, false), &body);
    let (correlation, body) = read_response(&mut stream, "DeleteGroups v0");
    assert_eq!(correlation, 21, "DeleteGroups v0: correlation id");
    assert!(
        body.windows(2)
            .any(|pair| pair == UNSUPPORTED_VERSION.to_be_bytes()),
        "DeleteGroups v0: no error 35 in the response {body:?}"
    );
    still_usable(&mut stream, 22, "DeleteGroups v0");
}

/// Everything acknowledged with acks=all survives a SIGKILL: confluent-kafka
/// produces, the server is killed the moment the producer has its last
/// acknowledgement, and the server started again on the same folder serves
/// every message where the acknowledgement said.
#[test]
fn acks_all_survives_a_sigkill() {
    const COUNT: i64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let (server, kafka) = kafka_server(dir.path(), &["--kafka-default-partitions", "2"]);
    let count = COUNT.to_string();
    let produced = python_lines(
        "confluent_client.py",
        kafka,
        &[
            "produce", "--topic", "durable", "--count", &count, "--acks", "all",
        ],
    );
    let delivered = deliveries(&produced);
    assert_eq!(delivered.len() as i64, COUNT, "acknowledged");
    server.kill().unwrap();

    let (_server, kafka) = kafka_server(dir.path(), &["--kafka-default-partitions", "2"]);
    let consumed = python_lines(
        "confluent_client.py",
        kafka,
        &["consume", "--topic", "durable", "--count", &count],
    );
    let made = Made {
        pad: 0,
        keyless_tenth: false,
        create_time: CONFLUENT_CREATE_TIME,
    };
    check_consumed("after SIGKILL", &consumed, &delivered, COUNT, &made);
}
