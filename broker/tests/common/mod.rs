//! Helpers shared by the broker's tests.

#![allow(dead_code)] // each test file uses its own share of these

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use rivulet_broker::process::ServerProcess;

/// The real `rivulet-server` on a free loopback port, with 2 shards, small
/// segments, no metrics endpoint, and `extra` flags (Direct I/O is on unless
/// they say otherwise: the test folders are on ext4).
pub fn rivulet_server(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&OsStr> = ["--listen", "127.0.0.1:0", "--shards", "2"]
        .into_iter()
        .chain(["--segment-size", "262144"])
        // Tests run at once: no two may want the default metrics port.
        .chain(["--metrics-listen", "off"])
        .chain(extra.iter().copied())
        .map(OsStr::new)
        .collect();
    args.push(OsStr::new("--data"));
    args.push(dir.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_rivulet-server")), &args).unwrap()
}

/// Waits for `ready` to hold, looking every 20 ms. The minute's bound is
/// only ever reached by a server that is wrong: on a busy machine a check
/// just takes more looks.
pub fn eventually(what: &str, ready: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(60), ready, String::new);
}

/// [`eventually`] with its own bound, and `explain` (the state then: a
/// client's log, the group as the server sees it) in the failure.
pub fn eventually_within(
    what: &str,
    bound: Duration,
    ready: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    assert!(
        holds_within(bound, ready),
        "still not so after {bound:?}: {what}\n{}",
        explain()
    );
}

/// Waits for `child` to exit, at most `bound` (only a hung child reaches
/// it): its status, or `None` with the child left running, for the caller
/// to kill and report.
pub fn exit_within(
    child: &mut std::process::Child,
    bound: Duration,
) -> Option<std::process::ExitStatus> {
    let mut status = None;
    holds_within(bound, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// How long the waiting loop sleeps between two looks.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// The one waiting loop of the broker's tests, every wait above goes
/// through it: looks at `ready` every 20 ms until it holds (true) or it
/// has looked `bound / 20 ms` times (false). The bound is a count of looks,
/// not a reading of the clock: each look sleeps at least 20 ms, so the loop
/// waits at least `bound`, and a busy machine, where sleeps and checks run
/// late, only makes it wait longer, never give up sooner.
fn holds_within(bound: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let looks = bound.as_millis() / LOOK_EVERY.as_millis() + 1;
    for _ in 0..looks {
        if ready() {
            return true;
        }
        std::thread::sleep(LOOK_EVERY);
    }
    ready()
}

/// A new connection to `addr` is let in once the server has seen an earlier
/// one leave: until then it may be refused at the connection limit.
pub fn room_after_a_client_left(addr: &str) {
    eventually("room for a new connection after one left", || {
        let mut client = rivulet_client::Client::connect(addr).unwrap();
        match client.list_streams() {
            Ok(_) => true,
            Err(error)
                if error.status() == Some(rivulet_broker::api::status::TOO_MANY_CONNECTIONS) =>
            {
                false
            }
            Err(error) => panic!("{error}"),
        }
    });
}
