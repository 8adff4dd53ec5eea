//! A sample frontend driver: the XenBus handshake of a Linux frontend
//! (blkfront's shape), without a data path.
//!
//! | backend goes to | our state | we do |
//! |---|---|---|
//! | (probe) | Initialising | read the backend's details (the bus does) |
//! | InitWait | Initialising → Initialised | publish the ring, see below |
//! | Connected | Initialised → Connected | (from Initialising: publish first) |
//! | Closing, Closed, or its directory removed | → Closing → Closed | release the ring |
//!
//! **No data path.** A real frontend grants a ring page and allocates an
//! unbound event channel, then writes `ring-ref` and `event-channel` under
//! its node (in one transaction) before switching to Initialised. This
//! driver asks the platform for both through [`Device::grant_ring`] and
//! [`Device::alloc_evtchn`] and publishes them when it gets them (real
//! Xen). Where the platform answers "unsupported" (the QEMU test platform)
//! it publishes neither and still walks the handshake: a real backend would
//! then fail to connect and say so in its own `error/` node; a backend
//! played by the host is not affected. Any other failure is fatal for the
//! device (`dev_fatal`: error node, then Closing).
//!
//! Linux's `xenbus_frontend_closed` goes straight to Closed; this driver
//! writes Closing first so a backend watching us sees the teardown start.

use alloc::sync::Arc;
use core::marker::PhantomData;

use xenstore::{Lock, Platform};

use crate::device::Device;
use crate::driver::Driver;
use crate::error::{BusError, ResourceError};
use crate::otherend::OtherendState;
use crate::resources::{EvtchnPort, GrantedPage};
use crate::state::XenbusState;

/// What one device holds while connected.
#[derive(Default)]
struct Rings {
    page: Option<GrantedPage>,
    port: Option<EvtchnPort>,
}

/// Per-device data of the sample frontend.
struct FrontendData<P: Platform> {
    /// Guards the granted page and port. Taken alone.
    rings: P::Lock<Rings>,
}

/// The sample frontend driver. Register one per class it should drive,
/// e.g. `bus.register_driver("vif", Arc::new(SampleFrontend::new()))`.
pub struct SampleFrontend<P: Platform> {
    _platform: PhantomData<fn() -> P>,
}

impl<P: Platform> Default for SampleFrontend<P> {
    fn default() -> Self {
        SampleFrontend::new()
    }
}

impl<P: Platform> SampleFrontend<P> {
    /// A sample frontend.
    pub fn new() -> Self {
        SampleFrontend {
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

    /// Linux's `talk_to_blkback`: publish what the backend needs, then
    /// switch to Initialised.
    fn publish(dev: &Device<P>) -> Result<(), BusError> {
        let unsupported = |e: &BusError| {
            matches!(
                e,
                BusError::Resource {
                    source: ResourceError::Unsupported { .. },
                    ..
                }
            )
        };
        let page = match dev.grant_ring() {
            Ok(page) => Some(page),
            Err(e) if unsupported(&e) => None,
            Err(e) => return Err(e),
        };
        let port = match page.as_ref().map(|_| dev.alloc_evtchn()) {
            Some(Ok(port)) => Some(port),
            Some(Err(e)) => {
                if let Some(p) = page {
                    let _ = dev.end_ring_grant(p);
                }
                return if unsupported(&e) {
                    Self::no_data_path(dev, &e)
                } else {
                    Err(e)
                };
            }
            None => None,
        };
        match (page, port) {
            (Some(page), Some(port)) => {
                let (ring_ref, evtchn) = (dev.path("ring-ref"), dev.path("event-channel"));
                let written = dev.store().transaction(|t| {
                    use xenstore::Store;
                    t.write_display(&ring_ref, page.gref().0)?;
                    t.write_display(&evtchn, port.0)
                });
                Self::data(dev).rings.with(|r| {
                    r.page = Some(page);
                    r.port = Some(port);
                });
                written.map_err(|e| BusError::store("publishing the ring", e))?;
            }
            _ => log::info!("xenbus: {}: no data path on this platform", dev.nodename()),
        }
        dev.switch_state(XenbusState::Initialised)
    }

    fn no_data_path(dev: &Device<P>, why: &BusError) -> Result<(), BusError> {
        log::info!("xenbus: {}: no data path: {why}", dev.nodename());
        dev.switch_state(XenbusState::Initialised)
    }

    /// Gives the page and port back to the platform.
    fn release(dev: &Device<P>) {
        let Some(data) = dev.driver_data::<FrontendData<P>>() else {
            return;
        };
        let rings = data.rings.with(core::mem::take);
        if let Some(port) = rings.port
            && let Err(e) = dev.free_evtchn(port)
        {
            log::warn!("xenbus: {}: {e}", dev.nodename());
        }
        if let Some(page) = rings.page
            && let Err(e) = dev.end_ring_grant(page)
        {
            log::warn!("xenbus: {}: {e}", dev.nodename());
        }
    }

    /// Closing, release, Closed.
    fn close(dev: &Device<P>) {
        if dev.state() == XenbusState::Closed {
            return;
        }
        let _ = dev.switch_state(XenbusState::Closing);
        Self::release(dev);
        if let Err(e) = dev.switch_state(XenbusState::Closed) {
            log::warn!("xenbus: {}: cannot close: {e}", dev.nodename());
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
                Self::publish(dev)
            }
            OtherendState::Known(XenbusState::Connected) => {
                let published = if ours == XenbusState::Initialising {
                    // The backend skipped InitWait: publish on the way.
                    Self::publish(dev)
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
