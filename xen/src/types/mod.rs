//! Small value types shared by every part of the ABI: domain ids, guest frame numbers, vCPU ids,
//! event-channel ports, grant references, and the argument enums that [`crate::error`] records.
//!
//! They live below every operation module and below the error type, so that those can name
//! each other's arguments without importing each other.

mod grant_ref;
mod params;
mod port;

use core::fmt;

pub use grant_ref::GrantRef;
pub use params::{HvmParam, MapSpace, ShutdownReason};
pub use port::{BITS_PER_WORD, EVTCHN_WORDS, NR_PORTS, Port, Virq};

/// Size of a guest page, the unit of every frame number Xen deals in.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A domain id (`domid_t`, 16 bits on the wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomId(pub u16);

impl DomId {
    /// `DOMID_SELF`: "the calling domain", accepted wherever an operation names a domain.
    pub const SELF: DomId = DomId(0x7FF0);
    /// The control domain, the usual backend of xenstore and the console.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_FIRST_RESERVED`: ids at or above this are pseudo-domains, never real guests.
    pub const FIRST_RESERVED: DomId = DomId(0x7FF0);

    /// True for an id that names a real domain (not `DOMID_SELF` or another pseudo-domain).
    pub const fn is_real(self) -> bool {
        self.0 < Self::FIRST_RESERVED.0
    }
}

impl fmt::Debug for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::SELF {
            f.write_str("DOMID_SELF")
        } else {
            write!(f, "dom{}", self.0)
        }
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Parses the decimal form XenStore uses (`/local/domain/<domid>`, a node's `domid`,
/// `backend-id`), not the `dom7` of `Display`.
impl core::str::FromStr for DomId {
    type Err = core::num::ParseIntError;

    fn from_str(s: &str) -> Result<DomId, Self::Err> {
        s.parse().map(DomId)
    }
}

impl From<u16> for DomId {
    fn from(raw: u16) -> DomId {
        DomId(raw)
    }
}

/// A guest frame number: a guest-physical address shifted right by [`PAGE_SHIFT`].
///
/// On HVM/PVH guests Xen translates these itself (auto-translated physmap), so they are
/// what the guest's own page tables call physical frames.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gfn(pub u64);

impl Gfn {
    /// The frame holding guest-physical address `addr` (the low 12 bits are dropped).
    pub const fn containing(addr: u64) -> Gfn {
        Gfn(addr >> PAGE_SHIFT)
    }

    /// The guest-physical address of the frame's first byte.
    ///
    /// Saturates instead of overflowing for frame numbers no real guest has (above 2^52), so a
    /// bad value from a peer cannot panic; such an address is then rejected where it is used.
    pub const fn addr(self) -> u64 {
        self.0.saturating_mul(PAGE_SIZE as u64)
    }
}

impl fmt::Debug for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gfn {:#x}", self.0)
    }
}

impl fmt::Display for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A virtual CPU id as Xen numbers them (the `vcpu` field of event-channel and HVM ops).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VcpuId(pub u32);

impl VcpuId {
    /// The boot vCPU; every event channel notifies it unless re-bound.
    pub const BOOT: VcpuId = VcpuId(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domid_self_is_not_a_real_domain() {
        assert!(!DomId::SELF.is_real());
        assert!(DomId::DOM0.is_real());
        assert!(DomId(1).is_real());
        assert_eq!(format!("{}", DomId::SELF), "DOMID_SELF");
        assert_eq!(format!("{}", DomId(7)), "dom7");
        assert_eq!("7".parse(), Ok(DomId(7)));
        assert!("dom7".parse::<DomId>().is_err());
        assert!("65536".parse::<DomId>().is_err());
    }

    #[test]
    fn gfn_converts_addresses_both_ways() {
        assert_eq!(Gfn::containing(0xfeff_f123), Gfn(0xfefff));
        assert_eq!(Gfn(0xfefff).addr(), 0xfeff_f000);
        assert_eq!(Gfn(u64::MAX).addr(), u64::MAX, "saturates, never panics");
    }
}
