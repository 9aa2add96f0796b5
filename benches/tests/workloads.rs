//! The workloads as the stages and the load generator read them: the fsync
//! policy names the datasets crate checks are exactly stage 2's and the
//! engine's (stage 6 keeps its own copy of the policies, and the datasets
//! crate cannot depend on a stage to share the parser), and every committed
//! workload becomes a valid load-generator run.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::loadgen::LoadConfig;
use rivulet_datasets::{Fsync, Workload};
use stage2_batching::FsyncPolicy;
use stage6_broker::FsyncPolicy as EnginePolicy;

#[test]
fn fsync_names_mean_the_same_in_the_datasets_crate_stage_2_and_the_engine() {
    for name in [
        "always",
        "every-batch",
        "interval-1ms",
        "interval-250ms",
        "never",
    ] {
        let ours = Fsync::parse(name).unwrap();
        let stage2 = FsyncPolicy::parse(name).unwrap();
        let engine = EnginePolicy::parse(name).unwrap();
        assert_eq!(ours.name(), stage2.name(), "{name}");
        assert_eq!(engine.name(), stage2.name(), "{name}");
        assert_eq!(engine.name(), name);
    }
    // Same meanings, variant by variant.
    for (stage2, engine) in [
        (FsyncPolicy::Always, EnginePolicy::Always),
        (FsyncPolicy::EveryBatch, EnginePolicy::EveryBatch),
        (FsyncPolicy::Never, EnginePolicy::Never),
    ] {
        assert_eq!(EnginePolicy::parse(&stage2.name()), Some(engine));
    }
    assert!(matches!(
        EnginePolicy::parse("interval-250ms"),
        Some(EnginePolicy::Interval(every)) if every.as_millis() == 250
    ));
    for bad in [
        "sometimes",
        "interval-5s",
        "interval-xms",
        "",
        "Always",
        "interval-ms",
    ] {
        assert!(Fsync::parse(bad).is_err(), "{bad}");
        assert!(FsyncPolicy::parse(bad).is_none(), "{bad}");
        assert!(EnginePolicy::parse(bad).is_none(), "{bad}");
    }
    // A 0 ms interval: the datasets crate refuses the name; stage 2 and the
    // engine read it alike and refuse it in their configs' checks.
    assert!(Fsync::parse("interval-0ms").is_err());
    assert_eq!(
        EnginePolicy::parse("interval-0ms").map(|p| p.name()),
        FsyncPolicy::parse("interval-0ms").map(|p| p.name())
    );
    assert_eq!(Fsync::default().name(), FsyncPolicy::EveryBatch.name());
    assert_eq!(Fsync::default().name(), EnginePolicy::EveryBatch.name());
}

#[test]
fn every_committed_workload_runs_on_stage_2_the_engine_and_the_load_generator() {
    for name in Workload::names().unwrap() {
        let workload = Workload::load(&name).unwrap();
        let fsync = workload.fsync.name();
        let stage2 = FsyncPolicy::parse(&fsync);
        assert!(stage2.is_some(), "{name}: fsync {}", workload.fsync);
        let engine = EnginePolicy::parse(&fsync);
        assert!(engine.is_some(), "{name}: fsync {}", workload.fsync);
        assert_eq!(engine.map(|p| p.name()), stage2.map(|p| p.name()), "{name}");
        let config = LoadConfig::from_workload(&workload).unwrap();
        assert_eq!(config.validate(), Ok(()), "{name}");
    }
}
