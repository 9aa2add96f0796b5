//! Stage 1: what each version of `append` costs, and what `poll` costs, beside
//! the machine's own limit for the same bytes, measured in the same run.
//!
//! `cargo bench -p bench --bench stage1` (or `scripts/bench stage1`) runs it and
//! writes `benches/results/<profile>/stage1.json`; `RIVULET_PROFILE` names the
//! machine, `RIVULET_BENCH_DIR` the folder (disk) written to.

// A benchmark that cannot write its files has nothing to report: it stops there.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use bench::raw::RawFile;
use bench::results::{RowKind, RowSpec, Suite};
use criterion::Criterion;
use rivulet_datasets::Workload;
use stage1_file_log::{AppendMode, HEADER_LEN, Message, Stream};

/// Files are emptied past this size, so a long run does not fill the disk.
const CAP_BYTES: u64 = 256 << 20;
/// Messages per poll: enough that a poll reads several pages.
const POLL_COUNT: u64 = 100;

fn main() -> anyhow::Result<()> {
    let workload = Workload::load("quick")?;
    let payloads = workload.payloads();
    // One record size per group: the raw rows write records of that size.
    let size = workload.fixed_size()? as usize;
    let messages: Vec<Message> = (0..workload.messages)
        .map(|n| Message::new(n, payloads.payload(n, size)))
        .collect();
    let data = tempfile::tempdir_in(bench::bench_data_dir())?;

    let mut suite = Suite::new("stage1", &workload);
    let mut criterion = suite.criterion();
    append_group(&mut suite, &mut criterion, data.path(), &messages)?;
    poll_group(&mut suite, &mut criterion, data.path(), &messages)?;
    criterion.final_summary();
    if let Some(path) = suite.finish(data.path())? {
        println!("results written to {}", path.display());
    }
    Ok(())
}

fn append_group(
    suite: &mut Suite,
    criterion: &mut Criterion,
    data: &Path,
    messages: &[Message],
) -> anyhow::Result<()> {
    let record = (HEADER_LEN + messages[0].payload.len()) as u64;
    let iteration = format!("one append of one message ({record} bytes with its header)");
    let mut group = suite.group(criterion, "stage1-append", &iteration);

    for mode in AppendMode::ALL {
        let (durability, limit) = match mode {
            AppendMode::SyncEveryAppend => ("nothing acknowledged", "raw-write-fsync-per-record"),
            _ => ("what the OS has not written back", "raw-write-per-record"),
        };
        let spec = RowSpec {
            kind: RowKind::Stage,
            durability,
            limit: Some(limit),
            bytes_per_iter: record,
        };
        let dir = data.join(mode.name());
        let mut stream = fresh_stream(&dir, mode);
        suite.bench(&mut group, mode.name(), spec, |b| {
            b.iter_custom(|iters| {
                if stream.log_len() + iters * record > CAP_BYTES {
                    drop(std::mem::replace(&mut stream, fresh_stream(&dir, mode)));
                }
                // The clone is the talk's API (append takes an owned Message):
                // a 1 KiB copy, small beside the system calls it pays for.
                let start = Instant::now();
                for n in 0..iters {
                    let message = messages[(n % messages.len() as u64) as usize].clone();
                    stream.append(message).expect("append");
                }
                start.elapsed()
            })
        });
    }

    // The raw limits: the same bytes, one write per record or in large writes,
    // with and without the flush that makes them durable.
    let raw_record = vec![0x5a; record as usize];
    let page_cache = "what the OS has not written back";
    for (id, durability, large, sync) in [
        ("raw-write-per-record", page_cache, false, false),
        ("raw-write-fsync-per-record", "nothing written", false, true),
        ("raw-large-writes", page_cache, true, false),
        ("raw-large-writes-then-fsync", "nothing written", true, true),
    ] {
        let mut file = RawFile::create(data, id, CAP_BYTES)?;
        let spec = RowSpec {
            kind: RowKind::Raw,
            durability,
            limit: None,
            bytes_per_iter: record,
        };
        suite.bench(&mut group, id, spec, |b| {
            b.iter_custom(|iters| {
                let timed = if large {
                    file.write_large(iters * record, sync)
                } else {
                    file.write_each(&raw_record, iters, sync)
                };
                timed.expect("write")
            })
        });
    }
    group.finish();
    Ok(())
}

fn poll_group(
    suite: &mut Suite,
    criterion: &mut Criterion,
    data: &Path,
    messages: &[Message],
) -> anyhow::Result<()> {
    let dir = data.join("poll");
    let mut stream = fresh_stream(&dir, AppendMode::KeptHandle);
    for message in messages {
        stream.append(message.clone())?;
    }
    let count = stream.next_offset();
    let record = (HEADER_LEN + messages[0].payload.len()) as u64;
    let bytes = POLL_COUNT * record;
    let iteration =
        format!("one poll of {POLL_COUNT} messages ({bytes} bytes), from the page cache");
    let mut group = suite.group(criterion, "stage1-poll", &iteration);

    let spec = RowSpec {
        kind: RowKind::Stage,
        durability: "(a read)",
        limit: Some("raw-read"),
        bytes_per_iter: bytes,
    };
    let mut offset = 0;
    suite.bench(&mut group, "poll", spec, |b| {
        b.iter(|| {
            let polled = stream.poll(offset, POLL_COUNT).expect("poll");
            offset = (offset + POLL_COUNT) % (count - POLL_COUNT);
            polled
        })
    });

    // The same bytes in one positional read each, with no index and no decoding.
    let log = std::fs::File::open(dir.join(stage1_file_log::stream::LOG_FILE))?;
    let log_len = log.metadata()?.len();
    let mut buf = vec![0; bytes as usize];
    let mut position = 0;
    let spec = RowSpec {
        kind: RowKind::Raw,
        durability: "(a read)",
        limit: None,
        bytes_per_iter: bytes,
    };
    suite.bench(&mut group, "raw-read", spec, |b| {
        b.iter(|| {
            std::os::unix::fs::FileExt::read_exact_at(&log, &mut buf, position).expect("read");
            position = (position + bytes) % (log_len - bytes);
        })
    });
    group.finish();
    Ok(())
}

fn fresh_stream(dir: &PathBuf, mode: AppendMode) -> Stream {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove old stream");
    }
    Stream::open(1, dir, mode).expect("open stream")
}
