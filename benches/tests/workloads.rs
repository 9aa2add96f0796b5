//! The workloads as the stages and the load generator read them: the fsync
//! policy names the datasets crate checks are exactly stage 2's (the datasets
//! crate cannot depend on a stage to share the parser), and every committed
//! workload becomes a valid load-generator run.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::loadgen::LoadConfig;
use rivulet_datasets::{Fsync, Workload};
use stage2_batching::FsyncPolicy;

#[test]
fn fsync_names_mean_the_same_in_the_datasets_crate_and_in_stage_2() {
    for name in [
        "always",
        "every-batch",
        "interval-1ms",
        "interval-250ms",
        "never",
    ] {
        let ours = Fsync::parse(name).unwrap();
        let stage2 = FsyncPolicy::parse(name).unwrap();
        assert_eq!(ours.name(), stage2.name(), "{name}");
    }
    for bad in ["sometimes", "interval-5s", "interval-xms"] {
        assert!(Fsync::parse(bad).is_err() && FsyncPolicy::parse(bad).is_none());
    }
    assert_eq!(Fsync::default().name(), FsyncPolicy::EveryBatch.name());
}

#[test]
fn every_committed_workload_runs_on_stage_2_and_the_load_generator() {
    for name in Workload::names().unwrap() {
        let workload = Workload::load(&name).unwrap();
        let policy = FsyncPolicy::parse(&workload.fsync.name());
        assert!(policy.is_some(), "{name}: fsync {}", workload.fsync);
        let config = LoadConfig::from_workload(&workload).unwrap();
        assert_eq!(config.validate(), Ok(()), "{name}");
    }
}
