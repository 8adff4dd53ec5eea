//! The physical frame allocator: hands out 4 KiB frames of usable RAM from
//! the boot memory map, minus low memory (< 1 MiB) and the kernel image.
//!
//! Fresh frames are taken from the regions in ascending address order (so
//! early page tables sit below 4 GiB, where the boot identity map reaches);
//! freed frames go on a free list threaded through the frames themselves
//! (they are identity mapped). All state is under [`FRAMES`], a leaf lock.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::PhysAddr;

use super::PAGE_SIZE;
use crate::bootinfo::{MAX_MEMORY_REGIONS, MemoryKind, MemoryRegion};
use crate::spinlock::SpinLock;

const LOW_MEMORY_END: u64 = 0x10_0000;

#[derive(Clone, Copy)]
struct Range {
    next: u64,
    end: u64,
}

struct FrameAllocator {
    /// Never-used parts of usable regions, ascending.
    ranges: [Range; MAX_MEMORY_REGIONS],
    range_count: usize,
    /// Head of the list of freed frames (0: empty). Each free frame holds
    /// the address of the next one in its first 8 bytes.
    free_list: u64,
}

/// The allocator's state. Lock order: a leaf (taken under the page-table
/// lock, never the other way round).
static FRAMES: SpinLock<FrameAllocator> = SpinLock::new(FrameAllocator {
    ranges: [Range { next: 0, end: 0 }; MAX_MEMORY_REGIONS],
    range_count: 0,
    free_list: 0,
});
static FREE: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Builds the allocator from the memory map. Called once by `memory::init`.
pub(super) fn init(map: &[MemoryRegion]) {
    let image = super::layout::kernel_image();
    let mut frames = FRAMES.lock();
    let mut usable: [Range; MAX_MEMORY_REGIONS] = [Range { next: 0, end: 0 }; MAX_MEMORY_REGIONS];
    let mut n = 0;
    for region in map.iter().filter(|r| r.kind == MemoryKind::Usable) {
        let start = region.start.max(LOW_MEMORY_END).next_multiple_of(PAGE_SIZE);
        let end = region.end() & !(PAGE_SIZE - 1);
        // Cut the kernel image out (it may split the region in two).
        for (s, e) in [(start, end.min(image.start)), (start.max(image.end), end)] {
            if s < e && n < usable.len() {
                usable[n] = Range { next: s, end: e };
                n += 1;
            }
        }
    }
    usable[..n].sort_unstable_by_key(|r| r.next);
    let total: u64 = usable[..n]
        .iter()
        .map(|r| (r.end - r.next) / PAGE_SIZE)
        .sum();
    frames.ranges = usable;
    frames.range_count = n;
    TOTAL.store(total, Ordering::Relaxed);
    FREE.store(total, Ordering::Relaxed);
}

/// Allocates one 4 KiB frame (contents undefined). `None` when RAM is
/// exhausted.
pub fn alloc_frame() -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let addr = if frames.free_list != 0 {
        let head = frames.free_list;
        // SAFETY: free-list frames are RAM we own, identity mapped, and hold
        // the next pointer in their first 8 bytes (written by `free_frame`).
        frames.free_list = unsafe { core::ptr::read_volatile(head as *const u64) };
        head
    } else {
        let count = frames.range_count;
        let range = frames.ranges[..count].iter_mut().find(|r| r.next < r.end)?;
        let addr = range.next;
        range.next += PAGE_SIZE;
        addr
    };
    FREE.fetch_sub(1, Ordering::Relaxed);
    Some(PhysAddr::new(addr))
}

/// Returns a frame obtained from [`alloc_frame`].
///
/// # Safety
/// `frame` came from [`alloc_frame`] and has not been freed since; nothing
/// uses it any more and it is mapped nowhere but the identity map (the
/// allocator writes its free-list link into it and hands it out again).
pub unsafe fn free_frame(frame: PhysAddr) {
    let addr = frame.as_u64();
    assert!(
        addr.is_multiple_of(PAGE_SIZE) && addr >= LOW_MEMORY_END,
        "free_frame({addr:#x}): not a frame from the allocator"
    );
    let mut frames = FRAMES.lock();
    // SAFETY: the caller gave the frame back (see `# Safety`); it is
    // identity-mapped RAM nobody else uses, so its first 8 bytes can hold
    // the list link.
    unsafe { core::ptr::write_volatile(addr as *mut u64, frames.free_list) };
    frames.free_list = addr;
    FREE.fetch_add(1, Ordering::Relaxed);
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    FREE.load(Ordering::Relaxed)
}

/// Frames the allocator manages in all.
pub fn total_frames() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}
