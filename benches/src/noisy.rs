//! A noisy neighbour: a thread that keeps one stated core busy while a
//! measurement runs beside it, so a result can say how a stage copes when
//! it does not have the machine to itself.
//!
//! Thread-per-core (stage 6) pins each shard to a core and assumes the core
//! is its own; a shared cloud host or a busy laptop breaks that assumption.
//! The hog pins itself to one core (`sched_setaffinity`, through rustix, as
//! [`crate::cores`] pins the servers' threads) and spins there until it is
//! dropped, so whatever else is scheduled on that core gets about half of it
//! (the kernel's fair share between two runnable threads). The core is
//! recorded ([`NoisyNeighbour::core`]) so a results file can say which one.
//!
//! Rejected: a child process running a shell loop (what
//! `scripts/test-under-load` does), because a process outlives a panicking
//! benchmark unless something reaps it, where a thread ends with its owner;
//! and an unpinned hog, which the scheduler would move off whatever core
//! the measurement needed, hiding the very effect it is there to show.
//!
//! ```no_run
//! # fn main() -> Result<(), bench::noisy::NoisyError> {
//! let hog = bench::noisy::NoisyNeighbour::on_last_core()?;
//! println!("a CPU hog on core {}", hog.core());
//! // ... measure ...
//! drop(hog); // stops and joins the thread
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Spins between looks at the stop flag: few enough that a stop is seen
/// within microseconds, enough that the flag's load is noise in the loop.
const SPINS_PER_CHECK: u64 = 4096;

/// Why a hog could not start where it was asked to.
#[derive(Debug)]
pub enum NoisyError {
    /// The core is not one this process may run on (not in its affinity
    /// mask: absent, offline, or outside a container's CPU set).
    NotAllowed {
        /// The core asked for.
        core: usize,
        /// The cores this process may use.
        allowed: Vec<usize>,
    },
    /// The thread could not be started.
    Spawn(std::io::Error),
    /// The kernel refused to pin the thread.
    Pin {
        /// The core asked for.
        core: usize,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The thread ended before saying whether it was pinned.
    Vanished,
}

impl fmt::Display for NoisyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoisyError::NotAllowed { core, allowed } => write!(
                f,
                "core {core} is not one this process may run on (allowed: {allowed:?}); \
                 choose one of those"
            ),
            NoisyError::Spawn(source) => write!(f, "starting the CPU hog's thread: {source}"),
            NoisyError::Pin { core, source } => {
                write!(f, "pinning the CPU hog to core {core}: {source}")
            }
            NoisyError::Vanished => write!(f, "the CPU hog's thread ended before it started"),
        }
    }
}

impl std::error::Error for NoisyError {}

/// A thread spinning on one core until dropped.
#[derive(Debug)]
pub struct NoisyNeighbour {
    core: usize,
    stop: Arc<AtomicBool>,
    spins: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// The last core this process may run on: where the ladder puts its hog.
/// The last rather than the first because the servers take the first cores
/// ([`crate::cores::split`]; stage 6 pins shard `n` to core `n`), so on a
/// small machine the hog shares a core with the load generator and the last
/// shard, not with the first shard alone.
pub fn last_core() -> usize {
    crate::cores::allowed().last().copied().unwrap_or(0)
}

impl NoisyNeighbour {
    /// Starts a hog pinned to `core`; returns once the kernel has pinned it.
    pub fn start(core: usize) -> Result<NoisyNeighbour, NoisyError> {
        let allowed = crate::cores::allowed();
        if !allowed.contains(&core) {
            return Err(NoisyError::NotAllowed { core, allowed });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicU64::new(0));
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let thread = {
            let (stop, spins) = (Arc::clone(&stop), Arc::clone(&spins));
            std::thread::Builder::new()
                .name(format!("noisy-core-{core}"))
                .spawn(move || {
                    let mut set = rustix::thread::CpuSet::new();
                    set.set(core);
                    let pinned = rustix::thread::sched_setaffinity(None, &set);
                    let ok = pinned.is_ok();
                    let _ = pinned_tx.send(pinned.map_err(std::io::Error::from));
                    if ok {
                        hog(&stop, &spins);
                    }
                })
                .map_err(NoisyError::Spawn)?
        };
        let mut hog = NoisyNeighbour {
            core,
            stop,
            spins,
            thread: Some(thread),
        };
        match pinned_rx.recv() {
            Ok(Ok(())) => Ok(hog),
            Ok(Err(source)) => {
                hog.halt();
                Err(NoisyError::Pin { core, source })
            }
            Err(_) => {
                hog.halt();
                Err(NoisyError::Vanished)
            }
        }
    }

    /// Starts a hog on [`last_core`].
    pub fn on_last_core() -> Result<NoisyNeighbour, NoisyError> {
        NoisyNeighbour::start(last_core())
    }

    /// The core it keeps busy.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Rounds of spins (a few thousand each) done so far: evidence that it ran.
    pub fn rounds(&self) -> u64 {
        self.spins.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NoisyNeighbour {
    /// Stops the hog and waits for its thread: once dropped, the core is free.
    fn drop(&mut self) {
        self.halt();
    }
}

// ANCHOR: hog
/// The hog's loop: integer work the optimizer cannot remove (`black_box`),
/// never sleeping, so the core always has a runnable thread on it. Plain
/// `spin_loop` hints were rejected: on x86 they issue `pause`, which lets a
/// hyperthread sibling run faster, so the hog would be quieter than the
/// neighbour it stands for.
fn hog(stop: &AtomicBool, rounds: &AtomicU64) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..SPINS_PER_CHECK {
            x = std::hint::black_box(x.rotate_left(5) ^ x.wrapping_mul(31));
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}
// ANCHOR_END: hog

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits, without a deadline on the clock, until the hog has done `n`
    /// rounds: a hog that never runs hangs the test, which the test harness
    /// reports; none of this asserts how fast it runs.
    fn until_rounds(hog: &NoisyNeighbour, n: u64) {
        while hog.rounds() < n {
            std::thread::yield_now();
        }
    }

    /// The affinity (`Cpus_allowed_list`) of each thread of this process
    /// named `name`, read from /proc.
    fn threads_named(name: &str) -> Vec<String> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            // A thread that ended between the listing and the read is gone.
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            if comm.trim() == name {
                let allowed = status
                    .lines()
                    .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                    .unwrap_or_default();
                found.push(allowed.trim().to_string());
            }
        }
        found
    }

    #[test]
    fn the_hog_runs_pinned_to_the_core_it_states_and_is_gone_once_dropped() {
        // One test, not two: two hogs on one core would share a thread name.
        let core = last_core();
        let hog = NoisyNeighbour::start(core).unwrap();
        assert_eq!(hog.core(), core);
        until_rounds(&hog, 3);
        let name = format!("noisy-core-{core}");
        // Exactly one such thread, allowed on its core alone.
        assert_eq!(threads_named(&name), vec![core.to_string()]);
        let stop = Arc::clone(&hog.stop);
        drop(hog);
        // Dropping joined it: the thread no longer exists.
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(threads_named(&name), Vec::<String>::new());
    }

    #[test]
    fn a_core_outside_the_process_is_a_clear_error() {
        let error = NoisyNeighbour::start(rustix::thread::CpuSet::MAX_CPU + 1).unwrap_err();
        assert!(matches!(error, NoisyError::NotAllowed { .. }));
        assert!(error.to_string().contains("allowed"), "{error}");
    }
}
