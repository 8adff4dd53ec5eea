//! A device on the bus, as drivers see it: its node, its other end, and
//! the helpers FreeBSD's `xenbus.c` and Linux's `xenbus_client.c` give
//! drivers (set our state, wait for the other end, report errors, grant a
//! ring page, allocate an event channel).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::any::Any;
use core::time::Duration;

use xenstore::{Client, Lock, Platform, Store, WaitQueue, Watch, path};

use crate::error::BusError;
use crate::otherend::{Otherend, OtherendState};
use crate::resources::{DeviceResources, DomId, GrantedPage, Port};
use crate::state::{StateSet, XenbusState};

/// What the bus and the other end's watch keep about a device.
pub(crate) struct DeviceState {
    /// Our state as we last wrote it (Linux's `dev->state`); writes of the
    /// same state are skipped so watchers are not woken for nothing.
    pub(crate) ours: XenbusState,
    /// Where the other end is, once read.
    pub(crate) otherend: Option<Otherend>,
    /// The other end's state as last read (`None` before the first read).
    pub(crate) seen: Option<OtherendState>,
    /// The other end's state read since the driver was last told, waiting
    /// for the bus worker. At most one: a newer read replaces it, so a
    /// peer flipping its state cannot grow the worker's queue.
    pub(crate) otherend_queued: Option<OtherendState>,
    /// The device node was removed; the device is (being) detached.
    pub(crate) removed: bool,
    /// The driver bound to it, if any.
    pub(crate) driver: Option<String>,
    /// The last error reported with `dev_error`.
    pub(crate) last_error: Option<BusError>,
}

pub(crate) struct DeviceInner<P: Platform> {
    pub(crate) nodename: String,
    pub(crate) class: String,
    pub(crate) id: String,
    pub(crate) xs: Client<P>,
    pub(crate) resources: Arc<dyn DeviceResources>,
    /// Guards [`DeviceState`]. A leaf lock: taken alone, and wait
    /// conditions on `changed` take it.
    pub(crate) state: P::Lock<DeviceState>,
    /// Woken when `seen` or `removed` changes.
    pub(crate) changed: P::WaitQueue,
    /// The watch on the other end's `state`. Only the bus worker sets or
    /// takes it; taken alone, and the watch is dropped outside it.
    pub(crate) otherend_watch: P::Lock<Option<Watch<P>>>,
    /// The driver's per-device data. Taken alone.
    driver_data: P::Lock<Option<Arc<dyn Any + Send + Sync>>>,
}

/// A handle on a device of the bus (cheap to clone). Drivers get one in
/// each callback; [`crate::Bus::device`] gives one to anybody.
pub struct Device<P: Platform> {
    pub(crate) inner: Arc<DeviceInner<P>>,
}

impl<P: Platform> Clone for Device<P> {
    fn clone(&self) -> Self {
        Device {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Platform> Device<P> {
    pub(crate) fn new(
        xs: Client<P>,
        resources: Arc<dyn DeviceResources>,
        nodename: String,
        class: &str,
        id: &str,
        ours: XenbusState,
    ) -> Device<P> {
        Device {
            inner: Arc::new(DeviceInner {
                nodename,
                class: String::from(class),
                id: String::from(id),
                xs,
                resources,
                state: Lock::new(DeviceState {
                    ours,
                    otherend: None,
                    seen: None,
                    otherend_queued: None,
                    removed: false,
                    driver: None,
                    last_error: None,
                }),
                changed: WaitQueue::new(),
                otherend_watch: Lock::new(None),
                driver_data: Lock::new(None),
            }),
        }
    }

    /// Our node, relative to the domain's home: `device/<class>/<id>`.
    pub fn nodename(&self) -> &str {
        &self.inner.nodename
    }

    /// The device class (`vif`, `vbd`, `console`, ...).
    pub fn class(&self) -> &str {
        &self.inner.class
    }

    /// The device id within its class (the last path component).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// `name` under our node, e.g. `path("ring-ref")`.
    pub fn path(&self, name: &str) -> String {
        path::join(&self.inner.nodename, name)
    }

    /// The xenstore client the bus runs on.
    pub fn store(&self) -> &Client<P> {
        &self.inner.xs
    }

    /// The other end's path and domain, once the bus has read them (before
    /// `probe` is called; again after a resume).
    pub fn otherend(&self) -> Option<Otherend> {
        self.inner.state.with(|s| s.otherend.clone())
    }

    /// Our state as we last wrote it.
    pub fn state(&self) -> XenbusState {
        self.inner.state.with(|s| s.ours)
    }

    /// The other end's state as last read (its watch keeps it current);
    /// `None` before the first read.
    pub fn otherend_state(&self) -> Option<OtherendState> {
        self.inner.state.with(|s| s.seen.clone())
    }

    /// Whether the device node was removed (the device is detached or
    /// being detached).
    pub fn is_removed(&self) -> bool {
        self.inner.state.with(|s| s.removed)
    }

    /// The last error reported with [`Device::dev_error`].
    pub fn last_error(&self) -> Option<BusError> {
        self.inner.state.with(|s| s.last_error.clone())
    }

    /// Writes our `state` node, as Linux's `xenbus_switch_state`: nothing
    /// if `new` is what we last wrote; otherwise, in a transaction, write it
    /// only if the node still exists, so a device being torn down is not
    /// resurrected. (The current value is not checked: we own the node.)
    ///
    /// Errors: [`BusError::DeviceRemoved`] if the node is gone (nothing is
    /// written); [`BusError::Store`] if the write fails, which is also
    /// reported with [`Device::dev_error`].
    pub fn switch_state(&self, new: XenbusState) -> Result<(), BusError> {
        if self.state() == new {
            return Ok(());
        }
        let node = self.path("state");
        let written = self.inner.xs.transaction(|t| {
            if t.read_optional(&node)?.is_none() {
                return Ok(false);
            }
            t.write_display(&node, new.raw()).map(|()| true)
        });
        match written {
            Ok(true) => {
                self.inner.state.with(|s| s.ours = new);
                Ok(())
            }
            Ok(false) => Err(BusError::DeviceRemoved {
                nodename: self.inner.nodename.clone(),
            }),
            Err(e) => {
                let err = BusError::store("writing our new state", e);
                self.dev_error(&err, "switching state");
                Err(err)
            }
        }
    }

    /// Waits until the other end's state is in `wanted` and returns it.
    /// The latest state is compared, so a state the other end passes
    /// through quickly may be missed: wait for every acceptable state.
    ///
    /// Runs on any thread, including the bus worker (the other end's watch
    /// updates the state from a xenstore callback thread).
    ///
    /// Errors: [`BusError::Timeout`] after `timeout`;
    /// [`BusError::OtherendClosed`] if it goes Closing or Closed and
    /// neither is wanted; [`BusError::OtherendGone`] if its directory
    /// disappears; [`BusError::BadValue`] if its `state` is garbage;
    /// [`BusError::DeviceRemoved`] if our device is removed;
    /// [`BusError::NoOtherend`] if the other end is not known.
    pub fn wait_for_otherend(
        &self,
        wanted: StateSet,
        timeout: Duration,
    ) -> Result<XenbusState, BusError> {
        let inner = &self.inner;
        let mut outcome = None;
        let mut decided = || {
            inner.state.with(|s| {
                outcome = verdict(&inner.nodename, s, wanted);
                outcome.is_some()
            })
        };
        inner.changed.wait_until(&mut decided, Some(timeout));
        outcome.unwrap_or_else(|| {
            Err(BusError::Timeout {
                nodename: inner.nodename.clone(),
                wanted,
                last: inner
                    .state
                    .with(|s| s.seen.as_ref().and_then(OtherendState::state)),
                waited: timeout,
            })
        })
    }

    /// Reports `err` to the toolstack as Linux's `xenbus_dev_error` does:
    /// writes `"<errno> <doing>: <err>"` to `error/<nodename>/error` under
    /// our home, logs it, and keeps it as [`Device::last_error`]. A failure
    /// to write is only logged (there is nowhere else to report it).
    pub fn dev_error(&self, err: &BusError, doing: &str) {
        let message = format!("{} {doing}: {err}", err.errno());
        log::warn!("xenbus: {}: {message}", self.inner.nodename);
        self.inner.state.with(|s| s.last_error = Some(err.clone()));
        let node = path::join(&path::join("error", &self.inner.nodename), "error");
        if let Err(e) = self.inner.xs.write(&node, &message) {
            log::warn!("xenbus: could not write {node}: {e}");
        }
    }

    /// [`Device::dev_error`], then switch to Closing for an orderly close
    /// of both ends (Linux's `xenbus_dev_fatal`).
    pub fn dev_fatal(&self, err: &BusError, doing: &str) {
        self.dev_error(err, doing);
        if let Err(e) = self.switch_state(XenbusState::Closing) {
            log::warn!(
                "xenbus: {}: cannot switch to Closing: {e}",
                self.inner.nodename
            );
        }
    }

    /// Has the platform allocate a page and grant it to the other end
    /// (Linux's `xenbus_grant_ring` for one page). Unlike Linux this does
    /// not `dev_fatal` on failure: "unsupported here" is a normal answer
    /// on the QEMU test platform, and the driver decides.
    ///
    /// Errors: [`BusError::NoOtherend`]; [`BusError::Resource`].
    pub fn grant_ring(&self) -> Result<GrantedPage, BusError> {
        let remote = self.otherend_id()?;
        self.inner
            .resources
            .grant_ring_page(remote)
            .map_err(|source| self.resource_error(source))
    }

    /// Ends a grant from [`Device::grant_ring`] and frees its page.
    /// Errors: [`BusError::Resource`].
    pub fn end_ring_grant(&self, page: GrantedPage) -> Result<(), BusError> {
        self.inner
            .resources
            .end_ring_grant(page)
            .map_err(|source| self.resource_error(source))
    }

    /// [`Device::end_ring_grant`], but a page the other end still maps is
    /// given back with the error ([`ResourceError::StillMapped`]), to be
    /// ended later. On any other error the page is lost to the caller.
    ///
    /// [`ResourceError::StillMapped`]: crate::ResourceError::StillMapped
    pub fn try_end_ring_grant(&self, page: GrantedPage) -> Result<(), (GrantedPage, BusError)> {
        // SAFETY: `kept` is used only when the platform answered
        // StillMapped, which by `DeviceResources::end_ring_grant`'s contract
        // changed nothing: the page stays allocated and granted, and the
        // value passed in is gone, so `kept` is its only owner. Otherwise
        // `kept` is dropped unused (a GrantedPage frees nothing on drop).
        let kept = unsafe { GrantedPage::new(page.gref(), page.addr()) };
        match self.inner.resources.end_ring_grant(page) {
            Ok(()) => Ok(()),
            Err(source @ crate::error::ResourceError::StillMapped { .. }) => {
                Err((kept, self.resource_error(source)))
            }
            Err(source) => {
                log::warn!(
                    "xenbus: {}: ring page given up: {}",
                    self.inner.nodename,
                    self.resource_error(source)
                );
                Ok(())
            }
        }
    }

    /// Allocates an event channel the other end may bind to (Linux's
    /// `xenbus_alloc_evtchn`). Errors as for [`Device::grant_ring`].
    pub fn alloc_evtchn(&self) -> Result<Port, BusError> {
        let remote = self.otherend_id()?;
        self.inner
            .resources
            .alloc_unbound_evtchn(remote)
            .map_err(|source| self.resource_error(source))
    }

    /// Closes a port from [`Device::alloc_evtchn`].
    /// Errors: [`BusError::Resource`].
    pub fn free_evtchn(&self, port: Port) -> Result<(), BusError> {
        self.inner
            .resources
            .close_evtchn(port)
            .map_err(|source| self.resource_error(source))
    }

    /// Stores the driver's per-device data (replacing any).
    pub fn set_driver_data<T: Any + Send + Sync>(&self, data: Arc<T>) {
        let data: Arc<dyn Any + Send + Sync> = data;
        let old = self.inner.driver_data.with(|d| d.replace(data));
        drop(old); // Outside the lock: it may run arbitrary Drop code.
    }

    /// The driver's per-device data, if it is a `T`.
    pub fn driver_data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let data = self.inner.driver_data.with(|d| d.clone())?;
        data.downcast::<T>().ok()
    }

    /// Drops the driver's per-device data.
    pub(crate) fn clear_driver_data(&self) {
        let old = self.inner.driver_data.with(Option::take);
        drop(old);
    }

    fn otherend_id(&self) -> Result<DomId, BusError> {
        self.otherend()
            .map(|o| o.id)
            .ok_or_else(|| BusError::NoOtherend {
                nodename: self.inner.nodename.clone(),
            })
    }

    fn resource_error(&self, source: crate::error::ResourceError) -> BusError {
        BusError::Resource {
            nodename: self.inner.nodename.clone(),
            source,
        }
    }
}

/// The outcome of a wait given the device's state, or `None` to keep waiting.
fn verdict(
    nodename: &str,
    s: &DeviceState,
    wanted: StateSet,
) -> Option<Result<XenbusState, BusError>> {
    let nodename = || String::from(nodename);
    if s.removed {
        return Some(Err(BusError::DeviceRemoved {
            nodename: nodename(),
        }));
    }
    let Some(otherend) = &s.otherend else {
        return Some(Err(BusError::NoOtherend {
            nodename: nodename(),
        }));
    };
    match s.seen.as_ref()? {
        OtherendState::Known(state) if wanted.contains(*state) => Some(Ok(*state)),
        OtherendState::Known(state) if state.is_closing() => Some(Err(BusError::OtherendClosed {
            nodename: nodename(),
            state: *state,
        })),
        OtherendState::Known(_) => None,
        OtherendState::Gone => Some(Err(BusError::OtherendGone {
            nodename: nodename(),
            otherend: otherend.path.clone(),
        })),
        OtherendState::Invalid { value } => Some(Err(BusError::BadValue {
            path: otherend.state_path(),
            value: value.clone(),
            expected: "a XenbusState number (0-8)",
        })),
    }
}
