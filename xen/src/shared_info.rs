//! The shared_info page (`struct shared_info`, `xen.h` + `arch-x86/xen.h`, x86_64 layout).
//!
//! Xen and the guest both write this page concurrently, so every field is an atomic of the
//! header's width (same size and alignment as the plain integer): reads and writes are single
//! instructions Xen can observe, read-modify-writes are `lock`-prefixed like Xen's own
//! `guest_test_and_set_bit`, and no `&mut` to the page ever exists. That also makes a zeroed
//! heap copy a faithful stand-in in host tests.
//!
//! Who writes what: Xen sets bits in `evtchn_pending`, `evtchn_pending_sel` and
//! `evtchn_upcall_pending`, and updates the time fields; the guest clears those pending bits
//! and owns `evtchn_mask` and `evtchn_upcall_mask`.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI8, AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use crate::error::XenError;
use crate::hypercall::Hypervisor;
use crate::memory::{MapSpace, add_to_physmap};
pub use crate::types::{BITS_PER_WORD, EVTCHN_WORDS};
use crate::types::{Gfn, VcpuId};

/// vCPUs whose `vcpu_info` lives in shared_info (`XEN_LEGACY_MAX_VCPUS`). Others need
/// `VCPUOP_register_vcpu_info`, which this crate does not do.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// `struct vcpu_time_info`: Xen's per-vCPU clock (a seqlock on `version`).
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the fields below.
    pub version: AtomicU32,
    _pad0: AtomicU32,
    /// TSC at the last update.
    pub tsc_timestamp: AtomicU64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: AtomicU64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction applied after `tsc_shift`.
    pub tsc_to_system_mul: AtomicU32,
    /// Shift applied to the TSC delta before `tsc_to_system_mul` (negative: right shift).
    pub tsc_shift: AtomicI8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: AtomicU8,
    _pad1: [AtomicU8; 2],
}

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
pub struct ArchVcpuInfo {
    /// The faulting address of a PV guest's last page fault; unused on HVM.
    pub cr2: AtomicU64,
    _pad: AtomicU64,
}

/// `struct vcpu_info`: one vCPU's event-delivery state and clock.
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when it has marked words in `evtchn_pending_sel`; cleared by the upcall.
    pub evtchn_upcall_pending: AtomicU8,
    /// PV-only upcall mask. HVM/PVH guests mask upcalls with RFLAGS.IF instead; Xen ignores it.
    pub evtchn_upcall_mask: AtomicU8,
    /// Selector: bit `w` says word `w` of `evtchn_pending` may hold pending ports.
    pub evtchn_pending_sel: AtomicU64,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// This vCPU's system time.
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86_64). PV-only bookkeeping; an HVM guest leaves it alone.
#[repr(C)]
pub struct ArchSharedInfo {
    /// PV: the highest pfn in the p2m table.
    pub max_pfn: AtomicU64,
    /// PV: frame of the list of frames of the p2m frame list.
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    /// PV: why an NMI was raised.
    pub nmi_reason: AtomicU64,
    /// PV: CR3 of the address space holding the linear p2m list.
    pub p2m_cr3: AtomicU64,
    /// PV: virtual address of the linear p2m list.
    pub p2m_vaddr: AtomicU64,
    /// PV: incremented around every p2m change.
    pub p2m_generation: AtomicU64,
}

/// `struct shared_info`.
#[repr(C)]
pub struct SharedInfo {
    /// Per-vCPU state of the first 32 vCPUs.
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// Bit `p` set: port `p` has an event Xen delivered and the guest has not yet taken.
    pub evtchn_pending: [AtomicU64; EVTCHN_WORDS],
    /// Bit `p` set: Xen sets pending for port `p` but raises no upcall.
    pub evtchn_mask: [AtomicU64; EVTCHN_WORDS],
    /// Wall clock at system time 0 (seqlock on `wc_version`).
    pub wc_version: AtomicU32,
    /// Seconds since 1970 (low 32 bits).
    pub wc_sec: AtomicU32,
    /// Nanoseconds within the second.
    pub wc_nsec: AtomicU32,
    /// High 32 bits of the seconds.
    pub wc_sec_hi: AtomicU32,
    /// Architecture-specific state.
    pub arch: ArchSharedInfo,
}

impl SharedInfo {
    /// Views the mapped shared_info page at `page`.
    ///
    /// # Safety
    /// `page` must be the virtual address of the guest frame passed to [`map_shared_info`]
    /// (after that call succeeded), mapped read-write and cacheable, for the rest of the
    /// kernel's life, and used for nothing else.
    pub unsafe fn from_ptr(page: NonNull<u8>) -> &'static SharedInfo {
        // SAFETY: per the contract the page is a live, writable, 4 KiB-aligned mapping of
        // Xen's shared_info, which is at least as large as this struct; every field is an
        // atomic, so shared access from Xen and all CPUs is sound, and all-bit patterns are
        // valid values.
        unsafe { page.cast::<SharedInfo>().as_ref() }
    }

    /// The `vcpu_info` of `vcpu`, or `None` beyond the 32 legacy slots.
    pub fn vcpu(&self, vcpu: VcpuId) -> Option<&VcpuInfo> {
        self.vcpu_info.get(vcpu.0 as usize)
    }
}

/// Asks Xen to place the shared_info page at guest frame `gfn` (see [`crate::memory`] for
/// how to choose it). The kernel then maps `gfn` and calls [`SharedInfo::from_ptr`].
///
/// # Safety
/// As for [`add_to_physmap`]: `gfn` must be a frame the caller gives up.
pub unsafe fn map_shared_info(hv: &impl Hypervisor, gfn: Gfn) -> Result<(), XenError> {
    // SAFETY: the caller gives `gfn` up (see `# Safety`).
    unsafe { add_to_physmap(hv, MapSpace::SharedInfo, 0, gfn) }
}

/// A consistent copy of a [`VcpuTimeInfo`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TimeSnapshot {
    /// As in [`VcpuTimeInfo::tsc_timestamp`].
    pub tsc_timestamp: u64,
    /// As in [`VcpuTimeInfo::system_time`].
    pub system_time: u64,
    /// As in [`VcpuTimeInfo::tsc_to_system_mul`].
    pub tsc_to_system_mul: u32,
    /// As in [`VcpuTimeInfo::tsc_shift`].
    pub tsc_shift: i8,
    /// As in [`VcpuTimeInfo::flags`].
    pub flags: u8,
}

impl TimeSnapshot {
    /// Xen system time (ns since boot) at TSC value `tsc`, by the pvclock formula.
    /// A `tsc` before the snapshot's timestamp gives the snapshot's own time.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.saturating_sub(self.tsc_timestamp);
        let shift = self.tsc_shift;
        delta = if shift >= 0 {
            delta.checked_shl(shift as u32).unwrap_or(0)
        } else {
            delta.checked_shr(shift.unsigned_abs() as u32).unwrap_or(0)
        };
        let scaled = (u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32;
        self.system_time.wrapping_add(scaled as u64)
    }
}

/// Attempts before [`VcpuTimeInfo::snapshot`] gives up on a version that never settles.
const SNAPSHOT_ATTEMPTS: usize = 1000;

impl VcpuTimeInfo {
    /// Reads the clock fields consistently (seqlock: retry while `version` is odd or changes).
    /// `None` if Xen kept updating for `SNAPSHOT_ATTEMPTS` (1000) tries, so a stuck version cannot
    /// hang the caller.
    pub fn snapshot(&self) -> Option<TimeSnapshot> {
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = self.version.load(Ordering::Acquire);
            if before & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let snap = TimeSnapshot {
                tsc_timestamp: self.tsc_timestamp.load(Ordering::Relaxed),
                system_time: self.system_time.load(Ordering::Relaxed),
                tsc_to_system_mul: self.tsc_to_system_mul.load(Ordering::Relaxed),
                tsc_shift: self.tsc_shift.load(Ordering::Relaxed),
                flags: self.flags.load(Ordering::Relaxed),
            };
            // Keeps the field reads above from moving after the version re-read.
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == before {
                return Some(snap);
            }
        }
        None
    }
}

/// A zero-filled shared_info on the heap: what Xen hands a fresh domain, for host tests.
#[cfg(test)]
pub(crate) fn zeroed_shared_info() -> Box<SharedInfo> {
    // SAFETY: every field is an atomic integer, for which all-zero bytes are a valid value.
    unsafe { Box::<SharedInfo>::new_zeroed().assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::HypercallOp;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn vcpu_info_matches_the_header_layout() {
        assert_eq!(size_of::<VcpuTimeInfo>(), 32);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_timestamp), 8);
        assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_to_system_mul), 24);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(offset_of!(VcpuTimeInfo, flags), 29);
        assert_eq!(size_of::<ArchVcpuInfo>(), 16);
        assert_eq!(offset_of!(ArchVcpuInfo, cr2), 0);
        assert_eq!(size_of::<VcpuInfo>(), 64);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_pending), 0);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
        assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
        assert_eq!(offset_of!(VcpuInfo, arch), 16);
        assert_eq!(offset_of!(VcpuInfo, time), 32);
    }

    #[test]
    fn shared_info_matches_the_header_layout() {
        assert_eq!(offset_of!(SharedInfo, vcpu_info), 0);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
        assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
        assert_eq!(offset_of!(SharedInfo, wc_sec), 3076);
        assert_eq!(offset_of!(SharedInfo, wc_nsec), 3080);
        assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
        assert_eq!(offset_of!(SharedInfo, arch), 3088);
        assert_eq!(size_of::<ArchSharedInfo>(), 48);
        assert_eq!(offset_of!(ArchSharedInfo, p2m_generation), 40);
        assert_eq!(size_of::<SharedInfo>(), 3136);
        assert!(size_of::<SharedInfo>() <= crate::types::PAGE_SIZE);
        assert_eq!(align_of::<SharedInfo>(), 8);
    }

    #[test]
    fn map_shared_info_uses_the_shared_info_space_index_0() {
        let hv = RecordingHypervisor::returning(0);
        // SAFETY: the fake hypervisor only records the call.
        unsafe { map_shared_info(&hv, Gfn(0xfc000)) }.unwrap();
        let call = hv.single_call();
        assert_eq!((call.op, call.cmd()), (HypercallOp::MemoryOp, 7));
        assert_eq!(call.field(4, 4), 0, "XENMAPSPACE_shared_info");
        assert_eq!(call.field(8, 8), 0, "idx 0");
        assert_eq!(call.field(16, 8), 0xfc000);
    }

    #[test]
    fn vcpu_lookup_stops_at_the_legacy_slots() {
        let s = zeroed_shared_info();
        assert!(s.vcpu(VcpuId(31)).is_some());
        assert!(s.vcpu(VcpuId(32)).is_none());
    }

    #[test]
    fn time_snapshot_applies_the_pvclock_formula() {
        let s = zeroed_shared_info();
        let t = &s.vcpu_info[0].time;
        t.version.store(2, Ordering::Relaxed);
        t.tsc_timestamp.store(1_000, Ordering::Relaxed);
        t.system_time.store(5_000_000, Ordering::Relaxed);
        t.tsc_to_system_mul.store(0x8000_0000, Ordering::Relaxed); // x0.5
        t.tsc_shift.store(1, Ordering::Relaxed); // x2
        let snap = t.snapshot().expect("version is even and stable");
        assert_eq!(snap.system_time_at(1_000 + 3_000), 5_003_000);
        assert_eq!(
            snap.system_time_at(10),
            5_000_000,
            "a TSC in the past clamps"
        );
        t.tsc_shift.store(-2, Ordering::Relaxed);
        let snap = t.snapshot().unwrap();
        assert_eq!(snap.system_time_at(1_000 + 4_000), 5_000_500);
    }

    #[test]
    fn time_snapshot_gives_up_on_a_version_stuck_odd() {
        let s = zeroed_shared_info();
        s.vcpu_info[0].time.version.store(3, Ordering::Relaxed);
        assert_eq!(s.vcpu_info[0].time.snapshot(), None);
    }
}
