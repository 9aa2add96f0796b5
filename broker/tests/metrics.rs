//! The metrics endpoint of the real `rivulet-server`, scraped with a plain
//! `TcpStream` GET and read by a small strict parser of the Prometheus text
//! format (written here, so the test does not trust the code it checks):
//! every line is a comment or `name{labels} value`, every sample's metric
//! has a TYPE, no sample appears twice. Then the counters must equal what
//! the test sent and polled, byte for byte, and the fsync histogram's
//! buckets must be cumulative.
//!
//! After a deliberate change to the list of metrics:
//! `RIVULET_BLESS=1 cargo test -p rivulet-broker --test metrics` rewrites the
//! generated page of the book.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;
mod operator;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use operator::{Broker, command, http_get};
use rivulet_broker::api::{self, code};
use rivulet_broker::metrics::{self, METRICS};
use stage3_tcp_server::FramedClient;
use stage4_partitions::protocol::record::RECORD_HEADER_LEN;
use stage4_partitions::{Client, Partitioning};

/// One sample: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `key="value",...` with `\\`, `\"` and `\n` escapes.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or(format!("no =\" in {rest:?}"))?;
        if !is_name(key) || key.starts_with("__") {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {text:?}")),
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &after[end + 1..];
        if let Some(more) = rest.strip_prefix(',') {
            rest = more;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label: {rest:?}"));
        }
    }
    Ok(labels)
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and
/// `_count` samples belong to the histogram.
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|kind| kind == "histogram")
        {
            return base;
        }
    }
    name
}

/// Parses the text exposition format 0.0.4, strictly.
fn parse_exposition(text: &str) -> Result<(Vec<Sample>, HashMap<String, String>), String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    if !text.ends_with('\n') {
        return Err("the last line must end with a newline".into());
    }
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("bad type {kind:?}"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(format!("TYPE of {name} twice"));
                    }
                    if samples.iter().any(|s| family(&s.name, &types) == name) {
                        return Err(format!("TYPE of {name} after its samples"));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name) => {}
                (Some("TYPE" | "HELP"), ..) => return Err(format!("bad comment {line:?}")),
                _ => {} // any other comment
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or(format!("no closing brace: {line:?}"))?;
                (name, parse_labels(labels)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !is_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        if !types.contains_key(family(name, &types)) {
            return Err(format!("{name} has no TYPE"));
        }
        let sample = Sample {
            name: name.to_string(),
            labels,
            value: parse_value(value)?,
        };
        if samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(format!("sample twice: {line:?}"));
        }
        samples.push(sample);
    }
    Ok((samples, types))
}

#[test]
fn metrics_parser_refuses_what_the_format_does_not_allow() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\"} 3\n";
    let (samples, _) = parse_exposition(good).unwrap();
    assert_eq!(samples[0].labels["x"], "q\"");
    for bad in [
        "a 1\n",                                   // no TYPE
        "# TYPE a counter\na{x=\"1} 1\n",          // unterminated label
        "# TYPE a counter\na{x=\"1\"} one\n",      // bad value
        "# TYPE a counter\na 1\na 2\n",            // twice
        "# TYPE a counter\na 1",                   // no final newline
        "# TYPE a counter\n1a 1\n",                // bad name
        "# TYPE a counter\na{x=\"\\q\"} 1\n",      // bad escape
        "# TYPE a counter\n# TYPE a gauge\na 1\n", // TYPE twice
    ] {
        assert!(parse_exposition(bad).is_err(), "{bad:?}");
    }
}

/// The one sample named `name` with `labels` (`[("topic", "orders")]`).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {samples:#?}"))
        .value
}

fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (samples, types) = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}:\n{body}"));
    for info in METRICS {
        assert_eq!(
            types.get(info.name).map(String::as_str),
            Some(info.kind),
            "{}",
            info.name
        );
    }
    samples
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates a named topic with stage 6's JSON command.
async fn create_named(addr: SocketAddr, name: &str, id: u32, partitions: u32) {
    let request = api::CreateTopic {
        stream: None,
        name: name.to_string(),
        id: Some(id),
        partitions,
        settings: api::TopicSettings::default(),
    };
    let mut framed = FramedClient::connect(addr).await.unwrap();
    let body = serde_json::to_vec(&request).unwrap();
    let (status, reply) = framed
        .request(code::CREATE_TOPIC_NAMED, &body)
        .await
        .unwrap();
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&reply));
}

/// Message `n`'s payload: sizes from 1 to 300 bytes.
fn payload(n: u64) -> Vec<u8> {
    vec![b'a' + (n % 26) as u8; 1 + (n * 37 % 300) as usize]
}

fn start(dir: &Path, fsync: &str) -> Broker {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--fsync",
        fsync,
        "--segment-size",
        "262144",
        "--direct-io",
        "on",
        "--data",
    ];
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.push(dir.as_os_str());
    Broker::start(command(&args, &[]))
}

#[test]
fn metrics_counters_equal_what_was_produced_and_polled() {
    const CONNECTIONS: u64 = 4;
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 7;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "always");
    let metrics = broker.metrics_addr();
    let addr = broker.addr;

    let before = scrape(metrics);
    assert_eq!(
        value(&before, "rivulet_connections_accepted_total", &[]),
        0.0
    );
    assert_eq!(value(&before, "rivulet_fsync_seconds_count", &[]), 0.0);

    let (sent_bytes, polled) = runtime().block_on(async move {
        create_named(addr, "orders", 7, 4).await;
        create_named(addr, "audit.log-2", 8, 1).await;
        let mut producers = Vec::new();
        for connection in 0..CONNECTIONS {
            producers.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await.unwrap();
                let mut bytes = 0;
                for batch in 0..BATCHES {
                    let first = (connection * BATCHES + batch) * PER_BATCH;
                    let messages: Vec<_> = (first..first + PER_BATCH)
                        .map(|id| (id, payload(id)))
                        .collect();
                    bytes += messages
                        .iter()
                        .map(|(_, p)| (RECORD_HEADER_LEN + p.len()) as u64)
                        .sum::<u64>();
                    let partition = Partitioning::Explicit((batch % 4) as u32);
                    client.produce(7, partition, messages).await.unwrap();
                }
                bytes
            }));
        }
        let mut sent_bytes = 0;
        for producer in producers {
            sent_bytes += producer.await.unwrap();
        }
        // Poll everything back, a few records per poll.
        let mut client = Client::connect(addr).await.unwrap();
        let mut polled = (0u64, 0u64);
        for partition in 0..4 {
            let mut offset = 0;
            loop {
                let records = client.poll(7, partition, offset, 5).await.unwrap();
                if records.is_empty() {
                    break;
                }
                offset += records.len() as u64;
                for record in &records {
                    polled.0 += 1;
                    polled.1 += (RECORD_HEADER_LEN + record.payload.len()) as u64;
                }
            }
        }
        (sent_bytes, polled)
    });

    let samples = scrape(metrics);
    let orders = [("topic", "orders")];
    let messages = (CONNECTIONS * BATCHES * PER_BATCH) as f64;
    assert_eq!(
        value(&samples, "rivulet_messages_in_total", &orders),
        messages
    );
    assert_eq!(
        value(&samples, "rivulet_bytes_in_total", &orders),
        sent_bytes as f64
    );
    assert_eq!(polled.0 as f64, messages, "the test polled everything back");
    assert_eq!(
        value(&samples, "rivulet_messages_out_total", &orders),
        messages
    );
    assert_eq!(
        value(&samples, "rivulet_bytes_out_total", &orders),
        polled.1 as f64
    );
    assert_eq!(
        polled.1, sent_bytes,
        "records are served as they were stored"
    );
    // A topic without traffic is listed, at zero.
    let audit = [("topic", "audit.log-2")];
    assert_eq!(value(&samples, "rivulet_messages_in_total", &audit), 0.0);
    // Two creates, the producers and the poller.
    let accepted = (2 + CONNECTIONS + 1) as f64;
    assert_eq!(
        value(&samples, "rivulet_connections_accepted_total", &[]),
        accepted
    );
    assert_eq!(
        value(&samples, "rivulet_connections_refused_total", &[]),
        0.0
    );
    // One inbox gauge per shard (its value is whatever was waiting then).
    for shard in ["0", "1"] {
        value(&samples, "rivulet_shard_queue_depth", &[("shard", shard)]);
    }
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "rivulet_shard_queue_depth" && s.labels["shard"] == "2")
    );
    assert!(value(&samples, "rivulet_uptime_seconds", &[]) > 0.0);

    // `always`: at least one fsync per produce request.
    let count = value(&samples, "rivulet_fsync_seconds_count", &[]);
    assert!(count >= (CONNECTIONS * BATCHES) as f64, "{count} fsyncs");
    assert!(value(&samples, "rivulet_fsync_seconds_sum", &[]) > 0.0);
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == "rivulet_fsync_seconds_bucket")
        .map(|s| (parse_value(&s.labels["le"]).unwrap(), s.value))
        .collect();
    assert_eq!(buckets.len(), metrics::FSYNC_BUCKETS.len() + 1);
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));

    broker.stop();
}

#[test]
fn metrics_connections_gauge_follows_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "every-batch");
    let metrics = broker.metrics_addr();
    let open: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(broker.addr).unwrap())
        .collect();
    wait_for(metrics, "rivulet_connections", 3.0);
    drop(open);
    wait_for(metrics, "rivulet_connections", 0.0);
    broker.stop();
}

/// Scrapes until `name` (no labels) is `expected`: a connection is counted
/// when its shard accepts it, which is after the client's connect returns.
fn wait_for(metrics: SocketAddr, name: &str, expected: f64) {
    common::eventually(&format!("{name} is {expected}"), || {
        value(&scrape(metrics), name, &[]) == expected
    });
}

#[test]
fn metrics_endpoint_answers_404_and_survives_bad_scrapers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "every-batch");
    let metrics = broker.metrics_addr();
    assert!(http_get(metrics, "/").0.starts_with("HTTP/1.1 404"));
    assert!(http_get(metrics, "/metricsx").0.starts_with("HTTP/1.1 404"));
    // Garbage, a huge head, and a client that connects and says nothing.
    let mut junk = TcpStream::connect(metrics).unwrap();
    junk.write_all(b"\x00\x01\x02 not http\r\n\r\n").unwrap();
    drop(junk);
    let mut huge = TcpStream::connect(metrics).unwrap();
    let _ = huge.write_all(&vec![b'a'; 1 << 20]);
    drop(huge);
    let silent = TcpStream::connect(metrics).unwrap();
    // Still served, and the broker still serves its clients.
    scrape(metrics);
    drop(silent);
    runtime().block_on(async {
        let mut client = Client::connect(broker.addr).await.unwrap();
        client.create_topic(1, 1).await.unwrap();
        let produced = client
            .produce(
                1,
                Partitioning::Explicit(0),
                vec![(1, b"still here".to_vec())],
            )
            .await
            .unwrap();
        assert_eq!(produced.count, 1);
    });
    broker.stop();
}

#[test]
fn metrics_reference_page_matches_the_list_in_code() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/generated/metrics-reference.md");
    let text = metrics::reference_markdown();
    if std::env::var_os("RIVULET_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from broker/src/metrics.rs \
         (RIVULET_BLESS=1 cargo test -p rivulet-broker --test metrics rewrites it)",
        path.display()
    );
}

#[test]
fn metrics_group_gauges_follow_members_rebalances_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), "always");
    let metrics = broker.metrics_addr();
    runtime().block_on(create_named(broker.addr, "orders", 1, 2));
    let addr = broker.addr.to_string();
    let mut client = rivulet_client::Client::connect(&addr).unwrap();
    let payloads: Vec<Vec<u8>> = (0..10).map(payload).collect();
    client
        .produce(1, rivulet_client::Partitioning::Explicit(0), payloads)
        .unwrap();
    let join = |client: &mut rivulet_client::Client, member: Option<String>| {
        client
            .join_group(&api::JoinGroup {
                group: "billing".to_string(),
                topic: api::TopicRef::Name("orders".to_string()),
                session_timeout_ms: 30_000,
                member,
                client_id: None,
            })
            .unwrap()
    };
    // One member: one rebalance. It commits 4 of partition 0's 10 records.
    let first = join(&mut client, None);
    client
        .commit_offset(&api::CommitOffset {
            group: "billing".to_string(),
            member: first.member.clone(),
            generation: first.generation,
            topic: api::TopicRef::Name("orders".to_string()),
            partition: 0,
            offset: 4,
        })
        .unwrap();
    let group = [("group", "billing")];
    let at = |name: &str, labels: &[(&str, &str)]| value(&scrape(metrics), name, labels);
    common::eventually("the group gauges", || {
        at("rivulet_group_members", &group) == 1.0
    });
    assert_eq!(at("rivulet_group_rebalances_total", &group), 1.0);
    let lag = [
        ("group", "billing"),
        ("topic", "orders"),
        ("partition", "0"),
    ];
    assert_eq!(at("rivulet_group_lag", &lag), 6.0);
    // A second member joins (the first joins again after its heartbeat says
    // so): two members, a second rebalance completed in a join, not a tick.
    let second_addr = addr.clone();
    let second = std::thread::spawn(move || {
        let mut other = rivulet_client::Client::connect(&second_addr).unwrap();
        join(&mut other, None)
    });
    common::eventually("the group gauges", || {
        client
            .heartbeat("billing", &first.member, first.generation)
            .is_err()
    });
    let again = join(&mut client, Some(first.member.clone()));
    let other = second.join().unwrap();
    assert_eq!(again.generation, other.generation);
    common::eventually("the group gauges", || {
        at("rivulet_group_members", &group) == 2.0
    });
    assert_eq!(at("rivulet_group_rebalances_total", &group), 2.0);
    broker.stop();
}
