//! MMIO mappings: device registers and memory mapped uncached in the MMIO
//! window, with volatile, bounds-checked accessors.

use core::sync::atomic::AtomicU64;

use x86_64::{PhysAddr, VirtAddr};

use super::PAGE_SIZE;
use super::layout::{MMIO_BASE, MMIO_SIZE};
use super::paging::{MapError, PageTableFlags, map_page, reserve, unmap_page};

/// Next free address of the MMIO window (never reused).
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);

/// A device's registers or memory mapped uncached (see [`map_mmio`]).
/// Accessors are volatile and bounds-checked.
#[derive(Debug)]
pub struct MmioRegion {
    virt: u64,
    phys: u64,
    len: usize,
}

macro_rules! mmio_accessors {
    ($($read:ident, $write:ident, $t:ty;)*) => {$(
        /// Volatile read at byte `offset`. Panics if out of bounds or
        /// misaligned (a driver bug).
        pub fn $read(&self, offset: usize) -> $t {
            let ptr = self.checked::<$t>(offset);
            // SAFETY: `checked` proved the access is aligned and inside the
            // mapped, uncached region.
            unsafe { core::ptr::read_volatile(ptr) }
        }

        /// Volatile write at byte `offset`. Panics if out of bounds or
        /// misaligned (a driver bug).
        pub fn $write(&self, offset: usize, value: $t) {
            let ptr = self.checked::<$t>(offset);
            // SAFETY: as for the read.
            unsafe { core::ptr::write_volatile(ptr, value) }
        }
    )*};
}

impl MmioRegion {
    /// Virtual address of the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.virt as *mut u8
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> PhysAddr {
        PhysAddr::new(self.phys)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn checked<T>(&self, offset: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len)
                && offset.is_multiple_of(size),
            "MMIO access of {size} bytes at offset {offset:#x} outside a {:#x}-byte region or misaligned",
            self.len
        );
        (self.virt + offset as u64) as *mut T
    }

    mmio_accessors! {
        read8, write8, u8;
        read16, write16, u16;
        read32, write32, u32;
        read64, write64, u64;
    }
}

/// Maps `len` bytes of device memory at physical `phys` (any address, also
/// above 4 GiB) uncached (PCD|PWT), writable, non-executable, in the MMIO
/// window. The mapping stays until [`unmap_mmio`].
pub fn map_mmio(phys: u64, len: usize) -> Result<MmioRegion, MapError> {
    let base = phys & !(PAGE_SIZE - 1);
    let span = (phys - base + len as u64)
        .next_multiple_of(PAGE_SIZE)
        .max(PAGE_SIZE);
    let virt = reserve(&MMIO_NEXT, MMIO_BASE, MMIO_SIZE, span)?;
    let flags = PageTableFlags::WRITABLE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH
        | PageTableFlags::NO_EXECUTE;
    for off in (0..span).step_by(PAGE_SIZE as usize) {
        if let Err(e) = map_page(VirtAddr::new(virt + off), PhysAddr::new(base + off), flags) {
            for done in (0..off).step_by(PAGE_SIZE as usize) {
                let _ = unmap_page(VirtAddr::new(virt + done));
            }
            return Err(e);
        }
    }
    Ok(MmioRegion {
        virt: virt + (phys - base),
        phys,
        len,
    })
}

/// Removes an MMIO mapping (the virtual range is not reused).
pub fn unmap_mmio(region: MmioRegion) {
    let base = region.virt & !(PAGE_SIZE - 1);
    let end = (region.virt + region.len as u64)
        .next_multiple_of(PAGE_SIZE)
        .max(base + PAGE_SIZE);
    for page in (base..end).step_by(PAGE_SIZE as usize) {
        // Device memory: nothing to free, only the mapping goes.
        let _ = unmap_page(VirtAddr::new(page));
    }
}
