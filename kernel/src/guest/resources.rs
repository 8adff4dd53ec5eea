//! [`XenResources`]: the grant table and unbound event channels a
//! frontend asks for (`xenbus::DeviceResources`) on real Xen. The QEMU test
//! platform has neither and uses `xenbus::UnsupportedResources`.
//!
//! One grant-table frame (512 v1 entries, minus the 8 reserved ones) is
//! placed at a RAM frame given up to Xen, as Linux's HVM guests do for
//! shared_info: plenty for the frontends, which grant one or two pages
//! each. Exercised on real Xen by the `xen` step's backend tests (Linux
//! blkback and netback map these pages and bind these ports).

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;
use xen::evtchn::{EvtchnError, Port, PortHandler};
use xen::grant_table::{self, GrantAccess, GrantError, GrantTable};
use xen::{DomId, Gfn, XenError};
use xenbus::{DeviceResources, GrantedPage, ResourceError};

use crate::hypervisor::XenGuest;
use crate::memory::{self, VirtAddr};
use crate::sync::SpinLock;

/// Grant-table frames we place (and re-place after a resume).
const GRANT_FRAMES: u32 = 1;

/// The shared ring header of `public/io/ring.h`, in u32 words: `req_prod`,
/// `req_event`, `rsp_prod`, `rsp_event`. `SHARED_RING_INIT` leaves the
/// producers at 0 and sets both event thresholds to 1 (notify at the first
/// request and the first response).
const RING_REQ_EVENT: usize = 1;
const RING_RSP_EVENT: usize = 3;

/// Events on ports we allocate for a frontend: the frontends move no data,
/// so nothing waits for them.
static IGNORED_EVENTS: PortHandler = PortHandler::new(&|_: Port| {});

/// The one instance, for [`restore_after_resume`].
static RESOURCES: Once<Arc<XenResources>> = Once::new();

/// Resumes into a new domain since boot: what was bound before one (a
/// vchan) belongs to a domain we left.
static RESUMES: AtomicU64 = AtomicU64::new(0);

/// How many times the kernel resumed into a new domain (see [`RESUMES`]).
pub fn resumes() -> u64 {
    RESUMES.load(Ordering::SeqCst)
}

/// Grants and event channels through Xen.
pub struct XenResources {
    guest: &'static XenGuest,
    table: GrantTable<'static>,
    /// Where the table's frames are placed in our physical address space.
    table_gfn: Gfn,
    /// The ports handed out to frontends in this domain. A restored domain
    /// has none of them: [`restore_after_resume`] forgets them all, and a
    /// frontend's later close of one is not passed to Xen, where that
    /// number may by then be someone else's new port.
    ports: SpinLock<BTreeSet<u32>>,
}

impl XenResources {
    /// Places the grant table and returns the kernel's instance (once; later
    /// calls return the first). Errors: no frame, or Xen refused.
    pub fn setup(guest: &'static XenGuest) -> Result<Arc<XenResources>, String> {
        if let Some(r) = RESOURCES.get() {
            return Ok(Arc::clone(r));
        }
        let hv = guest.hypervisor;
        let size = grant_table::ops::query_size(hv).map_err(|e| format!("{e}"))?;
        if size.max_nr_frames < GRANT_FRAMES {
            return Err(format!("Xen allows {} grant frames", size.max_nr_frames));
        }
        let frame = memory::alloc_frame().ok_or("no free frame for the grant table")?;
        let table_gfn = Gfn::containing(frame.as_u64());
        // SAFETY: GRANT_FRAMES is 1 and `frame` is fresh from the allocator,
        // ours, never freed: no Rust object lives in it.
        unsafe { grant_table::ops::map_frames(hv, table_gfn, GRANT_FRAMES) }
            .map_err(|e| format!("{e}"))?;
        let virt = memory::phys_to_virt(frame)
            .and_then(|v| NonNull::new(v.as_mut_ptr::<u8>()))
            .ok_or("grant frame outside the identity map")?;
        // SAFETY: `frame` now holds grant frame 0 (map_frames succeeded); it
        // is RAM, identity mapped write-back for the kernel's life, and ours
        // alone (allocated above, never freed).
        let entries = unsafe { grant_table::entries_from_ptr(virt, GRANT_FRAMES as usize) };
        let free_list = Box::leak(vec![0u16; entries.len()].into_boxed_slice());
        let resources = Arc::new(XenResources {
            guest,
            table: GrantTable::new(entries, free_list),
            table_gfn,
            ports: SpinLock::new(BTreeSet::new()),
        });
        log::info!(
            "xen: grant table at {table_gfn} ({} free references)",
            resources.table.free_count()
        );
        Ok(Arc::clone(RESOURCES.call_once(|| resources)))
    }
}

impl XenResources {
    /// The guest's grant table (for the vchan's pages).
    pub(crate) fn table(&self) -> &GrantTable<'static> {
        &self.table
    }

    /// The Xen environment these resources live in.
    pub(crate) fn guest(&self) -> &'static XenGuest {
        self.guest
    }

    /// Allocates a port `remote` may bind, with `handler`, tracked as the
    /// frontends' are: a resume forgets it (see `ports`).
    pub(crate) fn alloc_unbound_port(
        &self,
        remote: DomId,
        handler: &'static PortHandler,
    ) -> Result<Port, EvtchnError> {
        let port = self.guest.channels.alloc_unbound(remote, handler)?;
        self.ports.lock().insert(port.get());
        Ok(port)
    }

    /// Binds `remote`'s port, with `handler`, tracked like
    /// [`Self::alloc_unbound_port`]'s.
    pub(crate) fn bind_interdomain_port(
        &self,
        remote: DomId,
        remote_port: u32,
        handler: &'static PortHandler,
    ) -> Result<Port, EvtchnError> {
        let port = self
            .guest
            .channels
            .bind_interdomain(remote, remote_port, handler)?;
        self.ports.lock().insert(port.get());
        Ok(port)
    }

    /// Closes a port of [`Self::alloc_unbound_port`] or
    /// [`Self::bind_interdomain_port`]; one of a domain we left is only
    /// forgotten (its number may be someone else's now).
    pub(crate) fn close_port(&self, port: Port) -> Result<(), XenError> {
        if !self.ports.lock().remove(&port.get()) {
            return Ok(());
        }
        self.guest.channels.unbind(port)
    }
}

/// Places the grant table again after a resume on a new host (its frames
/// are Xen's and do not move with the domain's memory).
pub(super) fn restore_after_resume() {
    RESUMES.fetch_add(1, Ordering::SeqCst);
    let Some(r) = RESOURCES.get() else { return };
    // SAFETY: the frame `setup` gave Xen for good, placed again.
    let placed =
        unsafe { grant_table::ops::map_frames(r.guest.hypervisor, r.table_gfn, GRANT_FRAMES) };
    if let Err(e) = placed {
        log::error!("xen: cannot place the grant table again after resume: {e}");
    } // As Linux's `xen_irq_resume`: the old domain's bindings are gone with
    // it; drop their handlers so the numbers can be handed out again.
    let stale = core::mem::take(&mut *r.ports.lock());
    for port in stale.iter().filter_map(|&p| Port::new(p)) {
        r.guest.channels.detach(port);
    }
    if !stale.is_empty() {
        log::info!(
            "xen: {} event channel(s) of the old domain forgotten (frontends, vchans)",
            stale.len()
        );
    }
}

fn hypervisor_error(what: &'static str, e: XenError) -> ResourceError {
    ResourceError::Hypervisor {
        what,
        code: e.errno().map_or(-1, |errno| errno.0),
    }
}

fn grant_error(what: &'static str, e: GrantError) -> ResourceError {
    match e {
        GrantError::Exhausted => ResourceError::Exhausted { what },
        GrantError::StillMapped { .. } => ResourceError::StillMapped { what },
        // Our own bookkeeping refused (a frame beyond 32 bits, a reference
        // not granted, an entry left in use): not Xen's answer, but the
        // errno that says "invalid argument".
        GrantError::FrameTooLarge(_)
        | GrantError::NotGranted(_)
        | GrantError::EntryNotFree { .. } => ResourceError::Hypervisor {
            what,
            code: xen::error::Errno::EINVAL.0,
        },
    }
}

impl DeviceResources for XenResources {
    fn grant_ring_page(&self, remote: DomId) -> Result<GrantedPage, ResourceError> {
        const WHAT: &str = "grant a ring page";
        let frame = memory::alloc_frame().ok_or(ResourceError::Exhausted { what: WHAT })?;
        let Some(virt) = memory::phys_to_virt(frame) else {
            // SAFETY: fresh from `alloc_frame`, never used.
            unsafe { memory::free_frame(frame) };
            return Err(ResourceError::Exhausted { what: WHAT });
        };
        // SAFETY: a free RAM frame just allocated (ours alone), identity
        // mapped writable, page aligned; the ring header's u32 fields are
        // at offsets 0-15, inside it and aligned.
        unsafe {
            core::ptr::write_bytes(virt.as_mut_ptr::<u8>(), 0, memory::PAGE_SIZE as usize);
            let header = virt.as_mut_ptr::<u32>();
            header.add(RING_REQ_EVENT).write_volatile(1);
            header.add(RING_RSP_EVENT).write_volatile(1);
        }
        let gfn = Gfn::containing(frame.as_u64());
        // SAFETY: the frame is ours until `end_ring_grant` ends the grant;
        // the driver reaches it only as a shared ring (volatile access).
        match unsafe { self.table.grant_access(remote, gfn, GrantAccess::ReadWrite) } {
            // SAFETY: the frame allocated and granted just above; it is
            // freed only when this page comes back to `end_ring_grant`.
            Ok(gref) => Ok(unsafe { GrantedPage::new(gref, virt.as_u64() as usize) }),
            Err(e) => {
                // SAFETY: not granted after all; nothing else has it.
                unsafe { memory::free_frame(frame) };
                Err(grant_error(WHAT, e))
            }
        }
    }

    fn end_ring_grant(&self, page: GrantedPage) -> Result<(), ResourceError> {
        const WHAT: &str = "end a ring grant";
        // Checked before the grant ends, so a bad page changes nothing: a
        // page we granted is mapped, page aligned, and the frame its grant
        // entry names (so `addr` cannot point us at someone else's frame).
        let gref = page.gref();
        let granted = self
            .table
            .entry(gref)
            .map(|entry| u64::from(entry.frame.load(Ordering::Relaxed)));
        let frame = VirtAddr::try_new(page.addr() as u64)
            .ok()
            .and_then(memory::virt_to_phys)
            .filter(|frame| frame.is_aligned(memory::PAGE_SIZE))
            .filter(|frame| Some(frame.as_u64() / memory::PAGE_SIZE) == granted)
            .ok_or(ResourceError::Hypervisor {
                what: WHAT,
                code: xen::error::Errno::EINVAL.0,
            })?;
        self.table
            .end_access(gref)
            .map_err(|e| grant_error(WHAT, e))?;
        // SAFETY: the frame `grant_ring_page` allocated for this grant (the
        // entry names it), which has just ended; the caller gave the page
        // back, so nothing uses it.
        unsafe { memory::free_frame(frame) };
        Ok(())
    }

    fn alloc_unbound_evtchn(&self, remote: DomId) -> Result<Port, ResourceError> {
        const WHAT: &str = "allocate an unbound event channel";
        match self.guest.channels.alloc_unbound(remote, &IGNORED_EVENTS) {
            Ok(port) => {
                self.ports.lock().insert(port.get());
                Ok(port)
            }
            Err(xen::evtchn::EvtchnError::Xen(e)) => Err(hypervisor_error(WHAT, e)),
            Err(xen::evtchn::EvtchnError::HandlerBusy(_)) => Err(ResourceError::Hypervisor {
                what: WHAT,
                code: xen::error::Errno::EBUSY.0,
            }),
        }
    }

    fn close_evtchn(&self, port: Port) -> Result<(), ResourceError> {
        const WHAT: &str = "close an event channel";
        if !self.ports.lock().remove(&port.get()) {
            // Bound in a domain we have left (see `ports`): nothing to close.
            return Ok(());
        }
        self.guest
            .channels
            .unbind(port)
            .map_err(|e| hypervisor_error(WHAT, e))
    }
}
