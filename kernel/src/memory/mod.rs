//! Memory: physical frames, page tables, the kernel heap, thread stacks and
//! MMIO mappings.
//!
//! Virtual layout (all kernel, ring 0):
//!
//! | range | what |
//! |---|---|
//! | `0 ..` | identity map of RAM (virt == phys): the kernel image at 1 MiB with per-section permissions, all other RAM read/write and non-executable; page 0 and the boot stack's guard page unmapped |
//! | [`layout::HEAP_BASE`] | the kernel heap, grown on demand |
//! | [`layout::STACKS_BASE`] | thread stacks, one slot each, an unmapped guard page at the bottom of every slot |
//! | [`layout::MMIO_BASE`] | MMIO mappings: device registers uncached ([`map_mmio`]), shared RAM write-back ([`map_shared_memory`]) |
//! | [`layout::KMAP_BASE`] | free for [`map_page`] users ([`alloc_kernel_pages`]) |
//!
//! Because RAM is identity mapped, [`phys_to_virt`] is the identity on RAM
//! and [`virt_to_phys`] walks the page tables (for heap buffers and stacks).

pub mod frame;
pub mod heap;
pub mod layout;
pub mod mmio;
pub mod paging;
pub mod stacks;

pub use frame::{alloc_frame, free_frame, free_frames, total_frames};
pub use mmio::{Caching, MmioRegion, map_mmio, map_physical, map_shared_memory, unmap_mmio};
pub use paging::{
    MapError, PageTableFlags, PhysAddr, VirtAddr, alloc_kernel_pages, map_page, phys_to_virt,
    unmap_page, virt_to_phys, virt_to_phys_nonblocking,
};
pub use stacks::{GuardPageOwner, guard_page_owner};

/// Size of a page and of a frame.
pub const PAGE_SIZE: u64 = 4096;

/// Sets up frames, the kernel's own page tables and the heap. Called once by
/// boot, after the boot information and ACPI tables have been read (their
/// memory is not guaranteed to stay mapped).
pub(crate) fn init(info: &crate::bootinfo::BootInfo) {
    frame::init(info.memory_map());
    paging::init(info.memory_map());
    heap::init();
    log::info!(
        "memory: {} MiB in {} free frames; heap at {:#x}, {} KiB mapped",
        (free_frames() * 4096) >> 20,
        free_frames(),
        layout::HEAP_BASE,
        heap::stats().mapped / 1024
    );
}
