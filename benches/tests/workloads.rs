//! The workloads as the stages and the load generator read them: the fsync
//! policy names the datasets crate checks are exactly stage 2's and the
//! engine's (stage 6 keeps its own copy of the policies, and the datasets
//! crate cannot depend on a stage to share the parser), and every committed
//! workload becomes a valid load-generator run; the named copies of other
//! tools' runs (iggy-bench's, OpenMessaging Benchmark's) have the shape their
//! names say, fit a small machine, and run their roles.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::loadgen::{LoadConfig, MemoryTarget, Mode, Stop, run};
use rivulet_datasets::{Fsync, Partitioning, Roles, Workload};
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

/// The named copies of other tools' runs, and what each must copy.
const NAMED: [&str; 5] = [
    "throughput",
    "iggy-pinned-producer",
    "iggy-pinned-consumer",
    "iggy-balanced",
    "omb-1-topic-16-partitions-1kb",
];

/// Payload bytes a workload writes through the load generator: its measured
/// count or its rate over its duration, plus the warmup (a tenth).
fn bytes_written(workload: &Workload) -> u64 {
    let messages = match (workload.duration, workload.rate) {
        (Some(duration), Some(rate)) => (duration.as_secs_f64() * rate as f64) as u64,
        _ => workload.messages,
    };
    let size = u64::from(workload.fixed_size().unwrap());
    messages * size * 11 / 10
}

#[test]
fn named_workloads_copy_the_shape_their_name_says() {
    let load = |name: &str| {
        let workload = Workload::load(name).unwrap();
        let config = LoadConfig::from_workload(&workload).unwrap();
        (workload, config)
    };

    // iggy-bench pinned-producer: N producers, a partition each, no reader.
    let (producer, config) = load("iggy-pinned-producer");
    assert_eq!(config.roles, Roles::Producers);
    assert_eq!(config.partitioning, Partitioning::Pinned);
    assert_eq!(config.consumers, 0);
    assert_eq!(config.producers, config.partitions);
    assert_eq!((config.batch, producer.fixed_size().unwrap()), (1000, 1000));

    // iggy-bench pinned-consumer: N consumers, a partition each, over a
    // topic filled first (by as many pinned producers).
    let (consumer, config) = load("iggy-pinned-consumer");
    assert_eq!(config.roles, Roles::Consumers);
    assert_eq!(config.consumers, config.partitions);
    assert_eq!(config.producers, config.partitions);
    assert_eq!(config.partitioning, Partitioning::Pinned);
    assert!(matches!(config.stop, Stop::Messages(_)));
    assert_eq!(
        (config.poll_batch, consumer.fixed_size().unwrap()),
        (1000, 1000)
    );

    // iggy-bench balanced producer and consumer group: both sides at once,
    // producers spreading, consumers sharing the partitions.
    let (_, config) = load("iggy-balanced");
    assert_eq!(config.roles, Roles::Both);
    assert_eq!(config.partitioning, Partitioning::RoundRobin);
    assert!(config.consumers > 1 && config.consumers < config.partitions);
    assert_eq!(config.partitions % config.consumers, 0, "equal shares");

    // OpenMessaging Benchmark 1-topic-16-partitions-1kb: 1 producer at a
    // fixed rate, 1 consumer, 16 partitions, 1 KiB, for a time.
    let (omb, config) = load("omb-1-topic-16-partitions-1kb");
    assert_eq!(
        (config.producers, config.consumers, config.partitions),
        (1, 1, 16)
    );
    assert_eq!(omb.fixed_size().unwrap(), 1024);
    assert!(matches!(config.mode, Mode::OpenLoop { .. }));
    assert!(matches!(config.stop, Stop::Duration(_)));

    // The ladder's throughput workload: batches of 1000 x 1 KiB, 2 and 2 on
    // several partitions.
    let (throughput, config) = load("throughput");
    assert_eq!(
        (config.batch, throughput.fixed_size().unwrap()),
        (1000, 1024)
    );
    assert_eq!((config.producers, config.consumers), (2, 2));
    assert!(config.partitions > 2);
}

#[test]
fn named_workloads_fit_a_small_machine_and_say_how_to_run_them_elsewhere() {
    for name in NAMED {
        let workload = Workload::load(name).unwrap();
        assert_eq!(
            LoadConfig::from_workload(&workload).unwrap().validate(),
            Ok(())
        );
        // Hundreds of megabytes at most, deleted after each run: a 2-core
        // machine with a small disk (the throughput ladder's 550 MB a rung is
        // the largest).
        let bytes = bytes_written(&workload);
        assert!(bytes <= 600_000_000, "{name} writes {bytes} bytes");
        let text = std::fs::read_to_string(Workload::dir().join(format!("{name}.toml"))).unwrap();
        let header: String = text
            .lines()
            .take_while(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            header.contains("scale up") || header.contains("Scale up"),
            "{name}: {header}"
        );
        let elsewhere = match name {
            "throughput" => "ladder",
            n if n.starts_with("iggy") => "iggy-bench",
            _ => "bin/benchmark",
        };
        assert!(header.contains(elsewhere), "{name}: {header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_named_workload_runs_its_roles_against_the_in_process_target() {
    for name in NAMED {
        // The same shape, scaled down to a test's size: the counts kept,
        // a tenth of a second for the timed one.
        let mut workload = Workload::load(name).unwrap();
        workload.messages = 4 * u64::from(workload.batch) * u64::from(workload.partitions);
        if workload.duration.is_some() {
            workload.duration = Some(std::time::Duration::from_millis(100));
            workload.rate = Some(20_000);
        }
        let config = LoadConfig::from_workload(&workload).unwrap();
        let target = MemoryTarget::new();
        let outcome = run(&target, &config, &indicatif::ProgressBar::hidden())
            .await
            .unwrap();
        let figures = outcome.figures;
        let lens = target.partition_lens().unwrap();
        assert_eq!(figures.produced_per_partition, lens, "{name}");
        match config.roles {
            Roles::Producers => {
                assert_eq!(figures.consumed, 0, "{name}");
                assert!(figures.producer.messages > 0, "{name}");
            }
            Roles::Consumers => {
                assert_eq!(figures.consumed_per_partition, lens, "{name}");
                assert_eq!(figures.producer.latency.count, 0, "{name}");
                assert_eq!(figures.end_to_end.count, 0, "{name}");
                assert!(figures.consumer.messages > 0, "{name}");
            }
            Roles::Both => {
                assert_eq!(figures.consumed_per_partition, lens, "{name}");
                assert!(figures.end_to_end.count > 0, "{name}");
            }
        }
        if config.partitioning == Partitioning::Pinned {
            assert!(lens.iter().all(|&len| len > 0), "{name}: {lens:?}");
        }
    }
}

#[test]
fn a_bad_workload_file_is_a_clear_error_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("roles = \"producers\"\n", "consumers must be 0"),
        (
            "roles = \"consumers\"\nduration = \"5s\"\n",
            "not a duration",
        ),
        ("roles = \"everyone\"\n", "everyone"),
        (
            "partitioning = \"pinned\"\npartitions = 4\n",
            "would leave 3 of them empty",
        ),
    ];
    for (i, (extra, says)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        let text = format!(
            "description = \"x\"\nmessages = 10\nmessage_size = 64\npayload = \"random\"\nseed = 1\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        let error = Workload::load_path(&path).unwrap_err().to_string();
        assert!(error.contains(&format!("bad-{i}.toml")), "{error}");
        assert!(error.contains(says), "{says}: {error}");
    }
}
