//! The Kafka listener against the native protocol, on `rivulet-server`, in
//! one run:
//!
//! - **paths**: the same workload (producers, consumers, partitions, message
//!   size, batch, fsync policy) through the server's native protocol
//!   (stage 4's requests, [`RemoteTarget`]) and through its Kafka listener
//!   (Produce and Fetch, [`KafkaTarget`]), in interleaved rounds on a fresh
//!   topic each; each path keeps its median round, and the ratio of the two
//!   is taken within the run. Twice, at the two promises the paths share:
//!   answered once appended (fsync `every-batch`, the broker's default, whose
//!   answer to a produce of 100 messages comes before the sync of its write
//!   batch; Kafka acks=1, which the listener answers the same way), and
//!   answered once synced (fsync `always`; Kafka acks=all, which the
//!   listener answers only after a sync whatever the policy). Setting
//!   `every-batch` beside acks=all would compare a sync per request with
//!   none: the disk's figure, not the protocol's;
//! - **cost**: where the difference goes, CPU time per batch (criterion) of
//!   what the Kafka path does and the native path does not, through the
//!   listener's own functions: decoding a produce request, decoding and
//!   translating its record batch into Rivulet records, building a fetch
//!   response's batch from stored records and the response frame around it;
//!   beside the native path's own work on the same batch (walking and
//!   stamping its records) and a plain copy of the batch's bytes.
//!
//! `cargo bench -p bench --bench kafka` writes
//! `benches/results/<profile>/kafka.json` (`cargo run -p bench --bin publish`
//! turns it into `book/src/generated/kafka.md` and `kafka-details.md`);
//! under `cargo test` it runs a tiny version as a smoke test and writes
//! nothing. The server is the `rivulet-server` binary of this build, a
//! child process; when measuring it is built (release) first, so it is
//! never stale.

// A benchmark that cannot build its input has nothing to report: it stops there.
#![allow(clippy::expect_used)]

mod common;

use std::hint::black_box;

use anyhow::Context;
use bench::loadgen::kafka::{Acks, encode_request, produce_request, records_from};
use bench::loadgen::{Figures, KafkaTarget, LoadConfig, RemoteTarget, Stop, Target, Warmup, run};
use bench::results::{Row, RowKind, RowSpec, Suite};
use bytes::{Buf, Bytes, BytesMut};
use common::servers::{Server, build_release_server};
use criterion::BatchSize;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestKind, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use rivulet_broker::kafka::connection::{Decoded, decode};
use rivulet_broker::kafka::translate::{
    Limits, batch_from_records, records_from_batch, stored_records,
};
use rivulet_broker::process::server_binary;
use rivulet_datasets::{MessageSize, Workload};
use stage4_partitions::Partitioning;
use stage4_partitions::protocol::record::{Record, encode_records};
use stage4_partitions::protocol::{Request, Response, code};
use stage6_broker::storage::record::{self, Contents};

/// Messages per produce request, and per poll.
const BATCH: u32 = 100;
/// Segment size: small, so a run rolls segments as a long-lived broker does.
const SEGMENT_SIZE: u64 = 16 << 20;
/// Shards of the server: one per core of the development machine.
const SHARDS: u32 = 2;
/// The native runs' topic ids, one a round from here: far above the ids
/// the server gives topics a Kafka client creates (the lowest free one), so
/// a native run never lands in a Kafka run's topic.
const NATIVE_TOPICS: u32 = 1_000_000;
/// Interleaved rounds per path when measuring; the median is kept.
const ROUNDS: usize = 5;
/// The Produce version of the cost group's request (the run's is printed
/// and written into the results).
const PRODUCE_VERSION: i16 = 9;
/// The Fetch version of the cost group's response.
const FETCH_VERSION: i16 = 12;
/// A fixed producer time for the cost group's records, ms.
const CREATE_TIME_MS: i64 = 1_700_000_000_000;

/// A promise both paths make, and the settings that make it.
#[derive(Debug, Clone, Copy)]
struct Pairing {
    /// The name of its groups: `paths-<name>`, `rounds-<name>`.
    name: &'static str,
    /// The server's fsync policy.
    fsync: &'static str,
    /// The Kafka path's acks.
    acks: Acks,
    /// What the native path's answer promises under `fsync`.
    native: &'static str,
}

const PAIRINGS: [Pairing; 2] = [
    Pairing {
        name: "appended",
        fsync: "every-batch",
        acks: Acks::Leader,
        native: "native protocol: answered once the partition has appended the records; \
                 synced with their write batch (1000 records or 1 MiB) or the saver's next run",
    },
    Pairing {
        name: "synced",
        fsync: "always",
        acks: Acks::All,
        native: "native protocol: answered once the records are synced to disk",
    },
];

/// The two doors into the same server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Native,
    Kafka,
}

impl Path {
    fn id(self) -> &'static str {
        match self {
            Path::Native => "native",
            Path::Kafka => "kafka",
        }
    }
}

/// `rivulet-server` with both ports, this bench's shards and segments, and
/// fsync policy `fsync`.
fn start_server(binary: &std::path::Path, fsync: &str) -> anyhow::Result<Server> {
    let (shards, segment_size) = (SHARDS.to_string(), SEGMENT_SIZE.to_string());
    Server::start(
        binary,
        &[
            "--kafka-listen",
            "127.0.0.1:0",
            "--shards",
            shards.as_str(),
            "--fsync",
            fsync,
            "--segment-size",
            segment_size.as_str(),
        ],
    )
}

/// What one round of one path measured.
struct Measured {
    path: Path,
    round: usize,
    figures: Figures,
    durability: String,
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let workload = Workload::load("quick")?;
    let size = workload.fixed_size()?;
    let payload = workload.payloads().payload(0, size as usize);
    let mut suite = Suite::new("kafka", &workload);

    let (messages, rounds) = if measuring {
        (10 * workload.messages, ROUNDS)
    } else {
        (2_000, 1)
    };
    let config = LoadConfig {
        producers: 2,
        consumers: 2,
        partitions: 2,
        message_size: MessageSize::Fixed(size),
        payload: workload.payload,
        batch: BATCH,
        poll_batch: BATCH,
        stop: Stop::Messages(messages),
        warmup: Warmup::Messages(messages / 10),
        seed: workload.seed,
        // A path whose consumers fall behind still finishes its run (and
        // its consume rate says how far behind); a stuck one fails.
        drain_timeout: std::time::Duration::from_secs(60),
        ..LoadConfig::default()
    };
    // What one record produced through the listener counts against a
    // fetch's byte limit there: its stored size (the listener keeps each
    // record's CreateTime, so it is stored as an extended record).
    let stored_len = record::encoded_len(&Contents {
        create_time: Some(CREATE_TIME_MS),
        ..Contents::plain(&payload)
    });
    let stored_len = u32::try_from(stored_len)?;

    if measuring {
        build_release_server()?;
    }
    let binary = server_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for pairing in PAIRINGS {
        let server = start_server(&binary, pairing.fsync)?;
        let (native_addr, kafka_addr) = (server.addr()?, server.kafka_addr()?);
        let versions =
            runtime.block_on(KafkaTarget::new("kafka", kafka_addr, "versions", "").versions())?;
        eprintln!(
            "rivulet-server, fsync {}: native {native_addr}, Kafka {kafka_addr} (Produce v{}, \
             Fetch v{}, acks={})",
            pairing.fsync,
            versions.produce,
            versions.fetch,
            pairing.acks.code()
        );
        // Rounds alternate which path goes first, so neither always runs on
        // a server (and a disk) the other has just warmed or filled. Each
        // run has a topic of its own: the load generator reads back from
        // offset 0.
        let mut measured: Vec<Measured> = Vec::new();
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Path::Native, Path::Kafka]
            } else {
                [Path::Kafka, Path::Native]
            };
            for path in order {
                let progress = indicatif::ProgressBar::hidden();
                let (figures, durability) = runtime.block_on(async {
                    match path {
                        Path::Native => {
                            let target = RemoteTarget::new(
                                "rivulet-server/native",
                                native_addr,
                                NATIVE_TOPICS + round as u32,
                                &format!("{} (fsync {})", pairing.native, pairing.fsync),
                            );
                            let figures = run(&target, &config, &progress).await?.figures;
                            anyhow::Ok((figures, target.durability()))
                        }
                        Path::Kafka => {
                            let target = KafkaTarget::new(
                                "rivulet-server/kafka",
                                kafka_addr,
                                &format!("kafka-bench-{round}"),
                                &format!("fsync {}", pairing.fsync),
                            )
                            .with_acks(pairing.acks)
                            .with_fetch_record_bytes(stored_len);
                            let figures = run(&target, &config, &progress).await?.figures;
                            anyhow::Ok((figures, target.durability()))
                        }
                    }
                })?;
                eprintln!(
                    "{} round {round} {}: produce {:.0} msg/s, p99 {} µs; consume {:.0} msg/s, \
                     {} empty polls; end to end p99 {} µs",
                    pairing.name,
                    path.id(),
                    figures.producer.messages_per_s,
                    figures.producer.latency.p99 / 1000,
                    figures.consumer.messages_per_s,
                    figures.empty_polls,
                    figures.end_to_end.p99 / 1000,
                );
                measured.push(Measured {
                    path,
                    round,
                    figures,
                    durability,
                });
            }
        }
        // The server stops (and syncs) before the next one starts.
        drop(server);
        let iteration = format!(
            "one message of {size} bytes on one rivulet-server ({SHARDS} shards, fsync {}, {} MiB \
             segments): 2 producers and 2 consumers on 2 partitions, produce requests of {BATCH} \
             messages (Kafka: one record batch, Produce v{}, acks={}) and polls of {BATCH} \
             (Kafka: Fetch v{}), {messages} messages a round; the median of {rounds} interleaved \
             rounds by producer throughput (the time range: fastest and slowest round); latency \
             per request, send to answer",
            pairing.fsync,
            SEGMENT_SIZE >> 20,
            versions.produce,
            if pairing.acks == Acks::All {
                "all"
            } else {
                "1"
            },
            versions.fetch,
        );
        record_pairing(&mut suite, pairing, &iteration, &measured, size);
    }

    cost_group(&mut suite, &workload, size)?;

    if measuring && let Some(path) = suite.finish(&bench::bench_data_dir())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Two groups per pairing: each path's median round (`paths-<name>`), and
/// every round (`rounds-<name>`).
fn record_pairing(
    suite: &mut Suite,
    pairing: Pairing,
    iteration: &str,
    measured: &[Measured],
    size: u32,
) {
    let row = |id: String, durability: &str, side: &bench::loadgen::Side| Row {
        id,
        kind: RowKind::Stage,
        durability: durability.to_string(),
        limit: None,
        bytes_per_iter: u64::from(size),
        ns_per_iter: 1e9 / side.messages_per_s.max(1e-9),
        ns_low: None,
        ns_high: None,
        latency: Some(side.latency),
        series: None,
        x: None,
    };
    suite.custom_group(&format!("paths-{}", pairing.name), iteration, None);
    for path in [Path::Native, Path::Kafka] {
        let rounds: Vec<&Measured> = measured.iter().filter(|m| m.path == path).collect();
        let Some(median) = median_by_producer(&rounds) else {
            continue;
        };
        for side in ["producer", "consumer"] {
            let pick = |m: &Measured| -> bench::loadgen::Side {
                if side == "producer" {
                    m.figures.producer
                } else {
                    m.figures.consumer
                }
            };
            let rates = rounds.iter().map(|m| pick(m).messages_per_s);
            let (slowest, fastest) = rates.fold((f64::MAX, 0.0f64), |(lo, hi), rate| {
                (lo.min(rate), hi.max(rate))
            });
            let mut row = row(
                format!("{}-{side}", path.id()),
                &median.durability,
                &pick(median),
            );
            row.ns_low = Some(1e9 / fastest.max(1e-9));
            row.ns_high = Some(1e9 / slowest.max(1e-9));
            suite.record(row);
        }
    }
    suite.custom_group(
        &format!("rounds-{}", pairing.name),
        &format!(
            "one message, as in `paths-{}`: every round of both paths, in the order run (a \
             round's Kafka and native runs are the same-run comparison)",
            pairing.name
        ),
        None,
    );
    for m in measured {
        for (side, figures) in [
            ("producer", &m.figures.producer),
            ("consumer", &m.figures.consumer),
        ] {
            suite.record(row(
                format!("{}-{side}-{}", m.path.id(), m.round),
                &m.durability,
                figures,
            ));
        }
    }
}

/// The round with the median producer throughput (the lower middle one of
/// an even count).
fn median_by_producer<'m>(rounds: &[&'m Measured]) -> Option<&'m Measured> {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| {
        a.figures
            .producer
            .messages_per_s
            .total_cmp(&b.figures.producer.messages_per_s)
    });
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

/// The inputs of the cost group: one batch of `BATCH` messages of the
/// workload's payloads, as each path receives and serves it.
struct Inputs {
    /// A Kafka produce request's frame after its length: header and body.
    produce_frame: Bytes,
    /// Its record batch.
    kafka_batch: Bytes,
    /// The same messages as the native path receives them: Rivulet records
    /// (stage 4's), offsets and timestamps 0, for the partition to stamp.
    native_records: Vec<u8>,
    /// The messages as the Kafka path stores them (translated, stamped):
    /// what a fetch reads back.
    stored: Vec<u8>,
    /// The payloads, as the load generator holds them.
    messages: Vec<Vec<u8>>,
    /// A native poll's answer body with the messages (count, then stage
    /// 4's records, stamped).
    native_poll_body: Vec<u8>,
}

fn inputs(workload: &Workload, size: u32) -> anyhow::Result<Inputs> {
    let payloads = workload.payloads();
    let messages: Vec<Vec<u8>> = (0..u64::from(BATCH))
        .map(|n| payloads.payload(n, size as usize))
        .collect();
    let topic = TopicName(StrBytes::from_static_str("bench"));
    let request = produce_request(&topic, 0, &messages, Acks::All, CREATE_TIME_MS)?;
    let kafka_batch = request.topic_data[0].partition_data[0]
        .records
        .clone()
        .context("records")?;
    let mut frame = BytesMut::new();
    encode_request(&mut frame, &request, PRODUCE_VERSION, 1)?;
    let mut produce_frame = frame.freeze();
    produce_frame.advance(4);
    let mut native_records = Vec::new();
    for (id, message) in (0u64..).zip(&messages) {
        record::encode(&mut native_records, 0, 0, id, message);
    }
    let mut stored = records_from_batch(&kafka_batch, limits())?.records;
    let extents = record::walk(&stored)?;
    record::stamp(&mut stored, &extents, 1_000, 1_700_000_000_000_000);
    let mut native_poll_body = Vec::new();
    encode_records(
        &mut native_poll_body,
        messages.iter().enumerate().map(|(n, m)| {
            let n = n as u64;
            (1_000 + n, 1_700_000_000_000_000, n, m.as_slice())
        }),
    );
    Ok(Inputs {
        produce_frame,
        kafka_batch,
        native_records,
        stored,
        messages,
        native_poll_body,
    })
}

/// The listener's limit on an inflated batch: its default frame limit.
fn limits() -> Limits {
    Limits {
        max_inflated: 16 << 20,
    }
}

/// (a): the listener's decode of a produce frame (header and request; the
/// record batch stays bytes). The number of partitions, so nothing is
/// optimized away.
fn decode_produce(frame: &Bytes) -> usize {
    let Decoded::Request { request, .. } = decode(frame.clone()) else {
        panic!("not a request");
    };
    match *request {
        RequestKind::Produce(produce) => produce.topic_data[0].partition_data.len(),
        _ => panic!("not a produce request"),
    }
}

/// (c): a fetch's batch from stored records, as the listener builds it.
fn fetch_batch(stored: &[u8]) -> Bytes {
    let records = stored_records(stored).expect("stored records");
    batch_from_records(&records).expect("batch")
}

/// The load generator's native produce: the payloads as stage 4's records,
/// encoded into a request body (`RemoteConnection::produce`).
fn client_native_produce(messages: &[Vec<u8>]) -> usize {
    let records = messages
        .iter()
        .map(|payload| Record {
            offset: 0,
            timestamp: 0,
            id: 0,
            payload: payload.clone(),
        })
        .collect();
    let request = Request::Produce {
        topic: NATIVE_TOPICS,
        partitioning: Partitioning::Explicit(0),
        records,
    };
    request.encode().1.len()
}

/// The load generator's Kafka produce: one record batch in a Produce
/// request, encoded into a frame (`KafkaConnection::produce`).
fn client_kafka_produce(messages: &[Vec<u8>], frame: &mut BytesMut) -> usize {
    let topic = TopicName(StrBytes::from_static_str("bench"));
    let request = produce_request(&topic, 0, messages, Acks::All, CREATE_TIME_MS).expect("request");
    encode_request(frame, &request, PRODUCE_VERSION, 1).expect("frame");
    frame.len()
}

/// The load generator's native poll: the answer decoded (checksums
/// verified) into owned messages (`RemoteConnection::poll`).
fn client_native_poll(body: &[u8]) -> usize {
    match Response::decode(code::POLL, body).expect("poll answer") {
        Response::Polled { records } => records.len(),
        _ => panic!("not a poll answer"),
    }
}

/// The load generator's Kafka fetch: the response body decoded, its batch
/// decoded (checksum checked) into owned messages (`KafkaConnection::poll`).
fn client_kafka_poll(body: &Bytes) -> usize {
    let response = FetchResponse::decode(&mut body.clone(), FETCH_VERSION).expect("response");
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    records_from(records, 1_000, BATCH).expect("records").len()
}

/// The Fetch response carrying `batch` for one partition.
fn fetch_response(batch: &Bytes) -> FetchResponse {
    let mut data = PartitionData::default();
    data.partition_index = 0;
    data.high_watermark = 1_100;
    data.records = Some(batch.clone());
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str("bench"));
    topic.partitions = vec![data];
    let mut response = FetchResponse::default();
    response.responses = vec![topic];
    response
}

/// The body of a Fetch response carrying `batch`, as a client reads it.
fn fetch_response_body(batch: &Bytes) -> Bytes {
    let mut body = BytesMut::new();
    fetch_response(batch)
        .encode(&mut body, FETCH_VERSION)
        .expect("response");
    body.freeze()
}

/// (c): the fetch response frame around a batch, as the listener writes it.
fn fetch_frame(batch: &Bytes) -> usize {
    let response = fetch_response(batch);
    let mut header = ResponseHeader::default();
    header.correlation_id = 1;
    let mut frame = BytesMut::new();
    header
        .encode(
            &mut frame,
            ApiKey::Fetch.response_header_version(FETCH_VERSION),
        )
        .expect("header");
    response
        .encode(&mut frame, FETCH_VERSION)
        .expect("response");
    frame.len()
}

fn cost_group(suite: &mut Suite, workload: &Workload, size: u32) -> anyhow::Result<()> {
    let inputs = inputs(workload, size)?;
    // Every step works on what the one before made, and gives it back.
    assert_eq!(decode_produce(&inputs.produce_frame), 1);
    let decoded = RecordBatchDecoder::decode(&mut inputs.kafka_batch.clone())?;
    assert_eq!(decoded.records.len(), BATCH as usize);
    let fetched = fetch_batch(&inputs.stored);
    let back = RecordBatchDecoder::decode(&mut fetched.clone())?;
    assert_eq!(back.records.len(), BATCH as usize);
    assert_eq!(back.records[7].value, decoded.records[7].value);
    assert_eq!(back.records[7].offset, 1_007);
    assert_eq!(client_native_poll(&inputs.native_poll_body), BATCH as usize);
    assert_eq!(
        client_kafka_poll(&fetch_response_body(&fetched)),
        BATCH as usize
    );

    let payload_bytes = u64::from(BATCH) * u64::from(size);
    let iteration = format!(
        "one batch of {BATCH} messages of {size} bytes (divide by {BATCH} for a message), on \
         one core: a produce request (v{PRODUCE_VERSION}) in, a fetch response \
         (v{FETCH_VERSION}) out; MB/s counts payload bytes"
    );
    let spec = |kind| RowSpec {
        kind,
        durability: "(no I/O)",
        limit: None,
        bytes_per_iter: payload_bytes,
    };
    let mut criterion = suite.criterion();
    let mut group = suite.group(&mut criterion, "cost", &iteration);
    // The native path's own work on a produce batch before the write (and
    // the Kafka path's, after translating): every record walked (lengths
    // checked) and stamped in place (offset, timestamp, checksum).
    let native = inputs.native_records.clone();
    suite.bench(&mut group, "native-walk-stamp", spec(RowKind::Stage), |b| {
        b.iter_batched_ref(
            || native.clone(),
            |records| {
                let extents = record::walk(records).expect("walk");
                record::stamp(records, &extents, 1_000, 1_700_000_000_000_000);
                extents.len()
            },
            BatchSize::SmallInput,
        )
    });
    suite.bench(
        &mut group,
        "kafka-decode-request",
        spec(RowKind::Stage),
        |b| b.iter(|| decode_produce(black_box(&inputs.produce_frame))),
    );
    suite.bench(
        &mut group,
        "kafka-decode-batch",
        spec(RowKind::Stage),
        |b| {
            b.iter(|| {
                RecordBatchDecoder::decode(&mut black_box(&inputs.kafka_batch).clone())
                    .expect("batch")
                    .records
                    .len()
            })
        },
    );
    suite.bench(&mut group, "kafka-translate", spec(RowKind::Stage), |b| {
        b.iter(|| {
            records_from_batch(black_box(&inputs.kafka_batch), limits())
                .expect("translate")
                .count
        })
    });
    suite.bench(&mut group, "kafka-fetch-batch", spec(RowKind::Stage), |b| {
        b.iter(|| fetch_batch(black_box(&inputs.stored)))
    });
    suite.bench(&mut group, "kafka-fetch-frame", spec(RowKind::Stage), |b| {
        b.iter(|| fetch_frame(black_box(&fetched)))
    });
    // The load generator's own work for each path: it shares the cores with
    // the server, so the paths' measured difference includes it.
    let messages = &inputs.messages;
    suite.bench(
        &mut group,
        "client-native-produce",
        spec(RowKind::Stage),
        |b| b.iter(|| client_native_produce(black_box(messages))),
    );
    let mut frame = BytesMut::new();
    suite.bench(
        &mut group,
        "client-kafka-produce",
        spec(RowKind::Stage),
        |b| b.iter(|| client_kafka_produce(black_box(messages), &mut frame)),
    );
    suite.bench(
        &mut group,
        "client-native-poll",
        spec(RowKind::Stage),
        |b| b.iter(|| client_native_poll(black_box(&inputs.native_poll_body))),
    );
    let fetch_body = fetch_response_body(&fetched);
    suite.bench(&mut group, "client-kafka-poll", spec(RowKind::Stage), |b| {
        b.iter(|| client_kafka_poll(black_box(&fetch_body)))
    });
    // A copy of the batch's bytes, nothing else: what one more copy of every
    // message on either path costs.
    let bytes = inputs.kafka_batch.to_vec();
    suite.bench(&mut group, "raw-copy", spec(RowKind::Raw), |b| {
        b.iter(|| black_box(&bytes).clone())
    });
    group.finish();
    criterion.final_summary();
    Ok(())
}
