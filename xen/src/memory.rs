//! `XENMEM_add_to_physmap` / `XENMEM_remove_from_physmap` (`memory.h`): placing Xen-owned
//! pages (shared_info, grant-table frames) into the guest-physical address space.
//!
//! Choosing the frame is the kernel's job. A frame that is not RAM (a hole above the highest
//! RAM entry of the memory map, or unused MMIO space) is best. A RAM frame also works, but Xen
//! then drops the RAM page that was there, so the kernel must never have used it for anything
//! else.

use crate::error::{Operation, XenError, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor, call_with_struct};
pub use crate::types::MapSpace;
use crate::types::{DomId, Gfn};

/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_remove_from_physmap`.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Flag on `idx` selecting a grant table's status frames (v2 only) instead of its entries.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct xen_add_to_physmap` (x86_64: `xen_ulong_t` and `xen_pfn_t` are 64 bits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes (`DOMID_SELF`).
    pub domid: u16,
    /// Number of pages, for `XENMAPSPACE_gmfn_range` only.
    pub size: u16,
    /// Where the page comes from (`XENMAPSPACE_*`).
    pub space: u32,
    /// Index of the page in that space.
    pub idx: u64,
    /// The guest frame it appears at.
    pub gpfn: u64,
}

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose physmap changes (`DOMID_SELF`).
    pub domid: u16,
    /// The guest frame to unmap.
    pub gpfn: u64,
}

/// Makes Xen's page `idx` of `space` appear at guest frame `gfn` of this domain.
///
/// Whatever was at `gfn` before is replaced (a RAM page there is released to Xen).
/// The page is not mapped in the guest's page tables: the kernel maps `gfn` afterwards.
///
/// # Safety
/// `gfn` must be the caller's to give: a hole, or a frame no Rust object lives in and
/// nothing will use as RAM again (its contents change under any mapping of it).
pub unsafe fn add_to_physmap(
    hv: &impl Hypervisor,
    space: MapSpace,
    idx: u64,
    gfn: Gfn,
) -> Result<(), XenError> {
    let mut arg = XenAddToPhysmap {
        domid: DomId::SELF.0,
        size: 0,
        space: space as u32,
        idx,
        gpfn: gfn.0,
    };
    // SAFETY: `arg` is the `xen_add_to_physmap` this command reads. The frame it replaces is
    // the caller's to give (see `# Safety`); no Rust object lives in it.
    let rc =
        unsafe { call_with_struct(hv, HypercallOp::MemoryOp, XENMEM_ADD_TO_PHYSMAP, &mut arg) };
    expect_zero(Operation::AddToPhysmap { space, idx, gfn }, rc)
}

/// Removes whatever is mapped at guest frame `gfn` (e.g. the shared_info page before a
/// kexec), leaving a hole.
///
/// # Safety
/// Nothing may use the page at `gfn` any more: accesses through a mapping of it then reach
/// a hole.
pub unsafe fn remove_from_physmap(hv: &impl Hypervisor, gfn: Gfn) -> Result<(), XenError> {
    let mut arg = XenRemoveFromPhysmap {
        domid: DomId::SELF.0,
        gpfn: gfn.0,
    };
    // SAFETY: `arg` is the `xen_remove_from_physmap` this command reads; the caller no
    // longer uses the page (see `# Safety`).
    let rc = unsafe {
        call_with_struct(
            hv,
            HypercallOp::MemoryOp,
            XENMEM_REMOVE_FROM_PHYSMAP,
            &mut arg,
        )
    };
    expect_zero(Operation::RemoveFromPhysmap { gfn }, rc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{offset_of, size_of};

    #[test]
    fn physmap_structs_match_the_header_layout() {
        assert_eq!(size_of::<XenAddToPhysmap>(), 24);
        assert_eq!(offset_of!(XenAddToPhysmap, domid), 0);
        assert_eq!(offset_of!(XenAddToPhysmap, size), 2);
        assert_eq!(offset_of!(XenAddToPhysmap, space), 4);
        assert_eq!(offset_of!(XenAddToPhysmap, idx), 8);
        assert_eq!(offset_of!(XenAddToPhysmap, gpfn), 16);
        assert_eq!(size_of::<XenRemoveFromPhysmap>(), 16);
        assert_eq!(offset_of!(XenRemoveFromPhysmap, gpfn), 8);
    }

    #[test]
    fn add_to_physmap_marshals_every_field() {
        let hv = RecordingHypervisor::returning(0);
        // SAFETY: the fake hypervisor only records the call.
        unsafe { add_to_physmap(&hv, MapSpace::GrantTable, 3, Gfn(0xf0003)) }.unwrap();
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::MemoryOp, 7));
        assert_eq!(call.field(0, 2), 0x7ff0, "DOMID_SELF");
        assert_eq!(call.field(2, 2), 0, "size unused outside gmfn_range");
        assert_eq!(call.field(4, 4), 1, "XENMAPSPACE_grant_table");
        assert_eq!(call.field(8, 8), 3, "idx = frame 3");
        assert_eq!(call.field(16, 8), 0xf0003, "gpfn");
    }

    #[test]
    fn add_to_physmap_errors_name_space_idx_and_frame() {
        let hv = RecordingHypervisor::returning(-(Errno::EINVAL.0 as i64));
        // SAFETY: the fake hypervisor only records the call.
        let err = unsafe { add_to_physmap(&hv, MapSpace::SharedInfo, 0, Gfn(0x100)) }.unwrap_err();
        assert_eq!(
            err.op,
            Operation::AddToPhysmap {
                space: MapSpace::SharedInfo,
                idx: 0,
                gfn: Gfn(0x100)
            }
        );
        assert_eq!(err.errno(), Some(Errno::EINVAL));
    }

    #[test]
    fn remove_from_physmap_marshals_the_frame() {
        let hv = RecordingHypervisor::returning(0);
        // SAFETY: the fake hypervisor only records the call.
        unsafe { remove_from_physmap(&hv, Gfn(0xf0000)) }.unwrap();
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::MemoryOp, 15));
        assert_eq!((call.field(0, 2), call.field(8, 8)), (0x7ff0, 0xf0000));
    }
}
