//! XenBus for a Xen guest, in the shape of FreeBSD's `xenbusb` and Linux's
//! `xenbus` (`no_std` + `alloc`), over the [`xenstore`] crate's client.
//!
//! - [`Bus`]: enumerates `device/<class>/<id>`, binds devices to the
//!   [`Driver`] registered for their class, follows hot-plug and each
//!   device's other end; [`Device`] gives drivers the usual helpers
//!   (`switch_state`, `wait_for_otherend`, `dev_error`/`dev_fatal`,
//!   `grant_ring`, `alloc_evtchn`).
//! - [`XenbusState`]: the state numbers of `public/io/xenbus.h`.
//! - [`frontend::SampleFrontend`]: a frontend driver that performs the
//!   frontend/backend handshake of blkif, netif or a generic one-ring
//!   protocol ([`frontend::RingProtocol`]), without moving data.
//! - [`services`]: the guest services on one shared state machine:
//!   `control/shutdown`, the `data/` pool, the `vm-data/` pool; and
//!   [`Guest`], which starts the bus and all of them.
//!
//! Everything is generic over [`xenstore::Platform`], so the same code runs
//! on the host (tests against the real xenstored) and in the kernel.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod bus;
mod device;
mod driver;
pub mod error;
pub mod frontend;
mod guest;
mod otherend;
pub mod resources;
pub mod services;
mod state;
mod sync;

pub use bus::{Bus, BusConfig, DeviceInfo, PlatformSuspend, SuspendOutcome};
pub use device::Device;
pub use driver::Driver;
pub use error::{BusError, PowerError, ResourceError, ServiceError};
pub use guest::{Guest, GuestConfig, GuestOs, StartError};
pub use otherend::{Otherend, OtherendState};
pub use resources::{DeviceResources, DomId, GrantRef, GrantedPage, Port, UnsupportedResources};
pub use state::{InvalidState, StateSet, XenbusState};
