//! The network rungs: each networked stage's server started on 127.0.0.1 and
//! driven by the load generator with the workload's producers, consumers,
//! roles, batch size and policy, then stopped; optionally beside a noisy
//! neighbour ([`crate::noisy`]) started before the server and stopped after
//! the run.

use anyhow::Context;
use rivulet_datasets::{Roles, Workload};

use super::plan::Plan;
use super::{Ladder, Rung};
use crate::adapters::stage3::Stage3Target;
use crate::adapters::stage4::Stage4Target;
use crate::adapters::stage5::Stage5Target;
use crate::adapters::stage6::Stage6Target;
use crate::loadgen::{Figures, LoadConfig, Stop, Target, Warmup, run};
use crate::noisy::NoisyNeighbour;

/// How long consumers may take to catch up once the producers finish. A
/// bound only a failing rung reaches: with batches of 1000, a stage whose
/// consumers fall behind its producers (stage 3's one lock per stream) still
/// finishes its rung, and its consume rate says how far behind it was.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The load generator's run for this plan: the workload's actors, roles and
/// partitioning, a fixed message count (every rung the same messages, even
/// for a timed workload), closed loop, a tenth of warmup.
pub fn load_config(workload: &Workload, plan: &Plan) -> LoadConfig {
    LoadConfig {
        producers: plan.producers,
        consumers: plan.consumers,
        partitions: plan.partitions,
        message_size: workload.message_size,
        payload: workload.payload,
        batch: plan.batch,
        poll_batch: plan.batch.max(100),
        stop: Stop::Messages(plan.messages),
        warmup: Warmup::Messages(plan.messages / 10),
        seed: workload.seed,
        drain_timeout: DRAIN_TIMEOUT,
        roles: workload.roles,
        partitioning: workload.partitioning,
        ..LoadConfig::default()
    }
}

/// Runs the plan against a stage started here, by name, beside a noisy
/// neighbour on `noisy_core` if one is given.
pub fn stage(
    name: &str,
    workload: &Workload,
    plan: &Plan,
    server_threads: usize,
    noisy_core: Option<usize>,
) -> anyhow::Result<Rung> {
    let config = load_config(workload, plan);
    // Started before the server, so a stage that pins its threads at start
    // (stage 6) finds the core already taken, as it would on a shared host.
    let hog = noisy_core
        .map(NoisyNeighbour::start)
        .transpose()
        .context("starting the noisy neighbour")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (figures, durability) = runtime.block_on(drive(name, &config, plan, server_threads))?;
    drop(hog);
    Ok(rung(name, &config, figures, durability, noisy_core))
}

async fn drive(
    name: &str,
    config: &LoadConfig,
    plan: &Plan,
    server_threads: usize,
) -> anyhow::Result<(Figures, String)> {
    let progress = indicatif::ProgressBar::hidden();
    match name {
        "stage3" => {
            let target = Stage3Target::start(plan.fsync, server_threads)?;
            Ok((
                run(&target, config, &progress).await?.figures,
                target.durability(),
            ))
        }
        "stage5" => {
            let target = Stage5Target::start(plan.fsync, server_threads)?;
            Ok((
                run(&target, config, &progress).await?.figures,
                target.durability(),
            ))
        }
        "stage6" => {
            // Its defaults, as `rivulet-server` starts on this machine (a
            // shard per core but one, not pinned: `default_shards`), not the
            // other servers' thread count: whether those defaults fit the
            // machine is what the rung, alone and beside the hog, shows.
            let target = Stage6Target::start_with(
                "stage6",
                plan.engine_fsync,
                stage6_broker::ServerConfig::new(),
            )?;
            Ok((
                run(&target, config, &progress).await?.figures,
                target.durability(),
            ))
        }
        _ => {
            let target = Stage4Target::start(plan.fsync, server_threads)?;
            Ok((
                run(&target, config, &progress).await?.figures,
                target.durability(),
            ))
        }
    }
}

/// The rung's figures: the producers', or the consumers' when they ran alone
/// (the producers then only filled the topic, unmeasured).
fn rung(
    name: &str,
    config: &LoadConfig,
    figures: Figures,
    durability: String,
    noisy_core: Option<usize>,
) -> Rung {
    let (side, latency_unit, end_to_end) = match config.roles {
        Roles::Consumers => (
            figures.consumer,
            format!(
                "poll of up to {} messages, request to answer",
                config.poll_batch
            ),
            None,
        ),
        Roles::Both | Roles::Producers => (
            figures.producer,
            format!(
                "produce of {} messages, send to acknowledgement",
                config.batch
            ),
            (config.roles == Roles::Both).then_some(figures.end_to_end),
        ),
    };
    Rung {
        stage: name.to_string(),
        ladder: Ladder::Network,
        durability,
        latency_unit,
        messages: side.messages,
        seconds: side.seconds,
        messages_per_s: side.messages_per_s,
        mb_per_s: side.mb_per_s,
        latency: side.latency,
        end_to_end,
        noisy_core,
    }
}
