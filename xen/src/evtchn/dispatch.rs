//! The per-port handler table the upcall dispatches into.
//!
//! The table is lock-free on purpose: the upcall runs in interrupt context and may interrupt a
//! thread that is registering a handler on the same CPU, so a lock there could deadlock. Each
//! slot is one atomic pointer to a `'static` [`PortHandler`]; handlers are never freed, so a
//! dispatch racing with [`HandlerTable::unregister`] on another CPU still calls a live object
//! (at most one last, stale call; callers that care mask the port first, see
//! [`super::EventChannels::unbind`]).

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::{NR_PORTS, Port, scan_pending};
use crate::shared_info::SharedInfo;
use crate::types::VcpuId;

/// Reacts to an event on a port. Runs in interrupt context with the port's pending bit
/// already cleared: it must not block, and should only wake whoever does the work (the
/// FreeBSD xenstore design: the interrupt wakes, a thread reads the ring).
pub trait EventHandler: Sync {
    /// Called once per event taken from `port`.
    fn on_event(&self, port: Port);
}

impl<F: Fn(Port) + Sync> EventHandler for F {
    fn on_event(&self, port: Port) {
        self(port)
    }
}

/// A registered handler: a thin, `'static` wrapper so the table can hold it in one atomic
/// pointer. Typically a `static`:
/// `static STORE_EVENT: PortHandler = PortHandler::new(&|_| STORE_WAITERS.wake_all());`
pub struct PortHandler {
    handler: &'static dyn EventHandler,
}

impl PortHandler {
    /// Wraps `handler`.
    pub const fn new(handler: &'static dyn EventHandler) -> Self {
        Self { handler }
    }
}

/// Already a handler on that port; registering would silently steal its events.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortBusy(pub Port);

/// Counters from one upcall.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UpcallStats {
    /// Events passed to a handler.
    pub handled: usize,
    /// Events taken from a port with no handler (counted, see
    /// [`HandlerTable::unhandled_events`]).
    pub unhandled: usize,
}

/// One handler slot per 2-level port.
pub struct HandlerTable {
    slots: [AtomicPtr<PortHandler>; NR_PORTS],
    /// Events that arrived on ports without a handler, since boot. Never reset, so the
    /// kernel can log the count: nothing is dropped silently.
    unhandled: AtomicU64,
}

impl Default for HandlerTable {
    fn default() -> Self {
        Self::new()
    }
}

impl HandlerTable {
    /// An empty table (all zero, so a `static` lives in `.bss`; 32 KiB).
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; NR_PORTS],
            unhandled: AtomicU64::new(0),
        }
    }

    /// Installs `handler` for `port`. Fails if the port already has one.
    ///
    /// Contract: register before unmasking the port, or the first events find no handler.
    pub fn register(&self, port: Port, handler: &'static PortHandler) -> Result<(), PortBusy> {
        let new = ptr::from_ref(handler).cast_mut();
        // Release: a dispatcher that sees the pointer also sees the handler's initialisation.
        self.slot(port)
            .compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| PortBusy(port))
    }

    /// Removes and returns `port`'s handler, if any. A dispatch already running on another CPU
    /// may still call it once.
    pub fn unregister(&self, port: Port) -> Option<&'static PortHandler> {
        let old = self.slot(port).swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: non-null slot values only ever come from `&'static PortHandler` in
        // `register`, so they point to live, immutable handlers forever.
        unsafe { old.as_ref() }
    }

    /// Whether `port` has a handler.
    pub fn is_registered(&self, port: Port) -> bool {
        !self.slot(port).load(Ordering::Acquire).is_null()
    }

    /// Events taken from ports without a handler since boot.
    pub fn unhandled_events(&self) -> u64 {
        self.unhandled.load(Ordering::Relaxed)
    }

    /// Calls `port`'s handler, or counts the event as unhandled. Returns whether a handler ran.
    pub fn dispatch(&self, port: Port) -> bool {
        let handler = self.slot(port).load(Ordering::Acquire);
        // SAFETY: see `unregister`: non-null values are `&'static PortHandler`.
        match unsafe { handler.as_ref() } {
            Some(h) => {
                h.handler.on_event(port);
                true
            }
            None => {
                self.unhandled.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The upcall body for `vcpu`: [`scan_pending`] over `shared`, dispatching each port.
    ///
    /// Contract: call from the upcall interrupt handler of `vcpu`, with interrupts disabled.
    /// With the per-vCPU LAPIC vector, send the LAPIC EOI *before* calling this (an event
    /// raised during the scan then re-raises the vector instead of being lost); with
    /// [`crate::hvm::CallbackVia::Vector`] send no EOI at all. A `vcpu` beyond the 32
    /// shared_info slots has no `vcpu_info` there, and nothing is delivered.
    pub fn handle_upcall(&self, shared: &SharedInfo, vcpu: VcpuId) -> UpcallStats {
        let mut stats = UpcallStats::default();
        if let Some(info) = shared.vcpu(vcpu) {
            scan_pending(shared, info, |port| {
                if self.dispatch(port) {
                    stats.handled += 1;
                } else {
                    stats.unhandled += 1;
                }
            });
        }
        stats
    }

    fn slot(&self, port: Port) -> &AtomicPtr<PortHandler> {
        // `Port` guarantees `get() < NR_PORTS`.
        &self.slots[port.get() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::abi::xen_set_pending;
    use crate::shared_info::zeroed_shared_info;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static RECORD: PortHandler = PortHandler::new(&|p: Port| SEEN.lock().unwrap().push(p.get()));
    static OTHER: PortHandler = PortHandler::new(&|_: Port| {});

    fn port(n: u32) -> Port {
        Port::new(n).unwrap()
    }

    #[test]
    fn register_refuses_a_second_handler_and_unregister_frees_the_slot() {
        let table = Box::new(HandlerTable::new());
        assert_eq!(table.register(port(5), &OTHER), Ok(()));
        assert_eq!(table.register(port(5), &RECORD), Err(PortBusy(port(5))));
        assert!(table.is_registered(port(5)));
        assert!(
            table
                .unregister(port(5))
                .is_some_and(|h| ptr::eq(h, &OTHER))
        );
        assert!(!table.is_registered(port(5)));
        assert!(table.unregister(port(5)).is_none());
        assert_eq!(table.register(port(5), &RECORD), Ok(()));
    }

    #[test]
    fn upcall_dispatches_to_handlers_and_counts_the_rest() {
        let table = Box::new(HandlerTable::new());
        let s = zeroed_shared_info();
        let v = &s.vcpu_info[0];
        table.register(port(300), &RECORD).unwrap();
        table.register(port(7), &RECORD).unwrap();
        for p in [300, 7, 8] {
            xen_set_pending(&s, v, port(p));
        }
        let stats = table.handle_upcall(&s, VcpuId(0));
        assert_eq!(
            stats,
            UpcallStats {
                handled: 2,
                unhandled: 1
            }
        );
        assert_eq!(table.unhandled_events(), 1);
        let seen = SEEN.lock().unwrap().clone();
        assert!(seen.contains(&7) && seen.contains(&300));
    }

    #[test]
    fn upcall_for_a_vcpu_without_a_slot_delivers_nothing() {
        let table = Box::new(HandlerTable::new());
        let s = zeroed_shared_info();
        xen_set_pending(&s, &s.vcpu_info[0], port(3));
        assert_eq!(table.handle_upcall(&s, VcpuId(40)), UpcallStats::default());
        assert!(s.is_pending(port(3)), "left for the right vCPU");
    }
}
