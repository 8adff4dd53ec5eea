//! Typed errors: what was asked of Xen ([`Operation`]) and why it failed ([`Cause`]).
//!
//! Hypercalls return `-errno` (values from `xen/include/public/errno.h`, which follow x86
//! Linux); grant-table sub-operations also report a `GNTST_*` status in their argument
//! structure. Both are kept as numbers wrapped in newtypes, so an errno this crate has no name
//! for is still reported exactly, never folded into "unknown".

use core::fmt;

use crate::types::{DomId, Gfn, HvmParam, MapSpace, Port, ShutdownReason, VcpuId, Virq};

/// A positive Xen error number (`XEN_E*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $value:literal,)*) => {
        impl Errno {
            $(#[doc = concat!("`XEN_", stringify!($name), "`")]
            pub const $name: Errno = Errno($value);)*

            /// The symbolic name, if this is one of the values Xen's public `errno.h` defines.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8, EBADF = 9,
    ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17,
    EXDEV = 18, ENODEV = 19, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOSPC = 28, EMLINK = 31,
    EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38,
    EBADRQC = 56, EBADSLT = 57, ENODATA = 61, ETIME = 62, EBADMSG = 74, EOVERFLOW = 75,
    EILSEQ = 84, EUSERS = 87, ENOTSOCK = 88, EOPNOTSUPP = 95, EADDRINUSE = 98,
    EADDRNOTAVAIL = 99, ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ESHUTDOWN = 108,
    ETOOMANYREFS = 109, ETIMEDOUT = 110,
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A grant-table sub-operation status (`GNTST_*`): 0 is success, failures are negative.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrantStatus(pub i16);

impl GrantStatus {
    /// `GNTST_okay`.
    pub const OKAY: GrantStatus = GrantStatus(0);

    /// The `GNTST_*` name, if Xen's public `grant_table.h` defines this value.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "GNTST_okay",
            -1 => "GNTST_general_error",
            -2 => "GNTST_bad_domain",
            -3 => "GNTST_bad_gntref",
            -4 => "GNTST_bad_handle",
            -5 => "GNTST_bad_virt_addr",
            -6 => "GNTST_bad_dev_addr",
            -7 => "GNTST_no_device_space",
            -8 => "GNTST_permission_denied",
            -9 => "GNTST_bad_page",
            -10 => "GNTST_bad_copy_arg",
            -11 => "GNTST_address_too_big",
            -12 => "GNTST_eagain",
            -13 => "GNTST_no_space",
            _ => return None,
        })
    }
}

impl fmt::Debug for GrantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "grant status {}", self.0),
        }
    }
}

/// The operation that failed, with the arguments that identify it in a log line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Operation {
    /// `XENVER_version`.
    XenVersion,
    /// `XENVER_get_features` for one 32-bit submap.
    GetFeatures {
        /// Index of the submap asked for.
        submap: u32,
    },
    /// `HVMOP_get_param`.
    HvmGetParam(HvmParam),
    /// `HVMOP_set_param`.
    HvmSetParam(HvmParam),
    /// `HVMOP_set_evtchn_upcall_vector`.
    HvmSetUpcallVector {
        /// The vCPU whose vector was set.
        vcpu: VcpuId,
        /// The IDT vector.
        vector: u8,
    },
    /// `XENMEM_add_to_physmap`.
    AddToPhysmap {
        /// The space the page came from.
        space: MapSpace,
        /// Index of the page in that space.
        idx: u64,
        /// Where it was to appear.
        gfn: Gfn,
    },
    /// `XENMEM_remove_from_physmap`.
    RemoveFromPhysmap {
        /// The frame to unmap.
        gfn: Gfn,
    },
    /// `EVTCHNOP_alloc_unbound`.
    EvtchnAllocUnbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// `EVTCHNOP_bind_interdomain`.
    EvtchnBindInterdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: u32,
    },
    /// `EVTCHNOP_bind_virq`.
    EvtchnBindVirq {
        /// The virtual IRQ.
        virq: Virq,
        /// The vCPU it was bound to.
        vcpu: VcpuId,
    },
    /// `EVTCHNOP_close`.
    EvtchnClose(Port),
    /// `EVTCHNOP_send`.
    EvtchnSend(Port),
    /// `EVTCHNOP_unmask`.
    EvtchnUnmask(Port),
    /// `EVTCHNOP_status`.
    EvtchnStatus(Port),
    /// `EVTCHNOP_bind_vcpu`.
    EvtchnBindVcpu {
        /// The port.
        port: Port,
        /// The vCPU it was to notify.
        vcpu: VcpuId,
    },
    /// `GNTTABOP_setup_table`.
    GnttabSetupTable {
        /// Frames asked for.
        nr_frames: u32,
    },
    /// `GNTTABOP_query_size`.
    GnttabQuerySize,
    /// `SCHEDOP_shutdown`.
    SchedShutdown(ShutdownReason),
    /// `SCHEDOP_yield`.
    SchedYield,
    /// `CONSOLEIO_write`.
    ConsoleIoWrite,
}

/// Why an [`Operation`] failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cause {
    /// Xen returned `-errno`.
    Errno(Errno),
    /// The hypercall succeeded but the sub-operation's `status` field reported a failure.
    GrantStatus(GrantStatus),
    /// Xen returned a value the operation never returns (positive where 0 is the only success).
    UnexpectedReturn(i64),
    /// Xen answered, but with a value this guest cannot use (a port beyond the 2-level ABI, a
    /// frame number of 0 for a page that must exist, ...). The value is kept for the log.
    BadValue(u64),
    /// The caller's argument was refused before asking Xen (e.g. a callback vector below 0x20).
    InvalidArgument,
}

/// A failed hypervisor operation: what was asked and why it failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XenError {
    /// What was asked.
    pub op: Operation,
    /// Why it failed.
    pub cause: Cause,
}

impl XenError {
    /// An error for `op` with `cause`.
    pub const fn new(op: Operation, cause: Cause) -> Self {
        Self { op, cause }
    }

    /// The errno, if Xen reported one.
    pub const fn errno(&self) -> Option<Errno> {
        match self.cause {
            Cause::Errno(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} failed: ", self.op)?;
        match self.cause {
            Cause::Errno(e) => write!(f, "{e}"),
            Cause::GrantStatus(s) => write!(f, "{s:?}"),
            Cause::UnexpectedReturn(rc) => write!(f, "unexpected return value {rc}"),
            Cause::BadValue(v) => write!(f, "unusable value {v:#x} from Xen"),
            Cause::InvalidArgument => f.write_str("invalid argument (refused before the call)"),
        }
    }
}

impl core::error::Error for XenError {}

/// Interprets a hypercall's raw return for an operation whose only success value is 0.
pub(crate) fn expect_zero(op: Operation, rc: i64) -> Result<(), XenError> {
    expect_non_negative(op, rc).and_then(|v| match v {
        0 => Ok(()),
        other => Err(XenError::new(op, Cause::UnexpectedReturn(other as i64))),
    })
}

/// Interprets a hypercall's raw return for an operation that returns a non-negative value.
///
/// Negative values are `-errno`. One that is not a plausible errno (below `-i32::MAX`) is
/// reported as [`Cause::UnexpectedReturn`] rather than truncated.
pub(crate) fn expect_non_negative(op: Operation, rc: i64) -> Result<u64, XenError> {
    if rc >= 0 {
        return Ok(rc as u64);
    }
    match i32::try_from(rc) {
        Ok(neg) if neg != i32::MIN => Err(XenError::new(op, Cause::Errno(Errno(-neg)))),
        _ => Err(XenError::new(op, Cause::UnexpectedReturn(rc))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_returns_become_named_errnos() {
        let err = expect_zero(Operation::SchedYield, -22).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EINVAL));
        assert_eq!(
            format!("{err}"),
            "SchedYield failed: EINVAL (22)",
            "the log line names the op and the errno"
        );
        let odd = expect_zero(Operation::SchedYield, -4000).unwrap_err();
        assert_eq!(odd.errno(), Some(Errno(4000)));
        assert_eq!(format!("{}", Errno(4000)), "errno 4000");
    }

    #[test]
    fn implausible_returns_are_not_truncated() {
        let err = expect_zero(Operation::SchedYield, 5).unwrap_err();
        assert_eq!(err.cause, Cause::UnexpectedReturn(5));
        let err = expect_non_negative(Operation::SchedYield, i64::MIN).unwrap_err();
        assert_eq!(err.cause, Cause::UnexpectedReturn(i64::MIN));
        assert_eq!(expect_non_negative(Operation::SchedYield, 7), Ok(7));
    }

    #[test]
    fn grant_status_names_match_the_header() {
        assert_eq!(GrantStatus(-3).name(), Some("GNTST_bad_gntref"));
        assert_eq!(GrantStatus(-12).name(), Some("GNTST_eagain"));
        assert_eq!(GrantStatus(-99).name(), None);
    }
}
