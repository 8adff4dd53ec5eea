//! The kernel heap: `linked_list_allocator` over a virtual region that grows
//! on demand: when an allocation does not fit, more frames are mapped at the
//! top and the heap is extended, then the allocation is retried.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicU64, Ordering};

use linked_list_allocator::Heap;
use x86_64::VirtAddr;

use super::layout::{HEAP_BASE, HEAP_MAX};
use super::paging::{self, PageTableFlags};
use super::{PAGE_SIZE, frame};

/// Bytes mapped at boot.
const INITIAL_SIZE: u64 = 1 << 20;
/// Smallest growth step, so small allocations do not grow page by page.
const MIN_GROWTH: u64 = 256 << 10;

/// The global allocator.
pub struct KernelHeap {
    /// The allocator. Lock order: after the scheduler and stack slots,
    /// before the page tables and frames (growing maps pages under it).
    heap: crate::spinlock::SpinLock<Heap>,
    mapped: AtomicU64,
    /// The most bytes in use since boot or the last [`reset_peak`]:
    /// written under the heap lock, so a plain max is exact.
    peak: AtomicU64,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    heap: crate::spinlock::SpinLock::new(Heap::empty()),
    mapped: AtomicU64::new(0),
    peak: AtomicU64::new(0),
};

/// Heap usage numbers.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    /// Bytes of virtual heap backed by frames.
    pub mapped: u64,
    /// Bytes currently allocated.
    pub used: u64,
    /// The most bytes allocated at once since boot or [`reset_peak`]: the
    /// high-water mark the scaling bench reports.
    pub peak: u64,
}

/// Current heap usage.
pub fn stats() -> HeapStats {
    let heap = HEAP.heap.lock();
    HeapStats {
        mapped: HEAP.mapped.load(Ordering::Relaxed),
        used: heap.used() as u64,
        peak: HEAP.peak.load(Ordering::Relaxed),
    }
}

/// Starts a new high-water mark at the bytes in use now; returns them.
pub fn reset_peak() -> u64 {
    let heap = HEAP.heap.lock();
    let used = heap.used() as u64;
    HEAP.peak.store(used, Ordering::Relaxed);
    used
}

/// Maps `bytes` (page multiple) of fresh frames at `start`, unmapped heap
/// area past the heap's end (the caller holds the heap lock). On failure,
/// undoes its own work and returns false.
fn map_fresh(start: u64, bytes: u64) -> bool {
    let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for off in (0..bytes).step_by(PAGE_SIZE as usize) {
        let ok = frame::alloc_frame().is_some_and(|f| {
            // SAFETY: the page is heap area past the heap's end, which only
            // this function maps; `f` is a fresh frame we own.
            let mapped = unsafe { paging::map_page(VirtAddr::new(start + off), f, flags) }.is_ok();
            if !mapped {
                // SAFETY: `f` came from `alloc_frame` just now, unused.
                unsafe { frame::free_frame(f) };
            }
            mapped
        });
        if !ok {
            for done in (0..off).step_by(PAGE_SIZE as usize) {
                // SAFETY: pages this call mapped; the heap has not been
                // extended over them, so nothing refers to them.
                if let Ok(f) = unsafe { paging::unmap_page(VirtAddr::new(start + done)) } {
                    // SAFETY: the frame was ours and is no longer mapped.
                    unsafe { frame::free_frame(f) };
                }
            }
            return false;
        }
    }
    HEAP.mapped.fetch_add(bytes, Ordering::Relaxed);
    true
}

fn grow(heap: &mut Heap, layout: Layout) -> bool {
    let top = heap.top() as u64;
    let want = (layout.size() as u64 + layout.align() as u64 + PAGE_SIZE)
        .next_multiple_of(PAGE_SIZE)
        .max(MIN_GROWTH);
    if top + want > HEAP_BASE + HEAP_MAX || !map_fresh(top, want) {
        return false;
    }
    // SAFETY: `[top, top + want)` was just mapped, is owned by nobody else
    // and directly follows the heap's current end.
    unsafe { heap.extend(want as usize) };
    true
}

/// Maps the initial heap. Called once by `memory::init`.
pub(super) fn init() {
    assert!(
        map_fresh(HEAP_BASE, INITIAL_SIZE),
        "heap init: out of memory"
    );
    // SAFETY: the region was just mapped and is used by nothing else.
    unsafe {
        HEAP.heap
            .lock()
            .init(HEAP_BASE as *mut u8, INITIAL_SIZE as usize)
    };
}

// SAFETY: `Heap` returns non-overlapping blocks of the requested layout from
// mapped memory; the lock serialises all access to it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        loop {
            if let Ok(block) = heap.allocate_first_fit(layout) {
                self.peak.fetch_max(heap.used() as u64, Ordering::Relaxed);
                return block.as_ptr();
            }
            if !grow(&mut heap, layout) {
                return null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block from `alloc` with its layout.
            unsafe { self.heap.lock().deallocate(ptr, layout) }
        }
    }
}
