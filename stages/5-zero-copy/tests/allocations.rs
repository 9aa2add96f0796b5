//! The counting allocator's proof: the produce and poll paths allocate a
//! constant number of times per batch, whatever its number of messages, where
//! stage 4's decoding allocates once per message.
//!
//! One test function on purpose: the counter's switch is process-wide, and
//! tests in one binary run on parallel threads.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::sync::Arc;
use std::time::Instant;

use stage2_batching::{Config, FsyncPolicy};
use stage3_tcp_server::connection::{ReplyBody, Service};
use stage3_tcp_server::protocol::BodyReader;
use stage4_partitions::protocol::record::{Checksum, Record, decode_records};
use stage4_partitions::protocol::{Request as Stage4Request, code};
use stage4_partitions::{Partitioning, TopicsConfig};
use stage5_zero_copy::alloc_count::{self, Allocations, CountingAllocator};
use stage5_zero_copy::{BatchView, Partition, ReceivedBatch, Topics};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const SMALL: u64 = 10;
const LARGE: u64 = 1000;

/// A produce request's body for `n` messages, as stage 4's client sends it.
fn produce_body(n: u64) -> Vec<u8> {
    let records = (0..n)
        .map(|id| Record {
            offset: 0,
            timestamp: 0,
            id,
            payload: vec![id as u8; 100],
        })
        .collect();
    let request = Stage4Request::Produce {
        topic: 1,
        partitioning: Partitioning::Explicit(0),
        records,
    };
    request.encode().1
}

/// The smallest count of `runs` runs of `f` (each with fresh input from
/// `input`), so that a one-off allocation elsewhere (a thread pool growing,
/// say) does not decide the result.
fn fewest<I, T>(mut input: impl FnMut() -> I, mut f: impl FnMut(I) -> T) -> Allocations {
    (0..5)
        .map(|_| {
            let input = input();
            alloc_count::count(|| drop(f(input))).1
        })
        .min_by_key(|a| (a.all_threads, a.this_thread))
        .unwrap()
}

#[test]
fn allocations_per_batch_are_constant_on_the_produce_and_poll_paths() {
    let dir = tempfile::tempdir().unwrap();

    // The counter works: stage 4's owned decoding allocates per message.
    let body = produce_body(LARGE);
    let (_, stage4) = alloc_count::count(|| {
        let mut reader = BodyReader::new(&body[9..]); // after topic and partitioning
        decode_records(&mut reader, Checksum::Ignore).unwrap()
    });
    assert!(stage4.this_thread > LARGE, "{stage4:?}");

    // Views: nothing at all, whatever the size.
    for n in [SMALL, LARGE] {
        let body = produce_body(n);
        let (sum, views) = alloc_count::count(|| {
            let view = BatchView::parse(&body[9..]).unwrap();
            view.iter()
                .map(|r| r.id() + r.payload().len() as u64)
                .sum::<u64>()
        });
        assert!(sum > 0);
        assert_eq!(views.this_thread, 0, "views of {n} records");
    }

    // The storage core, on this thread: validate, stamp, write, read back.
    let mut partition = Partition::open(
        &dir.path().join("core"),
        Config::new(FsyncPolicy::Never),
        Instant::now(),
    )
    .unwrap();
    let mut core = Vec::new();
    for n in [SMALL, LARGE] {
        let produce = fewest(
            || produce_body(n),
            |body| {
                let mut batch = ReceivedBatch::validate(body, 9).unwrap();
                partition.append(&mut batch, 1, Instant::now()).unwrap()
            },
        );
        let first = partition.status().next_offset - n;
        let poll = fewest(
            || (),
            |()| partition.read(first, n as u32, usize::MAX).unwrap(),
        );
        core.push((produce.this_thread, poll.this_thread));
    }
    assert_eq!(
        core[0], core[1],
        "core (produce, poll) allocations: {core:?}"
    );
    // One for the index entries of a batch; one for the records a poll reads.
    assert_eq!(core[0], (1, 1));

    // The whole service path, as the connection loop drives it: decode the
    // frame body, handle the request, on every thread (the disk work runs on
    // a blocking thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topics: Arc<Topics> = runtime
        .block_on(Topics::open(TopicsConfig::new(
            dir.path().join("service"),
            FsyncPolicy::Never,
        )))
        .unwrap();
    runtime.block_on(topics.create(1, 1)).unwrap();
    let serve = |code: u16, body: Vec<u8>| -> ReplyBody {
        let request = topics.decode(code, body).unwrap().unwrap();
        runtime.block_on(topics.handle(request)).unwrap()
    };
    let poll_body = |offset: u64, count: u64| {
        Stage4Request::Poll {
            topic: 1,
            partition: 0,
            offset,
            count: count as u32,
        }
        .encode()
        .1
    };
    // Warm up: the blocking pool's thread, the runtime's queues.
    for n in [SMALL, LARGE] {
        serve(code::PRODUCE, produce_body(n));
        serve(code::POLL, poll_body(0, n));
    }
    let mut service = Vec::new();
    let mut offset = SMALL + LARGE;
    for n in [SMALL, LARGE] {
        let produce = fewest(|| produce_body(n), |body| serve(code::PRODUCE, body));
        let poll = fewest(|| poll_body(offset, n), |body| serve(code::POLL, body));
        let reply = serve(code::POLL, poll_body(offset, n));
        assert!(matches!(reply, ReplyBody::Counted { .. }));
        offset += 5 * n;
        service.push((produce.all_threads, poll.all_threads));
    }
    assert_eq!(
        service[0], service[1],
        "service (produce, poll) allocations per batch of {SMALL} and of {LARGE}: {service:?}"
    );
    // A handful: the blocking task, the index entries, the reply, the read.
    assert!(service[1].0 < 10 && service[1].1 < 10, "{service:?}");
}
