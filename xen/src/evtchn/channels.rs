//! [`EventChannels`]: what the kernel uses. Ties the hypercalls, the shared_info bitmaps and
//! the handler table together, in the orders that keep events from being lost or stolen.

use core::fmt;

use super::dispatch::{HandlerTable, PortBusy, PortHandler, UpcallStats};
use super::{Port, Virq, ops};
use crate::error::XenError;
use crate::hypercall::Hypervisor;
use crate::shared_info::SharedInfo;
use crate::types::{DomId, VcpuId};

/// Why binding or unbinding a port failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EvtchnError {
    /// A hypercall failed.
    Xen(XenError),
    /// The port already has a handler. When this happens in a `bind_*` call the fresh port is
    /// closed again before returning.
    HandlerBusy(Port),
}

impl From<XenError> for EvtchnError {
    fn from(e: XenError) -> Self {
        Self::Xen(e)
    }
}

impl From<PortBusy> for EvtchnError {
    fn from(PortBusy(port): PortBusy) -> Self {
        Self::HandlerBusy(port)
    }
}

impl fmt::Display for EvtchnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xen(e) => write!(f, "{e}"),
            Self::HandlerBusy(p) => write!(f, "{p} already has a handler"),
        }
    }
}

impl core::error::Error for EvtchnError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Xen(e) => Some(e),
            Self::HandlerBusy(_) => None,
        }
    }
}

/// Event channels of this guest over one shared_info page and one handler table.
///
/// Cheap to copy around (three references). All methods may be called concurrently from
/// threads; [`EventChannels::handle_upcall`] is the only one meant for interrupt context
/// (plus [`EventChannels::send`], [`EventChannels::mask`] and [`EventChannels::unmask`],
/// which never block).
pub struct EventChannels<'a, H: Hypervisor> {
    hv: &'a H,
    shared: &'a SharedInfo,
    handlers: &'a HandlerTable,
}

impl<H: Hypervisor> Clone for EventChannels<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: Hypervisor> Copy for EventChannels<'_, H> {}

impl<'a, H: Hypervisor> EventChannels<'a, H> {
    /// Event channels over `shared` (mapped with [`crate::shared_info::map_shared_info`]),
    /// dispatching into `handlers`.
    ///
    /// Contract: call [`EventChannels::mask_all`] once before the upcall is routed, so only
    /// ports bound through this type can raise it.
    pub fn new(hv: &'a H, shared: &'a SharedInfo, handlers: &'a HandlerTable) -> Self {
        Self {
            hv,
            shared,
            handlers,
        }
    }

    /// Masks every port (boot, before routing the upcall; also after resume).
    pub fn mask_all(&self) {
        self.shared.mask_all();
    }

    /// Attaches `handler` to an already-bound `port` (e.g. the xenstore port from
    /// `HVM_PARAM_STORE_EVTCHN`) and unmasks it.
    ///
    /// Order: mask, register, then unmask by the rules, so an event that was already pending
    /// is delivered to the new handler rather than lost or counted as unhandled.
    pub fn attach(&self, port: Port, handler: &'static PortHandler) -> Result<(), EvtchnError> {
        self.shared.mask(port);
        self.handlers.register(port, handler)?;
        self.unmask(port)?;
        Ok(())
    }

    /// Masks `port` and removes its handler, leaving the channel bound (for ports this guest
    /// does not own, like the xenstore one). Returns the handler that was attached.
    pub fn detach(&self, port: Port) -> Option<&'static PortHandler> {
        self.shared.mask(port);
        self.handlers.unregister(port)
    }

    /// Binds a fresh port to `remote`'s `remote_port`, with `handler`, unmasked.
    pub fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: u32,
        handler: &'static PortHandler,
    ) -> Result<Port, EvtchnError> {
        let port = ops::bind_interdomain(self.hv, remote, remote_port)?;
        self.attach_fresh(port, handler)
    }

    /// Allocates a port `remote` may bind to, with `handler`, unmasked.
    pub fn alloc_unbound(
        &self,
        remote: DomId,
        handler: &'static PortHandler,
    ) -> Result<Port, EvtchnError> {
        let port = ops::alloc_unbound(self.hv, remote)?;
        self.attach_fresh(port, handler)
    }

    /// Binds `virq` on `vcpu` to a fresh port, with `handler`, unmasked.
    pub fn bind_virq(
        &self,
        virq: Virq,
        vcpu: VcpuId,
        handler: &'static PortHandler,
    ) -> Result<Port, EvtchnError> {
        let port = ops::bind_virq(self.hv, virq, vcpu)?;
        self.attach_fresh(port, handler)
    }

    /// A port Xen just allocated: attach, or close it again so it does not leak.
    fn attach_fresh(&self, port: Port, handler: &'static PortHandler) -> Result<Port, EvtchnError> {
        match self.attach(port, handler) {
            Ok(()) => Ok(port),
            Err(e) => {
                // The close result is secondary to the error being returned; a failure here
                // leaves a masked, handler-less port, which is harmless.
                self.shared.mask(port);
                let _ = ops::close(self.hv, port);
                Err(e)
            }
        }
    }

    /// Closes `port`: mask first (no new upcalls), then drop the handler, then close.
    pub fn unbind(&self, port: Port) -> Result<(), XenError> {
        self.detach(port);
        ops::close(self.hv, port)
    }

    /// Notifies the remote end of `port`.
    pub fn send(&self, port: Port) -> Result<(), XenError> {
        ops::send(self.hv, port)
    }

    /// Masks `port`; returns whether it already was.
    pub fn mask(&self, port: Port) -> bool {
        self.shared.mask(port)
    }

    /// Unmasks `port` by the 2-level rules for HVM guests, so an event that arrived while it
    /// was masked is announced (upcall raised) rather than left pending forever.
    ///
    /// Xen only re-announces from `EVTCHNOP_unmask` if it finds the mask bit still set, and a
    /// guest that sets `evtchn_upcall_pending` itself gets no interrupt until Xen next looks
    /// (the LAPIC-vector method never looks). So: if the port is pending, let Xen unmask it.
    /// Otherwise clear the bit directly (no hypercall in the common case) and check again: an
    /// event that slipped in just before the clear found the port masked and raised nothing,
    /// so set the mask again and let Xen unmask and announce it. An event arriving after the
    /// clear is announced by Xen as usual; at worst the scan finds it already taken.
    pub fn unmask(&self, port: Port) -> Result<(), XenError> {
        if self.shared.is_pending(port) {
            return ops::unmask(self.hv, port);
        }
        self.shared.clear_mask_bit(port);
        if self.shared.is_pending(port) {
            self.shared.mask(port);
            return ops::unmask(self.hv, port);
        }
        Ok(())
    }

    /// The upcall body for `vcpu`; see [`HandlerTable::handle_upcall`] for the EOI rules.
    pub fn handle_upcall(&self, vcpu: VcpuId) -> UpcallStats {
        self.handlers.handle_upcall(self.shared, vcpu)
    }

    /// The shared_info page these channels use.
    pub fn shared_info(&self) -> &'a SharedInfo {
        self.shared
    }

    /// The handler table these channels dispatch into.
    pub fn handlers(&self) -> &'a HandlerTable {
        self.handlers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;
    use crate::evtchn::abi::xen_set_pending;
    use crate::hypercall::HypercallOp;
    use crate::hypercall::fake::RecordingHypervisor;
    use crate::shared_info::zeroed_shared_info;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static HITS: AtomicUsize = AtomicUsize::new(0);
    static COUNT: PortHandler = PortHandler::new(&|_: Port| {
        HITS.fetch_add(1, Ordering::SeqCst);
    });
    static NOOP: PortHandler = PortHandler::new(&|_: Port| {});

    fn port(n: u32) -> Port {
        Port::new(n).unwrap()
    }

    fn unmask_calls(hv: &RecordingHypervisor) -> Vec<u64> {
        let calls = hv.calls();
        let unmasks = calls
            .iter()
            .filter(|c| c.op == HypercallOp::EventChannelOp && c.cmd() == 9);
        unmasks.map(|c| c.field(0, 4)).collect()
    }

    #[test]
    fn unmask_of_an_idle_port_is_a_local_bit_clear() {
        let (hv, s, t) = (
            RecordingHypervisor::returning(0),
            zeroed_shared_info(),
            HandlerTable::new(),
        );
        let ev = EventChannels::new(&hv, &s, &t);
        ev.mask_all();
        ev.unmask(port(12)).unwrap();
        assert!(!s.is_masked(port(12)));
        assert!(
            hv.calls().is_empty(),
            "no hypercall when nothing is pending"
        );
    }

    #[test]
    fn unmask_of_a_pending_port_goes_through_xen_with_the_mask_still_set() {
        let s = zeroed_shared_info();
        let t = HandlerTable::new();
        // The fake plays Xen's evtchn_2l_unmask: test-and-clear mask, re-announce if pending.
        let shared: &'static SharedInfo = Box::leak(s);
        let hv = RecordingHypervisor::answering(move |call| {
            let p = Port::new(call.field(0, 4) as u32).unwrap();
            assert!(
                shared.is_masked(p),
                "Xen must find the mask set, or it does nothing"
            );
            shared.clear_mask_bit(p);
            let v = &shared.vcpu_info[0];
            v.evtchn_pending_sel
                .fetch_or(1 << p.word(), Ordering::SeqCst);
            v.evtchn_upcall_pending.store(1, Ordering::SeqCst);
            0
        });
        let ev = EventChannels::new(&hv, shared, &t);
        ev.mask_all();
        xen_set_pending(shared, &shared.vcpu_info[0], port(12)); // arrives while masked
        ev.unmask(port(12)).unwrap();
        assert_eq!(unmask_calls(&hv), vec![12]);
        assert!(!shared.is_masked(port(12)));
        assert_eq!(
            shared.vcpu_info[0]
                .evtchn_upcall_pending
                .load(Ordering::SeqCst),
            1
        );
    }

    #[test]
    fn unmask_failure_is_reported_with_the_port() {
        let (hv, s, t) = (
            RecordingHypervisor::returning(-22),
            zeroed_shared_info(),
            HandlerTable::new(),
        );
        let ev = EventChannels::new(&hv, &s, &t);
        s.mask(port(4));
        s.evtchn_pending[0].fetch_or(port(4).bit(), Ordering::SeqCst);
        let err = ev.unmask(port(4)).unwrap_err();
        assert_eq!(err.op, crate::error::Operation::EvtchnUnmask(port(4)));
        assert_eq!(err.errno(), Some(Errno::EINVAL));
    }

    #[test]
    fn bind_interdomain_attaches_the_handler_and_events_reach_it() {
        let (s, t) = (zeroed_shared_info(), HandlerTable::new());
        let hv = RecordingHypervisor::answering(|call| {
            if call.cmd() == 0 {
                call.set_field(8, 4, 21);
            }
            0
        });
        let ev = EventChannels::new(&hv, &s, &t);
        ev.mask_all();
        let p = ev.bind_interdomain(DomId(0), 3, &COUNT).unwrap();
        assert_eq!(p, port(21));
        assert!(!s.is_masked(p) && t.is_registered(p));
        let before = HITS.load(Ordering::SeqCst);
        assert!(
            xen_set_pending(&s, &s.vcpu_info[0], p),
            "unmasked: upcall raised"
        );
        assert_eq!(ev.handle_upcall(VcpuId(0)).handled, 1);
        assert_eq!(HITS.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn a_busy_port_is_closed_again_instead_of_leaking() {
        let (s, t) = (zeroed_shared_info(), HandlerTable::new());
        let hv = RecordingHypervisor::answering(|call| {
            if call.cmd() == 6 {
                call.set_field(4, 4, 30);
            }
            0
        });
        let ev = EventChannels::new(&hv, &s, &t);
        t.register(port(30), &NOOP).unwrap();
        assert_eq!(
            ev.alloc_unbound(DomId(0), &COUNT),
            Err(EvtchnError::HandlerBusy(port(30)))
        );
        let cmds: Vec<_> = hv
            .calls()
            .iter()
            .map(|c| (c.cmd(), c.field(0, 4)))
            .collect();
        assert_eq!(
            cmds.last(),
            Some(&(3, 30)),
            "EVTCHNOP_close of the fresh port"
        );
        assert!(s.is_masked(port(30)));
    }

    #[test]
    fn unbind_masks_before_dropping_the_handler_and_closing() {
        let (s, t) = (zeroed_shared_info(), HandlerTable::new());
        let hv = RecordingHypervisor::returning(0);
        let ev = EventChannels::new(&hv, &s, &t);
        ev.attach(port(40), &NOOP).unwrap();
        ev.unbind(port(40)).unwrap();
        assert!(s.is_masked(port(40)) && !t.is_registered(port(40)));
        let last = hv.calls().last().map(|c| (c.cmd(), c.field(0, 4)));
        assert_eq!(last, Some((3, 40)));
    }

    #[test]
    fn attach_delivers_an_event_that_was_already_pending() {
        let (s, t) = (zeroed_shared_info(), HandlerTable::new());
        let shared: &'static SharedInfo = Box::leak(s);
        let hv = RecordingHypervisor::answering(move |call| {
            let p = Port::new(call.field(0, 4) as u32).unwrap();
            if shared.clear_mask_bit(p) && shared.is_pending(p) {
                shared.vcpu_info[0]
                    .evtchn_pending_sel
                    .fetch_or(1 << p.word(), Ordering::SeqCst);
                shared.vcpu_info[0]
                    .evtchn_upcall_pending
                    .store(1, Ordering::SeqCst);
            }
            0
        });
        let ev = EventChannels::new(&hv, shared, &t);
        ev.mask_all();
        // The store port was raised by the toolstack before the guest looked.
        xen_set_pending(shared, &shared.vcpu_info[0], port(2));
        ev.attach(port(2), &NOOP).unwrap();
        assert_eq!(
            ev.handle_upcall(VcpuId(0)),
            UpcallStats {
                handled: 1,
                unhandled: 0
            }
        );
    }
}
