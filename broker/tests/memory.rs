//! The real `rivulet-server`'s memory under clients that claim large
//! requests and never finish them. Each header may claim up to
//! `--max-frame-len` bytes (16 MiB by default); a hundred such clients used
//! to make the server hold a hundred half-read bodies at once. Now the
//! bytes of large requests in flight over every connection are bounded by
//! `--max-request-bytes-in-flight` (256 MiB by default): a request that does
//! not fit waits, unread, while small requests are served on; and once the
//! stalled clients are gone the memory is given back to the kernel, wave
//! after wave (glibc keeps what a second wave frees unless asked to return
//! it).
//!
//! Measured: the server's resident set (`VmRSS` in `/proc/<pid>/status`),
//! against bounds stated from the budget, never against a time.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

mod common;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::rivulet_server;
use rivulet_broker::api;
use rivulet_client::{Client, Partitioning};

const MIB: usize = 1 << 20;

/// The server's resident memory now, in bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .map(|kib| kib.trim().parse().unwrap())
        .unwrap();
    kib * 1024
}

/// `count` connections, each with a header claiming a produce of `claimed`
/// bytes sent.
fn claim(addr: SocketAddr, count: usize, claimed: usize) -> Vec<TcpStream> {
    let mut header = u32::try_from(claimed).unwrap().to_le_bytes().to_vec();
    header.extend_from_slice(&api::code::PRODUCE.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(&header).unwrap();
            stream
        })
        .collect()
}

/// Sends as much of `body` on every stream as the server takes, without
/// blocking on any: round after round, until every stream has sent it all
/// or none has taken a byte for `quiet` (the server reads no more).
/// Returns how many sent all of it. The quiet period is the one place this
/// test reads the clock, and it cannot make it fail: a server paused longer
/// by a busy machine only ends the sending sooner, so it holds less when the
/// bound is checked (the test then proves less, and says how many sent
/// their half whole).
fn send_until_stalled(streams: &mut [TcpStream], body: &[u8], quiet: Duration) -> usize {
    for stream in streams.iter() {
        stream.set_nonblocking(true).unwrap();
    }
    let mut sent = vec![0usize; streams.len()];
    let mut last_progress = Instant::now();
    while last_progress.elapsed() < quiet && sent.iter().any(|&n| n < body.len()) {
        let mut progressed = false;
        for (stream, sent) in streams.iter_mut().zip(sent.iter_mut()) {
            if *sent == body.len() {
                continue;
            }
            let end = (*sent + 256 * 1024).min(body.len());
            match stream.write(&body[*sent..end]) {
                Ok(n) => {
                    *sent += n;
                    progressed |= n > 0;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => panic!("sending a body: {error}"),
            }
        }
        if progressed {
            last_progress = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    sent.iter().filter(|&&n| n == body.len()).count()
}

/// Waits (up to a minute) for the server's resident memory to drop under
/// `bound`; returns the last reading.
fn rss_falls_under(pid: u32, bound: usize) -> usize {
    let mut now = rss(pid);
    common::eventually("resident memory falls back once the clients left", || {
        now = rss(pid);
        now < bound
    });
    now
}

// ANCHOR: memory_test
#[test]
fn memory_of_stalled_large_requests_is_bounded_by_the_budget_and_given_back() {
    let budget = 256 * MIB; // the default of --max-request-bytes-in-flight
    let (connections, claimed) = (100, 16 * MIB); // 16 MiB: the default --max-frame-len
    let dir = tempfile::tempdir().unwrap();
    let server = rivulet_server(dir.path(), &["--log-level", "error"]);
    let (addr, pid) = (server.addr(), server.id());
    let mut good = Client::connect(&addr.to_string()).unwrap();
    good.create_topic_by_id(1, 1).unwrap();
    good.produce(1, Partitioning::Explicit(0), [b"before"])
        .unwrap();
    let before = rss(pid);
    // What the server may hold: the budget, 64 KiB per connection (smaller
    // requests are not counted), and room for the allocator's own slack.
    let held_bound = before + budget + connections * 64 * 1024 + 64 * MIB;
    // What it may keep once they are gone.
    let after_bound = before + budget / 4;
    let half = vec![0xab; claimed / 2];

    // Two waves: the allocator returns the first one's memory by itself,
    // and keeps the second's unless asked.
    for wave in 0..2 {
        // Each claims a 16 MiB produce, sends half of it, and stalls.
        // Unbounded, that is 800 MiB held by the server.
        let mut stalled = claim(addr, connections, claimed);
        let whole = send_until_stalled(&mut stalled, &half, Duration::from_secs(2));
        let held = rss(pid);
        eprintln!(
            "wave {wave}: {} MiB resident before, {} MiB with {connections} stalled \
             requests ({whole} sent their half whole); budget {} MiB",
            before / MIB,
            held / MIB,
            budget / MIB
        );
        assert!(
            held < held_bound,
            "wave {wave}: {} MiB resident, over {} MiB",
            held / MIB,
            held_bound / MIB
        );
        if wave == 0 {
            // Small requests are not held up by the stalled large ones.
            good.produce(1, Partitioning::Explicit(0), [b"beside them"])
                .unwrap();
            assert_eq!(good.poll(1, 0, 0, 10).unwrap().len(), 2);
            // A large one waits for the budget, unread, while they hold it...
            let big = std::thread::spawn(move || {
                let mut client = Client::connect(&addr.to_string()).unwrap();
                client.set_timeout(Some(Duration::from_secs(120))).unwrap();
                client.produce(1, Partitioning::Explicit(0), [vec![7u8; 128 * 1024]])
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                !big.is_finished(),
                "a large request was served over the budget"
            );
            // ...and is served once they are gone.
            drop(stalled);
            assert_eq!(big.join().unwrap().unwrap().count, 1);
        } else {
            drop(stalled);
        }
        let after = rss_falls_under(pid, after_bound);
        eprintln!(
            "wave {wave}: {} MiB resident after they closed",
            after / MIB
        );
        assert!(
            after < after_bound,
            "wave {wave}: {} MiB still resident after the stalled clients left, \
             over {} MiB",
            after / MIB,
            after_bound / MIB
        );
    }
    assert!(server.terminate().unwrap().success());
}
// ANCHOR_END: memory_test
