//! MMIO mappings: device registers and memory mapped in the MMIO window,
//! with volatile, bounds-checked accessors. Registers are mapped uncached
//! ([`map_mmio`]); memory shared with another agent (a xenstore ring page,
//! RAM behind a BAR) write-back ([`map_shared_memory`]).

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

use volatile::VolatilePtr;
use x86_64::{PhysAddr, VirtAddr};

use super::PAGE_SIZE;
use super::layout::{MMIO_BASE, MMIO_SIZE};
use super::paging::{MapError, PageTableFlags, map_page, reserve, unmap_page};

/// Next free address of the MMIO window (never reused).
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);

/// A device's registers ([`map_mmio`], uncached) or shared memory
/// ([`map_shared_memory`], write-back). Accessors are volatile and
/// bounds-checked.
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
            self.register::<$t>(offset).read()
        }

        /// Volatile write at byte `offset`. Panics if out of bounds or
        /// misaligned (a driver bug).
        pub fn $write(&self, offset: usize, value: $t) {
            self.register::<$t>(offset).write(value)
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

    /// The `T` at byte `offset`, for volatile access while `self` is borrowed.
    /// Panics if out of bounds or misaligned (a driver bug).
    fn register<T>(&self, offset: usize) -> VolatilePtr<'_, T> {
        let ptr = NonNull::new(self.checked::<T>(offset)).expect("MMIO regions never start at 0");
        // SAFETY: `checked` proved the access is aligned and inside the
        // region, which stays mapped while `self` lives (unmapping consumes it).
        unsafe { VolatilePtr::new(ptr) }
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

/// How a physical range is mapped by [`map_physical`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Uncached (PCD|PWT): device registers, where every access must reach
    /// the device in program order.
    Uncached,
    /// Write-back (PAT entry 0): ordinary RAM shared with another agent
    /// that is cache-coherent with us (another domain, a host process
    /// behind an ivshmem BAR). Ordering is then the user's job (barriers).
    WriteBack,
}

/// Maps `len` bytes of device memory at physical `phys` (any address, also
/// above 4 GiB) uncached (PCD|PWT), writable, non-executable, in the MMIO
/// window. The mapping stays until [`unmap_mmio`].
///
/// # Safety
/// `phys .. phys + len` must be device memory, or RAM that no Rust object
/// of this kernel lives in (not the identity-mapped RAM of the image, the
/// frame allocator, the heap or the stacks): the region's safe accessors
/// write there. Writes to the registers of a device that can DMA must be
/// left to code that programs it soundly.
pub unsafe fn map_mmio(phys: u64, len: usize) -> Result<MmioRegion, MapError> {
    // SAFETY: the caller's obligation is `map_physical`'s.
    unsafe { map_physical(phys, len, Caching::Uncached) }
}

/// Maps `len` bytes of RAM at physical `phys` that another agent shares
/// with us (e.g. the xenstore ring page: a Xen guest frame, or host RAM
/// behind the ivshmem BAR2) write-back, writable, non-executable, in the
/// MMIO window. Write-back, not uncached, because both sides see the same
/// coherent RAM: the memory types of the two mappings must agree (the host
/// maps it write-back), and the ring protocol's barriers, not the cache
/// mode, order the accesses. (Firmware MTRRs may still make a PCI hole
/// uncached on real hardware; that is slower, never wrong.)
///
/// # Safety
/// As for [`map_mmio`]: the range must be memory no Rust object of this
/// kernel lives in.
pub unsafe fn map_shared_memory(phys: u64, len: usize) -> Result<MmioRegion, MapError> {
    // SAFETY: the caller's obligation is `map_physical`'s.
    unsafe { map_physical(phys, len, Caching::WriteBack) }
}

/// Maps `len` bytes at physical `phys` with `caching`, writable,
/// non-executable, in the MMIO window, until [`unmap_mmio`]. Errors:
/// [`MapError::OutOfVirtualSpace`] when the window has no room for `len`
/// (also for lengths no address space holds), or a mapping error.
///
/// # Safety
/// As for [`map_mmio`].
pub unsafe fn map_physical(
    phys: u64,
    len: usize,
    caching: Caching,
) -> Result<MmioRegion, MapError> {
    let base = phys & !(PAGE_SIZE - 1);
    // `len` may come from a device (a BAR's size): overflow is an error.
    let span = (phys - base)
        .checked_add(len as u64)
        .and_then(|bytes| bytes.max(PAGE_SIZE).checked_next_multiple_of(PAGE_SIZE))
        .ok_or(MapError::OutOfVirtualSpace)?;
    let virt = reserve(&MMIO_NEXT, MMIO_BASE, MMIO_SIZE, span)?;
    let mut flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    if caching == Caching::Uncached {
        flags |= PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    }
    for off in (0..span).step_by(PAGE_SIZE as usize) {
        // SAFETY: `virt` was just reserved in the MMIO window, for us only;
        // the caller vouches that the frame holds no Rust object.
        let mapped =
            unsafe { map_page(VirtAddr::new(virt + off), PhysAddr::new(base + off), flags) };
        if let Err(e) = mapped {
            for done in (0..off).step_by(PAGE_SIZE as usize) {
                // SAFETY: our own pages from above; no region refers to them.
                let _ = unsafe { unmap_page(VirtAddr::new(virt + done)) };
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

/// Removes an MMIO mapping (the virtual range is not reused). Safe: the
/// region is consumed, so its accessors cannot be used again; raw pointers
/// taken with [`MmioRegion::as_ptr`] dangle from here on (their users
/// promised, in their own `unsafe`, to stop before this).
pub fn unmap_mmio(region: MmioRegion) {
    let base = region.virt & !(PAGE_SIZE - 1);
    let end = (region.virt + region.len as u64)
        .next_multiple_of(PAGE_SIZE)
        .max(base + PAGE_SIZE);
    for page in (base..end).step_by(PAGE_SIZE as usize) {
        // Device memory: nothing to free, only the mapping goes.
        // SAFETY: these pages are the region's alone, and it is gone.
        let _ = unsafe { unmap_page(VirtAddr::new(page)) };
    }
}
