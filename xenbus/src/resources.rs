//! What a frontend needs from the platform to build a data path: a page
//! granted to the other end and an unbound event channel for it
//! (Linux's `xenbus_grant_ring` and `xenbus_alloc_evtchn`).
//!
//! On real Xen the kernel implements [`DeviceResources`] with the `xen`
//! crate's grant table (`GrantTable::grant_access`) and event channels
//! (`EVTCHNOP_alloc_unbound`). The QEMU test platform has neither, and uses
//! [`UnsupportedResources`], whose every call is a clear
//! [`ResourceError::Unsupported`].

pub use xen::{DomId, GrantRef, Port};

use crate::error::ResourceError;

/// A 4 KiB ring page the platform allocated and granted to the other end.
/// It stays allocated and granted until [`DeviceResources::end_ring_grant`].
///
/// Only the platform makes one ([`GrantedPage::new`]), and it is neither
/// `Clone` nor `Copy`: handing it back is how the platform knows it may
/// free the page, so there is exactly one per grant.
#[derive(Debug, PartialEq, Eq)]
pub struct GrantedPage {
    gref: GrantRef,
    addr: usize,
}

impl GrantedPage {
    /// The page at `addr`, granted as `gref`.
    ///
    /// # Safety
    /// For the platform only: `addr` is a page it allocated and granted as
    /// `gref`, which stays allocated and granted until this value comes
    /// back through [`DeviceResources::end_ring_grant`], and no other
    /// `GrantedPage` names that grant (the platform frees the page then).
    pub unsafe fn new(gref: GrantRef, addr: usize) -> GrantedPage {
        GrantedPage { gref, addr }
    }

    /// The grant reference to publish.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The page's virtual address in our address space.
    pub fn addr(&self) -> usize {
        self.addr
    }
}

/// Grant-table and event-channel services of the platform.
///
/// Implementations are called from the bus worker thread (drivers'
/// callbacks) and must not block for long.
pub trait DeviceResources: Send + Sync + 'static {
    /// Allocates a page, initialises it as an empty shared ring
    /// (`public/io/ring.h`'s `SHARED_RING_INIT`: the page zeroed, then
    /// `req_event` and `rsp_event` 1) and grants `remote` read-write access
    /// to it. Errors: [`ResourceError::Unsupported`] where there is no grant
    /// table; [`ResourceError::Exhausted`] when out of references or pages.
    fn grant_ring_page(&self, remote: DomId) -> Result<GrantedPage, ResourceError>;

    /// Ends the grant (the other end must have unmapped it) and frees the
    /// page. Errors: [`ResourceError::StillMapped`] while the other end
    /// maps it (nothing changes: end it again later).
    fn end_ring_grant(&self, page: GrantedPage) -> Result<(), ResourceError>;

    /// Allocates an event channel that `remote` may bind to
    /// (EVTCHNOP_alloc_unbound). Errors as for `grant_ring_page`.
    fn alloc_unbound_evtchn(&self, remote: DomId) -> Result<Port, ResourceError>;

    /// Closes a port this returned.
    fn close_evtchn(&self, port: Port) -> Result<(), ResourceError>;
}

/// [`DeviceResources`] for a platform without grant tables or event
/// channels: every call fails with [`ResourceError::Unsupported`] naming
/// the platform.
#[derive(Clone, Copy, Debug)]
pub struct UnsupportedResources {
    /// The platform's name for error messages, e.g. "QEMU test platform".
    pub platform: &'static str,
}

impl UnsupportedResources {
    fn no(&self, what: &'static str) -> ResourceError {
        ResourceError::Unsupported {
            what,
            platform: self.platform,
        }
    }
}

impl DeviceResources for UnsupportedResources {
    fn grant_ring_page(&self, _remote: DomId) -> Result<GrantedPage, ResourceError> {
        Err(self.no("grant a ring page"))
    }

    fn end_ring_grant(&self, _page: GrantedPage) -> Result<(), ResourceError> {
        Err(self.no("end a ring grant"))
    }

    fn alloc_unbound_evtchn(&self, _remote: DomId) -> Result<Port, ResourceError> {
        Err(self.no("allocate an unbound event channel"))
    }

    fn close_evtchn(&self, _port: Port) -> Result<(), ResourceError> {
        Err(self.no("close an event channel"))
    }
}
