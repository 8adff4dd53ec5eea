//! Why a vchan operation failed.

use alloc::string::String;
use core::fmt;

use xen::XenError;
use xen::evtchn::EvtchnError;
use xen::grant_table::GrantError;
use xen::io::vchan::{OrderError, RingCorrupt};
use xenstore::XsError;

use crate::memory::MapError;

/// A vchan error, with what was being done.
#[derive(Debug)]
pub enum VchanError {
    /// Not running on Xen: there are no grants or event channels.
    NotOnXen,
    /// The grant table or the xenstore service could not be set up.
    Resources(String),
    /// Reading or writing the vchan's xenstore keys failed.
    Xenstore(XsError),
    /// Allocating or binding the event channel failed.
    Evtchn(EvtchnError),
    /// A hypercall failed (mapping a peer's page, signalling).
    Xen(XenError),
    /// Granting a page failed.
    Grant(GrantError),
    /// Mapping a page into the kernel failed.
    Map(MapError),
    /// No free frame for a ring page.
    OutOfMemory,
    /// Ring sizes asked for, or announced by the peer, that libxenvchan never uses.
    Orders(OrderError),
    /// The peer's ring indexes are inconsistent.
    Corrupt(RingCorrupt),
    /// The peer closed (or vanished) while we were writing.
    PeerClosed,
    /// A wait passed its timeout.
    TimedOut,
    /// The kernel resumed into a new domain (save/restore, migration)
    /// since the vchan was made: it was the old domain's.
    Stale,
}

impl fmt::Display for VchanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOnXen => f.write_str("vchan: not running on Xen"),
            Self::Resources(e) => write!(f, "vchan: {e}"),
            Self::Xenstore(e) => write!(f, "vchan: xenstore: {e}"),
            Self::Evtchn(e) => write!(f, "vchan: event channel: {e:?}"),
            Self::Xen(e) => write!(f, "vchan: {e}"),
            Self::Grant(e) => write!(f, "vchan: grant: {e}"),
            Self::Map(e) => write!(f, "vchan: mapping: {e:?}"),
            Self::OutOfMemory => f.write_str("vchan: no free frame for a ring page"),
            Self::Orders(e) => write!(f, "vchan: ring sizes: {e:?}"),
            Self::Corrupt(e) => write!(
                f,
                "vchan: the peer's ring claims {} bytes used of {}",
                e.used, e.size
            ),
            Self::PeerClosed => f.write_str("vchan: the peer closed"),
            Self::TimedOut => f.write_str("vchan: timed out"),
            Self::Stale => f.write_str("vchan: made before a resume into a new domain"),
        }
    }
}
