//! Which compio driver runs the I/O: io_uring, or the polling fallback.
//!
//! compio is built here with both drivers (its `io-uring` and `polling`
//! features). With both, it compiles its "fusion" driver, which decides per
//! runtime: io_uring if the kernel offers every operation compio needs,
//! polling (epoll, with file I/O on a thread pool) if not, or whichever the
//! runtime's builder forces. So one binary can measure both, and a kernel
//! without io_uring (or a container that forbids it) still runs.
//!
//! What each driver does with a file read or write:
//! - io_uring: one submission queue entry; the kernel does the I/O and posts
//!   a completion, and the shard thread never blocks in a system call.
//! - polling: regular files are always "ready" to epoll, so compio runs the
//!   `pread`/`pwrite` on its blocking thread pool and wakes the task after.

use std::collections::HashSet;
use std::io;

use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::{Runtime, RuntimeBuilder};

/// The driver a runtime is asked to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring when the kernel supports it, else polling (compio's choice).
    Auto,
    /// io_uring, or an error if the kernel refuses it.
    IoUring,
    /// The polling driver, even where io_uring works: for the comparison.
    Polling,
}

/// Settings files and flags name a driver as [`IoDriver::name`] does.
impl std::str::FromStr for IoDriver {
    type Err = String;

    fn from_str(text: &str) -> Result<IoDriver, String> {
        IoDriver::parse(text).ok_or_else(|| "expected auto, io-uring or polling".to_string())
    }
}

impl serde::Serialize for IoDriver {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for IoDriver {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IoDriver, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl IoDriver {
    /// `auto`, `io-uring` or `polling`.
    pub fn name(&self) -> &'static str {
        match self {
            IoDriver::Auto => "auto",
            IoDriver::IoUring => "io-uring",
            IoDriver::Polling => "polling",
        }
    }

    /// Parses a name given by [`IoDriver::name`].
    pub fn parse(text: &str) -> Option<IoDriver> {
        [IoDriver::Auto, IoDriver::IoUring, IoDriver::Polling]
            .into_iter()
            .find(|driver| driver.name() == text)
    }

    // ANCHOR: runtime
    /// A compio runtime (one per thread: compio's runtimes are single-threaded)
    /// on this driver.
    pub fn runtime(self) -> io::Result<Runtime> {
        self.runtime_on(HashSet::new())
    }

    /// [`IoDriver::runtime`], its thread pinned to `cpus` if there are any:
    /// compio's builder binds the thread that builds the runtime (CPUs this
    /// process may not run on are dropped from the set).
    pub fn runtime_on(self, cpus: HashSet<usize>) -> io::Result<Runtime> {
        if self != IoDriver::Polling
            && let Ok(runtime) = self.build(cpus.clone(), true)
            && runtime.driver_type() == DriverType::IoUring
        {
            return Ok(runtime);
        }
        // A kernel older than 5.19 refuses the cooperative flags: without them.
        self.build(cpus, false)
    }

    /// The runtime, with io_uring's cooperative task running if `cooperative`.
    ///
    /// By default io_uring runs the work that completes an operation (a
    /// socket's data arriving, say) by interrupting the thread that owns the
    /// ring, wherever it is: an inter-processor interrupt and a detour
    /// through the kernel in the middle of whatever the shard was doing.
    /// `COOP_TASKRUN` lets that work wait for the shard's next system call,
    /// which a single-threaded runtime makes soon anyway, and `TASKRUN_FLAG`
    /// tells the shard when some is waiting. Rejected: `DEFER_TASKRUN`,
    /// which needs `SINGLE_ISSUER` and holds completions until the thread
    /// waits, and `SQPOLL`, whose kernel thread polling the queue keeps a
    /// core busy, a core a thread-per-core broker gives to a shard.
    fn build(self, cpus: HashSet<usize>, cooperative: bool) -> io::Result<Runtime> {
        let mut proactor = ProactorBuilder::new();
        if cooperative {
            proactor.coop_taskrun(true).taskrun_flag(true);
        }
        match self {
            IoDriver::Auto => {}
            IoDriver::IoUring => {
                proactor.driver_type(DriverType::IoUring);
            }
            IoDriver::Polling => {
                proactor.driver_type(DriverType::Poll);
            }
        }
        RuntimeBuilder::new()
            .with_proactor(proactor)
            .thread_affinity(cpus)
            .build()
    }
    // ANCHOR_END: runtime
}

/// The name of the driver a runtime actually runs on, for the log line that
/// says it once at start.
pub fn driver_name(runtime: &Runtime) -> &'static str {
    match runtime.driver_type() {
        DriverType::IoUring => "io-uring",
        DriverType::Poll => "polling",
        DriverType::IOCP => "iocp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_polling_is_chosen_when_asked() {
        let runtime = IoDriver::Polling.runtime().unwrap();
        assert_eq!(driver_name(&runtime), "polling");
    }

    #[test]
    fn driver_names_parse_back() {
        for driver in [IoDriver::Auto, IoDriver::IoUring, IoDriver::Polling] {
            assert_eq!(IoDriver::parse(driver.name()), Some(driver));
        }
        assert_eq!(IoDriver::parse("epoll"), None);
    }
}
