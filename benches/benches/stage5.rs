//! Stage 5: what a batch costs to decode, verify and stamp, with stage 4's
//! owned records, with stage 5's views, and with rkyv (validated and
//! unchecked), beside the machine's own copy and checksum of the same bytes,
//! measured in the same run.
//!
//! `cargo bench -p bench --bench stage5` (or `scripts/bench stage5`) runs it
//! and writes `benches/results/<profile>/stage5.json`; `RIVULET_PROFILE` names
//! the machine. No disk is touched: these are the codecs alone. The counting
//! allocator is installed here too, and the allocations each codec makes per
//! batch are counted (outside the timed loops) and printed.

// A benchmark that cannot build its input has nothing to report: it stops there.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use bench::results::{RowKind, RowSpec, Suite};
use criterion::{BatchSize, Criterion};
use rivulet_datasets::Workload;
use stage1_file_log::Message;
use stage3_tcp_server::protocol::BodyReader;
use stage4_partitions::protocol::record::{Checksum, Record, decode_records, encode_records};
use stage5_zero_copy::alloc_count::{self, CountingAllocator};
use stage5_zero_copy::rkyv_layout::{
    ArchivedRkyvBatch, RkyvBatch, RkyvRecord, TrustedBatch, access_validated,
};
use stage5_zero_copy::{BatchView, ReceivedBatch};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Messages per batch: the talk's batch, and the poll cap of stages 3 to 5.
const BATCH: u64 = 1000;
/// A fixed server time for the stamped batch.
const TIMESTAMP: u64 = 1_700_000_000_000_000;

/// What every reader does with a record: touch each field and the payload's
/// length and first byte, so no decoder can skip work the others do.
fn fold(offset: u64, timestamp: u64, id: u64, payload: &[u8]) -> u64 {
    let first = payload.first().copied().unwrap_or_default();
    offset ^ timestamp.rotate_left(7) ^ id.rotate_left(13) ^ payload.len() as u64 ^ u64::from(first)
}

fn stage4_owned(wire: &[u8], checksum: Checksum) -> u64 {
    let records = decode_records(&mut BodyReader::new(wire), checksum).expect("stage 4 decode");
    records
        .iter()
        .map(|r| fold(r.offset, r.timestamp, r.id, &r.payload))
        .fold(0, |a, b| a ^ b)
}

fn stage5_views(wire: &[u8], verify: bool) -> u64 {
    let view = BatchView::parse(wire).expect("stage 5 view");
    if verify {
        view.verify().expect("checksums");
    }
    view.iter()
        .map(|r| fold(r.offset(), r.timestamp(), r.id(), r.payload()))
        .fold(0, |a, b| a ^ b)
}

fn rkyv_fold(batch: &ArchivedRkyvBatch) -> u64 {
    batch
        .records
        .iter()
        .map(|r| {
            fold(
                r.offset.to_native(),
                r.timestamp.to_native(),
                r.id.to_native(),
                r.payload.as_slice(),
            )
        })
        .fold(0, |a, b| a ^ b)
}

/// Stage 4's produce path before the write: decode into owned records, turn
/// them into stage 1 messages, encode those into one buffer with offsets.
fn stage4_produce(body: &[u8], first_offset: u64) -> Vec<u8> {
    let records = decode_records(&mut BodyReader::new(body), Checksum::Ignore).expect("decode");
    let messages: Vec<Message> = records
        .into_iter()
        .map(|r| Message::new(r.id, r.payload))
        .collect();
    let mut out = Vec::new();
    for (offset, mut message) in (first_offset..).zip(messages) {
        message.offset = offset;
        message.encode_into(&mut out).expect("encode");
    }
    out
}

/// Stage 5's produce path before the write: validate in place, stamp in place.
fn stage5_produce(body: Vec<u8>, first_offset: u64) -> ReceivedBatch {
    let mut batch = ReceivedBatch::validate(body, 0).expect("validate");
    batch.stamp(first_offset, TIMESTAMP);
    batch
}

/// The machine's own checksums of the same records: one crc32c call per
/// record over the bytes its checksum covers, at a fixed stride (the records
/// are all one size here), with no parsing at all.
fn raw_crc32c_per_record(records: &[u8], record_len: usize) -> u32 {
    records
        .chunks(record_len)
        .map(|record| crc32c::crc32c(record.get(4..).unwrap_or_default()))
        .fold(0, |a, b| a ^ b)
}

struct Inputs {
    /// `count u32` and the records, stamped and checksummed: a poll reply.
    wire: Vec<u8>,
    /// The same records as a producer sends them: offsets, times, checksums 0.
    produced: Vec<u8>,
    /// The same batch archived by rkyv, trusted (rkyv wrote it).
    archived: TrustedBatch,
}

fn main() -> anyhow::Result<()> {
    let workload = Workload::load("quick")?;
    let size = workload.fixed_size()? as usize;
    let payloads = workload.payloads();
    let records: Vec<Record> = (0..BATCH)
        .map(|n| Record {
            offset: n,
            timestamp: TIMESTAMP,
            id: n,
            payload: payloads.payload(n, size),
        })
        .collect();
    let mut wire = Vec::new();
    encode_records(
        &mut wire,
        records
            .iter()
            .map(|r| (r.offset, r.timestamp, r.id, r.payload.as_slice())),
    );
    let mut produced = Vec::new();
    encode_records(
        &mut produced,
        records.iter().map(|r| (0, 0, r.id, r.payload.as_slice())),
    );
    let rkyv_batch = RkyvBatch {
        records: BatchView::parse(&wire)?
            .iter()
            .map(|r| RkyvRecord {
                offset: r.offset(),
                timestamp: r.timestamp(),
                id: r.id(),
                checksum: r.checksum(),
                payload: r.payload().to_vec(),
            })
            .collect(),
    };
    let inputs = Inputs {
        archived: TrustedBatch::archive(&rkyv_batch)?,
        wire,
        produced,
    };
    check_agreement(&inputs);
    print_allocations(&inputs);

    let mut suite = Suite::new("stage5", &workload);
    let mut criterion = suite.criterion();
    decode_group(&mut suite, &mut criterion, &inputs, size);
    verify_group(&mut suite, &mut criterion, &inputs, size);
    produce_group(&mut suite, &mut criterion, &inputs, size);
    criterion.final_summary();
    if let Some(path) = suite.finish(&bench::bench_data_dir())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Every decoder reads the same values, or the comparison means nothing.
fn check_agreement(inputs: &Inputs) {
    let expected = stage4_owned(&inputs.wire, Checksum::Verify);
    assert_eq!(stage5_views(&inputs.wire, true), expected);
    let validated = access_validated(inputs.archived.bytes()).expect("valid archive");
    assert_eq!(rkyv_fold(validated), expected);
    assert_eq!(rkyv_fold(inputs.archived.archived()), expected);
    let stamped = stage5_produce(inputs.produced.clone(), 0);
    assert_eq!(stamped.records(), &inputs.wire[4..]);
    // The raw row computes the same checksums the records carry.
    let record_len = inputs.wire.len().saturating_sub(4) / BATCH as usize;
    let stored = BatchView::parse(&inputs.wire)
        .expect("view")
        .iter()
        .fold(0, |a, r| a ^ r.checksum());
    assert_eq!(raw_crc32c_per_record(&inputs.wire[4..], record_len), stored);
}

/// Allocations per batch of each path, counted once, outside the timed loops.
fn print_allocations(inputs: &Inputs) {
    let count = |run: &dyn Fn() -> u64| alloc_count::count(|| black_box(run())).1.this_thread;
    let archive = inputs.archived.bytes();
    let rows = [
        (
            "stage4-owned",
            count(&|| stage4_owned(&inputs.wire, Checksum::Ignore)),
        ),
        ("stage5-views", count(&|| stage5_views(&inputs.wire, false))),
        (
            "rkyv-validated",
            count(&|| rkyv_fold(access_validated(archive).expect("valid"))),
        ),
        (
            "rkyv-unchecked",
            count(&|| rkyv_fold(inputs.archived.archived())),
        ),
        (
            "stage4-produce",
            count(&|| stage4_produce(&inputs.produced, 0).len() as u64),
        ),
    ];
    // The body is the frame's buffer in the server: copied here, uncounted.
    let body = inputs.produced.clone();
    let (_, stamp) = alloc_count::count(|| stage5_produce(body, 0));
    println!("allocations per batch of {BATCH} messages:");
    for (name, allocations) in rows {
        println!("  {name:16} {allocations}");
    }
    println!("  {:16} {}", "stage5-stamp", stamp.this_thread);
}

fn spec(kind: RowKind, limit: Option<&'static str>, bytes: usize) -> RowSpec {
    RowSpec {
        kind,
        durability: "(no I/O)",
        limit,
        bytes_per_iter: bytes as u64,
    }
}

fn decode_group(suite: &mut Suite, criterion: &mut Criterion, inputs: &Inputs, size: usize) {
    let bytes = inputs.wire.len();
    let iteration = format!(
        "decoding one batch of {BATCH} records ({size}-byte payloads, {bytes} bytes) and \
         reading every field, without checking checksums"
    );
    let mut group = suite.group(criterion, "stage5-decode", &iteration);
    let wire = inputs.wire.as_slice();
    suite.bench(
        &mut group,
        "stage4-owned",
        spec(RowKind::Stage, Some("raw-copy"), bytes),
        |b| b.iter(|| stage4_owned(black_box(wire), Checksum::Ignore)),
    );
    suite.bench(
        &mut group,
        "stage5-views",
        spec(RowKind::Stage, None, bytes),
        |b| b.iter(|| stage5_views(black_box(wire), false)),
    );
    let archive = inputs.archived.bytes();
    suite.bench(
        &mut group,
        "rkyv-validated",
        spec(RowKind::Stage, None, bytes),
        |b| b.iter(|| rkyv_fold(access_validated(black_box(archive)).expect("valid"))),
    );
    let trusted = &inputs.archived;
    suite.bench(
        &mut group,
        "rkyv-unchecked",
        spec(RowKind::Stage, None, bytes),
        |b| b.iter(|| rkyv_fold(black_box(trusted).archived())),
    );
    // The least an owning decoder must do: copy the bytes once.
    let mut copy = vec![0u8; bytes];
    suite.bench(
        &mut group,
        "raw-copy",
        spec(RowKind::Raw, None, bytes),
        |b| {
            b.iter(|| {
                copy.copy_from_slice(black_box(wire));
                black_box(&copy);
            })
        },
    );
    group.finish();
}

fn verify_group(suite: &mut Suite, criterion: &mut Criterion, inputs: &Inputs, size: usize) {
    let bytes = inputs.wire.len();
    let iteration = format!(
        "decoding one batch of {BATCH} records ({size}-byte payloads, {bytes} bytes), \
         checking every checksum, as a client does"
    );
    let mut group = suite.group(criterion, "stage5-verify", &iteration);
    let wire = inputs.wire.as_slice();
    let same_calls = Some("raw-crc32c-per-record");
    suite.bench(
        &mut group,
        "stage4-owned",
        spec(RowKind::Stage, same_calls, bytes),
        |b| b.iter(|| stage4_owned(black_box(wire), Checksum::Verify)),
    );
    suite.bench(
        &mut group,
        "stage5-views",
        spec(RowKind::Stage, same_calls, bytes),
        |b| b.iter(|| stage5_views(black_box(wire), true)),
    );
    raw_checksums(suite, &mut group, &wire[4..], 32 + size);
    group.finish();
}

fn produce_group(suite: &mut Suite, criterion: &mut Criterion, inputs: &Inputs, size: usize) {
    let bytes = inputs.produced.len();
    let iteration = format!(
        "the server's work on one produced batch of {BATCH} records ({size}-byte payloads, \
         {bytes} bytes) before its write: stage 4 decodes, converts and encodes; stage 5 \
         validates and stamps offsets, timestamp and checksums in place"
    );
    let mut group = suite.group(criterion, "stage5-produce", &iteration);
    let produced = inputs.produced.as_slice();
    suite.bench(
        &mut group,
        "stage4-produce",
        spec(RowKind::Stage, None, bytes),
        |b| b.iter(|| stage4_produce(black_box(produced), 0)),
    );
    // Each iteration gets its own copy of the body, made outside the timing:
    // in the server the body is the frame's buffer, already there.
    suite.bench(
        &mut group,
        "stage5-stamp",
        spec(RowKind::Stage, Some("raw-crc32c-per-record"), bytes),
        |b| {
            b.iter_batched(
                || produced.to_vec(),
                |body| stage5_produce(body, 0),
                BatchSize::LargeInput,
            )
        },
    );
    raw_checksums(suite, &mut group, &produced[4..], 32 + size);
    group.finish();
}

/// The least a checksumming path must do: a crc32c per record (the same calls),
/// and one crc32c over all the bytes (the hardware's best).
fn raw_checksums(
    suite: &mut Suite,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    records: &[u8],
    record_len: usize,
) {
    let bytes = records.len() + 4;
    suite.bench(
        group,
        "raw-crc32c-per-record",
        spec(RowKind::Raw, None, bytes),
        |b| b.iter(|| raw_crc32c_per_record(black_box(records), record_len)),
    );
    suite.bench(group, "raw-crc32c", spec(RowKind::Raw, None, bytes), |b| {
        b.iter(|| crc32c::crc32c(black_box(records)))
    });
}
