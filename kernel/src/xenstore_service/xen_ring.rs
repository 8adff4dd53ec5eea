//! The Xen platform: the xenstore ring the toolstack set up for us, from
//! `HVM_PARAM_STORE_PFN` (a page, mapped write-back) and
//! `HVM_PARAM_STORE_EVTCHN` (an event channel already bound by the
//! toolstack: we only attach a wake-only handler and unmask it).
//!
//! Compiled and reviewed against the `xen` crate's documented boot order,
//! not run here (no Xen on the build host).

use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use xen::evtchn::{Port, PortHandler};
use xen::hvm::{self, RingLocation};
use xenstore::ring::RingPage;

use super::channel::{PlatformKind, StoreChannel, on_store_event};
use crate::hypervisor::{XenGuest, map_special_page};

/// The xenstore port's handler: wakes the ring's waiters, nothing else.
static STORE_PORT_HANDLER: PortHandler = PortHandler::new(&|_: Port| on_store_event());

/// The xenstore ring of a Xen guest.
pub struct XenStoreChannel {
    guest: &'static XenGuest,
    ring: RingLocation,
    /// The event channel now: `ring.port` until a resume re-reads it (a
    /// restored domain gets its channels anew from the toolstack).
    port: AtomicU32,
    page: NonNull<u8>,
}

// SAFETY: `page` is a mapping of the shared ring page that lives for the
// kernel's life and is only accessed through `RingPage` (volatile).
unsafe impl Send for XenStoreChannel {}
// SAFETY: as above.
unsafe impl Sync for XenStoreChannel {}

impl XenStoreChannel {
    /// Reads the ring's location from the HVM params and maps its page.
    pub fn probe(guest: &'static XenGuest) -> Result<XenStoreChannel, String> {
        let ring = hvm::store_ring(guest.hypervisor)
            .map_err(|e| format!("no xenstore ring from the toolstack: {e}"))?;
        // SAFETY: the toolstack's xenstore page, from HVM_PARAM_STORE_PFN.
        let page = unsafe { map_special_page(ring.gfn) }
            .map_err(|e| format!("cannot map the xenstore page {}: {e}", ring.gfn))?;
        let page = NonNull::new(page.as_mut_ptr::<u8>())
            .ok_or_else(|| String::from("xenstore page mapped at null"))?;
        log::info!(
            "xenstore: Xen ring at {}, event channel {}",
            ring.gfn,
            ring.port
        );
        Ok(XenStoreChannel {
            guest,
            ring,
            port: AtomicU32::new(ring.port.get()),
            page,
        })
    }

    fn port(&self) -> Port {
        // Only ever stored from a valid `Port`.
        Port::new(self.port.load(Ordering::Acquire)).unwrap_or(self.ring.port)
    }
}

impl StoreChannel for XenStoreChannel {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Xen
    }

    fn describe(&self) -> String {
        format!(
            "Xen ring at {}, event channel {}",
            self.ring.gfn,
            self.port()
        )
    }

    fn page(&self) -> RingPage {
        // SAFETY: the STORE_PFN page is mapped for PAGE_SIZE bytes, page
        // aligned, for the kernel's life, and only accessed through
        // RingPage views; the other party is xenstored in another domain.
        unsafe { RingPage::new(self.page) }
    }

    fn notify(&self) {
        let port = self.port();
        if let Err(e) = self.guest.channels.send(port) {
            // Cannot happen for a port the toolstack bound; never silent.
            log::error!("xenstore: notifying {port} failed: {e}");
        }
    }

    fn start_events(&self) -> Result<(), String> {
        let port = self.port();
        self.guest
            .channels
            .attach(port, &STORE_PORT_HANDLER)
            .map_err(|e| format!("cannot attach to {port}: {e}"))
    }

    /// As Linux's `xenbus_resume_cb` and `xb_init_comms`: the restored
    /// domain's store event channel is whatever the toolstack bound this
    /// time (`HVM_PARAM_STORE_EVTCHN` again), so the handler moves to it and
    /// it is unmasked. The page must be the one we mapped: libxl restores
    /// `HVM_PARAM_STORE_PFN` from the save stream (and clears the page).
    fn resume(&self) -> Result<(), String> {
        let ring = hvm::store_ring(self.guest.hypervisor)
            .map_err(|e| format!("re-reading the xenstore ring after resume: {e}"))?;
        if ring.gfn != self.ring.gfn {
            return Err(format!(
                "the xenstore page moved from {} to {} across the resume (not supported)",
                self.ring.gfn, ring.gfn
            ));
        }
        let old = self.port();
        self.guest.channels.detach(old);
        self.port.store(ring.port.get(), Ordering::Release);
        self.guest
            .channels
            .attach(ring.port, &STORE_PORT_HANDLER)
            .map_err(|e| format!("cannot attach to {} after resume: {e}", ring.port))?;
        log::info!(
            "xenstore: event channel re-bound after resume ({old} before, {} now)",
            ring.port
        );
        Ok(())
    }
}
