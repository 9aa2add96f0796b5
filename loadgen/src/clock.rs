//! The run's one clock: nanoseconds since the UNIX epoch that never go back.
//!
//! Payloads carry their send time, and consumers subtract it from theirs. Read
//! from `SystemTime` on every call, a step of the wall clock (NTP) in the
//! middle of a run would move some latencies by the step, even below zero. So
//! the wall clock is read once, at the start, and everything after is that
//! reading plus `Instant`'s monotonic elapsed time. Every actor of a run is in
//! this process and shares this clock; a consumer in another process would
//! need the wall clock, and then synchronized clocks.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock that reads as nanoseconds since the UNIX epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_ns: u64,
}

impl Clock {
    /// Anchors a clock to the wall clock now.
    pub fn start() -> Clock {
        let base = Instant::now();
        let base_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            });
        Clock { base, base_ns }
    }

    /// Now, in nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.at(Instant::now())
    }

    /// `instant`, in nanoseconds since the epoch.
    pub fn at(&self, instant: Instant) -> u64 {
        let elapsed = instant.saturating_duration_since(self.base).as_nanos();
        self.base_ns
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// The `Instant` that reads as `ns` (clamped to the clock's start).
    pub fn instant(&self, ns: u64) -> Instant {
        self.base + std::time::Duration::from_nanos(ns.saturating_sub(self.base_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_go_back_and_convert_both_ways() {
        let clock = Clock::start();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
        let later = Instant::now();
        assert_eq!(clock.at(clock.instant(clock.at(later))), clock.at(later));
    }
}
