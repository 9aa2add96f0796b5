//! The ladder end to end on a tiny workload: every rung runs, the noisy
//! neighbour's rungs included, and the table, the results file and the
//! page's readings say what was measured. (A smoke test: the figures of a
//! few hundred messages mean nothing, so none is asserted beyond "measured";
//! the readings are checked on figures set here, where their wording is
//! known.)

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::ladder::limits::Sizes;
use bench::ladder::page::readings;
use bench::ladder::{Ladder, LadderResults, NOISY_STAGES, Options, RUNGS, Step, run, steps};
use rivulet_datasets::Workload;

#[test]
fn ladder_smoke_runs_every_rung_and_writes_its_results() {
    let workload = Workload::load("tiny").unwrap();
    let data = tempfile::tempdir_in(bench::bench_data_dir()).unwrap();
    let noisy_core = bench::noisy::last_core();
    let options = Options {
        workload,
        data_dir: data.path().to_path_buf(),
        limit_sizes: Sizes::tiny(),
        server_threads: 1,
        noisy: Some(noisy_core),
    };
    let planned = steps(&options);
    assert_eq!(planned.len(), RUNGS.len() + NOISY_STAGES.len());
    let mut names = Vec::new();
    let results = run(&options, |step| names.push(step.to_string())).unwrap();

    assert_eq!(names.len(), planned.len() + 1, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains(&format!("noisy neighbour on core {noisy_core}"))),
        "{names:?}"
    );
    let ran: Vec<(&str, Ladder, Option<usize>)> = results
        .rungs
        .iter()
        .map(|r| (r.stage.as_str(), r.ladder, r.noisy_core))
        .collect();
    let expected: Vec<(&str, Ladder, Option<usize>)> = planned
        .iter()
        .map(|s: &Step| (s.stage, s.ladder, s.noisy_core))
        .collect();
    assert_eq!(ran, expected);
    for rung in &results.rungs {
        assert!(rung.messages > 0 && rung.mb_per_s > 0.0, "{rung:?}");
        assert!(!rung.durability.is_empty());
        assert_eq!(rung.end_to_end.is_some(), rung.ladder == Ladder::Network);
    }
    // The hog's core is in the file, on exactly the noisy rungs.
    let noisy: Vec<&str> = results
        .rungs
        .iter()
        .filter(|r| r.noisy_core == Some(noisy_core))
        .map(|r| r.stage.as_str())
        .collect();
    assert_eq!(noisy, NOISY_STAGES);
    assert_eq!(results.workload_file.as_ref().unwrap().name, "tiny");

    // The table has a row per rung, and a gain wherever a rung follows one on
    // the same ladder in the same condition (alone, or beside the hog).
    let table = results.table();
    assert_eq!(table.lines().count(), 2 + planned.len());
    let followers = planned
        .windows(2)
        .filter(|pair| pair[0].ladder == pair[1].ladder && pair[0].noisy_core == pair[1].noisy_core)
        .count();
    assert_eq!(table.matches('×').count(), followers, "{table}");
    assert!(
        table.contains(&format!("stage6, noisy core {noisy_core}")),
        "{table}"
    );

    // Batches of 10: the readings say what a batch changes, and what the
    // neighbour cost each stage.
    let text = readings(&results).join("\n");
    assert!(text.contains("Each request carries 10 messages"), "{text}");
    assert!(
        text.contains(&format!("spinning on core {noisy_core}")),
        "{text}"
    );
    assert!(text.contains("Stage 6 over stage 5"), "{text}");

    let path = data.path().join("ladder.json");
    results.write(&path).unwrap();
    assert_eq!(LadderResults::read(&path).unwrap(), results);

    // A file written before the workload and the neighbour were recorded
    // still reads, as rungs alone, with the reading of its day.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("workload_file");
    let rungs = json["rungs"].as_array_mut().unwrap();
    rungs.retain(|rung| rung.get("noisy_core").is_none());
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let old = LadderResults::read(&path).unwrap();
    assert_eq!(old.workload_file, None);
    assert_eq!(old.rungs.len(), RUNGS.len());
    assert!(old.rungs.iter().all(|r| r.noisy_core.is_none()));
    assert_eq!(readings(&old).len(), 1);
}

/// A results file with the given workload and network rungs that each had
/// `in_flight` messages in flight (rate times median latency), and storage
/// rungs at twice their rate: no rung is run.
fn results_with(workload: &str, in_flight: f64) -> LadderResults {
    let workload = Workload::load(workload).unwrap();
    let json = serde_json::json!({
        "date": "2026-01-01T00:00:00Z",
        "commit": "0000000",
        "machine": { "profile": "test", "cpu": "test", "cores": 2, "memory_bytes": 1,
                     "kernel": "test", "filesystem": "ext4" },
        "workload": workload.name,
        "workload_description": workload.description,
        "plan": "test",
        "limits": { "block_size": 4096, "direct_write_mb_s": 100.0, "direct_read_mb_s": 100.0,
                    "direct_write_large_mb_s": 1000.0, "direct_read_large_mb_s": 1000.0,
                    "fsync_latency": percentiles(100_000),
                    "loopback_tcp_mb_s": 2000.0, "memcpy_mb_s": 10000.0 },
        "rungs": [],
    });
    let mut results: LadderResults = serde_json::from_value(json).unwrap();
    // 1000 msg/s and a median of in_flight ms: in_flight messages in flight.
    let p50 = (in_flight * 1e6) as u64;
    for (stage, ladder) in RUNGS {
        let rate = if ladder == Ladder::Storage {
            2000.0
        } else {
            1000.0
        };
        let rung = serde_json::json!({
            "stage": stage, "ladder": ladder, "durability": "test", "latency_unit": "test",
            "messages": 1000, "seconds": 1.0, "messages_per_s": rate, "mb_per_s": rate / 1000.0,
            "latency": percentiles(p50),
        });
        results.rungs.push(serde_json::from_value(rung).unwrap());
    }
    results.workload_file = Some(workload);
    results
}

fn percentiles(p50: u64) -> serde_json::Value {
    serde_json::json!({ "count": 1000, "p50": p50, "p90": p50, "p99": p50, "p999": p50,
                        "p9999": p50, "max": p50 })
}

#[test]
fn the_readings_say_a_round_trip_bounds_one_message_per_request() {
    let quick = readings(&results_with("quick", 1.0)).join("\n");
    assert!(quick.contains("round trip per message"), "{quick}");
    assert!(!quick.contains("Each request carries 1000"), "{quick}");
    // The same workload with many messages in flight is not round-trip bound.
    let busy = readings(&results_with("quick", 50.0)).join("\n");
    assert!(!busy.contains("round trip per message"), "{busy}");
}

#[test]
fn the_readings_say_batches_let_copies_and_storage_show() {
    let text = readings(&results_with("throughput", 2000.0)).join("\n");
    assert!(
        text.contains("Each request carries 1000 messages (1000 KiB)"),
        "{text}"
    );
    assert!(text.contains("copying them"), "{text}");
    // Each network rung beside the same stage's storage rung: half its rate.
    assert!(
        text.contains(
            "stage5 1.0 MB/s over the network against 2.0 MB/s appending in process (50%)"
        ),
        "{text}"
    );
    assert!(!text.contains("round trip per message"), "{text}");
    assert!(!text.contains("noisy"), "{text}");
}
