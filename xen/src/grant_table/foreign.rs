//! Mapping pages other domains granted us: `GNTTABOP_map_grant_ref` and
//! `GNTTABOP_unmap_grant_ref` (`grant_table.h`), the HVM/PVH way.
//!
//! An auto-translated guest names a guest frame as `host_addr` with only
//! `GNTMAP_host_map` (plus `GNTMAP_readonly`): Xen then puts the granted
//! page at that frame in our physmap (`create_grant_p2m_mapping` in Xen
//! 4.17), and unmapping leaves a hole there. So the frame should be a hole
//! to begin with: a RAM frame mapped over would lose its page.

use super::{GrantAccess, GrantRef};
use crate::error::{Cause, GrantStatus, Operation, XenError, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor};
use crate::types::{DomId, Gfn};

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTMAP_host_map`: map for CPU access at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    /// In: where to map (a guest-physical address for auto-translated guests).
    pub host_addr: u64,
    /// In: `GNTMAP_*`.
    pub flags: u32,
    /// In: the granter's reference.
    pub gref: u32,
    /// In: the granting domain.
    pub dom: u16,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: what unmapping needs.
    pub handle: u32,
    /// Out: unused without `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    /// In: the address given to the map.
    pub host_addr: u64,
    /// In: 0 (no device mapping).
    pub dev_bus_addr: u64,
    /// In: the map's handle.
    pub handle: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// What Xen returns for a mapping; needed to undo it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapHandle(pub u32);

/// One grant-table sub-operation, then its status.
///
/// # Safety
/// `arg` must be the structure `grant_table.h` defines for `cmd`.
unsafe fn one_op<H: Hypervisor, T>(
    hv: &H,
    op: Operation,
    cmd: u32,
    arg: &mut T,
    status: impl Fn(&T) -> i16,
) -> Result<(), XenError> {
    let ptr = core::ptr::from_mut(arg) as u64;
    // SAFETY: `arg` is live and of the right type for `cmd` (function contract); count 1.
    let rc = unsafe { hv.hypercall(HypercallOp::GrantTableOp, [u64::from(cmd), ptr, 1, 0, 0]) };
    expect_zero(op, rc)?;
    match GrantStatus(status(arg)) {
        GrantStatus::OKAY => Ok(()),
        bad => Err(XenError::new(op, Cause::GrantStatus(bad))),
    }
}

/// Maps `dom`'s grant `gref` at our guest frame `at`, and returns the handle
/// [`unmap`] needs. Errors: Xen's `GNTST_*` (a reference not granted to us,
/// a read-write map of a read-only grant: `GNTST_permission_denied`, ...).
///
/// # Safety
/// `at` must be a frame of our physmap that holds nothing (a hole, not RAM
/// the kernel uses): the granted page replaces whatever is there, and the
/// peer may write it at any time while mapped, so it may only be accessed as
/// shared memory.
pub unsafe fn map(
    hv: &impl Hypervisor,
    dom: DomId,
    gref: GrantRef,
    at: Gfn,
    access: GrantAccess,
) -> Result<MapHandle, XenError> {
    let op = Operation::GnttabMapGrantRef {
        dom,
        gref: gref.0,
        gfn: at,
    };
    let mut flags = GNTMAP_HOST_MAP;
    if access == GrantAccess::ReadOnly {
        flags |= GNTMAP_READONLY;
    }
    let mut arg = GnttabMapGrantRef {
        host_addr: at.addr(),
        flags,
        gref: gref.0,
        dom: dom.0,
        ..Default::default()
    };
    // SAFETY: `gnttab_map_grant_ref` for GNTTABOP_map_grant_ref; no pointers in it.
    unsafe { one_op(hv, op, GNTTABOP_MAP_GRANT_REF, &mut arg, |a| a.status)? };
    Ok(MapHandle(arg.handle))
}

/// Undoes [`map`]: the frame `at` becomes a hole again.
///
/// # Safety
/// Nothing may access `at` any more (unmap the kernel's virtual mapping
/// first): the page goes back to its owner.
pub unsafe fn unmap(hv: &impl Hypervisor, at: Gfn, handle: MapHandle) -> Result<(), XenError> {
    let op = Operation::GnttabUnmapGrantRef {
        gfn: at,
        handle: handle.0,
    };
    let mut arg = GnttabUnmapGrantRef {
        host_addr: at.addr(),
        dev_bus_addr: 0,
        handle: handle.0,
        status: 0,
    };
    // SAFETY: `gnttab_unmap_grant_ref` for GNTTABOP_unmap_grant_ref; no pointers in it.
    unsafe { one_op(hv, op, GNTTABOP_UNMAP_GRANT_REF, &mut arg, |a| a.status) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{offset_of, size_of};

    #[test]
    fn op_structs_match_the_header_layout() {
        assert_eq!(size_of::<GnttabMapGrantRef>(), 32);
        assert_eq!(offset_of!(GnttabMapGrantRef, flags), 8);
        assert_eq!(offset_of!(GnttabMapGrantRef, gref), 12);
        assert_eq!(offset_of!(GnttabMapGrantRef, dom), 16);
        assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
        assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
        assert_eq!(offset_of!(GnttabMapGrantRef, dev_bus_addr), 24);
        assert_eq!(size_of::<GnttabUnmapGrantRef>(), 24);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, dev_bus_addr), 8);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, handle), 16);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);
    }

    #[test]
    fn map_asks_for_a_host_mapping_at_the_frame_and_returns_the_handle() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(20, 4, 77);
            0
        });
        // SAFETY: the fake hypervisor maps nothing.
        let handle = unsafe {
            map(
                &hv,
                DomId(0),
                GrantRef(9),
                Gfn(0x10_0000),
                GrantAccess::ReadOnly,
            )
        };
        assert_eq!(handle, Ok(MapHandle(77)));
        let call = hv.single_call();
        assert_eq!(
            (call.op, call.cmd(), call.args[2]),
            (HypercallOp::GrantTableOp, 0, 1)
        );
        assert_eq!(call.field(0, 8), 0x10_0000 << 12);
        assert_eq!(
            call.field(8, 4),
            u64::from(GNTMAP_HOST_MAP | GNTMAP_READONLY)
        );
        assert_eq!((call.field(12, 4), call.field(16, 2)), (9, 0));
    }

    #[test]
    fn a_refused_map_is_a_typed_error_naming_the_grant() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(18, 2, (-3i16) as u16 as u64);
            0
        });
        // SAFETY: the fake hypervisor maps nothing.
        let err =
            unsafe { map(&hv, DomId(0), GrantRef(5), Gfn(1), GrantAccess::ReadWrite) }.unwrap_err();
        assert_eq!(err.cause, Cause::GrantStatus(GrantStatus(-3)));
        assert_eq!(
            err.op,
            Operation::GnttabMapGrantRef {
                dom: DomId(0),
                gref: 5,
                gfn: Gfn(1)
            }
        );
        assert_eq!(hv.single_call().field(8, 4), u64::from(GNTMAP_HOST_MAP));
    }

    #[test]
    fn unmap_passes_the_address_and_handle() {
        let hv = RecordingHypervisor::returning(0);
        // SAFETY: the fake hypervisor unmaps nothing.
        unsafe { unmap(&hv, Gfn(0x2000), MapHandle(4)) }.unwrap();
        let call = hv.single_call();
        assert_eq!(call.cmd(), 1);
        assert_eq!((call.field(0, 8), call.field(16, 4)), (0x2000 << 12, 4));
    }
}
