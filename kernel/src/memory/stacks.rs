//! Thread stacks: each at the top of its own 1 MiB slot of the stack
//! region; everything below the stack in the slot (at least one page) stays
//! unmapped as a guard, so an overflow faults (and is reported as a double
//! fault naming the thread) instead of corrupting a neighbour.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use x86_64::VirtAddr;

use super::layout::{STACK_SLOT_SIZE, STACK_SLOTS, STACKS_BASE};
use super::paging::{self, MapError, PageTableFlags};
use super::{PAGE_SIZE, frame};
use crate::spinlock::SpinLock;

struct Slots {
    /// Next never-used slot.
    next: u64,
    /// Released slots, reused first.
    free: Vec<u64>,
    /// Slot -> (thread id, stack size), for fault reports.
    owners: BTreeMap<u64, (u64, u64)>,
}

/// Slot bookkeeping. Lock order: after the scheduler, before the heap.
static SLOTS: SpinLock<Slots> = SpinLock::new(Slots {
    next: 0,
    free: Vec::new(),
    owners: BTreeMap::new(),
});

/// A mapped kernel stack; unmapped and its frames freed on drop.
pub struct KernelStack {
    slot: u64,
    size: u64,
}

impl KernelStack {
    /// Largest stack a slot holds.
    pub const MAX_SIZE: u64 = STACK_SLOT_SIZE - PAGE_SIZE;

    /// Maps a stack of `size` bytes (rounded up to pages, at most
    /// [`Self::MAX_SIZE`]) for thread `owner`.
    pub fn new(size: u64, owner: u64) -> Result<Self, MapError> {
        let size = size
            .next_multiple_of(PAGE_SIZE)
            .clamp(PAGE_SIZE, Self::MAX_SIZE);
        let slot = {
            let mut slots = SLOTS.lock();
            let slot = match slots.free.pop() {
                Some(slot) => slot,
                None if slots.next < STACK_SLOTS => {
                    slots.next += 1;
                    slots.next - 1
                }
                None => return Err(MapError::OutOfVirtualSpace),
            };
            slots.owners.insert(slot, (owner, size));
            slot
        };
        let stack = Self { slot, size: 0 };
        let top = stack.top();
        let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        let mut stack = stack;
        for page in (top - size..top).step_by(PAGE_SIZE as usize) {
            let f = frame::alloc_frame().ok_or(MapError::OutOfFrames)?;
            // SAFETY: the slot was taken from `SLOTS` for this stack alone;
            // `f` is a fresh frame we own.
            if let Err(e) = unsafe { paging::map_page(VirtAddr::new(page), f, flags) } {
                // SAFETY: `f` came from `alloc_frame` just now, unused.
                unsafe { frame::free_frame(f) };
                return Err(e); // `stack` drops: unmaps what was mapped
            }
            stack.size += PAGE_SIZE;
        }
        Ok(stack)
    }

    /// One past the highest byte (the initial stack pointer).
    pub fn top(&self) -> u64 {
        STACKS_BASE + (self.slot + 1) * STACK_SLOT_SIZE
    }

    /// Mapped size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let top = self.top();
        for page in (top - self.size..top).step_by(PAGE_SIZE as usize) {
            // SAFETY: the stack is being dropped: its thread is gone (a
            // thread's stack outlives it), so no reference into it is live.
            if let Ok(f) = unsafe { paging::unmap_page(VirtAddr::new(page)) } {
                // SAFETY: the frame was mapped only here, and no more.
                unsafe { frame::free_frame(f) };
            }
        }
        let mut slots = SLOTS.lock();
        slots.owners.remove(&self.slot);
        slots.free.push(self.slot);
    }
}

/// Id of the thread that runs on the boot stack: the `main` thread.
pub const BOOT_STACK_THREAD_ID: u64 = 1;

/// A guard page that an address hit: who overflowed their stack.
#[derive(Clone, Copy, Debug)]
pub struct GuardPageOwner {
    /// The guard page's address.
    pub page: u64,
    /// Id of the thread whose stack it guards, if known.
    pub thread: Option<u64>,
}

impl fmt::Display for GuardPageOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.thread {
            Some(id) => write!(
                f,
                "hit the guard page {:#x} of thread {id}'s stack",
                self.page
            ),
            None => write!(f, "hit the stack guard page {:#x}", self.page),
        }
    }
}

/// If `addr` lies in a stack guard page, whose. Safe to call from fault
/// handlers (never blocks; may not know the owner if the lock is busy).
pub fn guard_page_owner(addr: u64) -> Option<GuardPageOwner> {
    let image = super::layout::kernel_image();
    if (image.boot_stack_guard..image.boot_stack_guard + PAGE_SIZE).contains(&addr) {
        return Some(GuardPageOwner {
            page: image.boot_stack_guard,
            thread: Some(BOOT_STACK_THREAD_ID),
        });
    }
    let off = addr.checked_sub(STACKS_BASE)?;
    let slot = off / STACK_SLOT_SIZE;
    if slot >= STACK_SLOTS {
        return None;
    }
    let slot_base = STACKS_BASE + slot * STACK_SLOT_SIZE;
    let owner = SLOTS
        .try_lock()
        .and_then(|slots| slots.owners.get(&slot).copied());
    // Unknown owner (lock busy): only the always-unmapped first page counts.
    let stack_bottom = match owner {
        Some((_, size)) => slot_base + STACK_SLOT_SIZE - size,
        None => slot_base + PAGE_SIZE,
    };
    (addr < stack_bottom).then(|| GuardPageOwner {
        page: addr & !(PAGE_SIZE - 1),
        thread: owner.map(|(id, _)| id),
    })
}
