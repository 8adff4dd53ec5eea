//! The one boundary between "Xen" and "the QEMU test platform":
//! [`StoreChannel`] says where the ring page is, how to kick the daemon,
//! and routes the daemon's events to [`on_store_event`]. [`StoreEvents`]
//! turns any channel into the xenstore crate's [`RingEvents`]. Nothing
//! above this module knows which platform runs.
//!
//! Events (FreeBSD's shape): the interrupt handler of either platform only
//! calls [`on_store_event`], which counts and wakes [`STORE_EVENT`]. The
//! xenstore receive thread (reading replies) and senders waiting for ring
//! space sleep there, each re-checking its own ring condition.

use alloc::string::String;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering, fence};
use core::time::Duration;

use xenstore::ring::{RingEvents, RingPage};

use crate::sync::WaitQueue;

/// Which platform carries the xenstore ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// A Xen guest: the page from `HVM_PARAM_STORE_PFN`, an event channel.
    Xen,
    /// The QEMU test platform: the ivshmem-doorbell device's BAR2 page, its
    /// doorbell and its MSI-X interrupt, bridged by the host to the real
    /// xenstored.
    QemuTest,
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Xen => "Xen",
            Self::QemuTest => "QEMU test platform (ivshmem-doorbell)",
        })
    }
}

/// Where the xenstore ring is and how to signal across it.
///
/// Implemented by the Xen platform (`xen_ring.rs`) and the QEMU test platform
/// (`ivshmem.rs`). A channel lives for the rest of the kernel's life.
pub trait StoreChannel: Send + Sync + 'static {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// A description for the boot log (device address, port, frame).
    fn describe(&self) -> String;

    /// A view of the shared ring page (mapped write-back, valid for the
    /// kernel's life). Each call gives a fresh view of the same page.
    fn page(&self) -> RingPage;

    /// Kicks the daemon: an event-channel send, or the doorbell. Never
    /// blocks; callable from any context. Implies a full memory barrier.
    fn notify(&self);

    /// Starts routing the daemon's events to [`on_store_event`], from
    /// interrupt context. Events that arrived before may be lost: callers
    /// re-check the ring afterwards (the runtime's waits do).
    fn start_events(&self) -> Result<(), String>;

    /// After the VM really resumed (a restored or migrated domain), before
    /// the xenstore client's `resume`: re-establish the events (Xen: the
    /// store event channel may have a new number). Default: nothing (the
    /// QEMU test platform's host keeps the device as it was).
    fn resume(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Threads waiting for the daemon: the receive thread (for replies) and
/// senders (for ring space). Woken only by [`on_store_event`] and by
/// shutdown; a leaf in the lock order (see [`crate::sync::WaitQueue`]).
static STORE_EVENT: WaitQueue = WaitQueue::new();
/// Events taken since boot (diagnostics, benchmarks).
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// The interrupt side of every platform: counts the event and wakes the
/// threads waiting on the ring. Interrupt context; never blocks.
pub fn on_store_event() {
    EVENTS.fetch_add(1, Ordering::Relaxed);
    STORE_EVENT.wake_all();
}

/// Makes every thread waiting on the ring re-check it, without counting an
/// event (after routing events, for what arrived before).
pub fn recheck() {
    STORE_EVENT.wake_all();
}

/// Events from the daemon taken since boot.
pub fn events_taken() -> u64 {
    EVENTS.load(Ordering::Relaxed)
}

/// [`RingEvents`] over a [`StoreChannel`].
pub struct StoreEvents {
    channel: &'static dyn StoreChannel,
}

impl StoreEvents {
    /// Events of `channel`.
    pub fn new(channel: &'static dyn StoreChannel) -> Self {
        StoreEvents { channel }
    }
}

impl RingEvents for StoreEvents {
    fn notify(&self) {
        // The contract promises a full barrier; make it explicit rather
        // than rely on each platform's MMIO write or hypercall being one.
        fence(Ordering::SeqCst);
        self.channel.notify();
    }

    fn wait_until(&self, ready: &mut dyn FnMut() -> bool, timeout: Option<Duration>) -> bool {
        // The kernel's wait queue re-checks `ready` with this thread already
        // queued, so an interrupt between the check and the sleep wakes it.
        STORE_EVENT.wait_until(ready, timeout)
    }

    fn wake_all(&self) {
        STORE_EVENT.wake_all();
    }
}
