//! The small enums and indexes hypercalls take as arguments, named here so that both the
//! operation modules and [`crate::error::Operation`] (which records them) can use them.

use core::fmt;

/// An HVM parameter index. The named ones are those a guest kernel uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HvmParam(pub u32);

impl HvmParam {
    /// How vCPU 0's event-channel upcall is delivered; see [`CallbackVia`](crate::hvm::CallbackVia).
    pub const CALLBACK_IRQ: HvmParam = HvmParam(0);
    /// Guest frame of the xenstore ring page.
    pub const STORE_PFN: HvmParam = HvmParam(1);
    /// Event channel port of the xenstore ring.
    pub const STORE_EVTCHN: HvmParam = HvmParam(2);
    /// Guest frame of the PV console ring page (`xencons_interface`).
    pub const CONSOLE_PFN: HvmParam = HvmParam(17);
    /// Event channel port of the PV console.
    pub const CONSOLE_EVTCHN: HvmParam = HvmParam(18);

    const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "CALLBACK_IRQ",
            1 => "STORE_PFN",
            2 => "STORE_EVTCHN",
            17 => "CONSOLE_PFN",
            18 => "CONSOLE_EVTCHN",
            _ => return None,
        })
    }
}

impl fmt::Debug for HvmParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "HVM_PARAM_{n}"),
            None => write!(f, "HVM_PARAM #{}", self.0),
        }
    }
}

/// The source space of `XENMEM_add_to_physmap` (`XENMAPSPACE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum MapSpace {
    /// The shared_info page (`idx` 0).
    SharedInfo = 0,
    /// Grant-table frame number `idx`.
    GrantTable = 1,
    /// Move guest frame `idx` to the new place.
    Gmfn = 2,
}

/// `SHUTDOWN_*` reasons, read by the toolstack to decide what to do with the domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Clean up and destroy the domain (`control/shutdown = poweroff`).
    Poweroff = 0,
    /// Clean up, destroy, and start again.
    Reboot = 1,
    /// Save the domain's state for a later resume.
    Suspend = 2,
    /// The guest crashed.
    Crash = 3,
    /// A watchdog fired.
    Watchdog = 4,
}
