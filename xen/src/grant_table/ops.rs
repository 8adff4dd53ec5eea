//! Setting up the grant table: `GNTTABOP_query_size`, `GNTTABOP_setup_table`, and placing
//! the frames with `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` (what HVM guests do).

use crate::error::{Cause, GrantStatus, Operation, XenError, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor};
use crate::memory::{MapSpace, add_to_physmap};
use crate::types::{DomId, Gfn};

/// `GNTTABOP_setup_table`.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetupTable {
    /// In: the domain (`DOMID_SELF`).
    pub dom: u16,
    /// In: number of frames to set up.
    pub nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Guest handle: pointer to `nr_frames` `xen_pfn_t` Xen fills in.
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    /// In: the domain (`DOMID_SELF`).
    pub dom: u16,
    /// Out.
    pub nr_frames: u32,
    /// Out.
    pub max_nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
}

/// Current and maximum number of grant-table frames of this domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GrantTableSize {
    /// Frames the table has now.
    pub nr_frames: u32,
    /// Frames it may grow to.
    pub max_nr_frames: u32,
}

/// `HYPERVISOR_grant_table_op(cmd, uop, 1)`, then the per-op status.
///
/// # Safety
/// `arg` must be the structure `grant_table.h` defines for `cmd`, with any guest handle in it
/// pointing to memory valid for what Xen writes.
unsafe fn grant_op<H: Hypervisor, T>(
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

/// Asks how many grant frames this domain has and may grow to.
pub fn query_size(hv: &impl Hypervisor) -> Result<GrantTableSize, XenError> {
    let mut arg = GnttabQuerySize {
        dom: DomId::SELF.0,
        ..Default::default()
    };
    let op = Operation::GnttabQuerySize;
    // SAFETY: `gnttab_query_size` for GNTTABOP_query_size; it holds no pointers.
    unsafe { grant_op(hv, op, GNTTABOP_QUERY_SIZE, &mut arg, |a| a.status)? };
    Ok(GrantTableSize {
        nr_frames: arg.nr_frames,
        max_nr_frames: arg.max_nr_frames,
    })
}

/// Grows the table to `frames.len()` frames and writes their frame numbers into `frames`
/// (`GNTTABOP_setup_table`). HVM guests normally use [`map_frames`] instead; this is also
/// the way to make Xen allocate frames before mapping them.
pub fn setup_table(hv: &impl Hypervisor, frames: &mut [u64]) -> Result<(), XenError> {
    let op_for = |n| Operation::GnttabSetupTable { nr_frames: n };
    let nr_frames = u32::try_from(frames.len())
        .map_err(|_| XenError::new(op_for(u32::MAX), Cause::InvalidArgument))?;
    let op = op_for(nr_frames);
    let mut arg = GnttabSetupTable {
        dom: DomId::SELF.0,
        nr_frames,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: `gnttab_setup_table` for GNTTABOP_setup_table; `frame_list` points to exactly
    // `nr_frames` writable u64 (`xen_pfn_t` on x86_64) that outlive the call.
    unsafe { grant_op(hv, op, GNTTABOP_SETUP_TABLE, &mut arg, |a| a.status) }
}

/// Places grant frames `0..nr_frames` at guest frames `first, first+1, ...` so the kernel can
/// map the table as one contiguous range. Frames beyond the current size are allocated by
/// Xen on the way (up to `max_nr_frames`).
///
/// # Safety
/// As for [`add_to_physmap`], for each of the `nr_frames` guest frames from `first`.
pub unsafe fn map_frames(hv: &impl Hypervisor, first: Gfn, nr_frames: u32) -> Result<(), XenError> {
    for i in 0..nr_frames {
        // SAFETY: one of the frames the caller gave (see `# Safety`).
        unsafe {
            add_to_physmap(
                hv,
                MapSpace::GrantTable,
                u64::from(i),
                Gfn(first.0 + u64::from(i)),
            )
        }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{offset_of, size_of};

    #[test]
    fn op_structs_match_the_header_layout() {
        assert_eq!(size_of::<GnttabSetupTable>(), 24);
        assert_eq!(offset_of!(GnttabSetupTable, nr_frames), 4);
        assert_eq!(offset_of!(GnttabSetupTable, status), 8);
        assert_eq!(offset_of!(GnttabSetupTable, frame_list), 16);
        assert_eq!(size_of::<GnttabQuerySize>(), 16);
        assert_eq!(offset_of!(GnttabQuerySize, nr_frames), 4);
        assert_eq!(offset_of!(GnttabQuerySize, max_nr_frames), 8);
        assert_eq!(offset_of!(GnttabQuerySize, status), 12);
    }

    #[test]
    fn query_size_marshals_and_reads_both_counts() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(4, 4, 1);
            call.set_field(8, 4, 64);
            0
        });
        let size = query_size(&hv).unwrap();
        assert_eq!(
            size,
            GrantTableSize {
                nr_frames: 1,
                max_nr_frames: 64
            }
        );
        let call = hv.single_call();
        assert_eq!(
            (call.op, call.cmd(), call.args[2]),
            (HypercallOp::GrantTableOp, 6, 1)
        );
        assert_eq!(call.field(0, 2), 0x7ff0);
    }

    #[test]
    fn a_failed_status_is_an_error_even_when_the_hypercall_succeeds() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(12, 2, (-2i16) as u16 as u64);
            0
        });
        let err = query_size(&hv).unwrap_err();
        assert_eq!(err.cause, Cause::GrantStatus(GrantStatus(-2)));
    }

    #[test]
    fn setup_table_passes_the_frame_list_and_gets_it_filled() {
        let hv = RecordingHypervisor::answering(|call| {
            assert_eq!(call.field(4, 4), 2, "nr_frames");
            let list = call.field(16, 8) as *mut u64;
            // SAFETY: plays Xen writing the two frames into the caller's list.
            unsafe {
                list.write(0x100);
                list.add(1).write(0x101);
            }
            0
        });
        let mut frames = [0u64; 2];
        setup_table(&hv, &mut frames).unwrap();
        assert_eq!(frames, [0x100, 0x101]);
        assert_eq!(hv.single_call().cmd(), 2);
    }

    #[test]
    fn map_frames_places_each_frame_at_consecutive_gfns() {
        let hv = RecordingHypervisor::returning(0);
        // SAFETY: the fake hypervisor only records the calls.
        unsafe { map_frames(&hv, Gfn(0xf0000), 3) }.unwrap();
        let placed: Vec<_> = hv
            .calls()
            .iter()
            .map(|c| (c.field(4, 4), c.field(8, 8), c.field(16, 8)))
            .collect();
        assert_eq!(
            placed,
            vec![(1, 0, 0xf0000), (1, 1, 0xf0001), (1, 2, 0xf0002)]
        );
    }

    #[test]
    fn map_frames_stops_at_the_first_failure() {
        let hv = RecordingHypervisor::answering(|call| if call.field(8, 8) == 1 { -22 } else { 0 });
        // SAFETY: the fake hypervisor only records the calls.
        let err = unsafe { map_frames(&hv, Gfn(0xf0000), 3) }.unwrap_err();
        assert_eq!(
            err.op,
            Operation::AddToPhysmap {
                space: MapSpace::GrantTable,
                idx: 1,
                gfn: Gfn(0xf0001)
            }
        );
        assert_eq!(hv.calls().len(), 2);
    }
}
