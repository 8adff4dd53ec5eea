//! `HYPERVISOR_sched_op` (`sched.h`): shutting the domain down and yielding the CPU.

use crate::error::{Operation, XenError, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor, call_with_struct};
pub use crate::types::ShutdownReason;

/// `SCHEDOP_yield`.
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u32 = 2;

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedShutdown {
    /// Why the domain shuts down (`SHUTDOWN_*`).
    pub reason: u32,
}

/// Asks Xen to shut the domain down for `reason`.
///
/// Contract: for every reason but [`ShutdownReason::Suspend`] Xen does not return to this
/// vCPU on success; if this returns, the shutdown was refused (the error says why) or, for
/// `Suspend`, the domain has been resumed (`Ok`).
pub fn shutdown(hv: &impl Hypervisor, reason: ShutdownReason) -> Result<(), XenError> {
    let mut arg = SchedShutdown {
        reason: reason as u32,
    };
    // SAFETY: `sched_shutdown` is what SCHEDOP_shutdown reads.
    let rc = unsafe { call_with_struct(hv, HypercallOp::SchedOp, SCHEDOP_SHUTDOWN, &mut arg) };
    expect_zero(Operation::SchedShutdown(reason), rc)
}

/// Gives the rest of this vCPU's time slice to other vCPUs.
pub fn yield_cpu(hv: &impl Hypervisor) -> Result<(), XenError> {
    // SAFETY: SCHEDOP_yield takes no argument block (NULL).
    let rc = unsafe { hv.hypercall(HypercallOp::SchedOp, [u64::from(SCHEDOP_YIELD), 0, 0, 0, 0]) };
    expect_zero(Operation::SchedYield, rc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::fake::RecordingHypervisor;

    #[test]
    fn sched_shutdown_matches_the_header_layout() {
        assert_eq!(core::mem::size_of::<SchedShutdown>(), 4);
    }

    #[test]
    fn shutdown_marshals_the_reason() {
        let hv = RecordingHypervisor::returning(0);
        shutdown(&hv, ShutdownReason::Poweroff).unwrap();
        shutdown(&hv, ShutdownReason::Crash).unwrap();
        let got: Vec<_> = hv
            .calls()
            .iter()
            .map(|c| (c.op, c.cmd(), c.field(0, 4)))
            .collect();
        let s = HypercallOp::SchedOp;
        assert_eq!(got, vec![(s, 2, 0), (s, 2, 3)]);
    }

    #[test]
    fn a_refused_shutdown_is_reported() {
        let hv = RecordingHypervisor::returning(-1);
        let err = shutdown(&hv, ShutdownReason::Reboot).unwrap_err();
        assert_eq!(err.op, Operation::SchedShutdown(ShutdownReason::Reboot));
        assert_eq!(err.errno(), Some(crate::error::Errno::EPERM));
    }

    #[test]
    fn yield_passes_a_null_argument() {
        let hv = RecordingHypervisor::returning(0);
        yield_cpu(&hv).unwrap();
        assert_eq!(hv.single_call().args, [0, 0, 0, 0, 0]);
    }
}
