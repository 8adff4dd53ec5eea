//! Pages shared with another domain: ours granted to it, or its granted
//! pages mapped here. Each set is mapped at one contiguous kernel virtual
//! range, so a multi-page ring is one buffer.
//!
//! Foreign pages go to guest frames above all RAM and firmware ranges
//! (holes in our physmap: Xen puts the granted page there and leaves a hole
//! again at unmap, see `xen::grant_table::foreign`). Those frames and the
//! virtual ranges are handed out once and not reused; a vchan needs at
//! most 2 * 256 + 1 of them.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use xen::grant_table::foreign::{self, MapHandle};
use xen::grant_table::{GrantAccess, GrantError, GrantRef};
use xen::{DomId, Gfn};

use super::VchanError;
use crate::guest::XenResources;
use crate::memory::{self, MmioRegion, PageTableFlags, PhysAddr, VirtAddr};
use crate::sync::SpinLock;

/// Our frames granted to a peer, mapped at `virt`.
pub struct GrantedPages {
    frames: Vec<PhysAddr>,
    grefs: Vec<GrantRef>,
    virt: VirtAddr,
}

impl GrantedPages {
    /// The first page's address; the pages follow contiguously.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(self.virt.as_mut_ptr::<u8>()).expect("kernel addresses are not null")
    }

    /// The grant references, in page order.
    pub fn grefs(&self) -> &[GrantRef] {
        &self.grefs
    }
}

/// Grants ended while the peer still mapped them: their frames are kept
/// until a later [`end_grants`] finds them unmapped. Leaf spin lock.
static LINGERING: SpinLock<Vec<(GrantRef, PhysAddr)>> = SpinLock::new(Vec::new());

/// Allocates `n` zeroed frames, maps them contiguously and grants them to
/// `remote` read-write.
pub fn grant_pages(
    res: &XenResources,
    remote: DomId,
    n: usize,
) -> Result<GrantedPages, VchanError> {
    let virt = memory::alloc_kernel_pages(n as u64).map_err(VchanError::Map)?;
    let mut pages = GrantedPages {
        frames: Vec::with_capacity(n),
        grefs: Vec::with_capacity(n),
        virt,
    };
    for i in 0..n {
        let Some(frame) = memory::alloc_frame() else {
            end_grants(res, pages);
            return Err(VchanError::OutOfMemory);
        };
        let page = VirtAddr::new(virt.as_u64() + i as u64 * memory::PAGE_SIZE);
        let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
        // SAFETY: `page` is in the range reserved above for us; `frame` is
        // fresh from the allocator, ours, holding no Rust object.
        if let Err(e) = unsafe { memory::map_page(page, frame, flags) } {
            // SAFETY: never mapped, never granted.
            unsafe { memory::free_frame(frame) };
            end_grants(res, pages);
            return Err(VchanError::Map(e));
        }
        // SAFETY: just mapped, a whole page, ours.
        unsafe { core::ptr::write_bytes(page.as_mut_ptr::<u8>(), 0, memory::PAGE_SIZE as usize) };
        pages.frames.push(frame);
        // SAFETY: the frame stays allocated until `end_grants` ends the grant
        // (or keeps it in LINGERING while the peer maps it); it is used only
        // as shared memory.
        let granted = unsafe {
            res.table().grant_access(
                remote,
                Gfn::containing(frame.as_u64()),
                GrantAccess::ReadWrite,
            )
        };
        match granted {
            Ok(gref) => pages.grefs.push(gref),
            Err(e) => {
                end_grants(res, pages);
                return Err(VchanError::Grant(e));
            }
        }
    }
    Ok(pages)
}

/// Ends the grants of `pages` and frees their frames; a frame the peer
/// still maps is kept (and retried at the next call) rather than reused.
pub fn end_grants(res: &XenResources, pages: GrantedPages) {
    let lingering = core::mem::take(&mut *LINGERING.lock());
    let mut still = Vec::new();
    for (gref, frame) in lingering {
        end_one(res, gref, frame, &mut still);
    }
    for i in 0..pages.frames.len() {
        let page = VirtAddr::new(pages.virt.as_u64() + i as u64 * memory::PAGE_SIZE);
        // SAFETY: mapped by `grant_pages`; the vchan that used it is gone.
        let _ = unsafe { memory::unmap_page(page) };
        match pages.grefs.get(i) {
            Some(&gref) => end_one(res, gref, pages.frames[i], &mut still),
            // SAFETY: allocated, never granted, no longer mapped.
            None => unsafe { memory::free_frame(pages.frames[i]) },
        }
    }
    let kept = still.len();
    LINGERING.lock().extend(still);
    if kept > 0 {
        log::warn!("vchan: {kept} page(s) still mapped by their peer; kept until it unmaps");
    }
}

fn end_one(
    res: &XenResources,
    gref: GrantRef,
    frame: PhysAddr,
    still: &mut Vec<(GrantRef, PhysAddr)>,
) {
    match res.table().end_access(gref) {
        // SAFETY: the grant has ended and no mapping of ours is left.
        Ok(()) => unsafe { memory::free_frame(frame) },
        Err(GrantError::StillMapped { .. }) => still.push((gref, frame)),
        Err(e) => log::error!("vchan: cannot end {gref}: {e}; its frame is leaked"),
    }
}

/// Pages another domain granted us, mapped here.
pub struct ForeignPages {
    region: MmioRegion,
    first: Gfn,
    handles: Vec<MapHandle>,
}

impl ForeignPages {
    /// The first page's address; the pages follow contiguously.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(self.region.as_ptr()).expect("kernel addresses are not null")
    }
}

/// The next hole frame for a foreign page (0: not chosen yet).
static NEXT_HOLE: AtomicU64 = AtomicU64::new(0);

/// `n` consecutive frames that are holes in our physmap: above every
/// region of the memory map and 4 GiB, 1 GiB aligned.
fn hole_frames(n: u64) -> Gfn {
    const GIB: u64 = 1 << 30;
    let top = crate::bootinfo::info()
        .memory_map()
        .iter()
        .map(|r| r.start.saturating_add(r.len))
        .max()
        .unwrap_or(0)
        .max(4 * GIB)
        .next_multiple_of(GIB);
    let _ = NEXT_HOLE.compare_exchange(
        0,
        top / memory::PAGE_SIZE,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    Gfn(NEXT_HOLE.fetch_add(n, Ordering::Relaxed))
}

/// Maps `remote`'s grants `grefs` (in order) contiguously with `access`.
pub fn map_foreign(
    res: &XenResources,
    remote: DomId,
    grefs: &[GrantRef],
    access: GrantAccess,
) -> Result<ForeignPages, VchanError> {
    let hv = res.guest().hypervisor;
    let first = hole_frames(grefs.len() as u64);
    let mut handles = Vec::with_capacity(grefs.len());
    for (i, &gref) in grefs.iter().enumerate() {
        let at = Gfn(first.0 + i as u64);
        // SAFETY: `at` is a hole frame handed out once, to this mapping.
        match unsafe { foreign::map(hv, remote, gref, at, access) } {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                unmap_frames(res, first, &handles);
                return Err(VchanError::Xen(e));
            }
        }
    }
    // SAFETY: the frames now hold the peer's pages: shared memory, no Rust object.
    let region = unsafe {
        memory::map_shared_memory(first.addr(), grefs.len() * memory::PAGE_SIZE as usize)
    };
    match region {
        Ok(region) => Ok(ForeignPages {
            region,
            first,
            handles,
        }),
        Err(e) => {
            unmap_frames(res, first, &handles);
            Err(VchanError::Map(e))
        }
    }
}

/// Unmaps pages mapped by [`map_foreign`]: the kernel mapping, then Xen's.
pub fn unmap_foreign(res: &XenResources, pages: ForeignPages) {
    memory::unmap_mmio(pages.region);
    unmap_frames(res, pages.first, &pages.handles);
}

fn unmap_frames(res: &XenResources, first: Gfn, handles: &[MapHandle]) {
    for (i, &handle) in handles.iter().enumerate() {
        let at = Gfn(first.0 + i as u64);
        // SAFETY: no kernel mapping of `at` is left (never made, or removed).
        if let Err(e) = unsafe { foreign::unmap(res.guest().hypervisor, at, handle) } {
            log::error!("vchan: cannot unmap a foreign page at {at}: {e}");
        }
    }
}
