//! The ladder end to end on a tiny workload: every rung runs, the table and
//! the results file say what was measured. (A smoke test: the figures of a
//! few hundred messages mean nothing, so none is asserted beyond "measured".)

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use bench::ladder::limits::Sizes;
use bench::ladder::{Ladder, LadderResults, Options, RUNGS, run};
use rivulet_datasets::Workload;

#[test]
fn ladder_smoke_runs_every_rung_and_writes_its_results() {
    let workload = Workload::load("tiny").unwrap();
    let data = tempfile::tempdir_in(bench::bench_data_dir()).unwrap();
    let options = Options {
        workload,
        data_dir: data.path().to_path_buf(),
        limit_sizes: Sizes::tiny(),
        server_threads: 1,
    };
    let mut steps = Vec::new();
    let results = run(&options, |step| steps.push(step.to_string())).unwrap();

    assert_eq!(steps.len(), RUNGS.len() + 1, "{steps:?}");
    let stages: Vec<&str> = results.rungs.iter().map(|r| r.stage.as_str()).collect();
    assert_eq!(
        stages,
        RUNGS.iter().map(|(stage, _)| *stage).collect::<Vec<_>>()
    );
    for rung in &results.rungs {
        assert!(rung.messages > 0 && rung.mb_per_s > 0.0, "{rung:?}");
        assert!(!rung.durability.is_empty());
        assert_eq!(rung.end_to_end.is_some(), rung.ladder == Ladder::Network);
    }

    // The table has a row per rung, and a gain wherever a rung follows one on
    // the same ladder.
    let table = results.table();
    assert_eq!(table.lines().count(), 2 + RUNGS.len());
    let followers = RUNGS
        .windows(2)
        .filter(|pair| pair[0].1 == pair[1].1)
        .count();
    assert_eq!(table.matches('×').count(), followers, "{table}");

    let path = data.path().join("ladder.json");
    results.write(&path).unwrap();
    assert_eq!(LadderResults::read(&path).unwrap(), results);
}
