//! What every shard enforces together, over the whole server: how many
//! connections are open (in all, and from each peer address), and how many
//! bytes of large requests are held in memory at once.
//!
//! Why server-wide and not per shard: the kernel's `SO_REUSEPORT` hash
//! spreads connections unevenly, and a peer's connections over every shard,
//! so a share per shard would refuse on one shard while another has room,
//! and could not see a peer's total at all.
//!
//! Each limit is one shared counter (or one small table under a mutex),
//! touched on a connect, a disconnect, or a request large enough to count;
//! never on a small request, so the cache lines they bounce between cores
//! cost nothing measurable. Rejected: a lock-free map for the per-peer
//! counts (a crate, for an operation that happens once per connection).
//!
//! The request budget: a request whose body is over [`UNCOUNTED_BODY`]
//! reserves its claimed length before a byte of its body is read, and gives
//! it back when it has been answered (or the connection ends). One that
//! does not fit waits, unread, for others to finish (its bytes stay in the
//! kernel's socket buffer, and TCP's window stops the client). So the bytes
//! the server holds for requests stay under the budget plus
//! `UNCOUNTED_BODY` per open connection. Reserving up front, rather than as
//! the bytes arrive, is what keeps it from deadlocking: a request that holds
//! a reservation can always be finished, while a hundred requests each
//! holding half of what they need could all wait for ever.
//!
//! Small requests are not counted, so that a few clients holding the whole
//! budget with stalled large requests cannot stop anyone's polls, logins or
//! small produces; they end at the idle timeout.
//!
//! Deliberate simplifications: a waiting request looks again after a pause
//! that doubles up to [`MAX_PAUSE`] instead of being woken (so the budget is
//! not granted in arrival order); and what the allocator does with freed
//! memory is its own business, except that the server asks glibc to give it
//! back ([`Limits::give_back_memory`]) once large requests have been freed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Request bodies up to this many bytes are not counted against the
/// budget: each connection may always have one this small in flight.
pub const UNCOUNTED_BODY: usize = crate::shards::frame::BODY_STEP;

/// The longest pause of a request waiting for the budget between looks.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// How many bytes of large requests must have been freed before the server
/// asks the allocator to give memory back ([`Limits::give_back_memory`]).
pub const GIVE_BACK_AFTER: usize = 16 << 20;

// ANCHOR: limits
/// The server's shared limits (one for every shard, behind an `Arc`).
#[derive(Debug)]
pub struct Limits {
    /// Connections open now, over every shard.
    open: AtomicUsize,
    max_connections: usize,
    /// Connections open now per peer address; peers with none are removed.
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    max_per_peer: Option<usize>,
    /// Bytes reserved by large requests being read or served now.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// Bytes of large requests freed since memory was last given back.
    freed: AtomicUsize,
    /// Lines about refused connections and requests: a flood of refusals
    /// must not become a flood of log lines.
    pub(crate) refusals: LogEvery,
}
// ANCHOR_END: limits

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server has `limit` connections open.
    Server {
        /// `max_connections`.
        limit: usize,
    },
    /// The peer's address has `limit` connections open.
    Peer {
        /// `max_connections_per_peer`.
        limit: usize,
    },
}

impl Refusal {
    /// The message the refused client is sent.
    pub fn message(&self, peer: IpAddr) -> String {
        match self {
            Refusal::Server { limit } => {
                format!("the server is at its limit of {limit} connections; retry later")
            }
            Refusal::Peer { limit } => format!(
                "{peer} has {limit} connections open, the limit per peer address; \
                 close one, or retry later"
            ),
        }
    }
}

impl Limits {
    /// Limits of `max_connections` in all, `max_per_peer` per peer address
    /// (`None`: no such limit) and `max_in_flight` bytes of large requests,
    /// never fewer than `max_frame_len` (else a frame the length limit
    /// allows could wait for ever).
    pub fn new(
        max_connections: usize,
        max_per_peer: Option<usize>,
        max_in_flight: usize,
        max_frame_len: u32,
    ) -> Limits {
        Limits {
            open: AtomicUsize::new(0),
            max_connections,
            per_peer: Mutex::new(HashMap::new()),
            max_per_peer,
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(max_frame_len as usize),
            freed: AtomicUsize::new(0),
            refusals: LogEvery::new(Duration::from_secs(1)),
        }
    }

    // ANCHOR: admit
    /// Counts a new connection from `peer`, or says which limit it is over.
    /// The connection is uncounted when the [`Admitted`] is dropped.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        // One address, whether it came as IPv4 or as IPv4 mapped into IPv6.
        let peer = peer.to_canonical();
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        if open >= self.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            let limit = self.max_connections;
            return Err(Refusal::Server { limit });
        }
        if let Some(limit) = self.max_per_peer {
            let mut peers = self.peers();
            let count = peers.entry(peer).or_insert(0);
            if *count >= limit {
                drop(peers);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return Err(Refusal::Peer { limit });
            }
            *count += 1;
        }
        Ok(Admitted {
            limits: Arc::clone(self),
            peer,
        })
    }
    // ANCHOR_END: admit

    /// Connections open now, over every shard.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The per-peer table, even if a thread panicked holding it (its counts
    /// are changed in one step each, never left half-done).
    fn peers(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_peer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ANCHOR: reserve
    /// Reserves `bytes` of the budget for a request's body, or `None` if
    /// they do not fit now. A body of up to [`UNCOUNTED_BODY`] always fits
    /// and reserves nothing. Given back when the [`Reservation`] is dropped.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        if bytes <= UNCOUNTED_BODY {
            return Some(Reservation {
                limits: Arc::clone(self),
                bytes: 0,
            });
        }
        let max = self.max_in_flight;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|&after| after <= max)
            })
            .ok()?;
        Some(Reservation {
            limits: Arc::clone(self),
            bytes,
        })
    }
    // ANCHOR_END: reserve

    /// Bytes of large requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The budget: the most bytes of large requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    // ANCHOR: give_back
    /// Asks the allocator to return freed memory to the kernel, if at least
    /// [`GIVE_BACK_AFTER`] bytes of large requests were freed since the last
    /// time and none is in flight now; says whether it asked. Called once a
    /// second by shard 0.
    ///
    /// Why it is needed: glibc's `malloc` serves a large request with its
    /// own `mmap` (returned to the kernel when freed) only until the first
    /// such block is freed; then it raises its threshold, serves blocks of
    /// that size from its arenas, and keeps them when they are freed, so a
    /// second wave of stalled clients left the server holding most of what
    /// they had made it allocate after they were gone (the broker's
    /// `tests/memory.rs` sends two waves and checks the memory comes back).
    /// `malloc_trim` returns the arenas' free pages. Rejected: a fixed
    /// `mmap` threshold (`mallopt`), which makes every large request map and
    /// fault in fresh pages for good, not once a second at most; and a pool
    /// of body buffers, which a produce's body cannot come back to (it is
    /// handed to the partition's shard and freed there).
    pub fn give_back_memory(&self) -> bool {
        if self.in_flight() != 0 || self.freed.load(Ordering::Relaxed) < GIVE_BACK_AFTER {
            return false;
        }
        self.freed.store(0, Ordering::Relaxed);
        trim_allocator();
        true
    }
    // ANCHOR_END: give_back
}

/// Returns the C allocator's free memory to the kernel (glibc only).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_allocator() {
    // SAFETY: `malloc_trim` takes no pointer and touches only the
    // allocator's own free lists, under the allocator's own locks: any
    // thread may call it at any time. (Its result only says whether memory
    // was released.)
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, other systems) have no `malloc_trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

/// A counted connection: dropping it uncounts it, however the connection ends.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    peer: IpAddr,
}

impl Admitted {
    /// The peer address it was counted under.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.limits.max_per_peer.is_some() {
            let mut peers = self.limits.peers();
            if let Some(count) = peers.get_mut(&self.peer) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    peers.remove(&self.peer);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    limits: Arc<Limits>,
    bytes: usize,
}

impl Reservation {
    /// Bytes reserved (0 for a small request).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.limits
                .in_flight
                .fetch_sub(self.bytes, Ordering::AcqRel);
            self.limits.freed.fetch_add(self.bytes, Ordering::Relaxed);
        }
    }
}

// ANCHOR: log_every
/// At most one log line per period for a kind of event that a client can
/// make happen as often as it likes (a refused connection, a failed login),
/// each line saying how many it stands for. The clock is passed in, so a
/// test decides what time it is.
#[derive(Debug)]
pub struct LogEvery {
    every: Duration,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// When the last line was written.
    last: Option<Instant>,
    /// Events since then that wrote no line.
    suppressed: u64,
}

impl LogEvery {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> LogEvery {
        LogEvery {
            every,
            state: Mutex::new(LogState::default()),
        }
    }

    /// An event happened at `now`: `Some(n)` if it may write a line, `n`
    /// being the events since the last line that wrote none; `None` if it
    /// is counted for the next line instead.
    pub fn event(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            state.last = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}
// ANCHOR_END: log_every

/// The end of a line [`LogEvery`] let through: the events it also stands for.
pub fn and_more(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" (and {suppressed} more since the last such line)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_peer: Option<usize>, budget: usize) -> Arc<Limits> {
        Arc::new(Limits::new(max, per_peer, budget, 4096))
    }

    #[test]
    fn limits_count_connections_in_all_and_per_peer() {
        let limits = limits(3, Some(2), 1 << 20);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        // The same address mapped into IPv6 is the same peer.
        let a2 = limits.admit("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(a2.peer(), a);
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::Peer { limit: 2 });
        let b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Server { limit: 3 });
        assert_eq!(limits.open(), 3);
        drop(a1);
        let a3 = limits.admit(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(limits.open(), 0);
        assert!(
            limits.peers().is_empty(),
            "peers with no connection are forgotten"
        );
        // No per-peer limit: only the total counts.
        let open = limits_without_peers();
        let all: Vec<_> = (0..3).map(|_| open.admit(a).unwrap()).collect();
        assert_eq!(open.admit(b).unwrap_err(), Refusal::Server { limit: 3 });
        drop(all);
    }

    fn limits_without_peers() -> Arc<Limits> {
        limits(3, None, 1 << 20)
    }

    #[test]
    fn limits_budget_reserves_large_bodies_and_gives_them_back() {
        let budget = 1 << 20;
        let limits = limits(10, None, budget);
        let small = limits.reserve(UNCOUNTED_BODY).unwrap();
        assert_eq!((small.bytes(), limits.in_flight()), (0, 0));
        let half = limits.reserve(budget / 2).unwrap();
        let quarter = limits.reserve(budget / 4).unwrap();
        assert!(limits.reserve(budget / 2).is_none(), "over the budget");
        // Small ones still fit when large ones do not.
        assert!(limits.reserve(100).is_some());
        drop(half);
        assert_eq!(limits.in_flight(), budget / 4);
        let again = limits.reserve(budget / 2).unwrap();
        drop((again, quarter));
        assert_eq!(limits.in_flight(), 0);
        // Never below the frame limit: any allowed frame fits alone.
        let tight = Arc::new(Limits::new(1, None, 10, 1 << 20));
        assert_eq!(tight.max_in_flight(), 1 << 20);
        assert!(tight.reserve(1 << 20).is_some());
    }

    #[test]
    fn limits_memory_is_given_back_only_when_enough_was_freed_and_none_is_in_flight() {
        let limits = limits(10, None, 64 << 20);
        assert!(!limits.give_back_memory(), "nothing freed yet");
        let big = limits.reserve(GIVE_BACK_AFTER).unwrap();
        let other = limits.reserve(UNCOUNTED_BODY + 1).unwrap();
        drop(big);
        assert!(!limits.give_back_memory(), "a request is still in flight");
        drop(other);
        assert!(limits.give_back_memory());
        assert!(!limits.give_back_memory(), "once per release");
    }

    #[test]
    fn log_every_writes_one_line_per_period_counting_the_rest() {
        let log = LogEvery::new(Duration::from_secs(1));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(log.event(at(0)), Some(0));
        for ms in 1..=999 {
            assert_eq!(log.event(at(ms)), None);
        }
        assert_eq!(log.event(at(1000)), Some(999));
        assert_eq!(log.event(at(1500)), None);
        assert_eq!(log.event(at(5000)), Some(1));
        // A clock that goes backwards (it cannot, but) writes nothing.
        assert_eq!(log.event(at(4000)), None);
    }
}
