//! `EVTCHNOP_*` hypercalls (`HYPERVISOR_event_channel_op(cmd, arg)`), with the argument
//! structures of `event_channel.h`. Every port Xen hands back is checked to fit the 2-level
//! ABI before it becomes a [`Port`].

use super::{Port, Virq};
use crate::error::{Cause, Operation, XenError, expect_zero};
use crate::hypercall::{HypercallOp, Hypervisor, call_with_struct};
use crate::types::{DomId, VcpuId};

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_UNMASK: u32 = 9;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    /// In: the allocating domain (`DOMID_SELF`).
    pub dom: u16,
    /// In: the domain allowed to bind to the port.
    pub remote_dom: u16,
    /// Out.
    pub port: u32,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    /// In: the domain that allocated the port.
    pub remote_dom: u16,
    /// In: its unbound port.
    pub remote_port: u32,
    /// Out.
    pub local_port: u32,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVirq {
    /// In: `VIRQ_*`.
    pub virq: u32,
    /// In: the vCPU to notify.
    pub vcpu: u32,
    /// Out.
    pub port: u32,
}

/// `struct evtchn_close`, `evtchn_send` and `evtchn_unmask`: just the port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnPortArg {
    /// In: the local port.
    pub port: u32,
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVcpu {
    /// In: the local port.
    pub port: u32,
    /// In: the vCPU to notify from now on.
    pub vcpu: u32,
}

/// `struct evtchn_status`; `u` is the union, read according to `status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnStatus {
    /// In: the domain (`DOMID_SELF`).
    pub dom: u16,
    /// In: the port.
    pub port: u32,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out.
    pub vcpu: u32,
    /// Out: `unbound.dom` (u16 at 0) | `interdomain.{dom (u16 at 0), port (u32 at 4)}` |
    /// `pirq` / `virq` (u32 at 0).
    pub u: [u32; 2],
}

/// What `EVTCHNOP_status` says about a port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChannelStatus {
    /// Not in use (`EVTCHNSTAT_closed`).
    Closed,
    /// Waiting for `remote` to bind (`EVTCHNSTAT_unbound`).
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to a port of another domain (`EVTCHNSTAT_interdomain`).
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: u32,
    },
    /// Bound to a physical IRQ (`EVTCHNSTAT_pirq`).
    Pirq(u32),
    /// Bound to a virtual IRQ (`EVTCHNSTAT_virq`).
    Virq(Virq),
    /// Bound to an inter-vCPU interrupt (`EVTCHNSTAT_ipi`).
    Ipi,
}

fn port_from(op: Operation, raw: u32) -> Result<Port, XenError> {
    Port::new(raw).ok_or(XenError::new(op, Cause::BadValue(u64::from(raw))))
}

fn event_op<H: Hypervisor, T>(hv: &H, cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: every caller in this module passes the argument structure `event_channel.h`
    // defines for `cmd`.
    unsafe { call_with_struct(hv, HypercallOp::EventChannelOp, cmd, arg) }
}

/// Allocates a port that `remote` may bind to (the guest is the server side, e.g. a
/// frontend publishing `event-channel` in xenstore).
pub fn alloc_unbound(hv: &impl Hypervisor, remote: DomId) -> Result<Port, XenError> {
    let op = Operation::EvtchnAllocUnbound { remote };
    let mut arg = EvtchnAllocUnbound {
        dom: DomId::SELF.0,
        remote_dom: remote.0,
        port: 0,
    };
    expect_zero(op, event_op(hv, EVTCHNOP_ALLOC_UNBOUND, &mut arg))?;
    port_from(op, arg.port)
}

/// Connects a fresh local port to `remote`'s unbound `remote_port`.
pub fn bind_interdomain(
    hv: &impl Hypervisor,
    remote: DomId,
    remote_port: u32,
) -> Result<Port, XenError> {
    let op = Operation::EvtchnBindInterdomain {
        remote,
        remote_port,
    };
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote.0,
        remote_port,
        local_port: 0,
    };
    expect_zero(op, event_op(hv, EVTCHNOP_BIND_INTERDOMAIN, &mut arg))?;
    port_from(op, arg.local_port)
}

/// Binds `virq` on `vcpu` to a fresh port (global VIRQs must use vCPU 0).
pub fn bind_virq(hv: &impl Hypervisor, virq: Virq, vcpu: VcpuId) -> Result<Port, XenError> {
    let op = Operation::EvtchnBindVirq { virq, vcpu };
    let mut arg = EvtchnBindVirq {
        virq: virq.0,
        vcpu: vcpu.0,
        port: 0,
    };
    expect_zero(op, event_op(hv, EVTCHNOP_BIND_VIRQ, &mut arg))?;
    port_from(op, arg.port)
}

/// Closes `port`; an interdomain peer's end goes back to unbound.
pub fn close(hv: &impl Hypervisor, port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnPortArg { port: port.get() };
    expect_zero(
        Operation::EvtchnClose(port),
        event_op(hv, EVTCHNOP_CLOSE, &mut arg),
    )
}

/// Notifies the remote end of `port`.
pub fn send(hv: &impl Hypervisor, port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnPortArg { port: port.get() };
    expect_zero(
        Operation::EvtchnSend(port),
        event_op(hv, EVTCHNOP_SEND, &mut arg),
    )
}

/// Asks Xen to clear `port`'s mask and re-announce a pending event. Xen only acts if the mask
/// bit is still set when it looks; see [`super::EventChannels::unmask`] for the full rule.
pub fn unmask(hv: &impl Hypervisor, port: Port) -> Result<(), XenError> {
    let mut arg = EvtchnPortArg { port: port.get() };
    expect_zero(
        Operation::EvtchnUnmask(port),
        event_op(hv, EVTCHNOP_UNMASK, &mut arg),
    )
}

/// Makes `port` notify `vcpu` instead of vCPU 0.
pub fn bind_vcpu(hv: &impl Hypervisor, port: Port, vcpu: VcpuId) -> Result<(), XenError> {
    let mut arg = EvtchnBindVcpu {
        port: port.get(),
        vcpu: vcpu.0,
    };
    let op = Operation::EvtchnBindVcpu { port, vcpu };
    expect_zero(op, event_op(hv, EVTCHNOP_BIND_VCPU, &mut arg))
}

/// Asks Xen what `port` of this domain is connected to, and on which vCPU it notifies.
pub fn status(hv: &impl Hypervisor, port: Port) -> Result<(ChannelStatus, VcpuId), XenError> {
    let op = Operation::EvtchnStatus(port);
    let mut arg = EvtchnStatus {
        dom: DomId::SELF.0,
        port: port.get(),
        ..Default::default()
    };
    expect_zero(op, event_op(hv, EVTCHNOP_STATUS, &mut arg))?;
    let low16 = DomId(arg.u[0] as u16);
    let status = match arg.status {
        0 => ChannelStatus::Closed,
        1 => ChannelStatus::Unbound { remote: low16 },
        2 => ChannelStatus::Interdomain {
            remote: low16,
            remote_port: arg.u[1],
        },
        3 => ChannelStatus::Pirq(arg.u[0]),
        4 => ChannelStatus::Virq(Virq(arg.u[0])),
        5 => ChannelStatus::Ipi,
        other => return Err(XenError::new(op, Cause::BadValue(u64::from(other)))),
    };
    Ok((status, VcpuId(arg.vcpu)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;
    use crate::hypercall::fake::RecordingHypervisor;
    use core::mem::{offset_of, size_of};

    #[test]
    fn op_structs_match_the_header_layout() {
        assert_eq!(size_of::<EvtchnAllocUnbound>(), 8);
        assert_eq!(offset_of!(EvtchnAllocUnbound, remote_dom), 2);
        assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);
        assert_eq!(size_of::<EvtchnBindInterdomain>(), 12);
        assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
        assert_eq!(offset_of!(EvtchnBindInterdomain, local_port), 8);
        assert_eq!(size_of::<EvtchnBindVirq>(), 12);
        assert_eq!(offset_of!(EvtchnBindVirq, vcpu), 4);
        assert_eq!(offset_of!(EvtchnBindVirq, port), 8);
        assert_eq!(size_of::<EvtchnPortArg>(), 4);
        assert_eq!(size_of::<EvtchnBindVcpu>(), 8);
        assert_eq!(offset_of!(EvtchnBindVcpu, vcpu), 4);
        assert_eq!(size_of::<EvtchnStatus>(), 24);
        assert_eq!(offset_of!(EvtchnStatus, port), 4);
        assert_eq!(offset_of!(EvtchnStatus, status), 8);
        assert_eq!(offset_of!(EvtchnStatus, vcpu), 12);
        assert_eq!(offset_of!(EvtchnStatus, u), 16);
    }

    #[test]
    fn send_close_unmask_marshal_the_port() {
        let hv = RecordingHypervisor::returning(0);
        let p = Port::new(42).unwrap();
        send(&hv, p).unwrap();
        close(&hv, p).unwrap();
        unmask(&hv, p).unwrap();
        let calls = hv.calls();
        let cmds: Vec<_> = calls
            .iter()
            .map(|c| (c.op, c.cmd(), c.field(0, 4)))
            .collect();
        let ev = HypercallOp::EventChannelOp;
        assert_eq!(cmds, vec![(ev, 4, 42), (ev, 3, 42), (ev, 9, 42)]);
    }

    #[test]
    fn bind_interdomain_marshals_and_returns_the_local_port() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 4, 17);
            0
        });
        assert_eq!(
            bind_interdomain(&hv, DomId(0), 5),
            Ok(Port::new(17).unwrap())
        );
        let call = hv.single_call();
        assert_eq!(call.cmd(), 0);
        assert_eq!((call.field(0, 2), call.field(4, 4)), (0, 5));
    }

    #[test]
    fn alloc_unbound_asks_for_self_and_the_remote() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(4, 4, 9);
            0
        });
        assert_eq!(alloc_unbound(&hv, DomId(0)), Ok(Port::new(9).unwrap()));
        let call = hv.single_call();
        assert_eq!(call.cmd(), 6);
        assert_eq!((call.field(0, 2), call.field(2, 2)), (0x7ff0, 0));
    }

    #[test]
    fn bind_virq_marshals_virq_and_vcpu() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 4, 2);
            0
        });
        assert_eq!(
            bind_virq(&hv, Virq::DEBUG, VcpuId(0)),
            Ok(Port::new(2).unwrap())
        );
        let call = hv.single_call();
        assert_eq!((call.cmd(), call.field(0, 4), call.field(4, 4)), (1, 1, 0));
    }

    #[test]
    fn a_port_beyond_the_2_level_abi_is_an_error_not_a_truncation() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 4, 5000);
            0
        });
        let err = bind_interdomain(&hv, DomId(0), 5).unwrap_err();
        assert_eq!(err.cause, Cause::BadValue(5000));
    }

    #[test]
    fn failures_carry_the_operation_and_errno() {
        let hv = RecordingHypervisor::returning(-(Errno::ENOSPC.0 as i64));
        let err = alloc_unbound(&hv, DomId(0)).unwrap_err();
        assert_eq!(err.op, Operation::EvtchnAllocUnbound { remote: DomId(0) });
        assert_eq!(err.errno(), Some(Errno::ENOSPC));
    }

    #[test]
    fn status_decodes_the_union_per_status() {
        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 4, 2); // EVTCHNSTAT_interdomain
            call.set_field(12, 4, 0);
            call.set_field(16, 2, 0); // remote dom0
            call.set_field(20, 4, 33); // remote port
            0
        });
        let p = Port::new(3).unwrap();
        let (st, vcpu) = status(&hv, p).unwrap();
        assert_eq!(
            st,
            ChannelStatus::Interdomain {
                remote: DomId(0),
                remote_port: 33
            }
        );
        assert_eq!(vcpu, VcpuId(0));
        let call = hv.single_call();
        assert_eq!(
            (call.cmd(), call.field(0, 2), call.field(4, 4)),
            (5, 0x7ff0, 3)
        );

        let hv = RecordingHypervisor::answering(|call| {
            call.set_field(8, 4, 77);
            0
        });
        assert_eq!(status(&hv, p).unwrap_err().cause, Cause::BadValue(77));
    }
}
