//! Hostile input. First, property tests over every decoder the server runs
//! on a client's bytes: `frame::read_frame` on arbitrary byte streams, and
//! the broker's and the engine's `Request::decode` for every code from 0 to 40 with arbitrary
//! bodies, lying produce batches, JSON bodies and poll-by-position bodies.
//! None may panic, and none may allocate more than the bytes it was given
//! justify: a counting allocator records the largest single allocation
//! each decode makes.
//!
//! Then the real `rivulet-server`, attacked on loopback: truncated frames,
//! lying length prefixes, unknown codes, out-of-range ids, huge counts,
//! names that are not UTF-8, batches that lie about their lengths, and a
//! slowloris. Each attack gets the error the protocol has for it (the
//! connection is closed where the stream cannot be resynchronised, kept
//! where the frame was sound), and a well-behaved client in the same test
//! keeps producing and polling between and after the attacks.
//!
//! `RIVULET_FUZZ_CASES=N` runs N cases per property (default 256). Why
//! proptest and not cargo-fuzz: cargo-fuzz needs a nightly toolchain and
//! libFuzzer, which CI (stable Rust only) does not have; proptest runs in
//! `cargo test` everywhere, shrinks a failure to a small case, and the
//! long run is the same test with more cases.

#![allow(clippy::unwrap_used)] // helpers too: in a test, a panic is a failure report

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsStr;
use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rivulet_broker::api::{self, PollBy, PollKind, status};
use rivulet_broker::process::ServerProcess;
use rivulet_broker::requests::Request as BrokerRequest;
use rivulet_client::Partitioning;
use rivulet_client::{Client, ClientError, request_frame};
use stage6_broker::IoDriver;
use stage6_broker::shards::frame::{DEFAULT_MAX_FRAME_LEN, FrameError, read_frame};
use stage6_broker::shards::protocol::Request as EngineRequest;

// ---------------------------------------------------------------------------
// The largest allocation, per thread.

/// The system allocator, noting the largest single request on each thread.
/// Rejected: a process-wide counter, which the other tests running in
/// parallel would disturb.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: a const-initialised `Cell` has no destructor, but an
    // allocation after the thread's locals are gone must not panic.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// GlobalAlloc is an unsafe trait: every method here passes the caller's
// request to `System` unchanged, so `System`'s guarantees are this one's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract; passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from this allocator, so from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST.with(Cell::get))
}

// ANCHOR: allowed
/// What decoding `received` bytes may allocate at most in one piece: a
/// small constant, plus a few times the bytes themselves (a produce's
/// record positions, a JSON string's copy). A length or count field can
/// never make it more: that is the property.
fn allowed_for(received: usize) -> usize {
    64 * 1024 + 8 * received
}
// ANCHOR_END: allowed

#[test]
fn hostile_the_counting_allocator_sees_a_large_allocation() {
    // The properties below rest on this: an allocation the size a lying
    // field would cause is seen.
    let (buffer, largest) = largest_allocation(|| Vec::<u8>::with_capacity(16 << 20));
    assert!(largest >= 16 << 20, "{largest}");
    drop(buffer);
    let (_, largest) = largest_allocation(|| ());
    assert!(largest < allowed_for(0));
}

fn cases() -> u32 {
    std::env::var("RIVULET_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

// ---------------------------------------------------------------------------
// Strategies: arbitrary bytes, and bytes shaped like requests that lie.

/// A produce body: topic, a partitioning (maybe an unknown kind), a count
/// that may lie, then records whose lengths may lie, maybe cut short.
fn produce_body() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        0u8..4,
        any::<u32>(),
        prop_oneof![Just(0u32), Just(1), Just(3), any::<u32>()],
        prop::collection::vec((any::<u32>(), 0usize..64, any::<u64>()), 0..6),
        any::<Option<usize>>(),
    )
        .prop_map(|(topic, kind, arg, count, records, cut)| {
            let mut body = topic.to_le_bytes().to_vec();
            body.push(kind);
            match kind {
                0 => body.extend_from_slice(&arg.to_le_bytes()),
                2 => {
                    body.extend_from_slice(&(arg as u16 % 40).to_le_bytes());
                    body.extend(std::iter::repeat_n(b'k', (arg % 40) as usize));
                }
                _ => {}
            }
            body.extend_from_slice(&count.to_le_bytes());
            for (claimed_len, real_len, id) in records {
                body.extend_from_slice(&[0; 4]); // crc
                // Mostly honest lengths, sometimes a lie.
                let len = if claimed_len % 3 == 0 {
                    claimed_len
                } else {
                    real_len as u32
                };
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(&[0; 16]); // offset, timestamp
                body.extend_from_slice(&id.to_le_bytes());
                body.extend(std::iter::repeat_n(0xab, real_len));
            }
            if let Some(cut) = cut {
                body.truncate(cut % (body.len() + 1));
            }
            body
        })
}

/// A poll-by-position body with any kind byte, a consumer length that may
/// lie, consumer bytes that may not be UTF-8, any auto-commit byte.
fn poll_by_body() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        any::<u32>(),
        0u8..8,
        any::<u64>(),
        any::<u32>(),
        prop_oneof![0u16..300, any::<u16>()],
        prop::collection::vec(any::<u8>(), 0..300),
        0u8..4,
        any::<Option<usize>>(),
    )
        .prop_map(
            |(topic, partition, kind, value, count, len, name, commit, cut)| {
                let mut body = topic.to_le_bytes().to_vec();
                body.extend_from_slice(&partition.to_le_bytes());
                body.push(kind);
                body.extend_from_slice(&value.to_le_bytes());
                body.extend_from_slice(&count.to_le_bytes());
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(&name);
                body.push(commit);
                if let Some(cut) = cut {
                    body.truncate(cut % (body.len() + 1));
                }
                body
            },
        )
}

/// Valid JSON for each resource command, to be mutated.
const JSON_SEEDS: [&str; 8] = [
    r#"{"name":"orders"}"#,
    r#"{"stream":"s","name":"t","id":7,"partitions":3,"settings":{"fsync":"always","segment_size":4096,"retention_bytes":1,"retention_seconds":2}}"#,
    r#"{"name":"orders"}"#,
    r#"{"id":4294967295}"#,
    r#"{"stream":"default"}"#,
    r#"{"consumer":"c","topic":{"name":"t"},"partition":4294967295,"offset":18446744073709551615}"#,
    r#"{"consumer":"c","topic":{"id":1}}"#,
    r#"{"username":"u","password":"p","token":null}"#,
];

/// A JSON body: a seed with a few bytes replaced (some with bytes that are
/// not UTF-8), inserted or cut, or deep nesting.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            0..JSON_SEEDS.len(),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6)
        )
            .prop_map(|(seed, edits)| {
                let mut body = JSON_SEEDS[seed].as_bytes().to_vec();
                for (at, byte, how) in edits {
                    let at = at % (body.len() + 1);
                    match how {
                        0 if at < body.len() => body[at] = byte,
                        1 => body.insert(at, byte),
                        _ => body.truncate(at),
                    }
                }
                body
            }),
        (1usize..5000).prop_map(|depth| {
            let mut body = "[".repeat(depth).into_bytes();
            body.extend(std::iter::repeat_n(b']', depth));
            body
        }),
        Just(b"{\"name\":\"\xff\xfe\"}".to_vec()),
    ]
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        produce_body(),
        poll_by_body(),
        json_body(),
    ]
}

/// A frame's body decoded as the broker's session does: its own commands
/// first, then the engine's; `None` for a code neither knows.
fn decode_any(code: u16, body: Vec<u8>) -> Option<Result<(), String>> {
    if let Some(decoded) = BrokerRequest::decode(code, &body) {
        return Some(decoded.map(drop).map_err(|e| e.to_string()));
    }
    EngineRequest::decode(code, body).map(|decoded| decoded.map(drop).map_err(|e| e.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    // ANCHOR: decode_property

    #[test]
    fn hostile_request_decode_never_panics_nor_allocates_what_a_field_claims(
        code in 0u16..=40,
        body in any_body(),
    ) {
        let received = body.len();
        let (decoded, largest) = largest_allocation(|| {
            // The decoded request (and its error) is dropped inside, so
            // what it holds is counted too.
            decode_any(code, body)
        });
        prop_assert!(
            largest <= allowed_for(received),
            "code {code}: {received} bytes made an allocation of {largest} bytes"
        );
        // Codes that are not commands are unknown, never something else.
        if !(10..=12).contains(&code) && !(20..=38).contains(&code) {
            prop_assert!(decoded.is_none(), "code {code} decoded as a command");
        }
    }
    // ANCHOR_END: decode_property

    #[test]
    fn hostile_poll_by_decodes_only_what_it_encodes(
        topic in any::<u32>(),
        partition in any::<u32>(),
        kind in 0u8..5,
        value in any::<u64>(),
        count in any::<u32>(),
        consumer in "[A-Za-z0-9._-]{0,255}",
        auto_commit in any::<bool>(),
    ) {
        let poll = PollBy {
            topic,
            partition,
            kind: PollKind::from_wire(kind, value).unwrap(),
            count,
            consumer,
            auto_commit,
        };
        match BrokerRequest::decode(api::code::POLL_BY, &poll.encode()) {
            Some(Ok(BrokerRequest::PollBy(decoded))) => prop_assert_eq!(decoded, poll),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn hostile_read_frame_on_any_byte_stream_refuses_claims_over_the_limit_unread(
        stream in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            // Headers that lie, each followed by a little body.
            prop::collection::vec((any::<u32>(), any::<u16>(), 0usize..64), 1..4).prop_map(
                |frames| {
                    let mut bytes = Vec::new();
                    for (len, code, body) in frames {
                        bytes.extend_from_slice(&len.to_le_bytes());
                        bytes.extend_from_slice(&code.to_le_bytes());
                        bytes.extend_from_slice(&7u32.to_le_bytes());
                        bytes.extend(std::iter::repeat_n(1, body));
                    }
                    bytes
                }
            ),
        ],
        max_len in prop_oneof![Just(DEFAULT_MAX_FRAME_LEN), 6u32..4096],
    ) {
        let runtime = IoDriver::Polling.runtime().unwrap();
        let mut reader = stream.as_slice();
        let mut frames = 0;
        loop {
            let (frame, largest) =
                largest_allocation(|| runtime.block_on(read_frame(&mut reader, max_len)));
            // A body is allocated only once its length passed the limit.
            prop_assert!(
                largest <= 64 * 1024 + max_len as usize,
                "an allocation of {largest} bytes with a limit of {max_len}"
            );
            match frame {
                Ok(frame) => {
                    frames += 1;
                    prop_assert!(frame.body.len() + 6 <= max_len as usize);
                }
                Err(FrameError::TooLarge { len, max, .. }) => {
                    prop_assert!(len > max);
                    break;
                }
                Err(FrameError::TooShort { len }) => {
                    prop_assert!(len < 6);
                    break;
                }
                Err(FrameError::Closed | FrameError::Io(_)) => break,
            }
        }
        prop_assert!(frames <= stream.len() / 10);
    }
}

// ---------------------------------------------------------------------------
// The real server.

/// Whether this `rivulet-server` has a flag (they arrive in stages).
fn has_flag(flag: &str) -> bool {
    let help = Command::new(env!("CARGO_BIN_EXE_rivulet-server"))
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&help.stdout).contains(flag)
}

/// `rivulet-server` on a free loopback port: 2 shards, Direct I/O (the test
/// folders are on ext4), no metrics endpoint (its default port is fixed,
/// and tests run in parallel), and `extra`.
fn spawn(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&OsStr> = ["--listen", "127.0.0.1:0", "--shards", "2"]
        .into_iter()
        .chain(["--direct-io", "on", "--pin", "off"])
        .chain(extra.iter().copied())
        .map(OsStr::new)
        .collect();
    if has_flag("--metrics-listen") {
        args.extend([OsStr::new("--metrics-listen"), OsStr::new("off")]);
    }
    if has_flag("--log-level") {
        args.extend([OsStr::new("--log-level"), OsStr::new("warn")]);
    }
    args.push(OsStr::new("--data"));
    args.push(dir.as_os_str());
    ServerProcess::spawn(Path::new(env!("CARGO_BIN_EXE_rivulet-server")), &args).unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC: u32 = 1;

/// A client with [`TIMEOUT`] on every read and write: a hang fails the test.
fn connect(addr: std::net::SocketAddr) -> Client {
    Client::connect_with_timeout(addr, TIMEOUT).unwrap()
}

/// Bytes of a whole request frame: header and body.
fn frame(code: u16, correlation: u32, body: &[u8]) -> Vec<u8> {
    request_frame(code, correlation, body).unwrap()
}

/// The well-behaved client: a produce and a poll of what it produced.
struct Good {
    conn: Client,
    next_id: u64,
}

impl Good {
    fn new(addr: std::net::SocketAddr) -> Good {
        let mut conn = connect(addr);
        conn.create_topic_by_id(TOPIC, 2).unwrap();
        Good { conn, next_id: 0 }
    }

    /// One round trip: produce a message, poll it back, same bytes.
    fn round_trip(&mut self, after: &str) {
        let id = self.next_id;
        self.next_id += 1;
        let payload = format!("message {id}, after {after}").into_bytes();
        let produced = self
            .conn
            .produce_with_ids(TOPIC, Partitioning::Explicit(0), [(id, &payload)])
            .unwrap_or_else(|e| panic!("produce after {after}: {e}"));
        let records = self
            .conn
            .poll(TOPIC, 0, produced.first_offset, 1)
            .unwrap_or_else(|e| panic!("poll after {after}: {e}"));
        assert_eq!(records.len(), 1, "after {after}");
        assert_eq!((records[0].id, &records[0].payload), (id, &payload));
    }
}

/// Sends `bytes` on a new connection; expects an error reply with `status`
/// and then, if `closed`, the connection closed by the server. Returns the
/// error message.
fn attack(addr: std::net::SocketAddr, bytes: &[u8], status: u16, closed: bool) -> String {
    let mut conn = connect(addr);
    conn.send_raw(bytes).unwrap();
    let (got, _, body) = conn.read_reply().unwrap();
    let message = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(got, status, "{message}");
    assert!(!message.is_empty(), "an error says why");
    if closed {
        assert!(
            conn.is_closed_by_server(TIMEOUT),
            "closed after status {status}: {message}"
        );
    }
    message
}

/// A produce body of stage 4's layout, to explicit partition `partition`.
fn produce_body_for(topic: u32, partition: u32, records: &[(u64, &[u8])]) -> Vec<u8> {
    let mut body = topic.to_le_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&partition.to_le_bytes());
    body.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (id, payload) in records {
        stage6_broker::storage::record::encode(&mut body, 0, 0, *id, payload);
    }
    body
}

fn poll_body(topic: u32, partition: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut body = topic.to_le_bytes().to_vec();
    body.extend_from_slice(&partition.to_le_bytes());
    body.extend_from_slice(&offset.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    body
}

#[test]
fn hostile_frames_are_refused_and_a_good_client_keeps_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]);
    let addr = server.addr();
    let mut good = Good::new(addr);
    good.round_trip("start");

    // A length prefix claiming 4 GiB: refused from the header alone.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&api::code::PRODUCE.to_le_bytes());
    huge.extend_from_slice(&9u32.to_le_bytes());
    attack(addr, &huge, status::FRAME_TOO_LARGE, true);
    // One byte over the limit, and a body that never comes.
    let mut over = (DEFAULT_MAX_FRAME_LEN + 1).to_le_bytes().to_vec();
    over.extend_from_slice(&[11, 0, 1, 0, 0, 0]);
    attack(addr, &over, status::FRAME_TOO_LARGE, true);
    // Shorter than its own code and correlation.
    attack(
        addr,
        &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        status::MALFORMED,
        true,
    );
    good.round_trip("length prefixes that lie");

    // Unknown codes, below, between and above the commands.
    for code in [0u16, 2, 13, 19, 39, 40, 999, u16::MAX] {
        attack(addr, &frame(code, 5, b"{}"), status::UNKNOWN_COMMAND, true);
    }
    good.round_trip("unknown codes");

    // A frame cut short: the client sends half a body and closes its side.
    let mut conn = connect(addr);
    let whole = frame(
        api::code::PRODUCE,
        6,
        &produce_body_for(TOPIC, 0, &[(1, b"x")]),
    );
    conn.send_raw(&whole[..whole.len() / 2]).unwrap();
    conn.stream().shutdown(Shutdown::Write).unwrap();
    assert!(
        conn.is_closed_by_server(TIMEOUT),
        "a truncated frame ends it"
    );
    good.round_trip("a truncated frame");

    // Produces whose records lie about their lengths or count.
    let mut body = produce_body_for(TOPIC, 0, &[(1, b"abc"), (2, b"def")]);
    let first_len_at = 4 + 1 + 4 + 4 + 4;
    body[first_len_at..first_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    attack(
        addr,
        &frame(api::code::PRODUCE, 7, &body),
        status::MALFORMED,
        true,
    );
    let mut body = produce_body_for(TOPIC, 0, &[(1, b"abc")]);
    body[9..13].copy_from_slice(&u32::MAX.to_le_bytes()); // the count
    attack(
        addr,
        &frame(api::code::PRODUCE, 8, &body),
        status::MALFORMED,
        true,
    );
    let mut body = produce_body_for(TOPIC, 0, &[(1, b"abc")]);
    body[9..13].copy_from_slice(&0u32.to_le_bytes());
    attack(
        addr,
        &frame(api::code::PRODUCE, 9, &body),
        status::MALFORMED,
        true,
    );
    good.round_trip("lying produces");

    // Sound frames with values out of range: an error, and the connection
    // stays usable (the next frame is where the protocol says).
    let mut conn = connect(addr);
    let error = conn
        .call(api::code::POLL, &poll_body(123_456, 0, 0, 10))
        .unwrap_err();
    assert_eq!(error.status(), Some(status::TOPIC_NOT_FOUND), "{error}");
    let error = conn
        .call(api::code::POLL, &poll_body(TOPIC, u32::MAX, 0, 10))
        .unwrap_err();
    assert_eq!(error.status(), Some(status::PARTITION_NOT_FOUND), "{error}");
    let error = conn
        .call(
            api::code::PRODUCE,
            &produce_body_for(TOPIC, 77, &[(1, b"x")]),
        )
        .unwrap_err();
    assert!(error.status().is_some_and(|s| s != 0), "{error}");
    // Topics with absurd partition counts: refused before anything is made.
    for partitions in [0, u32::MAX] {
        let mut body = 77u32.to_le_bytes().to_vec();
        body.extend_from_slice(&partitions.to_le_bytes());
        let error = conn.call(api::code::CREATE_TOPIC, &body).unwrap_err();
        assert_eq!(error.status(), Some(status::INVALID), "{error}");
    }
    // A huge count is capped, not honoured (and not allocated for).
    let records = conn.poll(TOPIC, 0, 0, u32::MAX).unwrap();
    assert!(!records.is_empty() && records.len() <= 1000);
    // An offset far past the end: nothing, not an error.
    assert!(conn.poll(TOPIC, 0, u64::MAX, 10).unwrap().is_empty());
    good.round_trip("out-of-range ids and counts");

    // Names: JSON with bytes that are not UTF-8, and poll-by-position
    // consumer names that are not UTF-8 or whose length lies. Where the
    // server has these commands; an older one calls them unknown.
    let stage6_commands = {
        let mut probe = connect(addr);
        !matches!(
            probe.call(api::code::LIST_STREAMS, b"{}"),
            Err(ClientError::Server { status: 3, .. })
        )
    };
    if stage6_commands {
        attack(
            addr,
            &frame(api::code::CREATE_STREAM, 10, b"{\"name\":\"\xff\xfe\"}"),
            status::MALFORMED,
            true,
        );
        attack(
            addr,
            &frame(api::code::CREATE_TOPIC_NAMED, 11, b"{\"name\":"),
            status::MALFORMED,
            true,
        );
        let poll = PollBy {
            topic: TOPIC,
            partition: 0,
            kind: PollKind::Next,
            count: 10,
            consumer: "ab".to_string(),
            auto_commit: true,
        };
        let mut body = poll.encode();
        let name_at = 4 + 4 + 1 + 8 + 4 + 2;
        body[name_at] = 0xff;
        attack(
            addr,
            &frame(api::code::POLL_BY, 12, &body),
            status::MALFORMED,
            true,
        );
        let mut body = poll.encode();
        body[name_at - 2..name_at].copy_from_slice(&u16::MAX.to_le_bytes());
        attack(
            addr,
            &frame(api::code::POLL_BY, 13, &body),
            status::MALFORMED,
            true,
        );
        // Sound JSON with absurd values: an error, and the connection stays.
        let mut conn = connect(addr);
        let invalid = status::INVALID;
        for (body, status) in [
            (r#"{"name":"huge","partitions":4294967295}"#, invalid),
            (
                r#"{"name":"odd","partitions":1,"settings":{"segment_size":4097}}"#,
                invalid,
            ),
            (
                r#"{"name":"vast","partitions":1,"settings":{"segment_size":18446744073709551615}}"#,
                invalid,
            ),
            (
                r#"{"name":"dup","id":1,"partitions":1}"#,
                api::status::ALREADY_EXISTS,
            ),
        ] {
            let error = conn
                .call(api::code::CREATE_TOPIC_NAMED, body.as_bytes())
                .unwrap_err();
            assert_eq!(error.status(), Some(status), "{body}: {error}");
        }
        assert!(conn.poll(TOPIC, 0, 0, 1).is_ok(), "the connection stays");
        // A UTF-8 name with a character names may not have: a sound frame
        // with a bad value, so an error and the connection stays.
        let mut conn = connect(addr);
        let bad = PollBy {
            consumer: "a b".to_string(),
            ..poll.clone()
        };
        let error = conn.call(api::code::POLL_BY, &bad.encode()).unwrap_err();
        assert_eq!(error.status(), Some(status::INVALID), "{error}");
        assert!(conn.poll(TOPIC, 0, 0, 1).is_ok(), "the connection stays");
        // A poll by position asking for 4 billion records: capped.
        let all = PollBy {
            kind: PollKind::First,
            count: u32::MAX,
            consumer: String::new(),
            auto_commit: false,
            ..poll.clone()
        };
        let records = conn.poll_by(&all).unwrap();
        assert!(!records.is_empty() && records.len() <= 1000);
        good.round_trip("names that are not UTF-8");
    } else {
        eprintln!("skipped: this server has no stage 6 commands (LIST_STREAMS is unknown)");
    }

    // Nothing hostile reached the log: only the good client's messages.
    let records = good.conn.poll(TOPIC, 0, 0, 1000).unwrap();
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..good.next_id).collect::<Vec<_>>());
    assert!(server.terminate().unwrap().success());
}

#[test]
fn hostile_slowloris_does_not_block_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let idle = has_flag("--idle-timeout-seconds");
    let extra: &[&str] = if idle {
        &["--idle-timeout-seconds", "2"]
    } else {
        &[]
    };
    let server = spawn(dir.path(), extra);
    let addr = server.addr();
    // Several connections, so some land on each shard: each sends half a
    // header and stalls, holding its shard's attention if it could.
    // Taken before the first stalled connection exists: each of them has
    // been open at least this long when the idle timeout closes it.
    let started = Instant::now();
    let mut stalled: Vec<Client> = (0..8)
        .map(|n| {
            let mut conn = connect(addr);
            conn.send_raw(&[16, 0, 0, 0, 11][..1 + n % 5]).unwrap();
            conn
        })
        .collect();
    // And one that sends a whole header and half its body.
    let mut half_body = connect(addr);
    let whole = frame(
        api::code::PRODUCE,
        1,
        &produce_body_for(TOPIC, 0, &[(999_999, b"slow")]),
    );
    half_body.send_raw(&whole[..whole.len() - 3]).unwrap();
    half_body.stream().flush().unwrap();
    // Meanwhile, on new connections, everyone else is served.
    let mut good = Good::new(addr);
    for n in 0..20 {
        good.round_trip(&format!("{n} stalled round trips"));
        let mut other = Good::new(addr);
        other.round_trip("a new connection beside the stalled ones");
    }
    if idle {
        // The idle timeout closes them all, and the half-sent produce
        // never reached the log.
        for conn in stalled.iter_mut().chain([&mut half_body]) {
            assert!(conn.is_closed_by_server(TIMEOUT));
        }
        assert!(started.elapsed() >= Duration::from_secs(2));
        // A fresh connection: `good` has been idle while the test waited,
        // and the same timeout may have closed it.
        let ids: Vec<u64> = Good::new(addr)
            .conn
            .poll(TOPIC, 0, 0, 1000)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert!(
            !ids.contains(&999_999),
            "the half-sent produce reached the log: {ids:?}"
        );
    } else {
        eprintln!("note: this server has no --idle-timeout-seconds: stalled connections stay open");
    }
    assert!(server.terminate().unwrap().success());
}
