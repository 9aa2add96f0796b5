//! Every aligned buffer is freed exactly once, with the layout it was
//! allocated with: a counting allocator watches the 4096-aligned allocations
//! of this test binary (the only test in it, so the counts are its own).

#![allow(clippy::unwrap_used)]
// helpers too: in a test, a panic is a failure report
// A global allocator is an `unsafe` trait: the counting one below only forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use compio::buf::IoBuf;
use stage6_broker::storage::aligned::ALIGN;
use stage6_broker::{AlignedBuf, StoredBytes};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static FREED_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts the calls made with the aligned buffers' alignment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == ALIGN {
            ALLOCATED.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() == ALIGN {
            ALLOCATED.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() == ALIGN {
            FREED.fetch_add(1, Ordering::SeqCst);
            FREED_BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn aligned_buffers_are_freed_once_with_their_layout() {
    let before = (
        ALLOCATED.load(Ordering::SeqCst),
        FREED.load(Ordering::SeqCst),
    );
    let mut expected_bytes = 0;
    for blocks in 1..=50 {
        let mut buf = AlignedBuf::with_capacity(blocks * ALIGN - 1).unwrap();
        expected_bytes += buf.capacity();
        buf.extend_from_slice(&[1; 100]);
        // Growing replaces the memory: the old block is freed then and there.
        buf.reserve_total(buf.capacity() + 1).unwrap();
        expected_bytes += buf.capacity();
        // Through compio's traits and a poll result, then dropped.
        let slice = IoBuf::slice(buf, ..);
        let stored = StoredBytes::empty(compio::buf::IntoInner::into_inner(slice));
        drop(stored.into_buffer());
    }
    let allocated = ALLOCATED.load(Ordering::SeqCst) - before.0;
    let freed = FREED.load(Ordering::SeqCst) - before.1;
    assert_eq!(allocated, 100);
    assert_eq!(freed, 100);
    assert_eq!(FREED_BYTES.load(Ordering::SeqCst), expected_bytes);
}
