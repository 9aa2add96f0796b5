//! io_uring from scratch, with the `io-uring` crate and nothing else: one ring,
//! four writes, a data sync and a read, handed to the kernel with one system
//! call, and their completions matched back to them by `user_data`.
//!
//! ```sh
//! cargo run -p stage6-broker --example uring_from_scratch
//! ```
//!
//! The ring is two queues in memory shared with the kernel. We write
//! *submission queue entries* (SQEs: "write these 4096 bytes from this address
//! at this offset of this file") into one; a single `io_uring_enter` tells the
//! kernel how many are new and, here, also waits for their results; the
//! kernel posts one *completion queue entry* (CQE: the request's `user_data`
//! and its result, bytes or `-errno`) per request into the other, in the order
//! they finish, which need not be the order they were submitted in.
//!
//! The chapter "Stage 6: io_uring" walks through it. Stage 6 itself never
//! touches a ring directly: compio does, and this example shows what compio
//! hides, including the one rule that makes it `unsafe`: the kernel uses the
//! buffers after `push` returns, so their memory must stay allocated and
//! untouched until their completions arrive.

// The pushes hand the kernel raw pointers into our buffers, which the compiler
// cannot check, so this file (an example, not the library) allows unsafe code;
// each block says what keeps it sound.
#![allow(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use rustix::io::Errno;

/// Bytes per write: one block, the size stage 6 writes in.
const BLOCK: usize = 4096;
/// Blocks written.
const BLOCKS: usize = 4;
/// Submission queue slots. A power of two; the kernel makes the completion
/// queue twice as large, so completions cannot overflow it.
const RING_ENTRIES: u32 = 8;

/// What each request was. Its index in [`Plan::requests`] is its `user_data`:
/// the one field the kernel copies from an SQE to its CQE untouched, so it is
/// how a completion finds its request. compio puts a pointer to the
/// operation's heap slot there instead; an index into a table is the same idea.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// Write block `n` at byte `n * BLOCK`.
    Write(usize),
    /// `fdatasync`, drained after the writes and linked to the read.
    Sync,
    /// Read every block back.
    Read,
}

impl Request {
    /// The result a successful completion carries: bytes moved, or 0.
    fn expected(self) -> i32 {
        match self {
            Request::Write(_) => BLOCK as i32,
            Request::Sync => 0,
            Request::Read => (BLOCKS * BLOCK) as i32,
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Write(n) => {
                write!(f, "write block {n} ({BLOCK} bytes at offset {})", n * BLOCK)
            }
            Request::Sync => write!(
                f,
                "fdatasync (drain: after every write; link: before the read)"
            ),
            Request::Read => write!(f, "read {} bytes at offset 0", BLOCKS * BLOCK),
        }
    }
}

/// The requests, in submission order.
struct Plan {
    requests: Vec<Request>,
}

/// The memory the kernel reads from and writes to. It must outlive every
/// request that points into it (see `run`).
struct Buffers {
    /// Block `n` is filled with the byte `b'a' + n`, so a block written to the
    /// wrong offset shows in the read-back.
    blocks: Vec<Vec<u8>>,
    /// Where the read lands.
    read: Vec<u8>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            blocks: (0..BLOCKS).map(|n| vec![b'a' + n as u8; BLOCK]).collect(),
            read: vec![0; BLOCKS * BLOCK],
        }
    }
}

/// One completion, as the kernel posted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Completion {
    /// The request it answers, found by `user_data`.
    request: Request,
    /// Its `user_data`: the request's position in submission order.
    user_data: u64,
    /// Bytes moved, 0, or `-errno`.
    result: i32,
}

/// What happened, for `main` to print and the tests to check.
#[derive(Debug)]
struct Report {
    /// Submission and completion queue sizes the kernel gave us.
    sq_entries: u32,
    cq_entries: u32,
    /// Requests pushed into the submission queue, in order.
    submitted: Vec<Request>,
    /// `io_uring_enter` calls made to submit them and wait for every result.
    enter_calls: u32,
    /// Completions in the order the kernel posted them.
    completions: Vec<Completion>,
    /// Bytes read back, all equal to what was written.
    verified_bytes: usize,
}

/// Why the example stopped.
#[derive(Debug)]
enum ExampleError {
    /// `io_uring_setup` refused: no io_uring here (see [`unavailable_hint`]).
    Unavailable(io::Error),
    /// A plain file operation failed.
    File(&'static str, io::Error),
    /// The submission queue had no room for every request.
    QueueFull,
    /// `io_uring_enter` failed while requests were in flight.
    Enter(io::Error),
    /// A completion for a `user_data` we never submitted.
    UnknownUserData(u64),
    /// A request completed with an error, or with a short count.
    Failed(Completion),
    /// The read-back differs from what was written.
    Mismatch { at: usize },
}

impl fmt::Display for ExampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExampleError::Unavailable(error) => write!(
                f,
                "io_uring is not available here: io_uring_setup failed: {error}.\n{}\n\
                 Stage 6 itself still runs: compio falls back to its polling driver \
                 (stages/6-broker/src/driver.rs).",
                unavailable_hint(error)
            ),
            ExampleError::File(what, error) => write!(f, "{what}: {error}"),
            ExampleError::QueueFull => write!(f, "the submission queue has no room"),
            ExampleError::Enter(error) => write!(f, "io_uring_enter failed: {error}"),
            ExampleError::UnknownUserData(data) => {
                write!(
                    f,
                    "a completion with user_data {data}, which we never submitted"
                )
            }
            ExampleError::Failed(completion) if completion.result < 0 => write!(
                f,
                "{} failed: {}",
                completion.request,
                io::Error::from_raw_os_error(-completion.result)
            ),
            ExampleError::Failed(completion) => write!(
                f,
                "{} completed with {}, expected {}",
                completion.request,
                completion.result,
                completion.request.expected()
            ),
            ExampleError::Mismatch { at } => {
                write!(
                    f,
                    "the bytes read back differ from those written at byte {at}"
                )
            }
        }
    }
}

// ANCHOR: unavailable
/// What a refused `io_uring_setup` most likely means, by its error.
fn unavailable_hint(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(code) if code == ENOSYS => {
            "ENOSYS: the kernel has no io_uring (older than 5.1, built without it), \
             or a sandbox such as gVisor does not implement it."
        }
        Some(code) if code == EPERM => {
            "EPERM: io_uring is switched off (/proc/sys/kernel/io_uring_disabled is 2, or 1 \
             and this user is not in kernel.io_uring_group), or a seccomp profile denies \
             io_uring_setup (Docker's default profile has since 25.0; run with a profile \
             that allows io_uring_setup, io_uring_enter and io_uring_register)."
        }
        Some(code) if code == ENOMEM => {
            "ENOMEM: before Linux 5.12 the rings are locked memory, charged against \
             RLIMIT_MEMLOCK (`ulimit -l`); raise it, or use a newer kernel."
        }
        _ => "An unexpected refusal: see io_uring_setup(2) for this error.",
    }
}
// ANCHOR_END: unavailable

/// The error numbers of the three refusals above, from rustix (already stage
/// 6's dependency) rather than typed in: they differ between architectures.
const EPERM: i32 = Errno::PERM.raw_os_error();
const ENOMEM: i32 = Errno::NOMEM.raw_os_error();
const ENOSYS: i32 = Errno::NOSYS.raw_os_error();

/// Writes four blocks, syncs, reads them back, through one ring, in `dir`.
fn run(dir: &Path) -> Result<Report, ExampleError> {
    // ANCHOR: setup
    // io_uring_setup, then mmap of the two queues (and the SQE array): the
    // kernel and we now share them. Done once; every request after this goes
    // through memory, and system calls only to say "look" or "wait".
    let mut ring: IoUring = IoUring::new(RING_ENTRIES).map_err(ExampleError::Unavailable)?;
    // ANCHOR_END: setup
    let path = dir.join("uring-from-scratch.bin");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|error| ExampleError::File("create the file", error))?;
    let mut buffers = Buffers::new();
    let plan = Plan {
        requests: (0..BLOCKS)
            .map(Request::Write)
            .chain([Request::Sync, Request::Read])
            .collect(),
    };
    let entries = build_entries(&plan, &file, &mut buffers);

    // ANCHOR: push
    // SAFETY: every entry points into the heap memory of `buffers` (the
    // writes read `blocks`, the read fills `read`) and names `file`'s
    // descriptor. From here until each entry's completion is reaped the
    // kernel may use them, so: that memory is not touched, reallocated or
    // freed, and `file` not closed, until `reap_all` has every completion;
    // if it fails before that, both are leaked, never freed (below).
    // `push_multiple` pushes all of them or none: on `QueueFull` the kernel
    // saw nothing, and dropping everything is fine.
    unsafe {
        ring.submission()
            .push_multiple(&entries)
            .map_err(|_| ExampleError::QueueFull)?;
    }
    // ANCHOR_END: push

    // ANCHOR: leak
    let (completions, enter_calls) = match reap_all(&mut ring, entries.len()) {
        Ok(reaped) => reaped,
        Err(error) => {
            // Some requests may still be in the kernel's hands, and freeing
            // memory it is about to write into is the one mistake this API
            // cannot catch: leak the buffers (and keep the descriptor open, so
            // a linked request cannot find its number reused) instead. compio
            // keeps the same rule: an operation's buffer stays in its slot
            // until the completion arrives, even when the future that asked
            // for it was dropped.
            std::mem::forget(buffers);
            std::mem::forget(file);
            return Err(ExampleError::Enter(error));
        }
    };
    // ANCHOR_END: leak
    let report = check(&plan, &completions, &buffers, enter_calls, &ring)?;
    // Only now, with every completion reaped, may the file be closed and
    // the buffers freed (both at the end of this scope).
    Ok(report)
}

// ANCHOR: entries
/// The six SQEs. Building one is safe: it only copies a pointer and a length
/// into a 64-byte struct. Pushing it is what hands the pointer to the kernel.
fn build_entries(plan: &Plan, file: &File, buffers: &mut Buffers) -> Vec<squeue::Entry> {
    let fd = types::Fd(file.as_raw_fd());
    let read_len = buffers.read.len() as u32;
    let read_ptr = buffers.read.as_mut_ptr();
    plan.requests
        .iter()
        .enumerate()
        .map(|(user_data, request)| {
            let entry = match *request {
                // The writes are independent: the kernel may run them in any
                // order, or all at once, and post their completions as they end.
                Request::Write(n) => {
                    opcode::Write::new(fd, buffers.blocks[n].as_ptr(), BLOCK as u32)
                        .offset((n * BLOCK) as u64)
                        .build()
                }
                // IO_DRAIN: not started before every earlier SQE completed, so
                // the sync covers the four writes (without it, it could run
                // beside them and sync nothing). IO_LINK: the next SQE waits
                // for this one and is cancelled if it fails.
                Request::Sync => opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .flags(squeue::Flags::IO_DRAIN | squeue::Flags::IO_LINK),
                Request::Read => opcode::Read::new(fd, read_ptr, read_len).offset(0).build(),
            };
            entry.user_data(user_data as u64)
        })
        .collect()
}
// ANCHOR_END: entries

// ANCHOR: reap
/// Submits what was pushed and waits until `expected` completions are in;
/// returns them in the order the kernel posted them, and how many
/// `io_uring_enter` calls that took (one, unless a signal interrupts the wait).
fn reap_all(ring: &mut IoUring, expected: usize) -> io::Result<(Vec<cqueue::Entry>, u32)> {
    let mut completions = Vec::with_capacity(expected);
    let mut enter_calls = 0;
    while completions.len() < expected {
        enter_calls += 1;
        // One system call: "here are the new SQEs (the first time), and do not
        // return before this many completions are posted".
        match ring.submit_and_wait(expected - completions.len()) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        // Reading the completion queue is plain memory: no system call.
        completions.extend(ring.completion());
    }
    Ok((completions, enter_calls))
}
// ANCHOR_END: reap

// ANCHOR: check
/// Matches each completion to its request by `user_data`, checks its result,
/// and compares the bytes read back with the bytes written.
fn check(
    plan: &Plan,
    entries: &[cqueue::Entry],
    buffers: &Buffers,
    enter_calls: u32,
    ring: &IoUring,
) -> Result<Report, ExampleError> {
    let mut completions = Vec::with_capacity(entries.len());
    for entry in entries {
        let user_data = entry.user_data();
        let request = usize::try_from(user_data)
            .ok()
            .and_then(|index| plan.requests.get(index))
            .ok_or(ExampleError::UnknownUserData(user_data))?;
        let completion = Completion {
            request: *request,
            user_data,
            result: entry.result(),
        };
        if completion.result != request.expected() {
            return Err(ExampleError::Failed(completion));
        }
        completions.push(completion);
    }
    let written = buffers.blocks.concat();
    if let Some(at) = (0..written.len()).find(|&at| written.get(at) != buffers.read.get(at)) {
        return Err(ExampleError::Mismatch { at });
    }
    Ok(Report {
        sq_entries: ring.params().sq_entries(),
        cq_entries: ring.params().cq_entries(),
        submitted: plan.requests.clone(),
        enter_calls,
        completions,
        verified_bytes: written.len(),
    })
}
// ANCHOR_END: check

fn print(report: &Report) {
    println!(
        "ring: {} submission entries, {} completion entries (io_uring_setup, once)",
        report.sq_entries, report.cq_entries
    );
    println!("submission queue, in the order pushed (plain memory writes, no system call):");
    for (user_data, request) in report.submitted.iter().enumerate() {
        println!("  user_data {user_data}: {request}");
    }
    println!(
        "io_uring_enter: {} call(s) submitted {} requests and waited for all of them",
        report.enter_calls,
        report.submitted.len()
    );
    println!("completion queue, in the order the kernel posted them:");
    for completion in &report.completions {
        println!(
            "  user_data {} -> {}: result {}",
            completion.user_data, completion.request, completion.result
        );
    }
    println!(
        "read back {} bytes, identical to what was written",
        report.verified_bytes
    );
    println!(
        "system calls for the {} requests: {} io_uring_enter; with blocking calls: {} pwrite, \
         1 fdatasync, 1 pread",
        report.submitted.len(),
        report.enter_calls,
        BLOCKS
    );
}

fn main() -> ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("uring_from_scratch: cannot create a temporary directory: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(dir.path()) {
        Ok(report) => {
            print(&report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("uring_from_scratch: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of `request`'s completion in the order they were posted.
    fn posted_at(report: &Report, request: Request) -> usize {
        report
            .completions
            .iter()
            .position(|completion| completion.request == request)
            .unwrap()
    }

    #[test]
    fn uring_writes_sync_and_read_back_through_one_ring() {
        let dir = tempfile::tempdir().unwrap();
        let report = match run(dir.path()) {
            Ok(report) => report,
            Err(ExampleError::Unavailable(error)) => {
                // Only acceptable where compio cannot set up io_uring either.
                assert!(
                    stage6_broker::IoDriver::IoUring.runtime().is_err(),
                    "our ring failed ({error}) where compio's works"
                );
                eprintln!("io_uring unavailable here, nothing submitted: {error}");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        // One completion per request, each `user_data` exactly once.
        let mut seen: Vec<u64> = report.completions.iter().map(|c| c.user_data).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..report.submitted.len() as u64).collect::<Vec<_>>());
        // The drain: the sync completes after every write. The link: the read
        // after the sync.
        let sync = posted_at(&report, Request::Sync);
        for n in 0..BLOCKS {
            assert!(posted_at(&report, Request::Write(n)) < sync);
        }
        assert!(sync < posted_at(&report, Request::Read));
        assert_eq!(report.verified_bytes, BLOCKS * BLOCK);
        // Fewer system calls than requests: the point of the ring.
        assert!(report.enter_calls >= 1);
        assert!((report.enter_calls as usize) < report.submitted.len());
    }

    // ANCHOR: cancelled
    #[test]
    fn uring_a_failed_link_cancels_the_request_after_it() {
        let Ok(mut ring) = IoUring::new(RING_ENTRIES) else {
            assert!(stage6_broker::IoDriver::IoUring.runtime().is_err());
            return;
        };
        let mut buf = vec![0u8; BLOCK];
        // A read from a descriptor that does not exist (-1): it fails with
        // EBADF, and the no-op linked after it is cancelled, never run.
        let read = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), BLOCK as u32)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(1);
        let nop = opcode::Nop::new().build().user_data(2);
        // SAFETY: the read points into `buf`, which is neither touched nor
        // freed until both completions are reaped below, and is leaked if
        // that fails; the no-op points at nothing.
        unsafe { ring.submission().push_multiple(&[read, nop]).unwrap() };
        let completions = match reap_all(&mut ring, 2) {
            Ok((completions, _)) => completions,
            Err(error) => {
                std::mem::forget(buf);
                panic!("io_uring_enter: {error}");
            }
        };
        let result = |user_data| {
            completions
                .iter()
                .find(|entry| entry.user_data() == user_data)
                .map(|entry| entry.result())
        };
        assert_eq!(result(1), Some(-Errno::BADF.raw_os_error()));
        assert_eq!(result(2), Some(-Errno::CANCELED.raw_os_error()));
        drop(buf);
    }
    // ANCHOR_END: cancelled

    #[test]
    fn uring_unavailable_says_why_for_each_refusal() {
        let hint = |code| unavailable_hint(&io::Error::from_raw_os_error(code));
        assert!(hint(ENOSYS).contains("kernel"));
        assert!(hint(EPERM).contains("io_uring_disabled"));
        assert!(hint(EPERM).contains("seccomp"));
        assert!(hint(ENOMEM).contains("RLIMIT_MEMLOCK"));
        let message = ExampleError::Unavailable(io::Error::from_raw_os_error(EPERM)).to_string();
        assert!(message.starts_with("io_uring is not available here"));
    }
}
