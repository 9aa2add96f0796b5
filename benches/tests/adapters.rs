//! The load generator against real stage 3, 4 and 5 servers on loopback:
//! every message produced is read back, in order, intact (the run itself checks
//! that and fails otherwise), through the same interface for every stage.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::adapters::stage3::Stage3Target;
use bench::adapters::stage4::Stage4Target;
use bench::adapters::stage5::Stage5Target;
use bench::loadgen::{LoadConfig, Stop, Target, Warmup, run};
use rivulet_datasets::MessageSize;
use stage2_batching::FsyncPolicy;

fn small() -> LoadConfig {
    LoadConfig {
        producers: 2,
        consumers: 2,
        partitions: 3,
        message_size: MessageSize::Fixed(64),
        batch: 10,
        poll_batch: 50,
        stop: Stop::Messages(3_000),
        warmup: Warmup::Messages(300),
        ..LoadConfig::default()
    }
}

async fn drive(target: impl Target) {
    let config = small();
    let outcome = run(&target, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let figures = outcome.figures;
    assert_eq!(figures.produced, 3_300);
    assert_eq!(figures.consumed, figures.produced);
    assert_eq!(figures.produced_per_partition.iter().sum::<u64>(), 3_300);
    assert_eq!(
        figures.produced_per_partition,
        figures.consumed_per_partition
    );
    assert!(figures.producer.latency.count > 0 && figures.end_to_end.count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_a_stage3_server() {
    drive(Stage3Target::start(FsyncPolicy::Never, 1).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_a_stage4_server() {
    drive(Stage4Target::start(FsyncPolicy::EveryBatch, 1).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_a_stage5_server() {
    let target = Stage5Target::start(FsyncPolicy::EveryBatch, 1).unwrap();
    assert_eq!(target.name(), "stage5");
    drive(target).await;
}
