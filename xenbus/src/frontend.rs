//! The frontend driver: the XenBus handshake of a Linux frontend, speaking
//! a ring protocol ([`RingProtocol`]) as far as the handshake needs,
//! without moving data.
//!
//! | backend goes to | our state | we do |
//! |---|---|---|
//! | (probe) | Initialising | read the backend's details (the bus does) |
//! | InitWait | Initialising → Initialised (netif: → Connected) | publish the rings, see below |
//! | Connected | Initialised → Connected | (from Initialising: publish first) |
//! | Closing, Closed, or its directory removed | → Closing → Closed | release the rings |
//!
//! **Publishing.** A frontend grants its ring pages to the backend,
//! allocates an unbound event channel for it, and writes the references,
//! the port and the protocol's other keys under its node in one
//! transaction: for blkif (`public/io/blkif.h`) `ring-ref`,
//! `event-channel` and `protocol`; for netif (`public/io/netif.h`)
//! `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy` and
//! `feature-rx-notify`. A blkif frontend then says Initialised and waits
//! for the backend's Connected (blkfront). A netif frontend says Connected
//! at once, as netfront does: Linux netback maps the rings only when the
//! frontend is Connected.
//!
//! **No data path.** Where the platform has no grant table (the QEMU test
//! platform answers "unsupported") the driver says so in the log, publishes
//! nothing and walks the handshake the generic way (Initialised, then
//! Connected once the backend is): a real backend would fail to connect and
//! say so in its own `error/` node; a backend played by the host is not
//! affected. Any other failure is fatal for the device (`dev_fatal`: error
//! node, then Closing).
//!
//! **Teardown.** Closing releases the port and ends the grants. A grant
//! the backend still maps cannot end (Xen would let the backend keep
//! writing to a page we reuse): its page is kept and the grant is ended
//! again when the backend reaches Closed or goes away, or the device is
//! detached; only then is the page freed.
//!
//! Linux's `xenbus_frontend_closed` goes straight to Closed; this driver
//! writes Closing first so a backend watching us sees the teardown start.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;

use xenstore::{Lock, Platform};

use crate::device::Device;
use crate::driver::Driver;
use crate::error::{BusError, ResourceError};
use crate::otherend::OtherendState;
use crate::resources::{GrantedPage, Port};
use crate::state::XenbusState;

/// The ring protocol a frontend speaks in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingProtocol {
    /// One ring: `ring-ref` and `event-channel`; Initialised, then
    /// Connected once the backend is. The shape of every split driver,
    /// for classes without a protocol of their own.
    Generic,
    /// The block protocol of `public/io/blkif.h`: one ring (`ring-ref`),
    /// `event-channel`, and `protocol` naming the request layout
    /// (`x86_64-abi`); then as [`RingProtocol::Generic`].
    Blkif,
    /// The network protocol of `public/io/netif.h`: a transmit and a
    /// receive ring (`tx-ring-ref`, `rx-ring-ref`), one `event-channel` for
    /// both, `request-rx-copy = 1` (the backend copies into our buffers;
    /// netback supports nothing else) and `feature-rx-notify = 1`; then
    /// Connected without waiting for the backend.
    Netif,
}

/// The blkif request layout of an x86_64 guest (`XEN_IO_PROTO_ABI_X86_64`
/// in `public/io/protocols.h`).
pub const BLKIF_PROTOCOL_X86_64: &str = "x86_64-abi";

impl RingProtocol {
    /// The keys naming the ring pages, in the order they are granted.
    pub fn ring_keys(self) -> &'static [&'static str] {
        match self {
            RingProtocol::Generic | RingProtocol::Blkif => &["ring-ref"],
            RingProtocol::Netif => &["tx-ring-ref", "rx-ring-ref"],
        }
    }

    /// The protocol's constant keys, written with the rings.
    pub fn extra_keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RingProtocol::Generic => &[],
            RingProtocol::Blkif => &[("protocol", BLKIF_PROTOCOL_X86_64)],
            RingProtocol::Netif => &[("request-rx-copy", "1"), ("feature-rx-notify", "1")],
        }
    }

    /// The state we switch to once the rings are published.
    pub fn published_state(self) -> XenbusState {
        match self {
            RingProtocol::Generic | RingProtocol::Blkif => XenbusState::Initialised,
            RingProtocol::Netif => XenbusState::Connected,
        }
    }
}

/// What one device holds while connected, and what it could not give
/// back yet.
#[derive(Default)]
struct Rings {
    pages: Vec<GrantedPage>,
    port: Option<Port>,
    /// Pages whose grant the backend still mapped when we released them.
    lingering: Vec<GrantedPage>,
}

/// Per-device data of the frontend.
struct FrontendData<P: Platform> {
    /// Guards the granted pages and port. Taken alone.
    rings: P::Lock<Rings>,
}

/// The frontend driver. Register one per class it should drive, e.g.
/// `bus.register_driver("vif", Arc::new(SampleFrontend::with_protocol(RingProtocol::Netif)))`.
pub struct SampleFrontend<P: Platform> {
    protocol: RingProtocol,
    _platform: PhantomData<fn() -> P>,
}

impl<P: Platform> Default for SampleFrontend<P> {
    fn default() -> Self {
        SampleFrontend::new()
    }
}

impl<P: Platform> SampleFrontend<P> {
    /// A frontend of the generic shape ([`RingProtocol::Generic`]).
    pub fn new() -> Self {
        SampleFrontend::with_protocol(RingProtocol::Generic)
    }

    /// A frontend speaking `protocol`.
    pub fn with_protocol(protocol: RingProtocol) -> Self {
        SampleFrontend {
            protocol,
            _platform: PhantomData,
        }
    }

    fn data(dev: &Device<P>) -> Arc<FrontendData<P>> {
        dev.driver_data::<FrontendData<P>>().unwrap_or_else(|| {
            let data = Arc::new(FrontendData {
                rings: Lock::new(Rings::default()),
            });
            dev.set_driver_data(Arc::clone(&data));
            data
        })
    }

    /// Linux's `talk_to_blkback` / `talk_to_netback`: grant the rings,
    /// allocate the port, publish them with the protocol's keys, then
    /// switch state.
    fn publish(&self, dev: &Device<P>) -> Result<(), BusError> {
        let mut pages = Vec::new();
        for _ in self.protocol.ring_keys() {
            match dev.grant_ring() {
                Ok(page) => pages.push(page),
                Err(e) => {
                    Self::end_grants(dev, pages);
                    return self.unsupported_or(dev, e);
                }
            }
        }
        let port = match dev.alloc_evtchn() {
            Ok(port) => port,
            Err(e) => {
                Self::end_grants(dev, pages);
                return self.unsupported_or(dev, e);
            }
        };
        let protocol = self.protocol;
        let written = dev.store().transaction(|t| {
            use xenstore::Store;
            for (key, page) in protocol.ring_keys().iter().zip(&pages) {
                t.write_display(&dev.path(key), page.gref().0)?;
            }
            t.write_display(&dev.path("event-channel"), port.get())?;
            for (key, value) in protocol.extra_keys() {
                t.write(&dev.path(key), value)?;
            }
            Ok(())
        });
        Self::data(dev).rings.with(|r| {
            r.pages = pages;
            r.port = Some(port);
        });
        written.map_err(|e| BusError::store("publishing the rings", e))?;
        dev.switch_state(protocol.published_state())
    }

    /// Without a grant table the handshake goes on without a data path;
    /// any other error is the caller's.
    fn unsupported_or(&self, dev: &Device<P>, e: BusError) -> Result<(), BusError> {
        match e {
            BusError::Resource {
                source: source @ ResourceError::Unsupported { .. },
                ..
            } => {
                log::info!(
                    "xenbus: {}: no data path on this platform ({source})",
                    dev.nodename()
                );
                dev.switch_state(XenbusState::Initialised)
            }
            e => Err(e),
        }
    }

    /// Ends the grants of `pages`, keeping those still mapped for later.
    fn end_grants(dev: &Device<P>, pages: Vec<GrantedPage>) {
        for page in pages {
            if let Err((page, e)) = dev.try_end_ring_grant(page) {
                log::info!("xenbus: {}: ring page kept: {e}", dev.nodename());
                Self::data(dev).rings.with(|r| r.lingering.push(page));
            }
        }
    }

    /// Gives the port and pages back to the platform, and the pages kept
    /// earlier whose grant the backend has let go of since.
    fn release(dev: &Device<P>) {
        let Some(data) = dev.driver_data::<FrontendData<P>>() else {
            return;
        };
        let (port, pages, lingering) = data.rings.with(|r| {
            (
                r.port.take(),
                core::mem::take(&mut r.pages),
                core::mem::take(&mut r.lingering),
            )
        });
        if let Some(port) = port
            && let Err(e) = dev.free_evtchn(port)
        {
            log::warn!("xenbus: {}: {e}", dev.nodename());
        }
        Self::end_grants(dev, pages);
        for page in lingering {
            match dev.try_end_ring_grant(page) {
                Ok(()) => log::info!(
                    "xenbus: {}: kept ring page released: the backend let go of it",
                    dev.nodename()
                ),
                Err((page, _)) => data.rings.with(|r| r.lingering.push(page)),
            }
        }
    }

    /// Closing, release, Closed.
    fn close(dev: &Device<P>) {
        if dev.state() == XenbusState::Closed {
            // Closed already: only what was still mapped is left to free.
            Self::release(dev);
            return;
        }
        let _ = dev.switch_state(XenbusState::Closing);
        Self::release(dev);
        match dev.switch_state(XenbusState::Closed) {
            Ok(()) => log::info!("xenbus: {}: closed", dev.nodename()),
            Err(e) => log::warn!("xenbus: {}: cannot close: {e}", dev.nodename()),
        }
    }
}
impl<P: Platform> Driver<P> for SampleFrontend<P> {
    fn probe(&self, dev: &Device<P>) -> Result<(), BusError> {
        // Nothing to check without a data path: any device of the class
        // with a readable backend (the bus checked that) is ours.
        Self::data(dev);
        Ok(())
    }

    fn attach(&self, dev: &Device<P>) -> Result<(), BusError> {
        dev.switch_state(XenbusState::Initialising)
    }

    fn detach(&self, dev: &Device<P>) {
        Self::release(dev);
    }

    fn otherend_changed(&self, dev: &Device<P>, state: &OtherendState) {
        let ours = dev.state();
        let result = match state {
            OtherendState::Known(XenbusState::InitWait) if ours == XenbusState::Initialising => {
                self.publish(dev)
            }
            OtherendState::Known(XenbusState::Connected) => {
                let published = if ours == XenbusState::Initialising {
                    // The backend skipped InitWait: publish on the way.
                    self.publish(dev)
                } else {
                    Ok(())
                };
                published.and_then(|()| match dev.state() {
                    XenbusState::Initialised => dev.switch_state(XenbusState::Connected),
                    _ => Ok(()),
                })
            }
            OtherendState::Known(XenbusState::Closing | XenbusState::Closed)
            | OtherendState::Gone => {
                Self::close(dev);
                Ok(())
            }
            OtherendState::Known(_) => Ok(()),
            OtherendState::Invalid { value } => {
                let err = BusError::BadValue {
                    path: dev.otherend().map(|o| o.state_path()).unwrap_or_default(),
                    value: value.clone(),
                    expected: "a XenbusState number (0-8)",
                };
                dev.dev_error(&err, "reading the backend's state");
                Ok(())
            }
        };
        match result {
            Ok(()) | Err(BusError::DeviceRemoved { .. }) => {}
            Err(e) => dev.dev_fatal(&e, "connecting to the backend"),
        }
    }

    fn resume(&self, dev: &Device<P>) -> Result<(), BusError> {
        // The backend is a new one: drop the old ring, start over
        // (netfront_resume / blkfront_resume).
        Self::release(dev);
        dev.switch_state(XenbusState::Initialising)
    }
}
