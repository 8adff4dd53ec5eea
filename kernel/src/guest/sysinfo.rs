//! [`KernelInfo`]: the figures the `data/` pool publishes, from the kernel
//! (the keys are those of the Xen guest agent, xe-guest-utilities).

use alloc::format;
use alloc::string::String;

use xenbus::services::{GuestInfo, SystemInfo};

/// The OS name the pool publishes (`data/os_name` is this plus the version).
pub const OS_NAME: &str = "xenstore-rs kernel";
/// `data/os_distro`.
pub const OS_DISTRO: &str = "xenstore-rs";
/// The kernel's version (its crate's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Which build this is, for `data/os_uname`.
const BUILD: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// Kernel figures for the `data/` pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelInfo;

impl KernelInfo {
    /// `data/os_uname`: version, build and architecture, as `uname -rm`.
    pub fn uname() -> String {
        format!("{VERSION}-{BUILD} x86_64")
    }
}

impl SystemInfo for KernelInfo {
    fn guest_info(&self) -> GuestInfo {
        let kib_per_frame = crate::memory::PAGE_SIZE / 1024;
        GuestInfo {
            os_name: format!("{OS_NAME} {VERSION}"),
            os_distro: String::from(OS_DISTRO),
            os_majorver: String::from(env!("CARGO_PKG_VERSION_MAJOR")),
            os_minorver: String::from(env!("CARGO_PKG_VERSION_MINOR")),
            os_uname: Self::uname(),
            uptime_secs: crate::time::uptime().as_secs(),
            meminfo_total_kib: crate::memory::total_frames() * kib_per_frame,
            meminfo_free_kib: crate::memory::free_frames() * kib_per_frame,
        }
    }
}
