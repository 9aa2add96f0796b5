//! A counting allocator: the proof behind "no allocation per message".
//!
//! A test binary or a bench installs it with
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: stage5_zero_copy::alloc_count::CountingAllocator =
//!     stage5_zero_copy::alloc_count::CountingAllocator;
//! # fn main() {}
//! ```
//!
//! and wraps the code it measures in [`count`]. Every `alloc`, `alloc_zeroed`
//! and `realloc` is then counted twice: on the calling thread (exact, whatever
//! other threads do) and in a process-wide total (which includes the blocking
//! threads a server hands its disk work to). Frees are not counted: the
//! question is how often the allocator is asked for memory.
//!
//! Counting is off outside [`count`], so a benchmark's timed loops pay one
//! relaxed load per allocation, not an atomic increment. Deliberate
//! simplification: one [`count`] at a time per process; concurrent ones would
//! share the switch and the total.
//!
//! The `unsafe` here is what `GlobalAlloc` requires of any allocator: the trait
//! itself is `unsafe` to implement, and each method forwards to the system
//! allocator under the same contract it was called with.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The system allocator, with counting.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` and `Cell<u64>`: no lazy initialisation and no destructor, so
    // touching it from inside the allocator can never itself allocate.
    static ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

fn record() {
    if COUNTING.load(Ordering::Relaxed) {
        TOTAL.fetch_add(1, Ordering::Relaxed);
        // `try_with`: during a thread's teardown the slot may be gone; then
        // only the total counts it.
        let _ = ON_THIS_THREAD.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY (for the impl): every method forwards to `System` with the arguments
// it received, so the memory returned and freed is exactly what `System`
// promises under `GlobalAlloc`'s contract; counting touches only atomics and
// a const thread-local, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), which
        // is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with
        // this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record();
        // SAFETY: `ptr` came from `System` with `layout`, and `new_size` is
        // valid for it, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made while a [`count`]ed closure ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocations {
    /// On the thread that ran the closure.
    pub this_thread: u64,
    /// On every thread of the process.
    pub all_threads: u64,
}

// ANCHOR: count
/// Runs `f` with counting on, and returns its result and the allocations it
/// made. Counts nothing unless [`CountingAllocator`] is the global allocator.
pub fn count<T>(f: impl FnOnce() -> T) -> (T, Allocations) {
    let thread_before = ON_THIS_THREAD.with(Cell::get);
    let total_before = TOTAL.load(Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let result = f();
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = Allocations {
        this_thread: ON_THIS_THREAD.with(Cell::get) - thread_before,
        all_threads: TOTAL.load(Ordering::SeqCst) - total_before,
    };
    (result, allocations)
}
// ANCHOR_END: count
