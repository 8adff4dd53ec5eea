//! The kernel's page tables: built at boot to replace the loader-time
//! identity map (see [`super`] for the layout), then edited through
//! [`map_page`], [`unmap_page`] and [`map_mmio`](super::mmio::map_mmio).
//!
//! Page-table frames are RAM, hence identity mapped, so the tables are
//! walked with `x86_64`'s `OffsetPageTable` at offset 0. All edits happen
//! under [`PAGE_TABLES`]. TLB shootdown is local only (one CPU today; an SMP
//! kernel must add an IPI in `flush`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::Cr3;
use x86_64::registers::model_specific::{Efer, EferFlags};
pub use x86_64::structures::paging::PageTableFlags;
use x86_64::structures::paging::mapper::{MapToError, Translate, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PhysFrame, Size2MiB, Size4KiB,
};
pub use x86_64::{PhysAddr, VirtAddr};

use super::layout::{self, KMAP_BASE, KMAP_SIZE};
use super::{PAGE_SIZE, frame};
use crate::bootinfo::{MemoryKind, MemoryRegion};
use crate::spinlock::SpinLock;

/// Errors from the mapping functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The virtual page is already mapped.
    AlreadyMapped {
        /// The page.
        virt: u64,
    },
    /// The virtual page is not mapped.
    NotMapped {
        /// The page.
        virt: u64,
    },
    /// A 2 MiB page of the identity map covers this address.
    HugePage {
        /// The address.
        virt: u64,
    },
    /// An address is not 4 KiB aligned.
    NotAligned {
        /// The address.
        addr: u64,
    },
    /// No free physical frame for a page table or a page.
    OutOfFrames,
    /// The virtual area (MMIO window or kernel map area) is used up.
    OutOfVirtualSpace,
    /// Called before the kernel's page tables exist.
    NotReady,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyMapped { virt } => write!(f, "page {virt:#x} is already mapped"),
            Self::NotMapped { virt } => write!(f, "page {virt:#x} is not mapped"),
            Self::HugePage { virt } => write!(f, "{virt:#x} lies in a 2 MiB page"),
            Self::NotAligned { addr } => write!(f, "{addr:#x} is not page aligned"),
            Self::OutOfFrames => write!(f, "out of physical memory"),
            Self::OutOfVirtualSpace => write!(f, "virtual area exhausted"),
            Self::NotReady => write!(f, "paging is not initialised yet"),
        }
    }
}

struct KernelFrames;

// SAFETY: `alloc_frame` returns unused, frame-aligned RAM, never twice.
unsafe impl FrameAllocator<Size4KiB> for KernelFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        frame::alloc_frame().map(PhysFrame::containing_address)
    }
}

/// The active page tables. Lock order: after the heap and stack-slot locks,
/// before the frame allocator.
static PAGE_TABLES: SpinLock<Option<OffsetPageTable<'static>>> = SpinLock::new(None);
static KMAP_NEXT: AtomicU64 = AtomicU64::new(KMAP_BASE);
static NX: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// `flags` without NO_EXECUTE when the CPU lacks NX (the bit would fault).
fn sanitize(mut flags: PageTableFlags) -> PageTableFlags {
    if !NX.load(Ordering::Relaxed) {
        flags.remove(PageTableFlags::NO_EXECUTE);
    }
    flags
}

fn map_identity_4k(
    mapper: &mut OffsetPageTable<'static>,
    start: u64,
    end: u64,
    flags: PageTableFlags,
) {
    let table_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    for addr in (start..end).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr));
        let frame = PhysFrame::containing_address(PhysAddr::new(addr));
        // SAFETY: identity-mapping RAM (or the kernel image) with the
        // permissions its contents need; the new tables are not live yet.
        let result = unsafe {
            mapper.map_to_with_table_flags(
                page,
                frame,
                sanitize(flags),
                table_flags,
                &mut KernelFrames,
            )
        };
        match result {
            // The new tables are loaded wholesale later: no flush needed.
            Ok(flush) => flush.ignore(),
            Err(MapToError::PageAlreadyMapped(_)) => {}
            Err(e) => panic!("paging init: cannot map {addr:#x}: {e:?}"),
        }
    }
}

fn map_identity_ram(mapper: &mut OffsetPageTable<'static>, start: u64, end: u64) {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let table_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    const HUGE: u64 = 2 << 20;
    let mut addr = start;
    while addr < end {
        if addr.is_multiple_of(HUGE) && addr + HUGE <= end {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(addr));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(addr));
            // SAFETY: as in `map_identity_4k`.
            let result = unsafe {
                mapper.map_to_with_table_flags(
                    page,
                    frame,
                    sanitize(flags | PageTableFlags::HUGE_PAGE),
                    table_flags,
                    &mut KernelFrames,
                )
            };
            match result {
                Ok(flush) => flush.ignore(),
                Err(e) => panic!("paging init: cannot map {addr:#x} (2 MiB): {e:?}"),
            }
            addr += HUGE;
        } else {
            let next = (addr + 1).next_multiple_of(HUGE).min(end);
            map_identity_4k(mapper, addr, next, flags);
            addr = next;
        }
    }
}

/// Builds the kernel's page tables and switches to them.
pub(super) fn init(map: &[MemoryRegion]) {
    NX.store(
        Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE),
        Ordering::Relaxed,
    );
    let pml4_frame = frame::alloc_frame().expect("paging init: no frame for the PML4");
    // SAFETY: a fresh frame, identity mapped by the boot tables (frames come
    // from low memory first); we own it and zero it before use.
    let pml4 = unsafe {
        let table = pml4_frame.as_u64() as *mut PageTable;
        table.write(PageTable::new());
        &mut *table
    };
    // SAFETY: every page-table frame is RAM, identity mapped (offset 0) in
    // both the boot tables and the tables being built.
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(0)) };

    let image = layout::kernel_image();
    let rx = PageTableFlags::PRESENT;
    let ro = PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE;
    let rw = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    map_identity_4k(&mut mapper, image.start, image.text_end, rx);
    map_identity_4k(&mut mapper, image.text_end, image.rodata_end, ro);
    map_identity_4k(&mut mapper, image.rodata_end, image.boot_stack_guard, rw);
    map_identity_4k(
        &mut mapper,
        image.boot_stack_guard + PAGE_SIZE,
        image.end,
        rw,
    );
    // Low memory (BIOS data, loader structures), without page 0: a null
    // pointer dereference must fault.
    map_identity_4k(&mut mapper, PAGE_SIZE, 0x10_0000, rw);
    for region in map.iter().filter(|r| {
        matches!(
            r.kind,
            MemoryKind::Usable | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs
        )
    }) {
        let start = (region.start & !(PAGE_SIZE - 1)).max(0x10_0000);
        let end = region.end().next_multiple_of(PAGE_SIZE);
        // The kernel image already has its own, finer mapping.
        for (s, e) in [(start, end.min(image.start)), (start.max(image.end), end)] {
            if s < e {
                map_identity_ram(&mut mapper, s, e);
            }
        }
    }
    let (_, cr3_flags) = Cr3::read();
    // SAFETY: the new tables map everything the kernel touches from here on:
    // its image (stack, statics), all RAM, and low memory.
    unsafe { Cr3::write(PhysFrame::containing_address(pml4_frame), cr3_flags) };
    *PAGE_TABLES.lock() = Some(mapper);
}

fn with_tables<R>(
    f: impl FnOnce(&mut OffsetPageTable<'static>) -> Result<R, MapError>,
) -> Result<R, MapError> {
    let mut tables = PAGE_TABLES.lock();
    f(tables.as_mut().ok_or(MapError::NotReady)?)
}

fn check_aligned(addr: u64) -> Result<(), MapError> {
    if addr.is_multiple_of(PAGE_SIZE) {
        Ok(())
    } else {
        Err(MapError::NotAligned { addr })
    }
}

/// Maps the 4 KiB page at `virt` to the frame at `phys` with `flags`
/// (PRESENT is implied; NO_EXECUTE is dropped on CPUs without NX).
/// Missing page-table levels are allocated. The caller owns `virt`: use
/// addresses from [`alloc_kernel_pages`] (or the regions it manages).
///
/// # Safety
/// `virt` must be a page the caller reserved (from [`alloc_kernel_pages`]
/// or an area it manages), and `phys` a frame the caller owns or device
/// memory: mapping a frame that holds Rust objects (the image, the heap,
/// a stack, another owner's frame) writable would alias them.
pub unsafe fn map_page(
    virt: VirtAddr,
    phys: PhysAddr,
    flags: PageTableFlags,
) -> Result<(), MapError> {
    check_aligned(virt.as_u64())?;
    check_aligned(phys.as_u64())?;
    with_tables(|mapper| {
        let page = Page::<Size4KiB>::containing_address(virt);
        let frame = PhysFrame::containing_address(phys);
        let table_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        // SAFETY: the caller owns the page and the frame (see `# Safety`), so
        // the mapping aliases no Rust object the kernel relies on.
        let result = unsafe {
            mapper.map_to_with_table_flags(
                page,
                frame,
                sanitize(flags | PageTableFlags::PRESENT),
                table_flags,
                &mut KernelFrames,
            )
        };
        match result {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(MapToError::PageAlreadyMapped(_)) => Err(MapError::AlreadyMapped {
                virt: virt.as_u64(),
            }),
            Err(MapToError::ParentEntryHugePage) => Err(MapError::HugePage {
                virt: virt.as_u64(),
            }),
            Err(MapToError::FrameAllocationFailed) => Err(MapError::OutOfFrames),
        }
    })
}

/// Unmaps the 4 KiB page at `virt` and returns the frame it mapped (which
/// the caller frees if it owns it). The local TLB entry is flushed.
///
/// # Safety
/// The caller must own the mapping (it made it with [`map_page`]) and
/// nothing may use the page any more: no reference into it is live.
pub unsafe fn unmap_page(virt: VirtAddr) -> Result<PhysAddr, MapError> {
    check_aligned(virt.as_u64())?;
    with_tables(|mapper| {
        let page = Page::<Size4KiB>::containing_address(virt);
        match mapper.unmap(page) {
            Ok((frame, flush)) => {
                flush.flush();
                Ok(frame.start_address())
            }
            Err(UnmapError::ParentEntryHugePage) => Err(MapError::HugePage {
                virt: virt.as_u64(),
            }),
            Err(_) => Err(MapError::NotMapped {
                virt: virt.as_u64(),
            }),
        }
    })
}

/// The physical address `virt` maps to, if mapped (any page size).
pub fn virt_to_phys(virt: VirtAddr) -> Option<PhysAddr> {
    PAGE_TABLES.lock().as_ref()?.translate_addr(virt)
}

/// Like [`virt_to_phys`] for fault paths: never blocks (gives up if the
/// page tables are locked). Before the kernel's tables exist, the boot
/// identity map of the low 4 GiB applies.
pub fn virt_to_phys_nonblocking(addr: u64) -> Option<PhysAddr> {
    let tables = PAGE_TABLES.try_lock()?;
    match tables.as_ref() {
        Some(mapper) => mapper.translate_addr(VirtAddr::try_new(addr).ok()?),
        None => (addr < 1 << 32).then(|| PhysAddr::new(addr)),
    }
}

/// The kernel virtual address of physical RAM at `phys` (the identity map),
/// or `None` if `phys` is not RAM mapped there (MMIO needs [`map_mmio`](super::mmio::map_mmio)).
pub fn phys_to_virt(phys: PhysAddr) -> Option<VirtAddr> {
    let addr = phys.as_u64();
    let ram = crate::bootinfo::info().memory_map().iter().any(|r| {
        matches!(
            r.kind,
            MemoryKind::Usable | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs
        ) && (r.start..r.end()).contains(&addr)
    });
    let low = (PAGE_SIZE..0x10_0000).contains(&addr);
    (ram || low).then(|| VirtAddr::new(addr))
}

/// Takes `bytes` (rounded up to pages) from the bump allocator `next` of
/// the area `[base, base + size)`. A request that does not fit fails
/// without moving `next`, so one oversized request (a BAR size read from a
/// device, say) does not use the area up for everyone after it.
pub(super) fn reserve(next: &AtomicU64, base: u64, size: u64, bytes: u64) -> Result<u64, MapError> {
    let bytes = bytes
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(MapError::OutOfVirtualSpace)?;
    let end = base + size;
    next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |start| {
        start.checked_add(bytes).filter(|&stop| stop <= end)
    })
    .map_err(|_| MapError::OutOfVirtualSpace)
}

/// Reserves `pages` consecutive, unmapped virtual pages in the kernel map
/// area for the caller to fill with [`map_page`]. Never reused. Errors:
/// [`MapError::OutOfVirtualSpace`] when the area has no such run left.
pub fn alloc_kernel_pages(pages: u64) -> Result<VirtAddr, MapError> {
    let bytes = pages
        .checked_mul(PAGE_SIZE)
        .ok_or(MapError::OutOfVirtualSpace)?;
    reserve(&KMAP_NEXT, KMAP_BASE, KMAP_SIZE, bytes).map(VirtAddr::new)
}
