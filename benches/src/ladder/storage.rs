//! The storage rungs, in process: the same messages appended through stage 1's
//! log, stage 2's batching stream, stage 5's partition and stage 6's (Direct
//! I/O segments on a compio runtime), with the fsync policy the workload names.

use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_datasets::Workload;
use stage1_file_log::{AppendMode, Message, Stream};
use stage2_batching::{BatchingStream, Config, FsyncPolicy};
use stage3_tcp_server::streams::saver_period;
use stage4_partitions::protocol::record::{encode_record, encode_records};
use stage5_zero_copy::{Partition, ReceivedBatch};

use super::Rung;
use super::plan::Plan;
use crate::latency::{Percentiles, histogram};

/// The workload's messages, built once and cloned into each rung untimed.
pub fn messages(workload: &Workload, plan: &Plan) -> Vec<Message> {
    let payloads = workload.payloads();
    (0..plan.messages)
        .map(|n| Message::new(n, payloads.payload(n, Plan::size_of(workload, n))))
        .collect()
}

/// The most messages stage 1's rung appends. It syncs after every message,
/// a few thousand a second here, so a throughput workload's whole count
/// would make it most of the ladder's time; its rate is the same after 20,000
/// messages, and the rung says how many it measured.
pub const STAGE1_MAX_MESSAGES: usize = 20_000;

// ANCHOR: stage1_rung
/// Stage 1 as the talk wrote it: one `append` per message. It can sync only per
/// message, so it does where the policy syncs at all (`always`, `every-batch`)
/// and never otherwise: the closest stage 1 comes to the same promise.
pub fn stage1(dir: &Path, plan: &Plan, messages: &[Message]) -> anyhow::Result<Rung> {
    let messages = &messages[..messages.len().min(STAGE1_MAX_MESSAGES)];
    let (mode, durability) = match plan.fsync {
        FsyncPolicy::Always | FsyncPolicy::EveryBatch => {
            (AppendMode::SyncEveryAppend, "sync_all after every message")
        }
        FsyncPolicy::Interval(_) | FsyncPolicy::Never => (
            AppendMode::KeptHandle,
            "page cache only (stage 1 cannot sync on an interval)",
        ),
    };
    let mut stream = Stream::open(1, dir.join("stage1"), mode)?;
    let mut latencies = histogram();
    let batch = messages.to_vec();
    let start = Instant::now();
    for message in batch {
        let call = Instant::now();
        stream.append(message)?;
        latencies.saturating_record(call.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    Ok(rung(
        "stage1",
        durability,
        "append of one message",
        messages,
        elapsed,
        Percentiles::of(&latencies),
    ))
}
// ANCHOR_END: stage1_rung

/// Stage 2: appends of `plan.batch` messages under the workload's policy.
pub fn stage2(dir: &Path, plan: &Plan, messages: &[Message]) -> anyhow::Result<Rung> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let batches: Vec<Vec<Message>> = messages
        .chunks(plan.batch as usize)
        .map(<[Message]>::to_vec)
        .collect();
    let config = Config::new(plan.fsync);
    let dir = dir.join("stage2");
    let (elapsed, latencies) = runtime.block_on(async move {
        let stream = BatchingStream::open(1, dir, config).await?;
        let mut latencies = histogram();
        let start = Instant::now();
        for batch in batches {
            let call = Instant::now();
            stream.append(batch).await?;
            latencies.saturating_record(call.elapsed().as_nanos() as u64);
        }
        let elapsed = start.elapsed();
        stream.shutdown().await?;
        anyhow::Ok((elapsed, latencies))
    })?;
    let durability = format!("fsync policy {}", plan.fsync.name());
    let unit = format!("append of {} messages", plan.batch);
    Ok(rung(
        "stage2",
        &durability,
        &unit,
        messages,
        elapsed,
        Percentiles::of(&latencies),
    ))
}

/// Stage 5: each batch as a produce request's body would carry it (encoded
/// before timing), appended by stamping it in place and writing it whole. The
/// background saver is played in line: every saver period of elapsed time, one
/// `tick`, as stage 5's server task would.
pub fn stage5(dir: &Path, plan: &Plan, messages: &[Message]) -> anyhow::Result<Rung> {
    let mut batches = Vec::new();
    for chunk in messages.chunks(plan.batch as usize) {
        let mut body = Vec::new();
        encode_records(
            &mut body,
            chunk.iter().map(|m| (0, 0, m.id, m.payload.as_slice())),
        );
        batches.push(ReceivedBatch::validate(body, 0)?);
    }
    let config = Config::new(plan.fsync);
    let period = saver_period(&config);
    let mut partition = Partition::open(&dir.join("stage5"), config, Instant::now())?;
    let mut latencies = histogram();
    let start = Instant::now();
    let mut last_tick = start;
    for mut batch in batches {
        let call = Instant::now();
        partition.append(&mut batch, micros_since_epoch(), call)?;
        latencies.saturating_record(call.elapsed().as_nanos() as u64);
        if call.duration_since(last_tick) >= period {
            partition.tick(call)?;
            last_tick = call;
        }
    }
    let elapsed = start.elapsed();
    partition.flush(Instant::now())?;
    let durability = format!("fsync policy {}", plan.fsync.name());
    let unit = format!("append of {} messages", plan.batch);
    Ok(rung(
        "stage5",
        &durability,
        &unit,
        messages,
        elapsed,
        Percentiles::of(&latencies),
    ))
}

// ANCHOR: stage6_rung
/// Stage 6: each batch as a produce request's records (encoded before
/// timing), appended by the partition a shard would own, on a compio runtime
/// (compio's driver choice), Direct I/O on, the policy and batches of the
/// stage 5 rung. The saver is played in line, as there: every saver interval
/// of elapsed time, one `tick`.
pub fn stage6(dir: &Path, plan: &Plan, messages: &[Message]) -> anyhow::Result<Rung> {
    let mut batches = Vec::new();
    for chunk in messages.chunks(plan.batch as usize) {
        let mut records = Vec::new();
        for message in chunk {
            encode_record(&mut records, 0, 0, message.id, &message.payload);
        }
        batches.push(records);
    }
    let config = stage6_broker::Config {
        fsync: plan.engine_fsync,
        ..stage6_broker::Config::default()
    };
    let period = config.saver_interval;
    let dir = dir.join("stage6");
    let runtime = stage6_broker::IoDriver::Auto.runtime()?;
    let (elapsed, latencies) = runtime.block_on(async move {
        let mut partition = stage6_broker::Partition::open(&dir, config).await?;
        let mut latencies = histogram();
        let start = Instant::now();
        let mut last_tick = start;
        for mut batch in batches {
            let call = Instant::now();
            partition.append(&mut batch).await?;
            latencies.saturating_record(call.elapsed().as_nanos() as u64);
            if call.duration_since(last_tick) >= period {
                partition.tick(call).await?;
                last_tick = call;
            }
        }
        let elapsed = start.elapsed();
        partition.flush().await?;
        anyhow::Ok((elapsed, latencies))
    })?;
    let durability = format!("fsync policy {}, Direct I/O", plan.engine_fsync.name());
    let unit = format!("append of {} messages", plan.batch);
    Ok(rung(
        "stage6",
        &durability,
        &unit,
        messages,
        elapsed,
        Percentiles::of(&latencies),
    ))
}
// ANCHOR_END: stage6_rung

fn micros_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn rung(
    stage: &str,
    durability: &str,
    unit: &str,
    messages: &[Message],
    elapsed: Duration,
    latency: Percentiles,
) -> Rung {
    let bytes: u64 = messages.iter().map(|m| m.payload.len() as u64).sum();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Rung {
        stage: stage.to_string(),
        ladder: super::Ladder::Storage,
        durability: durability.to_string(),
        latency_unit: unit.to_string(),
        messages: messages.len() as u64,
        seconds,
        messages_per_s: messages.len() as f64 / seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
        latency,
        end_to_end: None,
        noisy_core: None,
    }
}
