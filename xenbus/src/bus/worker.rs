//! The bus worker: one thread that handles the bus's work items in order
//! and runs every driver callback.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use xenstore::{Lock, Platform, Store, WaitQueue, WatchEvent, XsError, path};

use super::{BusShared, PlatformSuspend, SuspendOutcome};
use crate::device::Device;
use crate::driver::Driver;
use crate::error::{BusError, shown};
use crate::otherend::{self, OtherendState};
use crate::state::XenbusState;
use crate::sync::Completion;

/// A job for the worker.
pub(crate) enum Work<P: Platform> {
    /// Something changed under the root: the paths are in
    /// [`BusShared::rescans`] (at most one such item is queued).
    Rescan,
    /// The other end of this device was read in a new state, kept in the
    /// device (at most one such item per device is queued).
    Otherend(Device<P>),
    /// A driver was registered for this class: bind its devices.
    Bind(String),
    /// Suspend and resume the bus around the platform step.
    Suspend(
        Arc<Completion<P, Result<SuspendOutcome, BusError>>>,
        PlatformSuspend,
    ),
    /// Signal when everything queued before is done.
    Barrier(Arc<Completion<P, ()>>),
    /// Stop watching, and end the worker.
    Stop(Arc<Completion<P, ()>>),
}

/// The worker's loop: runs until `Stop`. Work still queued behind `Stop`
/// (the other ends' last events, raced in before they were unwatched) is
/// dropped: once the bus is stopped no driver callback runs.
pub(super) fn run<P: Platform>(bus: &Arc<BusShared<P>>) {
    while let Some(work) = bus.work.pop() {
        match work {
            Work::Rescan => {
                let pending = bus.rescans.with(core::mem::take);
                if pending.all {
                    rescan_all(bus);
                } else {
                    pending.paths.iter().for_each(|p| rescan(bus, Some(p)));
                }
            }
            Work::Otherend(dev) => {
                if let Some(state) = dev.inner.state.with(|s| s.otherend_queued.take()) {
                    otherend_changed(bus, &dev, &state);
                }
            }
            Work::Bind(class) => bind_class(bus, &class),
            Work::Suspend(done, step) => done.complete(suspend_resume(bus, step)),
            Work::Barrier(done) => done.complete(()),
            Work::Stop(done) => {
                bus.work.close();
                let devices: Vec<Device<P>> =
                    bus.registry.with(|r| r.devices.values().cloned().collect());
                devices.iter().for_each(unwatch_otherend);
                done.complete(());
                return;
            }
        }
    }
}

/// Reconciles the bus with the store after a change at `changed`.
fn rescan<P: Platform>(bus: &Arc<BusShared<P>>, changed: Option<&str>) {
    // Events name paths relative to our home (the watch path is relative).
    let below = changed.and_then(|p| p.strip_prefix(bus.root.as_str()));
    let parts: Vec<&str> = match below {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            rest.split('/').filter(|s| !s.is_empty()).collect()
        }
        _ => Vec::new(), // Unknown shape: look at everything.
    };
    if parts.len() < 2 {
        return rescan_all(bus);
    }
    let (class, id) = (parts[0], parts[1]);
    let nodename = path::join(&path::join(&bus.root, class), id);
    match bus.registry.with(|r| r.devices.get(&nodename).cloned()) {
        // A write below a known device: it still exists (its removal would
        // be reported at the device node itself).
        Some(_) if parts.len() > 2 => {}
        Some(dev) => match bus.xs.exists(&nodename) {
            Ok(true) => {}
            Ok(false) => detach(bus, &dev),
            Err(e) => bus.problem(&nodename, BusError::store("checking the device exists", e)),
        },
        None => consider_new(bus, class, id),
    }
}

/// Lists every `<class>/<id>`: probes new ones, detaches vanished ones.
fn rescan_all<P: Platform>(bus: &Arc<BusShared<P>>) {
    let listed = |dir: &str| match bus.xs.directory(dir) {
        Ok(names) => Some(names),
        Err(XsError::Enoent(_)) => Some(Vec::new()),
        Err(e) => {
            bus.problem(dir, BusError::store("listing devices", e));
            None
        }
    };
    let Some(classes) = listed(&bus.root) else {
        return;
    };
    let mut present = BTreeSet::new();
    for class in &classes {
        let Some(ids) = listed(&path::join(&bus.root, class)) else {
            return;
        };
        for id in ids {
            present.insert((class.clone(), id));
        }
    }
    let known: Vec<Device<P>> = bus.registry.with(|r| r.devices.values().cloned().collect());
    for dev in &known {
        if !present.contains(&(dev.inner.class.clone(), dev.inner.id.clone())) {
            detach(bus, dev);
        }
    }
    for (class, id) in &present {
        let nodename = path::join(&path::join(&bus.root, class), id);
        if bus.registry.with(|r| !r.devices.contains_key(&nodename)) {
            consider_new(bus, class, id);
        }
    }
}

/// A device node we do not know: take it if its state says it is new
/// (Initialising), as Linux's `xenbus_probe_node` does.
fn consider_new<P: Platform>(bus: &Arc<BusShared<P>>, class: &str, id: &str) {
    let nodename = path::join(&path::join(&bus.root, class), id);
    let state_path = path::join(&nodename, "state");
    let state = match bus.xs.read_optional(&state_path) {
        // Not written yet (the toolstack is still creating it): a later
        // event brings us back.
        Ok(None) => return,
        Ok(Some(value)) => match XenbusState::parse(&value) {
            Ok(state) => state,
            Err(_) => {
                let err = BusError::BadValue {
                    path: state_path,
                    value: shown(&value),
                    expected: "a XenbusState number (0-8)",
                };
                return bus.problem(&nodename, err);
            }
        },
        Err(XsError::Enoent(_)) => return, // Removed meanwhile.
        Err(e) => {
            return bus.problem(
                &nodename,
                BusError::store("reading a new device's state", e),
            );
        }
    };
    if state != XenbusState::Initialising {
        // Not new: e.g. closed after a failed probe, or going away.
        log::debug!("xenbus: {nodename}: ignored in state {state}");
        return;
    }
    let dev = Device::new(
        bus.xs.clone(),
        Arc::clone(&bus.resources),
        nodename.clone(),
        class,
        id,
        state,
    );
    bus.registry
        .with(|r| r.devices.insert(nodename, dev.clone()));
    if let Some(driver) = bus.driver_for(class) {
        bind(bus, &dev, &driver);
    }
}

/// Binds the unbound devices of `class` to its (new) driver.
fn bind_class<P: Platform>(bus: &Arc<BusShared<P>>, class: &str) {
    let Some(driver) = bus.driver_for(class) else {
        return;
    };
    let devices: Vec<Device<P>> = bus.registry.with(|r| {
        r.devices
            .values()
            .filter(|d| d.inner.class == class)
            .cloned()
            .collect()
    });
    for dev in devices {
        let unbound = dev.inner.state.with(|s| s.driver.is_none() && !s.removed);
        if unbound && dev.state() == XenbusState::Initialising {
            bind(bus, &dev, &driver);
        }
    }
}

/// Reads the other end, watches it, then probes and attaches. Any failure
/// leaves the device unbound, reported, and Closed.
fn bind<P: Platform>(bus: &Arc<BusShared<P>>, dev: &Device<P>, driver: &Arc<dyn Driver<P>>) {
    let steps = || -> Result<(), (BusError, &'static str)> {
        let otherend = otherend::read_details(&bus.xs, dev.nodename())
            .map_err(|e| (e, "reading the other end's details"))?;
        dev.inner.state.with(|s| {
            s.otherend = Some(otherend);
            s.seen = None;
            s.driver = Some(dev.inner.class.clone());
        });
        watch_otherend(bus, dev).map_err(|e| (e, "watching the other end"))?;
        driver.probe(dev).map_err(|e| (e, "probe"))?;
        driver.attach(dev).map_err(|e| (e, "attach"))
    };
    if let Err((err, doing)) = steps() {
        unwatch_otherend(dev);
        dev.inner.state.with(|s| s.driver = None);
        dev.clear_driver_data();
        dev.dev_error(&err, doing);
        if let Err(e) = dev.switch_state(XenbusState::Closed) {
            log::warn!("xenbus: {}: cannot switch to Closed: {e}", dev.nodename());
        }
    }
}

/// Watches the other end's `state`. The callback (a xenstore callback thread)
/// reads the node, records it in the device, wakes its waiters and queues
/// the change for the driver.
fn watch_otherend<P: Platform>(bus: &Arc<BusShared<P>>, dev: &Device<P>) -> Result<(), BusError> {
    let Some(otherend) = dev.otherend() else {
        return Err(BusError::NoOtherend {
            nodename: dev.nodename().into(),
        });
    };
    let (weak_bus, weak_dev) = (Arc::downgrade(bus), Arc::downgrade(&dev.inner));
    let watched = otherend.clone();
    let callback = move |event: &WatchEvent| {
        let (Some(bus), Some(inner)) = (weak_bus.upgrade(), weak_dev.upgrade()) else {
            return;
        };
        let dev = Device { inner };
        // Ignore events for an other end we no longer follow (Linux's
        // guard, e.g. right after a resume changed the details).
        if dev.otherend().as_ref() != Some(&watched) {
            return;
        }
        if let Some(p) = event.path()
            && !p.starts_with(watched.path.as_str())
        {
            return;
        }
        match otherend::read_state(&bus.xs, &watched) {
            Ok(state) => {
                let queue = dev.inner.state.with(|s| {
                    s.seen = Some(state.clone());
                    s.otherend_queued.replace(state).is_none()
                });
                dev.inner.changed.wake_all();
                if queue {
                    let _ = bus.work.push(Work::Otherend(dev));
                }
            }
            Err(e) => {
                let err = BusError::store("reading the other end's state", e);
                log::warn!("xenbus: {}: {err}", dev.nodename());
            }
        }
    };
    let watch = bus
        .xs
        .watch(&otherend.state_path(), callback)
        .map_err(|e| BusError::store("watching the other end's state", e))?;
    let old = dev.inner.otherend_watch.with(|w| w.replace(watch));
    drop(old);
    Ok(())
}

/// Stops watching the device's other end (outside every lock).
fn unwatch_otherend<P: Platform>(dev: &Device<P>) {
    let watch = dev.inner.otherend_watch.with(Option::take);
    if let Some(w) = watch
        && let Err(e) = w.unwatch()
    {
        log::warn!("xenbus: {}: unwatching the other end: {e}", dev.nodename());
    }
}

fn otherend_changed<P: Platform>(bus: &Arc<BusShared<P>>, dev: &Device<P>, state: &OtherendState) {
    let bound = dev.inner.state.with(|s| s.driver.is_some() && !s.removed);
    if let (true, Some(driver)) = (bound, bus.driver_for(&dev.inner.class)) {
        driver.otherend_changed(dev, state);
    }
}

/// The device node is gone: forget the device and let its driver go.
fn detach<P: Platform>(bus: &Arc<BusShared<P>>, dev: &Device<P>) {
    let bound = dev.inner.state.with(|s| {
        s.removed = true;
        s.driver.take().is_some()
    });
    dev.inner.changed.wake_all();
    bus.registry.with(|r| r.devices.remove(dev.nodename()));
    unwatch_otherend(dev);
    if let (true, Some(driver)) = (bound, bus.driver_for(&dev.inner.class)) {
        driver.detach(dev);
    }
    dev.clear_driver_data();
    match dev.switch_state(XenbusState::Closed) {
        Ok(()) | Err(BusError::DeviceRemoved { .. }) => {}
        Err(e) => log::warn!("xenbus: {}: cannot switch to Closed: {e}", dev.nodename()),
    }
}

/// See [`super::Bus::suspend_and_resume`].
fn suspend_resume<P: Platform>(
    bus: &Arc<BusShared<P>>,
    step: PlatformSuspend,
) -> Result<SuspendOutcome, BusError> {
    // The registry and each device's state are taken one after the other,
    // never nested (see the bus's lock rules).
    let devices: Vec<Device<P>> = bus.registry.with(|r| r.devices.values().cloned().collect());
    let bound: Vec<(Device<P>, Arc<dyn Driver<P>>)> = devices
        .into_iter()
        .filter(|d| d.inner.state.with(|s| s.driver.is_some()))
        .filter_map(|d| {
            let driver = bus.driver_for(&d.inner.class)?;
            Some((d, driver))
        })
        .collect();
    for (dev, driver) in &bound {
        if let Err(e) = driver.suspend(dev) {
            log::warn!("xenbus: {}: suspend failed: {e}", dev.nodename());
        }
        unwatch_otherend(dev);
    }
    let outcome = step();
    for (dev, driver) in &bound {
        if outcome == Ok(SuspendOutcome::Resumed) {
            resume_device(bus, dev, driver);
        } else if let Err(e) = watch_otherend(bus, dev) {
            dev.dev_error(&e, "watching the other end again");
        }
    }
    // Devices may have come or gone while we were away.
    let _ = bus.rescan(None);
    outcome
}

/// Linux's `xenbus_dev_resume`: re-read the other end, forget our cached
/// state, resume the driver, watch the other end again.
fn resume_device<P: Platform>(
    bus: &Arc<BusShared<P>>,
    dev: &Device<P>,
    driver: &Arc<dyn Driver<P>>,
) {
    let details = otherend::read_details(&bus.xs, dev.nodename());
    dev.inner.state.with(|s| {
        s.ours = XenbusState::Unknown;
        s.seen = None;
        if let Ok(o) = &details {
            s.otherend = Some(o.clone());
        }
    });
    if let Err(e) = details {
        // The rescan that follows detaches it if the node is gone.
        return dev.dev_error(&e, "reading the other end's details after resume");
    }
    if let Err(e) = driver.resume(dev) {
        dev.dev_error(&e, "resume");
    }
    if let Err(e) = watch_otherend(bus, dev) {
        dev.dev_error(&e, "watching the other end after resume");
    }
}
