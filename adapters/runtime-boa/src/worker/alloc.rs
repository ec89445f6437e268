//! The memory limit: a global allocator that, in a worker process, counts the
//! heap bytes in use and ends the process with [`EXIT_MEMORY_LIMIT`] the
//! moment an allocation would pass `mem_mb`. Outside workers it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

use crate::protocol::EXIT_MEMORY_LIMIT;

/// The process's allocator. It lives in this library so that every binary
/// that can become a worker (the product, and the test binaries that spawn
/// themselves as workers) counts the same way. Cost outside a worker: one
/// relaxed load per call.
pub struct CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Set once, first thing in a worker process.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Heap bytes in use since counting began; a fork inherits the zygote's.
static IN_USE: AtomicIsize = AtomicIsize::new(0);
/// Bytes allowed in use; armed after a session worker boots.
static LIMIT: AtomicIsize = AtomicIsize::new(isize::MAX);

/// Starts counting; called before the worker allocates anything of note.
pub fn start_counting() {
    COUNTING.store(true, Relaxed);
}

/// Heap bytes in use, as counted.
pub fn in_use() -> usize {
    IN_USE.load(Relaxed).max(0) as usize
}

/// Allows at most `bytes` in use from now on.
pub fn arm(bytes: usize) {
    LIMIT.store(isize::try_from(bytes).unwrap_or(isize::MAX), Relaxed);
}

/// The limit is passed (or the system refused memory): nothing can be
/// allocated to say so, so the exit code says it.
#[cold]
fn exceeded() -> ! {
    // SAFETY: `_exit` ends the process without running any Rust code.
    unsafe { libc::_exit(EXIT_MEMORY_LIMIT) }
}

#[inline]
fn grow(bytes: usize) {
    let bytes = bytes as isize;
    let now = IN_USE.fetch_add(bytes, Relaxed) + bytes;
    if now > LIMIT.load(Relaxed) {
        exceeded();
    }
}

#[inline]
fn shrink(bytes: usize) {
    IN_USE.fetch_sub(bytes as isize, Relaxed);
}

// SAFETY: every call forwards to `System` with the same layout; the counting
// around it touches only atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !COUNTING.load(Relaxed) {
            return System.alloc(layout);
        }
        grow(layout.size());
        let ptr = System.alloc(layout);
        if ptr.is_null() {
            exceeded();
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !COUNTING.load(Relaxed) {
            return System.alloc_zeroed(layout);
        }
        grow(layout.size());
        let ptr = System.alloc_zeroed(layout);
        if ptr.is_null() {
            exceeded();
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            shrink(layout.size());
        }
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !COUNTING.load(Relaxed) {
            return System.realloc(ptr, layout, new_size);
        }
        if new_size > layout.size() {
            grow(new_size - layout.size());
        } else {
            shrink(layout.size() - new_size);
        }
        let ptr = System.realloc(ptr, layout, new_size);
        if ptr.is_null() {
            exceeded();
        }
        ptr
    }
}
