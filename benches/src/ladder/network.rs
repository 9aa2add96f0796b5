//! The network rungs: each networked stage's server started on 127.0.0.1 and
//! driven by the load generator with the workload's producers, consumers,
//! batch size and policy, then stopped.

use rivulet_datasets::Workload;

use super::plan::Plan;
use super::{Ladder, Rung};
use crate::adapters::stage3::Stage3Target;
use crate::adapters::stage4::Stage4Target;
use crate::adapters::stage5::Stage5Target;
use crate::adapters::stage6::Stage6Target;
use crate::loadgen::{LoadConfig, Stop, Target, Warmup, run};

/// The load generator's run for this plan.
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
        ..LoadConfig::default()
    }
}

/// Runs `config` against a stage started here, by name.
pub fn stage(
    name: &str,
    workload: &Workload,
    plan: &Plan,
    server_threads: usize,
) -> anyhow::Result<Rung> {
    let config = load_config(workload, plan);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let progress = indicatif::ProgressBar::hidden();
    let (figures, durability) = runtime.block_on(async {
        match name {
            "stage3" => {
                let target = Stage3Target::start(plan.fsync, server_threads)?;
                anyhow::Ok((
                    run(&target, &config, &progress).await?.figures,
                    target.durability(),
                ))
            }
            "stage5" => {
                let target = Stage5Target::start(plan.fsync, server_threads)?;
                anyhow::Ok((
                    run(&target, &config, &progress).await?.figures,
                    target.durability(),
                ))
            }
            "stage6" => {
                // The same thread budget as the other servers: shards.
                let target = Stage6Target::start(plan.engine_fsync, server_threads)?;
                anyhow::Ok((
                    run(&target, &config, &progress).await?.figures,
                    target.durability(),
                ))
            }
            _ => {
                let target = Stage4Target::start(plan.fsync, server_threads)?;
                anyhow::Ok((
                    run(&target, &config, &progress).await?.figures,
                    target.durability(),
                ))
            }
        }
    })?;
    let producer = figures.producer;
    Ok(Rung {
        stage: name.to_string(),
        ladder: Ladder::Network,
        durability,
        latency_unit: format!(
            "produce of {} messages, send to acknowledgement",
            plan.batch
        ),
        messages: producer.messages,
        seconds: producer.seconds,
        messages_per_s: producer.messages_per_s,
        mb_per_s: producer.mb_per_s,
        latency: producer.latency,
        end_to_end: Some(figures.end_to_end),
    })
}
