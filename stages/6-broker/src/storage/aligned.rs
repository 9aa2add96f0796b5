//! An owned byte buffer for Direct I/O: its start and capacity are multiples
//! of 4096, and it can be handed to compio, which owns it while the kernel
//! reads or writes it.
//!
//! With `O_DIRECT` the kernel moves bytes straight between the device and the
//! caller's memory (DMA), so the memory has to meet the device's rules: the
//! buffer's address, the file offset and the length must all be multiples of
//! the logical block size. A `Vec<u8>` is aligned to 1. This is the talk's
//! "DirectIO" slide (`ALIGNED_SIZE = 512`) made into a type.
//!
//! Invariants, which every `unsafe` block below relies on:
//! - `ptr` came from `alloc_zeroed` with `layout`, whose alignment is [`ALIGN`]
//!   and whose size (the capacity) is a non-zero multiple of [`ALIGN`];
//! - the bytes `0..len` are initialized, and `len <= capacity`. Bytes past `len`
//!   may have been de-initialized through [`IoBufMut::as_uninit`] (that is
//!   compio's contract), so they are never read as `u8` until written again:
//!   [`AlignedBuf::pad_to_block`] and [`AlignedBuf::resize_zeroed`] write zeros
//!   before they extend `len`;
//! - the buffer owns its memory alone, like a `Vec`: nothing else frees it.
//!
//! Lengths are free (a buffer holds the bytes it holds); the *I/O* lengths,
//! which must be blocks, are the caller's to round, with
//! [`AlignedBuf::pad_to_block`] or an aligned [`IoBuf::slice`].

// The one module of the crate with unsafe code: an allocation with a chosen
// alignment, and compio's buffer traits, which hand raw memory to the kernel.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use compio::buf::{IoBuf, IoBufMut, SetLen};

// ANCHOR: align
/// The alignment of every Direct I/O buffer, offset and length: 4096, not 512.
///
/// The development machine's disk reports 512-byte logical blocks, but 4Kn
/// drives (4096-byte logical blocks) exist and refuse 512-aligned I/O with
/// `EINVAL`; 4096 is right on both, and it is also the page size, so one
/// buffer block is one page the kernel pins for the DMA.
pub const ALIGN: usize = 4096;
// ANCHOR_END: align

/// `n` rounded up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// `n` rounded down to a multiple of [`ALIGN`].
pub const fn align_down(n: usize) -> usize {
    n - n % ALIGN
}

/// `n` rounded down to a multiple of [`ALIGN`], for file positions.
pub const fn align_down_u64(n: u64) -> u64 {
    n - n % ALIGN as u64
}

/// The allocator refused, or the size cannot be a `Layout` (over `isize::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate an aligned buffer of {bytes} bytes")]
pub struct AllocError {
    /// The capacity asked for, after rounding up to whole blocks.
    pub bytes: usize,
}

// ANCHOR: aligned_buf
/// An owned, 4096-aligned buffer of whole blocks (see the module docs).
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}
// ANCHOR_END: aligned_buf

impl AlignedBuf {
    /// A buffer of at least `capacity` bytes (rounded up to whole blocks, and
    /// at least one block), all zero, of length 0.
    pub fn with_capacity(capacity: usize) -> Result<AlignedBuf, AllocError> {
        let bytes = align_up(capacity.max(1));
        let layout = Layout::from_size_align(bytes, ALIGN).map_err(|_| AllocError { bytes })?;
        // SAFETY: `layout` has a non-zero size (at least one block), which is
        // all `alloc_zeroed` asks of it.
        let raw = unsafe { alloc_zeroed(layout) };
        // A null pointer is the allocator saying no: an error, not an abort,
        // because the size can come from a request.
        let ptr = NonNull::new(raw).ok_or(AllocError { bytes })?;
        Ok(AlignedBuf {
            ptr,
            len: 0,
            layout,
        })
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes it can hold: a multiple of [`ALIGN`].
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Bytes that fit after the ones held.
    pub fn spare(&self) -> usize {
        self.capacity() - self.len
    }

    /// The bytes held.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `capacity` bytes and `len <= capacity`;
        // bytes `0..len` are initialized (module invariant); the shared borrow
        // of `self` keeps the memory alive and unwritten for the slice's life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes held, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; the exclusive borrow of `self` makes this
        // the only reference to the bytes while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Copies as much of `bytes` as fits after the bytes held; returns how many.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.spare());
        // SAFETY: the destination `len..len + n` lies inside the allocation
        // (`n <= capacity - len`), the source is `n` readable bytes, and they
        // cannot overlap: `&mut self` means `bytes` does not borrow this buffer.
        // A plain `memcpy`: this is the one copy of the append path, so it is
        // not left to the optimizer to recognise an element-wise loop.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        // The bytes `len..len + n` were just written.
        self.len += n;
        n
    }

    /// Shortens the buffer to `len` bytes (no effect if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Empties the buffer, keeping its memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Sets the length to `len` (at most the capacity), writing zeros over any
    /// bytes it adds.
    pub fn resize_zeroed(&mut self, len: usize) {
        let len = len.min(self.capacity());
        if len > self.len {
            let start = self.len;
            self.spare_mut()[..len - start].fill(MaybeUninit::new(0));
        }
        self.len = len;
    }

    // ANCHOR: pad_to_block
    /// Zero-fills from the end of the bytes held to the next block boundary
    /// and extends the length to it, so the buffer is whole blocks that can be
    /// written with `O_DIRECT`. Returns the padded length.
    ///
    /// The zeros are written, not assumed: after a read, or a partial block
    /// moved to the front, the bytes past `len` hold whatever was there, and
    /// on disk they would read as a record header's first bytes.
    pub fn pad_to_block(&mut self) -> usize {
        self.resize_zeroed(align_up(self.len));
        self.len
    }
    // ANCHOR_END: pad_to_block

    /// Makes sure the capacity is at least `capacity` bytes, replacing the
    /// memory (and dropping the bytes held) if it is smaller.
    pub fn reserve_total(&mut self, capacity: usize) -> Result<(), AllocError> {
        if self.capacity() < capacity {
            *self = AlignedBuf::with_capacity(capacity)?;
        }
        Ok(())
    }

    /// The bytes past `len`, which may be uninitialized.
    fn spare_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        let len = self.len;
        &mut self.as_uninit()[len..]
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated with exactly `layout` (module invariant)
        // and is freed only here, once, because the buffer owns it alone.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: `AlignedBuf` owns its allocation uniquely, like a `Vec<u8>` (the raw
// pointer is what makes the compiler not derive these), so moving it to
// another thread moves the only handle to the memory...
unsafe impl Send for AlignedBuf {}
// SAFETY: ... and `&AlignedBuf` only reads, through `as_slice`, as `&Vec<u8>` does.
unsafe impl Sync for AlignedBuf {}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

// ANCHOR: io_buf
impl IoBuf for AlignedBuf {
    /// The bytes held: what a write sends.
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

impl SetLen for AlignedBuf {
    /// Called by compio after a read put `len` bytes in.
    ///
    /// # Safety
    ///
    /// compio's contract: `len <= capacity`, and the bytes up to `len` are
    /// initialized (the kernel wrote them).
    unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity());
        self.len = len.min(self.capacity());
    }
}

impl IoBufMut for AlignedBuf {
    /// The whole capacity, from the aligned start: where a read lands.
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `ptr` is valid for `capacity` bytes (module invariant) and the
        // exclusive borrow of `self` makes this the only reference to them.
        // `MaybeUninit<u8>` has the layout of `u8` and allows any contents, so
        // viewing initialized bytes as possibly-uninitialized is always sound.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().cast::<MaybeUninit<u8>>(),
                self.capacity(),
            )
        }
    }
}
// ANCHOR_END: io_buf

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_start_and_capacity_are_whole_blocks() {
        for asked in [0, 1, 100, 4095, 4096, 4097, 3 * 4096 + 5, 1 << 20] {
            let mut buf = AlignedBuf::with_capacity(asked).unwrap();
            assert_eq!(buf.as_uninit().as_ptr() as usize % ALIGN, 0, "{asked}");
            assert_eq!(buf.capacity() % ALIGN, 0);
            assert!(buf.capacity() >= asked.max(1));
            assert!(buf.capacity() < asked.max(1) + ALIGN);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn aligned_new_buffer_is_zeroed() {
        let mut buf = AlignedBuf::with_capacity(3 * ALIGN).unwrap();
        buf.resize_zeroed(3 * ALIGN);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }

    #[test]
    fn aligned_pad_to_block_zeroes_the_tail_even_over_old_bytes() {
        let mut buf = AlignedBuf::with_capacity(2 * ALIGN).unwrap();
        assert_eq!(buf.extend_from_slice(&[0xff; 2 * ALIGN]), 2 * ALIGN);
        // Keep 10 bytes: the 4086 after them still hold 0xff in memory.
        buf.truncate(10);
        assert_eq!(buf.pad_to_block(), ALIGN);
        assert_eq!(&buf.as_slice()[..10], &[0xff; 10]);
        assert!(buf.as_slice()[10..].iter().all(|&b| b == 0));
        // Already whole blocks: nothing added.
        assert_eq!(buf.pad_to_block(), ALIGN);
        buf.clear();
        assert_eq!(buf.pad_to_block(), 0);
    }

    #[test]
    fn aligned_extend_copies_only_what_fits() {
        let mut buf = AlignedBuf::with_capacity(ALIGN).unwrap();
        assert_eq!(buf.extend_from_slice(&[1; 4000]), 4000);
        assert_eq!(buf.extend_from_slice(&[2; 4000]), 96);
        assert_eq!(buf.len(), ALIGN);
        assert_eq!(buf.spare(), 0);
        assert_eq!(buf.as_slice()[3999..4001], [1, 2]);
        assert_eq!(buf.extend_from_slice(&[3]), 0);
    }

    #[test]
    fn aligned_set_len_after_a_read_is_clamped_to_capacity() {
        let mut buf = AlignedBuf::with_capacity(ALIGN).unwrap();
        buf.as_uninit()[..3].copy_from_slice(&[MaybeUninit::new(7); 3]);
        // SAFETY: the three bytes were just written, as a read would have.
        unsafe { SetLen::set_len(&mut buf, 3) };
        assert_eq!(buf.as_init(), &[7, 7, 7]);
    }

    #[test]
    fn aligned_refuses_an_impossible_size_instead_of_panicking() {
        assert!(AlignedBuf::with_capacity(usize::MAX - ALIGN).is_err());
    }

    #[test]
    fn aligned_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<AlignedBuf>();
    }

    #[test]
    fn aligned_slices_of_blocks_stay_aligned() {
        let buf = AlignedBuf::with_capacity(4 * ALIGN).unwrap();
        let mut slice = IoBuf::slice(buf, ..2 * ALIGN);
        assert_eq!(slice.as_uninit().len(), 2 * ALIGN);
        assert_eq!(slice.as_uninit().as_ptr() as usize % ALIGN, 0);
    }
}
